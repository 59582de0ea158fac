"""The checks behind `signals status`: each reads one part of the pipeline and judges it.

A check returns `CheckResult`s (ok / warn / fail, the figure behind the verdict, and what to do
about it). Checks read only; none consumes a queue message or changes an item. Thresholds are the
module constants below, documented line by line in docs/operations.md.
"""

from __future__ import annotations

import enum
import gzip
import json
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Final

from boto3.dynamodb.types import TypeDeserializer
from botocore.exceptions import BotoCoreError, ClientError

from shared import registry_keys
from shared.iceberg_properties import iceberg_table_properties, property_drift
from shared.layout import META_ROWS, VERIFIED_ROOT, Partition
from shared.schema import (
    ALL_TYPES,
    AUDIT_TABLES,
    COMPACTED_TABLES,
    OTLP_TYPE,
    TABLES_BY_TYPE,
    DeviceType,
    Source,
)
from signals.env import Environment, Output
from signals.ops.common import EnvClients, format_age, format_bytes, hour_label, list_objects, raw_hour_prefix

# A raw object normally has its processing record within a minute or two of landing.
RAW_UNPROCESSED_WARN: Final = timedelta(minutes=10)
# The reconciler re-enqueues raw objects older than its 30-minute grace; past that plus a run or
# two, nothing is going to process the object by itself.
RAW_UNPROCESSED_FAIL: Final = timedelta(minutes=60)
# Oldest message in a processing queue (CloudWatch ApproximateAgeOfOldestMessage).
QUEUE_AGE_WARN: Final = timedelta(minutes=15)
QUEUE_AGE_FAIL: Final = timedelta(hours=1)
# Verified files without a registry item: the registry normally writes one within its batching
# window; the reconciler registers lost ones after its 20-minute grace, on a 15-minute schedule.
UNREGISTERED_WARN: Final = timedelta(minutes=10)
UNREGISTERED_FAIL: Final = timedelta(minutes=50)
# `partition_pending` items are retried by every reconciler run; older than two runs means retries fail.
PENDING_WARN: Final = timedelta(minutes=30)
# The reconciler runs every 15 minutes; one missed run is a warning, three are a failure.
RECONCILER_INTERVAL: Final = timedelta(minutes=15)
# The compactor runs hourly (cron(10 * * * ? *)); locally every `--reconcile-seconds`. A run that is
# this late past its interval (a quarter of it, at most 15 minutes) warns; three intervals fail.
COMPACTOR_INTERVAL: Final = timedelta(hours=1)
# Compaction lag (oldest registered file not yet compacted): past one interval plus the grace a
# run should have taken it (warn); past two intervals and the grace, as the CompactionLagAlarm (fail).
# Where the compactor keeps its run reports in the artifacts bucket (compactor/logic.py writes them).
RUN_REPORT_PREFIX: Final = "compactor/run_results/"
LATEST_RUN_REPORT: Final = "compactor/latest/run_results.json"
# Run reports read for the hour's conflict count (one per run: hourly in AWS, more locally).
RUN_REPORT_LIMIT: Final = 200
# Share of a source's records quarantined in the hour above which the quarantine line warns.
QUARANTINE_WARN_RATIO: Final = 0.01
# Quarantine files read per source and hour (each is read whole to count reasons).
QUARANTINE_FILE_LIMIT: Final = 500

SOURCE_TYPES: Final[Mapping[str, tuple[str, ...]]] = {
    Source.JSON_TELEMETRY.value: tuple(t.value for t in DeviceType),
    Source.OTLP_LOGS.value: (OTLP_TYPE,),
}

# (label, queue output, DLQ output): the processing queues in data-flow order.
QUEUES: Final[tuple[tuple[str, str, str], ...]] = (
    ("telemetry", Output.TELEMETRY_QUEUE_URL, Output.TELEMETRY_DLQ_URL),
    ("otlp-logs", Output.OTLP_QUEUE_URL, Output.OTLP_DLQ_URL),
    ("redrive", Output.REDRIVE_QUEUE_URL, Output.REDRIVE_DLQ_URL),
    ("registry", Output.REGISTRY_QUEUE_URL, Output.REGISTRY_DLQ_URL),
)


