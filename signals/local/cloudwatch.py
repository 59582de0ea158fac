"""CloudWatch in the embedded AWS: function logs, EMF metrics, AWS/Lambda, AWS/SQS and AWS/Firehose metrics.

In Lambda, what a function prints lands in its log group, one log stream per function instance, and
lines in the Embedded Metric Format become CloudWatch metrics; the services publish their own
metrics (AWS/Lambda, AWS/SQS, AWS/Firehose). `CloudWatchPublisher` does the same for the local
stack, off the functions' hot path: the function side only appends to a queue (`sink`, `started`,
`finished`), and a background thread batches `PutLogEvents` and `PutMetricData` (every
`flush_seconds`), and samples the queues and the Firehose stand-in (every `sample_seconds`).

- logs: `/aws/lambda/<function>` (the template's `LoggingConfig.LogGroup`), stream
  `YYYY/MM/DD/[$LATEST]<hex>` per `LocalFunction` instance, each line one event; with the
  template's `LogFormat: JSON` Lambda's own lines are JSON (`platform.start`, `platform.report`);
- EMF: `_aws.CloudWatchMetrics` directives (namespace, dimension sets, metric names, units,
  storage resolution, `_aws.Timestamp`), values single or arrays, as Lambda's EMF processing reads
  them; the line stays in the log too;
- AWS/Lambda per function (dimension FunctionName): Invocations, Errors, Duration, ConcurrentExecutions;
- AWS/SQS per queue (QueueName): ApproximateNumberOfMessagesVisible / NotVisible / Delayed and
  ApproximateAgeOfOldestMessage (the oldest message not deleted, read from moto's queue without
  receiving it, which would count toward maxReceiveCount);
- AWS/Firehose per stream (DeliveryStreamName): IncomingRecords, IncomingBytes, ThrottledRecords,
  DeliveryToS3.Records, DeliveryToS3.Success, DeliveryToS3.DataFreshness (age of the oldest
  buffered record).

- AWS/ApiGateway per API and stage (ApiName, Stage): Count, 4XXError, 5XXError, Latency of each
  request the ingest API answers.

Not published: SQS's NumberOfMessagesSent/Received/Deleted, Lambda's Throttles (the local functions
never throttle), API Gateway's IntegrationLatency and the 4xx the HTTP server itself answers
(a bad Content-Length, a body over 10 MiB).
"""

from __future__ import annotations

import collections
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from signals.local.runtime import LambdaContext, LocalFunction
from signals.local.wiring import QueueSpec

log = logging.getLogger("signals.local.cloudwatch")

MAX_EVENTS_PER_PUT: Final = 10_000  # PutLogEvents
MAX_BYTES_PER_PUT: Final = 1_048_576  # PutLogEvents, counting 26 bytes per event
MAX_DATA_PER_PUT: Final = 1000  # PutMetricData MetricData entries
MAX_VALUES_PER_DATUM: Final = 150  # PutMetricData Values
MAX_EVENT_BYTES: Final = 256 * 1024 - 26  # one log event, as CloudWatch Logs counts it


@dataclass
class _LogBuffer:
    partial: str = ""
    events: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _FirehoseSample:
    records_in: int = 0
    bytes_in: int = 0
    records_failed: int = 0
    objects_out: int = 0
    delivered: int = 0


