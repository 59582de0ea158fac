"""`signals redrive`: DLQ messages back to their source queue, raw objects back to the parser.

`redrive dlq QUEUE` takes a DLQ or its source queue (name or URL) and finds the other half of the
pair from the queues' own policies. Where the service supports it (real SQS) it starts an SQS
message-move task; otherwise (the local stack's moto has no move tasks, and `--max` needs a count
the task cannot give) it copies in a receive-send-delete loop that deletes a message only after its
copy was accepted by SendMessageBatch.

`redrive raw` lists the raw objects of an hour range and sends S3-notification-shaped messages to
the redrive queue, which the parser consumes like its own queues; output names are derived from
(bucket, key, etag), so parsing an object again overwrites its output instead of adding rows.

`redrive quarantine --reason R` replays quarantined records a schema change has cured (a device type
added, an enum widened): it reads the quarantine files of an hour range, judges every record with the
reason R again with the parser's own code and the current `shared/schema.py`, and sends the raw objects
holding at least one record that would now pass to the redrive queue. The parser then re-parses each
whole object: its verified files are overwritten under the same names (every line appears once, with
its lineage to the raw line), and its quarantine file is overwritten with what still fails, or deleted
when nothing does. A second run finds nothing cured and sends nothing (see docs/operations.md).
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, TextIO

from botocore.exceptions import BotoCoreError, ClientError

from shared.layout import QUARANTINE_ROOT, QUARANTINE_SUFFIX, output_name
from shared.s3events import s3_notification_body
from shared.schema import Reason, Source
from shared.sqs import send_message_batches
from signals.env import Environment, EnvironmentNotFound, Output
from signals.ops.common import (
    add_env_arguments,
    environment_from_args,
    format_bytes,
    hour_label,
    hours_between,
    list_objects,
    parse_time,
    partition_of,
    raw_hour_prefix,
)

SQS_BATCH: Final = 10
# A message received from the DLQ stays invisible this long; if its copy could not be sent it
# reappears in the DLQ afterwards, untouched.
MOVE_VISIBILITY_S: Final = 300
MOVE_TASK_POLL_S: Final = 2.0
MOVE_TASK_WAIT_S: Final = 900.0


class RedriveError(RuntimeError):
    pass


@dataclass(frozen=True)
class QueuePair:
    source_url: str
    source_arn: str
    dlq_url: str
    dlq_arn: str

    @property
    def source_name(self) -> str:
        return self.source_arn.rsplit(":", 1)[-1]

    @property
    def dlq_name(self) -> str:
        return self.dlq_arn.rsplit(":", 1)[-1]

    @property
    def fifo(self) -> bool:
        return self.source_name.endswith(".fifo")


@dataclass
class MoveResult:
    method: str
    moved: int = 0
    failed: int = 0  # copy not accepted: the message stays in the DLQ
    copied_not_deleted: int = 0  # copy sent, delete failed: it will be moved again next run
    task_handle: str | None = None


# --- resolving the pair --------------------------------------------------------------------------

def _url_of(sqs: Any, queue: str) -> str:
    if queue.startswith(("https://", "http://")):
        return queue
    try:
        return str(sqs.get_queue_url(QueueName=queue)["QueueUrl"])
    except ClientError as exc:
        raise RedriveError(f"no queue named {queue!r}: {exc.response['Error'].get('Message', exc)}") from None


def _url_of_arn(sqs: Any, arn: str) -> str:
    parts = arn.split(":")
    return str(sqs.get_queue_url(QueueName=parts[5], QueueOwnerAWSAccountId=parts[4])["QueueUrl"])


def _attributes(sqs: Any, url: str) -> dict[str, str]:
    # "All": moto refuses RedriveAllowPolicy as a name, though it returns it among all attributes.
    return dict(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"])


def resolve_pair(sqs: Any, queue: str) -> QueuePair:
    """The (source, DLQ) pair that `queue` (either of the two, name or URL) belongs to."""
    url = _url_of(sqs, queue)
    attributes = _attributes(sqs, url)
    arn = attributes["QueueArn"]
    if "RedrivePolicy" in attributes:  # the source queue: its policy names its DLQ
        dlq_arn = str(json.loads(attributes["RedrivePolicy"])["deadLetterTargetArn"])
        return QueuePair(url, arn, _url_of_arn(sqs, dlq_arn), dlq_arn)
    sources: list[str] = []
    for page in sqs.get_paginator("list_dead_letter_source_queues").paginate(QueueUrl=url):
        sources.extend(page.get("queueUrls", []))
    if not sources:
        allow = json.loads(attributes.get("RedriveAllowPolicy") or "{}")
        if allow.get("redrivePermission") == "byQueue":
            sources = [_url_of_arn(sqs, source_arn) for source_arn in allow.get("sourceQueueArns", [])]
    if not sources and arn.endswith("_dlq"):
        sources = [_url_of(sqs, arn.rsplit(":", 1)[-1].removesuffix("_dlq"))]
    if len(sources) != 1:
        found = ", ".join(sources) if sources else "none"
        raise RedriveError(f"{arn.rsplit(':', 1)[-1]} has no RedrivePolicy and {len(sources)} source queue(s) "
                           f"({found}); name the source queue instead")
    source_url = sources[0]
    return QueuePair(source_url, _attributes(sqs, source_url)["QueueArn"], url, arn)


def queue_depth(sqs: Any, url: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes.get("ApproximateNumberOfMessages", 0))


# --- moving --------------------------------------------------------------------------------------

class MoveTaskUnsupported(RuntimeError):
    pass


def move_with_task(sqs: Any, pair: QueuePair, out: TextIO, *, sleep: Callable[[float], None] = time.sleep,
                   wait_s: float = MOVE_TASK_WAIT_S) -> MoveResult:
    """SQS StartMessageMoveTask, then wait for it to finish (the task runs on in SQS if we stop)."""
    try:
        handle = sqs.start_message_move_task(SourceArn=pair.dlq_arn, DestinationArn=pair.source_arn)["TaskHandle"]
    except NotImplementedError as exc:  # moto in-process
        raise MoveTaskUnsupported(str(exc)) from None
    except ClientError as exc:
        if exc.response["Error"]["Code"] in ("UnsupportedOperation", "InvalidAction", "InternalFailure",
                                             "NotImplemented", "501"):
            raise MoveTaskUnsupported(exc.response["Error"].get("Message", str(exc))) from None
        raise
    result = MoveResult(method="message-move task", task_handle=handle)
    out.write(f"started message-move task {handle}\n")
    deadline = time.monotonic() + wait_s
    while True:
        tasks = sqs.list_message_move_tasks(SourceArn=pair.dlq_arn, MaxResults=1).get("Results", [])
        task = tasks[0] if tasks else {}
        status = task.get("Status", "UNKNOWN")
        result.moved = int(task.get("ApproximateNumberOfMessagesMoved", 0))
        if status in ("COMPLETED", "FAILED", "CANCELLED"):
            if status != "COMPLETED":
                reason = task.get("FailureReason", status)
                raise RedriveError(f"message-move task {status.lower()} after {result.moved} message(s): {reason}")
            return result
        if time.monotonic() > deadline:
            out.write(f"task still {status} after {wait_s:.0f}s ({result.moved} moved); it keeps running in SQS "
                      f"(cancel: aws sqs cancel-message-move-task --task-handle {handle})\n")
            return result
        sleep(MOVE_TASK_POLL_S)


def move_by_copy(sqs: Any, pair: QueuePair, out: TextIO, *, max_messages: int | None = None) -> MoveResult:
    """Receive from the DLQ, SendMessageBatch to the source, delete only what was sent."""
    result = MoveResult(method="receive-send-delete")
    seen: set[str] = set()
    while max_messages is None or result.moved + result.failed < max_messages:
        wanted = SQS_BATCH if max_messages is None else min(SQS_BATCH, max_messages - result.moved - result.failed)
        messages = sqs.receive_message(
            QueueUrl=pair.dlq_url, MaxNumberOfMessages=wanted, WaitTimeSeconds=1,
            VisibilityTimeout=MOVE_VISIBILITY_S, MessageAttributeNames=["All"],
            MessageSystemAttributeNames=["MessageGroupId", "MessageDeduplicationId"],
        ).get("Messages", [])
        fresh = [m for m in messages if m["MessageId"] not in seen]
        if not fresh:
            break
        seen.update(m["MessageId"] for m in fresh)
        entries = [_copy_entry(str(index), message, pair.fifo) for index, message in enumerate(fresh)]
        response = sqs.send_message_batch(QueueUrl=pair.source_url, Entries=entries)
        for failure in response.get("Failed", []):
            result.failed += 1
            out.write(f"  not moved {fresh[int(failure['Id'])]['MessageId']}: {failure.get('Code')} "
                      f"{failure.get('Message', '')}\n")
        sent = [fresh[int(entry["Id"])] for entry in response.get("Successful", [])]
        if not sent:
            continue
        deleted = sqs.delete_message_batch(QueueUrl=pair.dlq_url, Entries=[
            {"Id": str(index), "ReceiptHandle": message["ReceiptHandle"]} for index, message in enumerate(sent)])
        result.copied_not_deleted += len(deleted.get("Failed", []))
        result.moved += len(deleted.get("Successful", []))
    return result


def _copy_entry(entry_id: str, message: dict[str, Any], fifo: bool) -> dict[str, Any]:
    entry: dict[str, Any] = {"Id": entry_id, "MessageBody": message["Body"]}
    if message.get("MessageAttributes"):
        entry["MessageAttributes"] = {
            name: {key: value for key, value in attribute.items()
                   if key in ("DataType", "StringValue", "BinaryValue")}
            for name, attribute in message["MessageAttributes"].items()
        }
    if fifo:
        system = message.get("Attributes", {})
        entry["MessageGroupId"] = system.get("MessageGroupId", "redrive")
        entry["MessageDeduplicationId"] = system.get("MessageDeduplicationId", message["MessageId"])
    return entry


def redrive_dlq(env: Environment, queue: str, out: TextIO, *, max_messages: int | None = None,
                dry_run: bool = False) -> tuple[QueuePair, MoveResult | None]:
    sqs = env.client("sqs")
    pair = resolve_pair(sqs, queue)
    # Move tasks exist only in real SQS, move everything (no count) and do not take FIFO queues.
    use_task = env.endpoint_url is None and max_messages is None and not pair.fifo
    depth = queue_depth(sqs, pair.dlq_url)
    method = "message-move task" if use_task else "receive-send-delete"
    out.write(f"{pair.dlq_name} -> {pair.source_name}: {depth} message(s) waiting; method {method}\n")
    if dry_run:
        limit = f", at most {max_messages}" if max_messages is not None else ""
        out.write(f"dry run: would move {depth} message(s){limit}; nothing received or moved\n")
        return pair, None
    if use_task:
        try:
            result = move_with_task(sqs, pair, out)
        except MoveTaskUnsupported as exc:
            out.write(f"message-move task unavailable ({exc}); copying with receive-send-delete\n")
            result = move_by_copy(sqs, pair, out, max_messages=max_messages)
    else:
        result = move_by_copy(sqs, pair, out, max_messages=max_messages)
    out.write(f"moved {result.moved} message(s) from {pair.dlq_name} to {pair.source_name} ({result.method})")
    if result.failed:
        out.write(f"; {result.failed} not moved (still in the DLQ)")
    if result.copied_not_deleted:
        out.write(f"; {result.copied_not_deleted} copied but not deleted (will be delivered twice; processing "
                  "is idempotent)")
    out.write("\n")
    return pair, result


# --- raw -----------------------------------------------------------------------------------------

@dataclass
class RawRedriveResult:
    objects: int = 0
    bytes: int = 0
    sent: int = 0
    failed: int = 0


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def redrive_raw(env: Environment, source: str, hours: Iterable[datetime], out: TextIO, *,
                dry_run: bool = False) -> RawRedriveResult:
    s3, sqs = env.client("s3"), env.client("sqs")
    raw_bucket = env.output(Output.RAW_BUCKET)
    queue_url = env.output(Output.REDRIVE_QUEUE_URL)
    queue_name = queue_url.rstrip("/").rsplit("/", 1)[-1]
    total = RawRedriveResult()
    for hour in hours:
        objects = list(list_objects(s3, raw_bucket, raw_hour_prefix(source, hour)))
        size = sum(int(o.get("Size", 0)) for o in objects)
        total.objects += len(objects)
        total.bytes += size
        if dry_run or not objects:
            out.write(f"  {hour_label(hour)}  {len(objects)} object(s), {format_bytes(size)}\n")
            continue
        bodies = [s3_notification_body(raw_bucket, o["Key"], o["ETag"], int(o.get("Size", 0)),
                                       event_time=_rfc3339(o["LastModified"])) for o in objects]
        sent, errors = send_message_batches(sqs, queue_url, bodies)
        total.sent += sent
        total.failed += len(objects) - sent
        out.write(f"  {hour_label(hour)}  {len(objects)} object(s), {format_bytes(size)}, sent {sent}\n")
        for error in errors[:5]:
            out.write(f"    not sent: {error}\n")
    if dry_run:
        out.write(f"dry run: would send {total.objects} raw object(s) ({format_bytes(total.bytes)}) "
                  f"to {queue_name}\n")
    else:
        out.write(f"sent {total.sent} of {total.objects} raw object(s) ({format_bytes(total.bytes)}) to "
                  f"{queue_name}; the parser overwrites their output (same names), so no rows are duplicated\n")
    return total


# --- quarantine ----------------------------------------------------------------------------------

#: Reasons a schema change can cure; the others are about the bytes sent (not JSON, too large, too
#: deep, a damaged object) and fail the same way on every parse.
CURABLE_REASONS: Final = (Reason.UNKNOWN_DEVICE_TYPE, Reason.INVALID_VALUE, Reason.MISSING_FIELD,
                          Reason.EVENT_TIME_OUT_OF_RANGE)


@dataclass
class QuarantineRedriveResult:
    files: int = 0
    records: int = 0
    cured: int = 0
    still_failing: int = 0
    cured_by_type: dict[str, int] = field(default_factory=dict)
    still_by_value: dict[str, int] = field(default_factory=dict)  # unknown device types still unknown
    objects_sent: int = 0
    objects_failed: int = 0
    not_replayable: int = 0  # records whose raw object is gone or was replaced


def quarantine_prefixes(source: str, hours: list[datetime] | None) -> list[str]:
    base = f"{QUARANTINE_ROOT}source={source}/"
    if hours is None:
        return [base]
    return [f"{base}{partition_of(hour).path}/" for hour in hours]


def read_quarantine(s3: Any, bucket: str, key: str) -> list[dict[str, Any]]:
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    return [json.loads(line) for line in gzip.decompress(body).splitlines() if line.strip()]


def judge_originals(source: str, raw_key: str, arrival: datetime, originals: list[str]) -> tuple[dict[str, int],
                                                                                                 dict[str, int]]:
    """What the parser (this checkout's code and schema) makes of these lines now: rows per type, rejects per reason."""
    import io  # noqa: PLC0415

    from parser.core import ParseSettings, RawObject, parse_raw  # noqa: PLC0415 (pyarrow: only this command)

    data = "\n".join(originals).encode("utf-8") + b"\n"
    with tempfile.TemporaryDirectory(prefix="signals-judge-") as scratch:
        outcome = parse_raw(io.BytesIO(data), RawObject(source, raw_key, int(arrival.timestamp() * 1000)),
                            Path(scratch), ParseSettings(workers=1))
    return dict(outcome.counts.rows_out), dict(outcome.counts.quarantined)


def redrive_quarantine(env: Environment, reason: str, out: TextIO, *, source: str = Source.JSON_TELEMETRY.value,
                       hours: list[datetime] | None = None, dry_run: bool = False) -> QuarantineRedriveResult:
    if source != Source.JSON_TELEMETRY:
        raise RedriveError(f"quarantine redrive replays device telemetry only; {source} records are judged by the "
                           "OTLP specification, which no schema change alters (use `signals redrive raw`)")
    s3, sqs = env.client("s3"), env.client("sqs")
    quarantine_bucket = env.output(Output.QUARANTINE_BUCKET)
    raw_bucket = env.output(Output.RAW_BUCKET)
    queue_url = env.output(Output.REDRIVE_QUEUE_URL)
    result = QuarantineRedriveResult()
    to_send: list[str] = []
    for prefix in quarantine_prefixes(source, hours):
        for item in list_objects(s3, quarantine_bucket, prefix):
            key = str(item["Key"])
            if not key.endswith(QUARANTINE_SUFFIX):
                continue
            records = [r for r in read_quarantine(s3, quarantine_bucket, key) if r.get("reason") == reason]
            if not records:
                continue
            result.files += 1
            result.records += len(records)
            raw_key = str(records[0]["source_key"])
            try:
                head = s3.head_object(Bucket=raw_bucket, Key=raw_key)
            except ClientError as exc:
                result.not_replayable += len(records)
                out.write(f"  {key}: raw object {raw_key} is gone ({exc.response['Error'].get('Code')}); "
                          f"its {len(records)} record(s) stay in quarantine\n")
                continue
            etag = str(head["ETag"]).strip('"')
            name = key.rsplit("/", 1)[-1].removesuffix(QUARANTINE_SUFFIX)
            if output_name(raw_bucket, raw_key, etag) != name:
                result.not_replayable += len(records)
                out.write(f"  {key}: raw object {raw_key} was replaced since it was parsed; its {len(records)} "
                          "record(s) stay in quarantine\n")
                continue
            rows, rejects = judge_originals(source, raw_key, head["LastModified"],
                                            [str(r.get("original", "")) for r in records])
            cured = sum(rows.values())
            result.cured += cured
            still: int = sum(rejects.values())
            result.still_failing += still
            for type_value, count in rows.items():
                result.cured_by_type[type_value] = result.cured_by_type.get(type_value, 0) + count
            if still > 0 and reason == Reason.UNKNOWN_DEVICE_TYPE:
                for record in records:
                    value = _device_type_of(str(record.get("original", "")))
                    result.still_by_value[value] = result.still_by_value.get(value, 0) + 1
                for type_value in rows:
                    result.still_by_value.pop(type_value, None)
            if cured:
                to_send.append(raw_key)
                if not dry_run:
                    body = s3_notification_body(raw_bucket, raw_key, etag, int(head.get("ContentLength", 0)),
                                                event_time=_rfc3339(head["LastModified"]))
                    sent, errors = send_message_batches(sqs, queue_url, [body])
                    result.objects_sent += sent
                    result.objects_failed += 1 - sent
                    for error in errors[:1]:
                        out.write(f"  not sent {raw_key}: {error}\n")
    _report_quarantine(result, reason, out, dry_run=dry_run, objects=len(to_send))
    return result


def _device_type_of(original: str) -> str:
    try:
        value = json.loads(original).get("device_type")
    except (ValueError, AttributeError):
        return "?"
    return str(value)


def _report_quarantine(result: QuarantineRedriveResult, reason: str, out: TextIO, *, dry_run: bool,
                       objects: int) -> None:
    out.write(f"{result.records} quarantined record(s) with reason {reason} in {result.files} file(s)\n")
    if not result.records:
        out.write("nothing to replay\n")
        return
    cured = ", ".join(f"{t} {n}" for t, n in sorted(result.cured_by_type.items())) or "none"
    out.write(f"  pass with the current schema: {result.cured} ({cured})\n")
    out.write(f"  still fail: {result.still_failing}\n")
    still = {k: v for k, v in result.still_by_value.items() if v}
    if still:
        names = ", ".join(f"{value} {count}" for value, count in sorted(still.items()))
        out.write(f"  device types the schema does not know yet: {names} "
                  "(add one with `signals schema suggest TYPE`, deploy, then run this again)\n")
    if result.not_replayable:
        out.write(f"  not replayable (raw object gone or replaced): {result.not_replayable}\n")
    if dry_run:
        out.write(f"dry run: would send {objects} raw object(s) to the redrive queue; nothing sent\n")
    elif objects:
        out.write(f"sent {result.objects_sent} of {objects} raw object(s) to the redrive queue; the parser "
                  "re-parses each whole object under the same output names (no row twice) and rewrites its "
                  "quarantine file with what still fails\n")
    else:
        out.write("nothing the current schema cures: nothing sent\n")


# --- command -------------------------------------------------------------------------------------

def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("redrive", help="move DLQ messages back, or re-enqueue raw objects for parsing",
                                   description=__doc__.split("\n\n")[0] if __doc__ else None)
    what = parser.add_subparsers(dest="redrive_what", metavar="WHAT", required=True)

    dlq = what.add_parser("dlq", help="move a DLQ's messages back to its source queue",
                          description="QUEUE is a DLQ or its source queue (name or URL); the pair is found from "
                                      "RedrivePolicy / RedriveAllowPolicy, or the `_dlq` naming.")
    add_env_arguments(dlq)
    dlq.add_argument("queue", metavar="QUEUE", help="a DLQ or its source queue, by name or URL")
    dlq.add_argument("--max", type=_positive_int, default=None, metavar="N", help="move at most N messages")
    dlq.add_argument("--dry-run", action="store_true", help="show the pair and the depth; move nothing")
    dlq.set_defaults(func=run_dlq)

    raw = what.add_parser("raw", help="send the raw objects of an hour range to the redrive queue",
                          description="Lists raw/{source}/YYYY/MM/DD/HH/ for every hour from --from to --to "
                                      "(both included) and enqueues each object for the parser.")
    add_env_arguments(raw)
    raw.add_argument("--source", required=True, choices=[s.value for s in Source])
    raw.add_argument("--from", dest="start", required=True, type=parse_time, metavar="TIME",
                     help="first hour, ISO 8601 at least to the hour (2026-11-25T19)")
    raw.add_argument("--to", dest="end", type=parse_time, default=None, metavar="TIME",
                     help="last hour, included (default: the --from hour)")
    raw.add_argument("--dry-run", action="store_true", help="count the objects; send nothing")
    raw.set_defaults(func=run_raw)

    quarantine = what.add_parser(
        "quarantine", help="replay quarantined records a schema change cures (e.g. a new device type)",
        description="Reads quarantine/source=json_telemetry/ (the hours from --from to --to, both included; "
                    "default every hour), judges each record with --reason again with this checkout's parser "
                    "and schema, and sends the raw objects holding a record that now passes to the redrive "
                    "queue. Each event then appears once in verified and compacted; a second run sends nothing.")
    add_env_arguments(quarantine)
    quarantine.add_argument("--reason", required=True, choices=[r.value for r in CURABLE_REASONS],
                            help="the quarantine reason to replay")
    quarantine.add_argument("--source", default=Source.JSON_TELEMETRY.value, choices=[s.value for s in Source])
    quarantine.add_argument("--from", dest="start", type=parse_time, default=None, metavar="TIME",
                            help="first quarantine hour (the raw object's arrival), ISO 8601 at least to the hour")
    quarantine.add_argument("--to", dest="end", type=parse_time, default=None, metavar="TIME",
                            help="last hour, included (default: the --from hour)")
    quarantine.add_argument("--dry-run", action="store_true", help="judge and count; send nothing")
    quarantine.set_defaults(func=run_quarantine)


def run_dlq(args: argparse.Namespace) -> int:
    env = environment_from_args(args)
    if env is None:
        return 2
    try:
        _pair, result = redrive_dlq(env, args.queue, sys.stdout, max_messages=args.max, dry_run=args.dry_run)
    except (RedriveError, ClientError, BotoCoreError) as exc:
        print(f"signals redrive: {exc}", file=sys.stderr)
        return 2
    return 1 if result is not None and (result.failed or result.copied_not_deleted) else 0


def run_quarantine(args: argparse.Namespace) -> int:
    hours: list[datetime] | None = None
    if args.start is not None:
        end = args.end or args.start
        if end < args.start:
            print("signals redrive: --to is before --from", file=sys.stderr)
            return 2
        hours = hours_between(args.start, end)
    elif args.end is not None:
        print("signals redrive: --to needs --from", file=sys.stderr)
        return 2
    env = environment_from_args(args)
    if env is None:
        return 2
    span = "every hour" if hours is None else f"{hour_label(hours[0])}..{hour_label(hours[-1])}"
    print(f"redrive quarantine {args.source} reason {args.reason}, {span}")
    try:
        result = redrive_quarantine(env, args.reason, sys.stdout, source=args.source, hours=hours,
                                    dry_run=args.dry_run)
    except (RedriveError, ClientError, BotoCoreError, EnvironmentNotFound) as exc:
        print(f"signals redrive: {exc}", file=sys.stderr)
        return 2
    return 1 if result.objects_failed else 0


def run_raw(args: argparse.Namespace) -> int:
    end = args.end or args.start
    if end < args.start:
        print("signals redrive: --to is before --from", file=sys.stderr)
        return 2
    env = environment_from_args(args)
    if env is None:
        return 2
    hours = hours_between(args.start, end)
    print(f"redrive raw {args.source} {hour_label(hours[0])}..{hour_label(hours[-1])} ({len(hours)} hour(s))")
    try:
        result = redrive_raw(env, args.source, hours, sys.stdout, dry_run=args.dry_run)
    except (ClientError, BotoCoreError, EnvironmentNotFound) as exc:
        print(f"signals redrive: {exc}", file=sys.stderr)
        return 2
    return 1 if result.failed else 0