class Level(enum.StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"

    @property
    def rank(self) -> int:
        return (Level.OK, Level.WARN, Level.FAIL).index(self)


@dataclass(frozen=True)
class CheckResult:
    check: str
    level: Level
    figure: str
    action: str | None = None  # what to do, for warn and fail
    details: Mapping[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"check": self.check, "level": self.level.value, "figure": self.figure, "action": self.action,
                "details": dict(self.details)}


@dataclass
class StatusContext:
    env: Environment
    hour: datetime  # start of the UTC hour the hour-based checks look at
    now: datetime
    workers: int = 8  # concurrent reads (1: every call in turn)
    clients: EnvClients = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.clients = EnvClients(self.env)

    def client(self, service: str) -> Any:
        return self.clients.client(service)

    @property
    def partition(self) -> Partition:
        return Partition.from_datetime(self.hour)


@dataclass
class HourFacts:
    """What several checks need about the hour, listed once: raw and verified objects."""

    raw: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # source -> raw objects
    verified: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # type -> objects (+ "rows")


def _age(ctx: StatusContext, moment: datetime) -> timedelta:
    return ctx.now - moment.astimezone(UTC)


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(text: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (TypeError, ValueError):
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def gather_hour_facts(ctx: StatusContext) -> HourFacts:
    s3 = ctx.client("s3")
    raw_bucket = ctx.env.output(Output.RAW_BUCKET)
    verified_bucket = ctx.env.output(Output.VERIFIED_BUCKET)
    facts = HourFacts()
    for source in SOURCE_TYPES:
        facts.raw[source] = list(list_objects(s3, raw_bucket, raw_hour_prefix(source, ctx.hour)))

    def rows_of(obj: dict[str, Any]) -> dict[str, Any]:
        metadata = s3.head_object(Bucket=verified_bucket, Key=obj["Key"]).get("Metadata", {})
        rows = metadata.get(META_ROWS)
        return {**obj, "rows": int(rows) if rows is not None and rows.isdigit() else None,
                "source_key": metadata.get("source-key")}

    for type_value in ALL_TYPES:
        prefix = f"{VERIFIED_ROOT}type={type_value}/{ctx.partition.path}/"
        listed = [o for o in list_objects(s3, verified_bucket, prefix) if o["Key"].endswith(".parquet")]
        with ThreadPoolExecutor(max_workers=ctx.workers) as heads:
            facts.verified[type_value] = list(heads.map(rows_of, listed))
    return facts


# --- raw -----------------------------------------------------------------------------------------

def check_raw_arriving(ctx: StatusContext, facts: HourFacts) -> list[CheckResult]:
    results = []
    for source, objects in facts.raw.items():
        size = sum(int(o.get("Size", 0)) for o in objects)
        details = {"objects": len(objects), "bytes": size, "prefix": raw_hour_prefix(source, ctx.hour)}
        if not objects:
            results.append(CheckResult(
                f"raw arriving {source}", Level.WARN, f"no objects in {hour_label(ctx.hour)} (quiet source?)",
                "check clients are sending and the ingester's 5xx rate; `signals verify` sends a canary",
                details))
            continue
        last = max(o["LastModified"] for o in objects)
        results.append(CheckResult(
            f"raw arriving {source}", Level.OK,
            f"{_n(len(objects), 'object')}, {format_bytes(size)}, "
            f"last {format_age(_age(ctx, last).total_seconds())} ago",
            details=details))
    return results


FIREHOSE_SOURCES: Final = ((Output.TELEMETRY_FIREHOSE, Source.JSON_TELEMETRY.value),
                            (Output.OTLP_FIREHOSE, Source.OTLP_LOGS.value))


def check_firehose_errors(ctx: StatusContext) -> list[CheckResult]:
    """Objects under each stream's error output prefix (records Firehose could not deliver as raw)."""
    s3, firehose = ctx.client("s3"), ctx.client("firehose")
    hour_path = f"/{ctx.hour:%Y/%m/%d/%H}/"
    results = []
    for output, source in FIREHOSE_SOURCES:
        stream = ctx.env.output(output)
        description = firehose.describe_delivery_stream(DeliveryStreamName=stream)["DeliveryStreamDescription"]
        destination = description["Destinations"][0]["ExtendedS3DestinationDescription"]
        bucket = destination["BucketARN"].rsplit(":", 1)[-1]
        # Everything before the first `!{...}` is fixed; the error type and the hour follow it.
        prefix = destination.get("ErrorOutputPrefix", "").split("!{", 1)[0]
        name = f"firehose errors {source}"
        if not prefix:
            results.append(CheckResult(name, Level.WARN, f"{stream} has no error output prefix",
                                       "set ErrorOutputPrefix in template.yaml so failed records are kept"))
            continue
        errors = list(list_objects(s3, bucket, prefix))
        this_hour = [o for o in errors if hour_path in o["Key"]]
        details = {"prefix": f"s3://{bucket}/{prefix}", "this_hour": [o["Key"] for o in this_hour][:20],
                   "all_hours": len(errors)}
        if this_hour:
            results.append(CheckResult(
                name, Level.FAIL, f"{_n(len(this_hour), 'error object')} this hour ({len(errors)} in all)",
                f"records Firehose could not deliver: read them under s3://{bucket}/{prefix}", details))
        else:
            older = f" ({_n(len(errors), 'older error object')})" if errors else ""
            results.append(CheckResult(name, Level.OK, f"none this hour{older}", details=details))
    return results


def check_raw_processed(ctx: StatusContext, facts: HourFacts) -> list[CheckResult]:
    raw_bucket = ctx.env.output(Output.RAW_BUCKET)
    table = ctx.env.output(Output.REGISTRY_TABLE)
    results = []
    for source, objects in facts.raw.items():
        if not objects:
            continue
        keys = [registry_keys.raw_key(raw_bucket, o["Key"]) for o in objects]
        found = _batch_get_keys(ctx.client("dynamodb"), table, keys)
        unprocessed = [o for o in objects if f"RAW#{raw_bucket}/{o['Key']}" not in found]
        ages = [_age(ctx, o["LastModified"]) for o in unprocessed]
        oldest = max(ages, default=timedelta(0))
        details = {"objects": len(objects), "processed": len(objects) - len(unprocessed),
                   "unprocessed_keys": [o["Key"] for o in unprocessed][:20],
                   "oldest_unprocessed_s": oldest.total_seconds()}
        figure = f"{len(objects) - len(unprocessed)}/{len(objects)} processed"
        if unprocessed:
            figure += f", {len(unprocessed)} without a processing record (oldest {format_age(oldest.total_seconds())})"
        action = (f"look at the {source} processing queue and its DLQ; re-enqueue with "
                  f"`signals redrive raw --source {source} --from {hour_label(ctx.hour)}`")
        level = Level.OK
        if oldest > RAW_UNPROCESSED_FAIL:
            level = Level.FAIL
        elif oldest > RAW_UNPROCESSED_WARN:
            level = Level.WARN
        results.append(CheckResult(f"raw processed {source}", level, figure,
                                   action if level is not Level.OK else None, details))
    return results


def _batch_get_keys(dynamodb: Any, table: str, keys: Sequence[Mapping[str, str]]) -> set[str]:
    """The `pk` values of those keys that exist (BatchGetItem, 100 per call, unprocessed retried)."""
    found: set[str] = set()
    for start in range(0, len(keys), 100):
        request: dict[str, Any] = {table: {
            "Keys": [{name: {"S": value} for name, value in key.items()} for key in keys[start:start + 100]],
            "ProjectionExpression": "pk",
        }}
        for _attempt in range(8):
            response = dynamodb.batch_get_item(RequestItems=request)
            found.update(item["pk"]["S"] for item in response.get("Responses", {}).get(table, []))
            request = response.get("UnprocessedKeys") or {}
            if not request:
                break
        else:
            raise RuntimeError(f"{table}: BatchGetItem left keys unprocessed after 8 attempts")
    return found


# --- queues --------------------------------------------------------------------------------------

def _queue_name(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1]


def _oldest_message_age(ctx: StatusContext, queue_name: str) -> float | None:
    """CloudWatch's ApproximateAgeOfOldestMessage (seconds), or None when there is no datapoint.

    Never from peeking at messages: that would count as a receive (and can push a message toward its
    DLQ). The local stack publishes the metric to its embedded CloudWatch as SQS does.
    """
    response = ctx.client("cloudwatch").get_metric_statistics(
        Namespace="AWS/SQS", MetricName="ApproximateAgeOfOldestMessage",
        Dimensions=[{"Name": "QueueName", "Value": queue_name}],
        StartTime=ctx.now - timedelta(minutes=10), EndTime=ctx.now, Period=60, Statistics=["Maximum"],
    )
    points = sorted(response.get("Datapoints", []), key=lambda p: p["Timestamp"])
    return float(points[-1]["Maximum"]) if points else None


def _queue_depth(ctx: StatusContext, url: str) -> dict[str, int]:
    attributes = ctx.client("sqs").get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
                                      "ApproximateNumberOfMessagesDelayed"])["Attributes"]
    return {"visible": int(attributes.get("ApproximateNumberOfMessages", 0)),
            "in_flight": int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0)),
            "delayed": int(attributes.get("ApproximateNumberOfMessagesDelayed", 0))}


