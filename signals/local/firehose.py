"""A Firehose stand-in faithful where moto's is not, served over Firehose's own JSON protocol.

moto's Firehose writes one object per call, never gzips, ignores buffering and `!{timestamp:...}`,
always reports `FailedPutCount` 0 and enforces no limits. This one, per stream of the template:

- enforces the API limits with the service's errors: at most 500 records and 4 MiB per
  `PutRecordBatch`, no record over 1,000 KiB;
- buffers records by the stream's BufferingHints (SizeInMBs, IntervalInSeconds; the local stack may
  shorten the interval) and writes the buffer as ONE object with ONE PutObject (a multipart upload
  would fire two notifications in moto), gzipped when CompressionFormat is GZIP;
- expands `!{timestamp:...}` in the prefix from the arrival time of the oldest record in the object
  and names it like Firehose: `{stream}-{version}-{yyyy-MM-dd-HH-mm-ss}-{uuid}[.gz]`;
- can be told to fail records or whole calls, or every call for a while (fault injection), reported
  the way the service does (per-record `ErrorCode` plus `FailedPutCount`, or a
  `ServiceUnavailableException`), and to deliver an object twice (Firehose is at least once);
- writes every buffered record on shutdown.

It answers every Firehose call on the embedded AWS endpoint (`interceptor`, installed with
`AwsGateway.intercept("firehose", ...)`), so the ingester and any client (boto3, the aws CLI) reach it
with `AWS_ENDPOINT_URL` alone: PutRecordBatch, PutRecord, DescribeDeliveryStream (the template's
settings as applied here) and ListDeliveryStreams; any other operation is an error.
"""

from __future__ import annotations

import base64
import gzip
import json
import logging
import re
import secrets
import string
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any, Final

from werkzeug.wrappers import Response

from signals.local.gateway import AwsRequest, json_error
from signals.local.wiring import StreamSpec

log = logging.getLogger("signals.local.firehose")

MAX_BATCH_RECORDS: Final = 500
MAX_BATCH_BYTES: Final = 4 * 1024 * 1024
MAX_RECORD_BYTES: Final = 1000 * 1024
STREAM_VERSION: Final = "1"
SUPPORTED_COMPRESSION: Final = frozenset({"UNCOMPRESSED", "GZIP"})
MAX_LIST_LIMIT: Final = 10000
_JAVA_TO_STRFTIME: Final = (("yyyy", "%Y"), ("MM", "%m"), ("dd", "%d"), ("HH", "%H"), ("mm", "%M"), ("ss", "%S"))
_EXPRESSION: Final = re.compile(r"!\{([a-zA-Z]+):([^}]*)\}")