class CloudWatchPublisher:
    """Batches function logs and metrics into the embedded CloudWatch on one background thread."""

    def __init__(
        self,
        logs: Any,
        cloudwatch: Any,
        log_groups: dict[str, str],
        *,
        sqs: Any | None = None,
        queues: Iterable[QueueSpec] = (),
        firehose: Any | None = None,
        json_platform_logs: Iterable[str] = (),
        api: tuple[str, str] | None = None,
        flush_seconds: float = 0.5,
        sample_seconds: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._logs = logs
        self._cloudwatch = cloudwatch
        self._log_groups = dict(log_groups)  # function name -> log group
        self._sqs = sqs
        self._queues = list(queues)
        self._firehose = firehose
        self._json_platform = set(json_platform_logs)  # functions whose LogFormat is JSON
        self._api_dimensions = ([{"Name": "ApiName", "Value": api[0]}, {"Name": "Stage", "Value": api[1]}]
                                if api is not None else [])
        self.flush_seconds = flush_seconds
        self.sample_seconds = sample_seconds
        self._clock = clock
        self._pending: collections.deque[tuple[float, str, str]] = collections.deque()
        self._pending_metrics: collections.deque[tuple[str, dict[str, Any]]] = collections.deque()
        self._streams: dict[str, str] = {}  # function name -> its instance's stream
        self._created_streams: set[tuple[str, str]] = set()
        self._buffers: dict[str, _LogBuffer] = {}
        self._firehose_seen: dict[str, _FirehoseSample] = {}
        self._flush_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_sample = 0.0
        self.events_put = 0
        self.metrics_put = 0

    # --- the function side (hot path: append only) ----------------------------------------------

    def sink(self, function_name: str, text: str) -> None:
        """Whatever a function writes (RoutedStdout's sink)."""
        self._pending.append((self._clock(), function_name, text))

    def started(self, function: LocalFunction, context: LambdaContext) -> str | None:
        self._streams[function.name] = context.log_stream_name
        if function.name in self._json_platform:
            return json.dumps({"time": _iso(self._clock()), "type": "platform.start",
                               "record": {"requestId": context.aws_request_id, "version": "$LATEST"}})
        return f"START RequestId: {context.aws_request_id} Version: $LATEST"

    def finished(self, function: LocalFunction, context: LambdaContext, duration_s: float,
                 error: BaseException | None) -> str | None:
        now = self._clock()
        duration_ms = duration_s * 1000
        dimensions = [{"Name": "FunctionName", "Value": function.name}]
        stamp = datetime.fromtimestamp(now, tz=UTC)
        for name, value, unit in (("Invocations", 1.0, "Count"), ("Errors", 1.0 if error else 0.0, "Count"),
                                  ("Duration", duration_ms, "Milliseconds"), ("ConcurrentExecutions", 1.0, "Count")):
            self._pending_metrics.append(("AWS/Lambda", {"MetricName": name, "Dimensions": dimensions,
                                                         "Value": value, "Unit": unit, "Timestamp": stamp}))
        billed = max(1, int(duration_ms + 0.999))
        memory = function.spec.memory_mb
        if function.name in self._json_platform:
            return json.dumps({"time": _iso(now), "type": "platform.report", "record": {
                "requestId": context.aws_request_id,
                "metrics": {"durationMs": round(duration_ms, 2), "billedDurationMs": billed, "memorySizeMB": memory},
                "status": "error" if error else "success"}})
        return (f"END RequestId: {context.aws_request_id}\nREPORT RequestId: {context.aws_request_id}\t"
                f"Duration: {duration_ms:.2f} ms\tBilled Duration: {billed} ms\tMemory Size: {memory} MB")

    def api_request(self, status: int, latency_s: float) -> None:
        """One request the ingest API answered (IngestApi observer): API Gateway's metrics for its stage."""
        stamp = datetime.fromtimestamp(self._clock(), tz=UTC)
        for name, value, unit in (("Count", 1.0, "Count"), ("4XXError", float(400 <= status < 500), "Count"),
                                  ("5XXError", float(status >= 500), "Count"),
                                  ("Latency", latency_s * 1000, "Milliseconds")):
            self._pending_metrics.append(("AWS/ApiGateway", {"MetricName": name, "Dimensions": self._api_dimensions,
                                                             "Value": value, "Unit": unit, "Timestamp": stamp}))

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="cloudwatch-publisher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        try:
            self.flush(final=True)
        except Exception:
            log.exception("cloudwatch publisher: could not send the last logs and metrics")

    def _run(self) -> None:
        while True:
            try:
                if self._clock() - self._last_sample >= self.sample_seconds:
                    self.sample()
                self.flush()
            except Exception:
                log.exception("cloudwatch publisher failed")
            if self._stop.wait(self.flush_seconds):
                return

    # --- the publishing side ---------------------------------------------------------------------

    def flush(self, *, final: bool = False) -> None:
        """Send what is pending now (a partial last line too when `final`)."""
        with self._flush_lock:
            self._flush_logs(final=final)
            self._flush_metrics()

    def sample(self) -> None:
        """Publish the queues' and Firehose's metrics now."""
        self._last_sample = self._clock()
        stamp = datetime.fromtimestamp(self._last_sample, tz=UTC)
        for datum in self._queue_data(stamp):
            self._pending_metrics.append(("AWS/SQS", datum))
        for datum in self._firehose_data(stamp):
            self._pending_metrics.append(("AWS/Firehose", datum))

    def _flush_logs(self, *, final: bool) -> None:
        touched: set[str] = set()
        while self._pending:
            stamp, function_name, text = self._pending.popleft()
            buffer = self._buffers.setdefault(function_name, _LogBuffer())
            lines = (buffer.partial + text).split("\n")
            buffer.partial = lines.pop()
            for line in lines:
                self._add_line(function_name, buffer, stamp, line)
            touched.add(function_name)
        for function_name, buffer in self._buffers.items():
            if final and buffer.partial:
                self._add_line(function_name, buffer, self._clock(), buffer.partial)
                buffer.partial = ""
            if buffer.events:
                events, buffer.events = buffer.events, []  # a batch moto refuses is logged once, not retried forever
                self._put_events(function_name, events)

    def _add_line(self, function_name: str, buffer: _LogBuffer, stamp: float, line: str) -> None:
        if not line.strip():
            return
        message = line
        if len(line.encode("utf-8", "replace")) > MAX_EVENT_BYTES:  # CloudWatch refuses a larger event
            message = line.encode("utf-8", "replace")[:MAX_EVENT_BYTES - 16].decode("utf-8", "ignore") + " [truncated]"
        buffer.events.append({"timestamp": int(stamp * 1000), "message": message})
        if '"_aws"' in line:
            for namespace, datum in emf_metric_data(line):
                self._pending_metrics.append((namespace, datum))

    def _put_events(self, function_name: str, events: list[dict[str, Any]]) -> None:
        group = self._log_groups.get(function_name, f"/aws/lambda/{function_name}")
        stream = self._streams.get(function_name) or "local"
        self._ensure_stream(group, stream)
        events.sort(key=lambda e: e["timestamp"])
        batch: list[dict[str, Any]] = []
        size = 0
        for event in events:
            event_size = len(event["message"].encode("utf-8", "replace")) + 26
            if batch and (len(batch) >= MAX_EVENTS_PER_PUT or size + event_size > MAX_BYTES_PER_PUT):
                self._logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=batch)
                self.events_put += len(batch)
                batch, size = [], 0
            batch.append(event)
            size += event_size
        if batch:
            self._logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=batch)
            self.events_put += len(batch)

    def _ensure_stream(self, group: str, stream: str) -> None:
        if (group, stream) in self._created_streams:
            return
        try:
            self._logs.create_log_stream(logGroupName=group, logStreamName=stream)
        except self._logs.exceptions.ResourceNotFoundException:
            # No log group in the template for this function: Lambda creates /aws/lambda/<name> itself.
            self._logs.create_log_group(logGroupName=group)
            self._logs.create_log_stream(logGroupName=group, logStreamName=stream)
        except self._logs.exceptions.ResourceAlreadyExistsException:
            pass
        self._created_streams.add((group, stream))

    def _flush_metrics(self) -> None:
        by_namespace: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
        while self._pending_metrics:
            namespace, datum = self._pending_metrics.popleft()
            by_namespace[namespace].append(datum)
        for namespace, raw in by_namespace.items():
            data = aggregate(raw)
            for start in range(0, len(data), MAX_DATA_PER_PUT):
                chunk = data[start:start + MAX_DATA_PER_PUT]
                self._cloudwatch.put_metric_data(Namespace=namespace, MetricData=chunk)
                self.metrics_put += len(chunk)

    def _queue_data(self, stamp: datetime) -> list[dict[str, Any]]:
        if self._sqs is None:
            return []
        data: list[dict[str, Any]] = []
        ages = oldest_message_ages([q.name for q in self._queues], self._clock())
        for queue in self._queues:
            attributes = self._sqs.get_queue_attributes(QueueUrl=queue.url, AttributeNames=[
                "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed"])["Attributes"]
            dimensions = [{"Name": "QueueName", "Value": queue.name}]
            for metric, value, unit in (
                ("ApproximateNumberOfMessagesVisible", attributes.get("ApproximateNumberOfMessages", 0), "Count"),
                ("ApproximateNumberOfMessagesNotVisible",
                 attributes.get("ApproximateNumberOfMessagesNotVisible", 0), "Count"),
                ("ApproximateNumberOfMessagesDelayed",
                 attributes.get("ApproximateNumberOfMessagesDelayed", 0), "Count"),
                ("ApproximateAgeOfOldestMessage", ages.get(queue.name, 0.0), "Seconds"),
            ):
                data.append({"MetricName": metric, "Dimensions": dimensions, "Value": float(value),
                             "Unit": unit, "Timestamp": stamp})
        return data

    def _firehose_data(self, stamp: datetime) -> list[dict[str, Any]]:
        standin = self._firehose
        if standin is None:
            return []
        data: list[dict[str, Any]] = []
        oldest = buffered_since(standin)
        for name, stats in standin.stats.items():
            seen = self._firehose_seen.setdefault(name, _FirehoseSample())
            incoming = stats.records_in - seen.records_in
            throttled = stats.records_failed - seen.records_failed
            incoming_bytes = stats.bytes_in - seen.bytes_in
            objects = stats.objects_out - seen.objects_out
            delivered_total = stats.records_in - _buffered(standin, name)
            delivered = max(delivered_total - seen.delivered, 0)
            seen.delivered = delivered_total
            seen.records_in, seen.records_failed = stats.records_in, stats.records_failed
            seen.bytes_in, seen.objects_out = stats.bytes_in, stats.objects_out
            dimensions = [{"Name": "DeliveryStreamName", "Value": name}]
            values: list[tuple[str, float, str]] = [
                ("IncomingRecords", float(incoming), "Count"),
                ("IncomingBytes", float(incoming_bytes), "Bytes"),
                ("ThrottledRecords", float(throttled), "Count"),
                ("DeliveryToS3.Records", float(delivered), "Count"),
            ]
            if objects:
                values.append(("DeliveryToS3.Success", 1.0, "None"))
            first = oldest.get(name)
            if first is not None or objects:
                values.append(("DeliveryToS3.DataFreshness",
                               max(self._clock() - first, 0.0) if first is not None else 0.0, "Seconds"))
            data += [{"MetricName": metric, "Dimensions": dimensions, "Value": value, "Unit": unit,
                      "Timestamp": stamp} for metric, value, unit in values]
        return data