def check_queue(ctx: StatusContext, label: str, queue_output: str) -> list[CheckResult]:
    url = ctx.env.output(queue_output)
    name = _queue_name(url)
    depth = _queue_depth(ctx, url)
    age = _oldest_message_age(ctx, name)
    age_text = "oldest n/a (no datapoint in 10m)" if age is None else f"oldest {format_age(age)}"
    figure = f"depth {depth['visible']} ({depth['in_flight']} in flight), {age_text}"
    level = Level.OK
    if age is not None and age > QUEUE_AGE_FAIL.total_seconds():
        level = Level.FAIL
    elif age is not None and age > QUEUE_AGE_WARN.total_seconds():
        level = Level.WARN
    action = (f"consumer of {name} is behind or stopped: check the function's errors, throttles and "
              "event source mapping") if level is not Level.OK else None
    return [CheckResult(f"queue {label}", level, figure, action,
                        {"queue": name, **depth, "oldest_age_s": age})]


def check_dlq(ctx: StatusContext, label: str, dlq_output: str) -> list[CheckResult]:
    url = ctx.env.output(dlq_output)
    name = _queue_name(url)
    depth = _queue_depth(ctx, url)
    total = depth["visible"] + depth["in_flight"] + depth["delayed"]
    if total == 0:
        return [CheckResult(f"dlq {label}", Level.OK, "empty", details={"queue": name, **depth})]
    return [CheckResult(
        f"dlq {label}", Level.FAIL, f"{total} message(s) in {name}",
        f"read the function's logs for why they failed, fix the cause, then `signals redrive dlq {name}`",
        {"queue": name, **depth})]


# --- verified and quarantine ---------------------------------------------------------------------

def check_verified(ctx: StatusContext, facts: HourFacts) -> list[CheckResult]:
    results = []
    for source, types in SOURCE_TYPES.items():
        source_has_output = any(facts.verified.get(t) for t in types)
        for type_value in types:
            objects = facts.verified.get(type_value, [])
            rows = sum(o["rows"] or 0 for o in objects)
            without_rows = [o["Key"] for o in objects if o["rows"] is None]
            details = {"files": len(objects), "rows": rows, "files_without_rows_metadata": without_rows[:20]}
            name = f"verified {type_value}"
            if objects and not without_rows:
                results.append(CheckResult(name, Level.OK, f"{_n(len(objects), 'file')}, {_n(rows, 'row')}",
                                           details=details))
            elif without_rows:
                results.append(CheckResult(
                    name, Level.WARN, f"{_n(len(objects), 'file')}, {_n(rows, 'row')}; {len(without_rows)} "
                    "without `rows` metadata", "these were not written by the parser's single PutObject; "
                    "re-parse their raw objects with `signals redrive raw`", details))
            elif facts.raw.get(source) and not source_has_output:
                results.append(CheckResult(
                    name, Level.WARN, f"no files, though {_n(len(facts.raw[source]), 'raw object')} arrived",
                    "nothing from this source was verified: is everything quarantined (see below), or is "
                    "the parser failing (queue and DLQ lines)?", details))
            else:
                results.append(CheckResult(name, Level.OK, "no files this hour", details=details))
    return results