class FirehoseError(Exception):
    """An error the service returns for the whole call."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


def expand_prefix(prefix: str, arrival: datetime, *, error_output_type: str | None = None) -> str:
    """Firehose's custom prefix: `!{timestamp:fmt}`, `!{firehose:random-string}`, `!{firehose:error-output-type}`.

    A prefix without any expression gets Firehose's default `YYYY/MM/dd/HH/` appended.
    """
    if "!{" not in prefix:
        return prefix + arrival.strftime("%Y/%m/%d/%H/")

    def replace(match: re.Match[str]) -> str:
        namespace, argument = match.group(1), match.group(2)
        if namespace == "timestamp":
            pattern = argument
            for java, python in _JAVA_TO_STRFTIME:
                pattern = pattern.replace(java, python)
            return arrival.strftime(pattern)
        if namespace == "firehose" and argument == "random-string":
            return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(11))
        if namespace == "firehose" and argument == "error-output-type" and error_output_type is not None:
            return error_output_type
        raise ValueError(f"unsupported prefix expression {match.group(0)}")

    return _EXPRESSION.sub(replace, prefix)


def object_name(stream: str, arrival: datetime, *, gzipped: bool) -> str:
    stamp = arrival.strftime("%Y-%m-%d-%H-%M-%S")
    return f"{stream}-{STREAM_VERSION}-{stamp}-{uuid.uuid4()}" + (".gz" if gzipped else "")


@dataclass
class _Buffer:
    records: list[bytes] = field(default_factory=list)
    size: int = 0
    first_arrival: float | None = None


@dataclass
class StreamStats:
    records_in: int = 0
    bytes_in: int = 0
    records_failed: int = 0
    objects_out: int = 0
    keys: list[str] = field(default_factory=list)


class FirehoseStandIn:
    """Buffers and delivers records per stream; `put_record_batch` is the service's core."""

    def __init__(
        self,
        streams: dict[str, StreamSpec],
        s3_client: Any,
        *,
        interval_override: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        for spec in streams.values():
            if spec.compression.upper() not in SUPPORTED_COMPRESSION:
                raise ValueError(f"Firehose {spec.name}: CompressionFormat {spec.compression} is not supported "
                                 f"locally (only {', '.join(sorted(SUPPORTED_COMPRESSION))})")
        self.streams = streams
        self.created = clock()
        self._s3 = s3_client
        self._interval_override = interval_override
        self._clock = clock
        self._lock = threading.Lock()
        # Held from taking a buffer until its object is in S3, and by a data-directory snapshot, so a
        # snapshot sees every accepted record either in a buffer or in S3 (signals.local.persist).
        self.delivery_lock = threading.RLock()
        #: Called under the lock with the records each call accepted (the data directory's journal).
        self.on_accept: Callable[[str, list[bytes]], None] | None = None
        self._buffers = {name: _Buffer() for name in streams}
        self.stats = {name: StreamStats() for name in streams}
        self._in_flight = 0
        self._fail_records: list[tuple[str, str]] = []
        self._fail_calls: list[FirehoseError] = []
        self._outage: tuple[float, FirehoseError] | None = None  # (until, error), monotonic clock
        self._duplicate_objects = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- fault injection -------------------------------------------------------------------------

    def fail_next_records(
        self, count: int, error_code: str = "ServiceUnavailableException", message: str = "Slow down."
    ) -> None:
        """The next `count` records of any PutRecordBatch/PutRecord fail with this per-record error."""
        with self._lock:
            self._fail_records.extend([(error_code, message)] * count)

    def fail_next_calls(self, count: int, error_code: str = "ServiceUnavailableException",
                        message: str = "Slow down.", status: int = 503) -> None:
        """The next `count` calls fail as a whole (the client sees an error, nothing is written)."""
        with self._lock:
            self._fail_calls.extend([FirehoseError(error_code, message, status)] * count)

    def fail_calls_for(self, seconds: float, error_code: str = "ServiceUnavailableException",
                       message: str = "Slow down.", status: int = 503) -> None:
        """An outage: every call fails as a whole for the next `seconds`."""
        with self._lock:
            self._outage = (time.monotonic() + seconds, FirehoseError(error_code, message, status))

    def duplicate_next_objects(self, count: int) -> None:
        """The next `count` objects are delivered twice, under two names (the service is at least once)."""
        with self._lock:
            self._duplicate_objects += count

    def clear_faults(self) -> None:
        with self._lock:
            self._fail_records.clear()
            self._fail_calls.clear()
            self._outage = None
            self._duplicate_objects = 0

    # --- API -------------------------------------------------------------------------------------

    def interval(self, stream: StreamSpec) -> float:
        return self._interval_override if self._interval_override is not None else stream.interval_seconds

    def put_record_batch(self, stream_name: str, records: list[bytes]) -> dict[str, Any]:
        stream = self._stream(stream_name)
        if not records:
            raise FirehoseError("ValidationException", "1 validation error detected: Value '[]' at 'records' "
                                "failed to satisfy constraint: Member must have length greater than or equal to 1")
        if len(records) > MAX_BATCH_RECORDS:
            raise FirehoseError("ValidationException", "1 validation error detected: Value at 'records' failed "
                                "to satisfy constraint: Member must have length less than or equal to "
                                f"{MAX_BATCH_RECORDS}")
        for index, data in enumerate(records, start=1):
            if len(data) > MAX_RECORD_BYTES:
                raise FirehoseError("ValidationException", f"1 validation error detected: Value at "
                                    f"'records.{index}.member.data' failed to satisfy constraint: Member must "
                                    f"have length less than or equal to {MAX_RECORD_BYTES}")
        if sum(len(data) for data in records) > MAX_BATCH_BYTES:
            raise FirehoseError("InvalidArgumentException", "Records size exceeds 4 MiB limit")
        with self.delivery_lock:
            return self._put_record_batch(stream, records)

    def _put_record_batch(self, stream: StreamSpec, records: list[bytes]) -> dict[str, Any]:
        responses: list[dict[str, str]] = []
        failed = 0
        accepted: list[bytes] = []
        to_flush: list[tuple[StreamSpec, _Buffer]] = []
        with self._lock:
            if self._fail_calls:
                raise self._fail_calls.pop(0)
            if self._outage is not None and time.monotonic() < self._outage[0]:
                raise self._outage[1]
            buffer = self._buffers[stream.name]
            stats = self.stats[stream.name]
            limit = int(stream.size_mb * 1024 * 1024)
            for data in records:
                if self._fail_records:
                    code, message = self._fail_records.pop(0)
                    responses.append({"ErrorCode": code, "ErrorMessage": message})
                    failed += 1
                    continue
                if buffer.records and buffer.size + len(data) > limit:
                    to_flush.append((stream, self._take(stream.name)))
                    buffer = self._buffers[stream.name]
                if buffer.first_arrival is None:
                    buffer.first_arrival = self._clock()
                buffer.records.append(data)
                buffer.size += len(data)
                accepted.append(data)
                responses.append({"RecordId": secrets.token_hex(28)})
            if accepted and self.on_accept is not None:
                self.on_accept(stream.name, accepted)
            stats.records_in += len(records) - failed
            stats.bytes_in += sum(len(d) for d in records)
            stats.records_failed += failed
        for flush_stream, taken in to_flush:
            self._deliver(flush_stream, taken)
        return {"FailedPutCount": failed, "Encrypted": False, "RequestResponses": responses}

    def put_record(self, stream_name: str, data: bytes) -> dict[str, Any]:
        result = self.put_record_batch(stream_name, [data])
        response = result["RequestResponses"][0]
        if "ErrorCode" in response:
            raise FirehoseError(response["ErrorCode"], response["ErrorMessage"], 503)
        return {"RecordId": response["RecordId"], "Encrypted": False}

    def describe(self, stream_name: str) -> dict[str, Any]:
        """DescribeDeliveryStream: the template's settings as this stand-in applies them.

        BufferingHints carry the interval the stand-in really uses (the local override, when set).
        """
        stream = self._stream(stream_name)
        destination: dict[str, Any] = {
            "RoleARN": stream.role_arn,
            "BucketARN": f"arn:aws:s3:::{stream.bucket}",
            "Prefix": stream.prefix,
            "ErrorOutputPrefix": stream.error_output_prefix,
            "BufferingHints": {"SizeInMBs": _number(stream.size_mb),
                               "IntervalInSeconds": _number(self.interval(stream))},
            "CompressionFormat": stream.compression,
            "EncryptionConfiguration": {"NoEncryptionConfig": "NoEncryption"},
            "S3BackupMode": "Disabled",
        }
        if stream.cloudwatch_logging is not None:
            enabled, group, log_stream = stream.cloudwatch_logging
            destination["CloudWatchLoggingOptions"] = {"Enabled": enabled, "LogGroupName": group,
                                                       "LogStreamName": log_stream}
        s3_only = {k: v for k, v in destination.items() if k != "S3BackupMode"}
        description: dict[str, Any] = {
            "DeliveryStreamName": stream.name,
            "DeliveryStreamARN": stream.arn,
            "DeliveryStreamStatus": "ACTIVE",
            "DeliveryStreamType": "DirectPut",
            "VersionId": STREAM_VERSION,
            "CreateTimestamp": self.created,
            "HasMoreDestinations": False,
            "Destinations": [
                {
                    "DestinationId": "destinationId-000000000001",
                    # The service describes an extended S3 destination both ways.
                    "S3DestinationDescription": s3_only,
                    "ExtendedS3DestinationDescription": destination,
                }
            ],
        }
        if stream.encryption_key_type:
            description["DeliveryStreamEncryptionConfiguration"] = {"KeyType": stream.encryption_key_type,
                                                                    "Status": "ENABLED"}
        return {"DeliveryStreamDescription": description}

    def list_streams(self, request: dict[str, Any] | None = None) -> dict[str, Any]:
        """ListDeliveryStreams: names in order, after `ExclusiveStartDeliveryStreamName`, at most `Limit`."""
        request = request or {}
        limit = int(request.get("Limit") or MAX_LIST_LIMIT)
        if not 1 <= limit <= MAX_LIST_LIMIT:
            raise FirehoseError("ValidationException", f"1 validation error detected: Value '{limit}' at 'limit' "
                                f"failed to satisfy constraint: Member must have value between 1 and {MAX_LIST_LIMIT}")
        kind = request.get("DeliveryStreamType")
        names = sorted(self.streams) if kind in (None, "DirectPut") else []
        start = request.get("ExclusiveStartDeliveryStreamName")
        if start:
            names = [name for name in names if name > str(start)]
        return {"DeliveryStreamNames": names[:limit], "HasMoreDeliveryStreams": len(names) > limit}

    def _stream(self, name: str) -> StreamSpec:
        stream = self.streams.get(name)
        if stream is None:
            raise FirehoseError(
                "ResourceNotFoundException",
                f"Firehose {name} under account 123456789012 not found.",
            )
        return stream

    # --- buffering and delivery ------------------------------------------------------------------

    def _take(self, name: str) -> _Buffer:
        """Swap the stream's buffer for an empty one (caller holds the lock)."""
        taken = self._buffers[name]
        self._buffers[name] = _Buffer()
        self._in_flight += 1
        return taken

    def _deliver(self, stream: StreamSpec, buffer: _Buffer) -> None:
        try:
            arrival = datetime.fromtimestamp(buffer.first_arrival or self._clock(), tz=UTC)
            payload = b"".join(buffer.records)
            gzipped = stream.compression.upper() == "GZIP"
            if gzipped:
                payload = gzip.compress(payload, compresslevel=6, mtime=0)
            with self._lock:
                copies = 2 if self._duplicate_objects > 0 else 1
                self._duplicate_objects -= copies - 1
            for _ in range(copies):
                key = expand_prefix(stream.prefix, arrival) + object_name(stream.name, arrival, gzipped=gzipped)
                for attempt in range(1, 6):
                    try:
                        self._s3.put_object(Bucket=stream.bucket, Key=key, Body=payload)
                        break
                    except Exception:
                        # The real service retries S3 for up to 24 h; locally a few tries, then the error is logged.
                        if attempt == 5:
                            log.exception("firehose %s: could not write %s", stream.name, key)
                            return
                        time.sleep(0.2 * attempt)
                with self._lock:
                    stats = self.stats[stream.name]
                    stats.objects_out += 1
                    stats.keys.append(key)
        finally:
            with self._lock:
                self._in_flight -= 1

    def flush_due(self, *, force: bool = False) -> int:
        """Deliver every buffer whose interval has passed (all of them with `force`); returns objects written."""
        now = self._clock()
        due: list[tuple[StreamSpec, _Buffer]] = []
        with self.delivery_lock:
            with self._lock:
                for name, buffer in self._buffers.items():
                    stream = self.streams[name]
                    if buffer.records and (force or now - (buffer.first_arrival or now) >= self.interval(stream)):
                        due.append((stream, self._take(name)))
            for stream, buffer in due:
                self._deliver(stream, buffer)
        return len(due)

    def buffered(self) -> dict[str, tuple[list[bytes], float | None]]:
        """Every non-empty buffer: its records and the arrival time of the oldest (for a snapshot)."""
        with self._lock:
            return {name: (list(b.records), b.first_arrival) for name, b in self._buffers.items() if b.records}

    def refill(self, stream_name: str, records: list[bytes], first_arrival: float | None) -> None:
        """Put records back into a stream's buffer (a restart from a data directory); not counted as new."""
        stream = self._stream(stream_name)
        with self._lock:
            buffer = self._buffers[stream.name]
            if buffer.first_arrival is None or (first_arrival is not None and first_arrival < buffer.first_arrival):
                buffer.first_arrival = first_arrival if first_arrival is not None else self._clock()
            buffer.records.extend(records)
            buffer.size += sum(len(r) for r in records)

    def pending_records(self) -> int:
        """Records accepted but not yet in S3 (buffered or being written)."""
        with self._lock:
            return sum(len(b.records) for b in self._buffers.values()) + self._in_flight

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="firehose-flusher", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            try:
                self.flush_due()
            except Exception:
                log.exception("firehose flusher failed")

    def stop(self) -> None:
        """Stop the flusher and write what is still buffered (as the service would, eventually)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.flush_due(force=True)


def interceptor(standin: FirehoseStandIn) -> Callable[[AwsRequest], Response]:
    """The stand-in as the embedded AWS endpoint's answer to every Firehose call (`AwsGateway.intercept`)."""

    def answer(request: AwsRequest) -> Response:
        try:
            body = request.json()
            if not isinstance(body, dict):
                raise TypeError("the request body is not a JSON object")
            result = _dispatch(standin, request.operation or "", body)
        except FirehoseError as exc:
            return _with_request_id(json_error(exc.status, exc.code, exc.message))
        except (ValueError, KeyError, TypeError) as exc:
            return _with_request_id(json_error(HTTPStatus.BAD_REQUEST, "SerializationException", str(exc)))
        return _with_request_id(Response(json.dumps(result), status=HTTPStatus.OK,
                                         content_type="application/x-amz-json-1.1"))

    return answer


def _with_request_id(response: Response) -> Response:
    response.headers["x-amzn-RequestId"] = str(uuid.uuid4())
    return response


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def _dispatch(standin: FirehoseStandIn, action: str, request: dict[str, Any]) -> dict[str, Any]:
    if action == "PutRecordBatch":
        records = [base64.b64decode(r["Data"]) for r in request.get("Records") or []]
        return standin.put_record_batch(str(request["DeliveryStreamName"]), records)
    if action == "PutRecord":
        return standin.put_record(str(request["DeliveryStreamName"]), base64.b64decode(request["Record"]["Data"]))
    if action == "DescribeDeliveryStream":
        return standin.describe(str(request["DeliveryStreamName"]))
    if action == "ListDeliveryStreams":
        return standin.list_streams(request)
    # Anything else (CreateDeliveryStream, tags, encryption ...) fails loudly: the streams are the template's.
    raise FirehoseError("UnknownOperationException", f"{action or 'no action'} is not supported locally")