def aggregate(data: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One datum per metric (name, dimensions, unit, resolution) with its StatisticValues.

    What CloudWatch keeps of many values is their statistic set; moto stores every value sent as its
    own datum, so a flush's values (one per invocation and metric) are sent as one set.
    """
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for datum in data:
        key = (datum["MetricName"], tuple((d["Name"], d["Value"]) for d in datum["Dimensions"]),
               datum.get("Unit"), datum.get("StorageResolution"))
        groups.setdefault(key, []).append(datum)
    result: list[dict[str, Any]] = []
    for members in groups.values():
        values = [v for m in members for v in (m["Values"] if "Values" in m else [m["Value"]])]
        first = members[0]
        merged: dict[str, Any] = {key: first[key] for key in ("MetricName", "Dimensions", "Unit",
                                                                 "StorageResolution") if key in first}
        stamps = [m["Timestamp"] for m in members if "Timestamp" in m]
        if stamps:
            merged["Timestamp"] = max(stamps)
        if len(values) == 1:
            merged["Value"] = values[0]
        else:
            merged["StatisticValues"] = {"SampleCount": float(len(values)), "Sum": float(sum(values)),
                                         "Minimum": float(min(values)), "Maximum": float(max(values))}
        result.append(merged)
    return result


def emf_metric_data(line: str) -> list[tuple[str, dict[str, Any]]]:
    """(namespace, MetricDatum) for each metric an EMF log line declares; [] for any other line."""
    try:
        document = json.loads(line)
    except ValueError:
        return []
    if not isinstance(document, dict):
        return []
    metadata = document.get("_aws")
    if not isinstance(metadata, dict):
        return []
    timestamp = metadata.get("Timestamp")
    stamp = datetime.fromtimestamp(timestamp / 1000, tz=UTC) if isinstance(timestamp, int | float) else None
    result: list[tuple[str, dict[str, Any]]] = []
    for directive in metadata.get("CloudWatchMetrics") or []:
        namespace = str(directive.get("Namespace") or "aws-embedded-metrics")
        dimension_sets = directive.get("Dimensions") or [[]]
        for metric in directive.get("Metrics") or []:
            name = metric.get("Name")
            value = document.get(name)
            if name is None or value is None:
                continue
            values = value if isinstance(value, list) else [value]
            numbers = [float(v) for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
            if not numbers:
                continue
            for dimension_set in dimension_sets:
                dimensions = [{"Name": str(key), "Value": str(document[key])}
                              for key in dimension_set if key in document]
                for start in range(0, len(numbers), MAX_VALUES_PER_DATUM):
                    datum: dict[str, Any] = {"MetricName": str(name), "Dimensions": dimensions,
                                             "Unit": str(metric.get("Unit") or "None")}
                    chunk = numbers[start:start + MAX_VALUES_PER_DATUM]
                    if len(chunk) == 1:
                        datum["Value"] = chunk[0]
                    else:
                        datum["Values"] = chunk
                    if stamp is not None:
                        datum["Timestamp"] = stamp
                    if metric.get("StorageResolution"):
                        datum["StorageResolution"] = int(metric["StorageResolution"])
                    result.append((namespace, datum))
    return result


def oldest_message_ages(queue_names: list[str], now: float) -> dict[str, float]:
    """Seconds since the oldest not-deleted message of each queue was sent, from moto's backend.

    Read in place (this process runs moto): receiving the message to look at it would count toward
    its maxReceiveCount.
    """
    from moto.sqs.models import sqs_backends  # noqa: PLC0415

    from signals.local.template import ACCOUNT_ID, REGION  # noqa: PLC0415

    backend = sqs_backends[ACCOUNT_ID][REGION]
    ages: dict[str, float] = {}
    for name in queue_names:
        queue = backend.queues.get(name)
        if queue is None:
            continue
        sent: list[float] = [float(m.sent_timestamp or 0) for m in list(queue._messages) if m.sent_timestamp]
        ages[name] = max(now - min(sent) / 1000, 0.0) if sent else 0.0
    return ages


def buffered_since(standin: Any) -> dict[str, float]:
    """Arrival time of each stream's oldest buffered record (the stand-in's buffers, read under its lock)."""
    with standin._lock:
        return {name: b.first_arrival for name, b in standin._buffers.items()
                if b.records and b.first_arrival is not None}


def _buffered(standin: Any, name: str) -> int:
    with standin._lock:
        buffer = standin._buffers.get(name)
        return len(buffer.records) if buffer is not None else 0


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