def check_quarantine(ctx: StatusContext, facts: HourFacts) -> list[CheckResult]:
    s3 = ctx.client("s3")
    bucket = ctx.env.output(Output.QUARANTINE_BUCKET)
    results = []
    for source, types in SOURCE_TYPES.items():
        prefix = f"quarantine/source={source}/{ctx.partition.path}/"
        files = list(list_objects(s3, bucket, prefix))
        reasons: Counter[str] = Counter()

        def reasons_in(key: str) -> Counter[str]:
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            return Counter(str(json.loads(line).get("reason", "unknown"))
                           for line in gzip.decompress(body).splitlines() if line.strip())

        with ThreadPoolExecutor(max_workers=ctx.workers) as readers:
            for counted in readers.map(reasons_in, [o["Key"] for o in files[:QUARANTINE_FILE_LIMIT]]):
                reasons.update(counted)
        records = sum(reasons.values())
        rows = sum(o["rows"] or 0 for t in types for o in facts.verified.get(t, []))
        ratio = records / (records + rows) if records else 0.0
        by_reason = ", ".join(f"{reason} {count}" for reason, count in reasons.most_common())
        figure = "none" if not records else f"{records} records ({by_reason}), {ratio:.1%} of the hour's records"
        if len(files) > QUARANTINE_FILE_LIMIT:
            figure += f"; counted the first {QUARANTINE_FILE_LIMIT} of {len(files)} files"
        level = Level.WARN if ratio > QUARANTINE_WARN_RATIO else Level.OK
        action = (f"read samples: s3://{bucket}/{prefix} (each line has reason, errors, source key, "
                  "line and the original)") if level is Level.WARN else None
        results.append(CheckResult(f"quarantine {source}", level, figure, action,
                                   {"files": len(files), "records": records, "reasons": dict(reasons),
                                    "ratio": ratio}))
    return results


# --- registry ------------------------------------------------------------------------------------

def _query_status(ctx: StatusContext, status: str) -> list[dict[str, Any]]:
    dynamodb = ctx.client("dynamodb")
    items: list[dict[str, Any]] = []
    for page in dynamodb.get_paginator("query").paginate(
        TableName=ctx.env.output(Output.REGISTRY_TABLE), IndexName=registry_keys.STATUS_INDEX,
        KeyConditionExpression="#s = :s", ExpressionAttributeNames={"#s": registry_keys.STATUS_ATTR},
        ExpressionAttributeValues={":s": {"S": status}},
    ):
        items.extend(page.get("Items", []))
    return items


def check_registry_failures(ctx: StatusContext) -> list[CheckResult]:
    failed = _query_status(ctx, registry_keys.STATUS_PARTITION_FAILED)
    pending = _query_status(ctx, registry_keys.STATUS_PARTITION_PENDING)

    def oldest(items: list[dict[str, Any]]) -> timedelta:
        times = [_parse_time(i.get("updated_at", {}).get("S", "")) for i in items]
        return max((_age(ctx, t) for t in times if t is not None), default=timedelta(0))

    def sample(items: list[dict[str, Any]]) -> list[dict[str, str]]:
        return [{"verified_key": i.get("verified_key", {}).get("S", ""),
                 "last_error": i.get("last_error", {}).get("S", "")} for i in items[:5]]

    details = {"partition_failed": len(failed), "partition_pending": len(pending),
               "failed_sample": sample(failed), "pending_sample": sample(pending)}
    figure = f"{len(failed)} partition_failed, {len(pending)} partition_pending"
    if pending:
        figure += f" (oldest pending {format_age(oldest(pending).total_seconds())})"
    if failed:
        last_error = details["failed_sample"][0]["last_error"]  # type: ignore[index]
        return [CheckResult("registry not registered", Level.FAIL, figure + (f"; last error: {last_error}"
                                                                            if last_error else ""),
                            "fix the Glue error (table missing? permissions?); the reconciler retries every "
                            "15 min, or invoke it now", details)]
    if pending and oldest(pending) > PENDING_WARN:
        return [CheckResult("registry not registered", Level.WARN, figure,
                            "partition creation keeps failing: check the registry/reconciler logs", details)]
    return [CheckResult("registry not registered", Level.OK, figure, details=details)]


def check_registry_hour(ctx: StatusContext, facts: HourFacts) -> list[CheckResult]:
    objects = [o for files in facts.verified.values() for o in files]
    if not objects:
        return [CheckResult("registry files this hour", Level.OK, "no verified files this hour")]
    keys = [registry_keys.file_key(o["Key"]) for o in objects]
    found = _batch_get_keys(ctx.client("dynamodb"), ctx.env.output(Output.REGISTRY_TABLE), keys)
    missing = [o for o in objects if f"FILE#{o['Key']}" not in found]
    oldest = max((_age(ctx, o["LastModified"]) for o in missing), default=timedelta(0))
    figure = f"{len(objects) - len(missing)}/{len(objects)} verified files have a registry item"
    if missing:
        figure += f", {len(missing)} missing (oldest {format_age(oldest.total_seconds())})"
    level = Level.FAIL if oldest > UNREGISTERED_FAIL else Level.WARN if oldest > UNREGISTERED_WARN else Level.OK
    action = ("the registry queue's consumer is behind or its events were lost; check the registry queue "
              "and DLQ; the reconciler registers lost files after its grace period") if level is not Level.OK else None
    return [CheckResult("registry files this hour", level, figure, action,
                        {"files": len(objects), "missing": [o["Key"] for o in missing][:20]})]


def check_reconciler(ctx: StatusContext) -> list[CheckResult]:
    interval = timedelta(seconds=float(ctx.env.extra.get("reconciler_interval_s", 0))) or RECONCILER_INTERVAL
    response = ctx.client("dynamodb").get_item(
        TableName=ctx.env.output(Output.REGISTRY_TABLE),
        Key={name: {"S": value} for name, value in registry_keys.reconciler_state_key().items()},
        ConsistentRead=True,
    )
    item = response.get("Item")
    last_run = _parse_time(item.get("last_run_at", {}).get("S", "")) if item else None
    if last_run is None:
        every = format_age(interval.total_seconds())
        return [CheckResult("reconciler", Level.WARN, f"no run recorded (scheduled every {every})",
                            "a new stack has not run it yet; otherwise check the EventBridge rule is enabled "
                            "and the function's errors")]
    age = _age(ctx, last_run)
    summary = _plain(item.get("last_summary", {})) if item else {}
    counts = ", ".join(f"{k} {v}" for k, v in sorted(summary.items())) if isinstance(summary, dict) else ""
    figure = f"last run {format_age(age.total_seconds())} ago ({_iso(last_run)})"
    if counts:
        figure += f": {counts}"
    errors = int(summary.get("errors", 0)) if isinstance(summary, dict) else 0
    level, action = Level.OK, None
    if age > 3 * interval:
        level, action = Level.FAIL, "check the EventBridge rule is enabled and the reconciler's errors/timeouts"
    elif age > interval + min(interval / 3, timedelta(minutes=5)):
        level, action = Level.WARN, "a run was missed: check the EventBridge rule and the reconciler's timeouts"
    elif errors:
        level, action = Level.WARN, "its last run counted errors: read the reconciler's log for that run"
    return [CheckResult("reconciler", level, figure, action,
                        {"last_run_at": _iso(last_run), "age_s": age.total_seconds(),
                         "last_summary": summary})]


def _plain(value: Mapping[str, Any]) -> Any:
    """A DynamoDB attribute value as plain JSON-able Python."""
    def convert(item: Any) -> Any:
        if isinstance(item, dict):
            return {k: convert(v) for k, v in item.items()}
        if isinstance(item, list):
            return [convert(v) for v in item]
        if hasattr(item, "is_integer"):  # Decimal
            return int(item) if item == item.to_integral_value() else float(item)
        return item

    return convert(TypeDeserializer().deserialize(dict(value))) if value else {}  # type: ignore[arg-type]


# --- compaction ----------------------------------------------------------------------------------

def _compactor_interval(ctx: StatusContext) -> timedelta:
    """Locally every schedule runs at the stack's period (its state file says which); hourly in AWS."""
    seconds = float(ctx.env.extra.get("compactor_interval_s") or ctx.env.extra.get("reconciler_interval_s") or 0)
    return timedelta(seconds=seconds) if seconds else COMPACTOR_INTERVAL


def _grace(interval: timedelta) -> timedelta:
    return min(interval / 4, timedelta(minutes=15))


def _compactor_state(ctx: StatusContext) -> dict[str, Any]:
    response = ctx.client("dynamodb").get_item(
        TableName=ctx.env.output(Output.REGISTRY_TABLE), ConsistentRead=True,
        Key={name: {"S": value} for name, value in registry_keys.compactor_state_key().items()},
    )
    item = response.get("Item")
    return {name: _numbers(_plain(value)) for name, value in item.items()} if item else {}


def _numbers(value: Any) -> Any:
    """DynamoDB numbers (Decimal) as int or float, inside maps and lists too."""
    if isinstance(value, dict):
        return {k: _numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_numbers(v) for v in value]
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def _latest_report(ctx: StatusContext) -> dict[str, Any] | None:
    try:
        body = ctx.client("s3").get_object(Bucket=ctx.env.output(Output.ARTIFACTS_BUCKET),
                                           Key=LATEST_RUN_REPORT)["Body"].read()
    except ClientError as exc:
        if exc.response["Error"]["Code"] in ("NoSuchKey", "404", "NotFound"):
            return None
        raise
    report = json.loads(body)
    return report if isinstance(report, dict) else None


def check_compaction_run(ctx: StatusContext) -> list[CheckResult]:
    """The compactor's last run: when, its outcome, what it did; the run report it left behind."""
    interval = _compactor_interval(ctx)
    state = _compactor_state(ctx)
    last_run = _parse_time(str(state.get("last_run_at", ""))) if state else None
    name = "compaction last run"
    rule = f"{ctx.env.name}-tps-telemetry-compactor"
    if last_run is None:
        every = format_age(interval.total_seconds())
        return [CheckResult(name, Level.WARN, f"no run recorded (scheduled every {every})",
                            f"a new stack has not run it yet; otherwise check the EventBridge rule {rule} is "
                            "enabled and the compactor's errors; `signals compact` runs one now")]
    age = _age(ctx, last_run)
    outcome = str(state.get("last_outcome") or "unknown")
    summary = state.get("last_summary") or {}
    summary = summary if isinstance(summary, dict) else {}
    figure = f"last run {format_age(age.total_seconds())} ago ({_iso(last_run)}) {outcome}"
    counted = [("days_compacted", "{} table-day", "{} table-days"), ("verified_rows", "{} row read", "{} rows read"),
               ("inserted", "{} inserted", "{} inserted"),
               ("natural_duplicates", "{} natural duplicate", "{} natural duplicates"),
               ("conflicting_duplicates", "{} conflicting duplicate", "{} conflicting duplicates")]
    parts = [(one if summary[key] == 1 else many).format(int(summary[key]))
             for key, one, many in counted if isinstance(summary.get(key), int | float)]
    if parts:
        figure += ": " + ", ".join(parts)
    report = _latest_report(ctx)
    bucket = ctx.env.output(Output.ARTIFACTS_BUCKET)
    report_uri = f"s3://{bucket}/{LATEST_RUN_REPORT}"
    details = {"last_run_at": _iso(last_run), "age_s": age.total_seconds(), "outcome": outcome,
               "last_run_id": state.get("last_run_id"), "last_summary": summary, "report": report_uri,
               "watermark": state.get("watermark")}
    failed_days = [r for r in (report or {}).get("results", []) if r.get("status") == "error"]
    level, action = Level.OK, None
    if age > 3 * interval:
        level, action = Level.FAIL, (f"check the EventBridge rule {rule} is enabled and the compactor's errors "
                                     "and timeouts; `signals compact` runs one now")
    elif outcome == "failed":
        failures = "; ".join(f"{r.get('relation_name')} {r.get('day')}: {r.get('message')}" for r in failed_days[:3])
        level, action = Level.FAIL, (f"read the failed results in {report_uri}" + (f" ({failures})" if failures else "")
                                     + " and the compactor's log; the next run retries those days")
    elif age > interval + _grace(interval):
        level, action = Level.WARN, "a run was missed: check the EventBridge rule and the compactor's timeouts"
    elif outcome == "partial":
        level, action = Level.WARN, ("the run stopped before its time ran out (a large backlog?); the next one "
                                     "resumes from the watermark; watch the lag line")
    if report is None:
        figure += "; no run report"
        if level is Level.OK:
            level, action = Level.WARN, (f"the run left no report at {report_uri}: check the compactor's "
                                         "log for 'could not write the run report' (permissions on the bucket?)")
    elif level is Level.OK and str((report.get("metadata") or {}).get("invocation_id")) != str(
            state.get("last_run_id")):
        level, action = Level.WARN, f"the latest report in {report_uri} is not the last run's: was it written?"
    return [CheckResult(name, level, figure, action, details)]


def _registered_after(ctx: StatusContext, watermark: str | None, *, count: bool) -> tuple[dict[str, Any] | None, int]:
    """The oldest `registered` file updated after the watermark (status index, key condition only), and
    how many there are when `count`."""
    dynamodb = ctx.client("dynamodb")
    names = {"#s": registry_keys.STATUS_ATTR}
    values = {":s": {"S": registry_keys.STATUS_REGISTERED}}
    condition = "#s = :s"
    if watermark:  # no watermark yet: every registered file waits (a key value cannot be empty)
        condition += " AND #u > :w"
        names["#u"] = registry_keys.STATUS_SORT_ATTR
        values[":w"] = {"S": watermark}
    request: dict[str, Any] = {
        "TableName": ctx.env.output(Output.REGISTRY_TABLE), "IndexName": registry_keys.STATUS_INDEX,
        "KeyConditionExpression": condition, "ExpressionAttributeNames": names, "ExpressionAttributeValues": values,
    }
    oldest = dynamodb.query(**request, Limit=1).get("Items", [])
    waiting = 0
    if count and oldest:
        for page in dynamodb.get_paginator("query").paginate(**request, Select="COUNT"):
            waiting += int(page.get("Count", 0))
    return (oldest[0] if oldest else None), waiting


def check_compaction_lag(ctx: StatusContext) -> list[CheckResult]:
    """Age of the oldest registered verified file the compactor has not compacted yet."""
    interval = _compactor_interval(ctx)
    state = _compactor_state(ctx)
    watermark = state.get("watermark") if state else None
    oldest, waiting = _registered_after(ctx, str(watermark) if watermark else None, count=True)
    name = "compaction lag"
    if oldest is None:
        return [CheckResult(name, Level.OK, "0s: every registered file is compacted",
                            details={"watermark": watermark, "waiting_files": 0, "lag_s": 0.0})]
    updated = _parse_time(oldest.get(registry_keys.STATUS_SORT_ATTR, {}).get("S", ""))
    lag = max(_age(ctx, updated), timedelta(0)) if updated else timedelta(0)
    key = oldest.get("verified_key", {}).get("S", "")
    figure = (f"{format_age(lag.total_seconds())}: {_n(waiting, 'registered file')} not yet compacted "
              f"(oldest {key.rsplit('/', 1)[-1][:24] or '?'} registered {_iso(updated) if updated else '?'})")
    details = {"watermark": watermark, "waiting_files": waiting, "lag_s": lag.total_seconds(), "oldest_key": key}
    level, action = Level.OK, None
    if lag > 2 * interval + _grace(interval):
        level, action = Level.FAIL, ("the compacted tables are behind: see the 'compaction last run' line; a run "
                                     "that keeps stopping partial needs `signals compact` (or more time)")
    elif lag > interval + _grace(interval):
        level, action = Level.WARN, "the last run did not take these files: check its outcome and the compactor's log"
    return [CheckResult(name, level, figure, action, details)]


def check_compaction_conflicts(ctx: StatusContext) -> list[CheckResult]:
    """Conflicting duplicates (same key, other content) the runs of the hour recorded."""
    s3 = ctx.client("s3")
    bucket = ctx.env.output(Output.ARTIFACTS_BUCKET)
    end = ctx.hour + timedelta(hours=1)
    # A report is filed under its run's start day: a run that started before midnight and wrote its
    # report after it is under the day before (a run lasts at most the function's 15 minutes).
    days = sorted({f"{moment:%Y/%m/%d}" for moment in (ctx.hour - timedelta(hours=1), ctx.hour)})
    reports = [o for day in days for o in list_objects(s3, bucket, f"{RUN_REPORT_PREFIX}{day}/")
               if ctx.hour <= o["LastModified"].astimezone(UTC) < end]
    reports.sort(key=lambda o: o["LastModified"])
    recorded = conflicting = 0
    by_table: Counter[str] = Counter()

    def read(key: str) -> dict[str, Any]:
        document = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        return document if isinstance(document, dict) else {}

    with ThreadPoolExecutor(max_workers=ctx.workers) as readers:
        for report in readers.map(read, [o["Key"] for o in reports[-RUN_REPORT_LIMIT:]]):
            for result in report.get("results", []):
                response = result.get("adapter_response") or {}
                new = int(response.get("conflicts_recorded", 0) or 0)
                recorded += new
                conflicting += int(response.get("conflicting_duplicates", 0) or 0)
                if new:
                    by_table[f"{result.get('relation_name')} {result.get('day')}"] += new
    name = "compaction conflicts"
    details = {"runs": len(reports), "conflicts_recorded": recorded, "conflicting_duplicates": conflicting,
               "by_table_day": dict(by_table)}
    runs = _n(len(reports), "run")
    if not recorded:
        return [CheckResult(name, Level.OK, f"none recorded this hour ({runs})", details=details)]
    where = ", ".join(f"{label} {count}" for label, count in by_table.most_common(3))
    audit = ctx.env.output(Output.AUDIT_DATABASE)
    return [CheckResult(
        name, Level.WARN, f"{recorded} new this hour ({where}; {runs})",
        f"copies with a (device_id, event_id) seen before but other content were kept out of the compacted tables: "
        f"`signals query \"SELECT * FROM {audit}.duplicate_conflicts WHERE day = '{ctx.hour:%Y-%m-%d}'\"` shows "
        "both lineages and the differing columns (a firmware reusing ids?)", details)]


# --- Glue ----------------------------------------------------------------------------------------

def _expected_location(ctx: StatusContext, type_value: str) -> str:
    return f"s3://{ctx.env.output(Output.VERIFIED_BUCKET)}/{TABLES_BY_TYPE[type_value].location_prefix}"


def _same_location(actual: str, expected: str) -> bool:
    return actual.rstrip("/") == expected.rstrip("/")


def check_glue_tables(ctx: StatusContext) -> list[CheckResult]:
    glue = ctx.client("glue")
    database = ctx.env.output(Output.GLUE_DATABASE)
    results = []
    for type_value, spec in TABLES_BY_TYPE.items():
        expected = _expected_location(ctx, type_value)
        try:
            table = glue.get_table(DatabaseName=database, Name=spec.name)["Table"]
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "EntityNotFoundException":
                raise
            results.append(CheckResult(f"glue table {spec.name}", Level.FAIL, f"missing from {database}",
                                       "redeploy the stack (the table is a template resource)"))
            continue
        location = table.get("StorageDescriptor", {}).get("Location", "")
        if _same_location(location, expected):
            results.append(CheckResult(f"glue table {spec.name}", Level.OK, location))
        else:
            results.append(CheckResult(f"glue table {spec.name}", Level.FAIL, f"location {location!r}, expected "
                                       f"{expected!r}", "Athena reads the wrong prefix: fix the table in "
                                       "template.yaml and redeploy", {"location": location, "expected": expected}))
    return results


def check_glue_partitions(ctx: StatusContext, facts: HourFacts) -> list[CheckResult]:
    glue = ctx.client("glue")
    dynamodb = ctx.client("dynamodb")
    database = ctx.env.output(Output.GLUE_DATABASE)
    registry_table = ctx.env.output(Output.REGISTRY_TABLE)
    part = ctx.partition
    results = []
    for type_value, spec in TABLES_BY_TYPE.items():
        files = len(facts.verified.get(type_value, []))
        recorded = "Item" in dynamodb.get_item(
            TableName=registry_table, ConsistentRead=True,
            Key={n: {"S": v} for n, v in registry_keys.partition_key(spec.name, part.day, part.hour).items()})
        try:
            partition = glue.get_partition(DatabaseName=database, TableName=spec.name,
                                           PartitionValues=part.values)["Partition"]
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "EntityNotFoundException":
                raise
            partition = None
        name = f"partition {type_value}"
        details = {"verified_files": files, "registry_partition_item": recorded, "in_glue": partition is not None}
        if partition is None:
            if files or recorded:
                results.append(CheckResult(
                    name, Level.FAIL, f"missing in Glue ({_n(files, 'verified file')}, registry "
                    f"{'records' if recorded else 'does not record'} it): invisible to Athena",
                    "the reconciler recreates registered partitions every 15 min; or invoke it now", details))
            else:
                results.append(CheckResult(name, Level.OK, "no data this hour, no partition", details=details))
            continue
        location = partition.get("StorageDescriptor", {}).get("Location", "")
        expected = f"{_expected_location(ctx, type_value)}{part.path}/"
        if not _same_location(location, expected):
            results.append(CheckResult(name, Level.FAIL, f"location {location!r}, expected {expected!r}",
                                       "delete the partition; the reconciler recreates it from the registry",
                                       {**details, "location": location}))
            continue
        registered = "registered" if recorded else "not in the registry"
        results.append(CheckResult(name, Level.OK, f"in Glue ({_n(files, 'verified file')}, {registered})",
                                   details=details))
    return results


def check_iceberg_tables(ctx: StatusContext) -> list[CheckResult]:
    """Each compacted and audit table exists, is Iceberg, and has the template's table properties.

    The properties are read from the table's current metadata file (by pyiceberg's parser of the
    Iceberg table metadata): CloudFormation sets them when it creates the table, and a later stack
    update or an `ALTER TABLE ... SET TBLPROPERTIES` may leave the live table different, in which
    case VACUUM keeps another history than the compactor assumes (shared.iceberg_properties).
    """
    try:
        from pyiceberg.table.metadata import TableMetadataUtil  # noqa: PLC0415 (only this check reads Iceberg)
    except ImportError:
        return [CheckResult("iceberg tables", Level.FAIL, "could not check: pyiceberg is not installed",
                            "install the `local` extra (pip install '.[local]') to read the tables' metadata")]

    glue, s3 = ctx.client("glue"), ctx.client("s3")
    declared = iceberg_table_properties()
    results = []
    for output, specs in ((Output.ALERTS_DATABASE, COMPACTED_TABLES), (Output.AUDIT_DATABASE, AUDIT_TABLES)):
        database = ctx.env.output(output)
        for spec in specs:
            name = f"iceberg table {spec.name}"
            try:
                table = glue.get_table(DatabaseName=database, Name=spec.name)["Table"]
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "EntityNotFoundException":
                    raise
                results.append(CheckResult(
                    name, Level.FAIL, f"missing from {database}",
                    "its data is still under its Location: register the last metadata file again "
                    "(docs/deploy.md, 'Recovering an Iceberg table whose catalog entry was lost')"))
                continue
            location = str((table.get("Parameters") or {}).get("metadata_location", ""))
            if not location.startswith("s3://"):
                results.append(CheckResult(name, Level.FAIL, "not an Iceberg table (no metadata_location)",
                                           "Athena cannot read it as Iceberg: see docs/deploy.md before any change"))
                continue
            bucket, _, key = location.removeprefix("s3://").partition("/")
            metadata = TableMetadataUtil.parse_raw(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
            drift = property_drift(declared, dict(metadata.properties))
            details = {"metadata_location": location, "drift": drift}
            if not drift:
                results.append(CheckResult(name, Level.OK, "table properties as template.yaml declares them",
                                           details=details))
                continue
            settings = ", ".join(f"'{k}'='{v}'" for k, v in sorted(declared.items()))
            results.append(CheckResult(
                name, Level.WARN, "; ".join(drift),
                f"a stack update does not rewrite a live table's properties: in Athena run "
                f"ALTER TABLE `{database}`.`{spec.name}` SET TBLPROPERTIES ({settings})", details))
    return results


# --- running them --------------------------------------------------------------------------------

Check = Callable[[], list[CheckResult]]


def _guarded(name: str, check: Check) -> list[CheckResult]:
    """A check that cannot run (access denied, missing output) is a failed line, not a crash."""
    try:
        return check()
    except (ClientError, BotoCoreError, RuntimeError, KeyError, ValueError) as exc:
        return [CheckResult(name, Level.FAIL, f"could not check: {exc}", "fix access to this resource first")]


def run_checks(ctx: StatusContext) -> list[CheckResult]:
    """Every check, in report order (data-flow order); independent reads run concurrently."""
    with ThreadPoolExecutor(max_workers=ctx.workers) as pool:
        facts_future = pool.submit(gather_hour_facts, ctx)

        def on_hour(check: Callable[[StatusContext, HourFacts], list[CheckResult]]) -> Check:
            return lambda: check(ctx, facts_future.result())

        def on_ctx(check: Callable[..., list[CheckResult]], *args: Any) -> Check:
            return lambda: check(ctx, *args)

        plan: list[tuple[str, Check]] = [
            ("raw arriving", on_hour(check_raw_arriving)),
            ("raw processed", on_hour(check_raw_processed)),
            ("firehose errors", on_ctx(check_firehose_errors)),
            *((f"queue {label}", on_ctx(check_queue, label, queue)) for label, queue, _ in QUEUES),
            *((f"dlq {label}", on_ctx(check_dlq, label, dlq)) for label, _, dlq in QUEUES),
            ("verified", on_hour(check_verified)),
            ("quarantine", on_hour(check_quarantine)),
            ("registry not registered", on_ctx(check_registry_failures)),
            ("registry hour", on_hour(check_registry_hour)),
            ("glue tables", on_ctx(check_glue_tables)),
            ("iceberg tables", on_ctx(check_iceberg_tables)),
            ("partitions", on_hour(check_glue_partitions)),
            ("reconciler", on_ctx(check_reconciler)),
            ("compaction last run", on_ctx(check_compaction_run)),
            ("compaction lag", on_ctx(check_compaction_lag)),
            ("compaction conflicts", on_ctx(check_compaction_conflicts)),
        ]
        # The facts listing runs first in the pool, and the checks waiting on it never hold it up.
        futures = [pool.submit(_guarded, name, check) for name, check in plan]
        return [result for future in futures for result in future.result()]


def worst(results: Iterable[CheckResult]) -> Level:
    return max((r.level for r in results), key=lambda level: level.rank, default=Level.OK)
