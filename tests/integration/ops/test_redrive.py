"""`signals redrive` against moto: pair resolution, the safe copy loop, the move-task path, raw enqueueing."""

from __future__ import annotations

import argparse
import gzip
import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.layout import output_name
from shared.s3events import parse_s3_notification
from signals.env import Output
from signals.ops import redrive
from signals.ops.common import partition_of
from tests.integration.ops.conftest import QUARANTINE, RAW, Pipeline


def _drain(pipeline: Pipeline, url: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    while True:
        batch = pipeline.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"],
                                             VisibilityTimeout=60).get("Messages", [])
        if not batch:
            return found
        found.extend(batch)


def _depths(pipeline: Pipeline, url: str) -> tuple[int, int]:
    attributes = pipeline.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]), int(attributes["ApproximateNumberOfMessagesNotVisible"])


def _fill_dlq(pipeline: Pipeline, count: int) -> str:
    dlq = pipeline.queue_url(Output.REGISTRY_DLQ_URL)
    for index in range(count):
        pipeline.sqs.send_message(QueueUrl=dlq, MessageBody=json.dumps({"n": index}), MessageAttributes={
            "origin": {"DataType": "String", "StringValue": f"test-{index}"}})
    return dlq


@pytest.mark.parametrize("named", ["telemetry-registry-queue_dlq", "telemetry-registry-queue"])
def test_pair_resolves_from_either_queue(pipeline: Pipeline, named: str) -> None:
    pair = redrive.resolve_pair(pipeline.sqs, named)
    assert pair.source_name == "telemetry-registry-queue"
    assert pair.dlq_name == "telemetry-registry-queue_dlq"
    assert pair.source_url == pipeline.queue_url(Output.REGISTRY_QUEUE_URL)
    assert pair.dlq_url == pipeline.queue_url(Output.REGISTRY_DLQ_URL)


class WithAllowPolicy:
    """The real client, plus a RedriveAllowPolicy on one queue (moto drops that attribute)."""

    def __init__(self, sqs: Any, url: str, policy: dict[str, Any]) -> None:
        self._sqs, self._url, self._policy = sqs, url, policy

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sqs, name)

    def get_queue_attributes(self, QueueUrl: str, AttributeNames: list[str]) -> dict[str, Any]:
        response = self._sqs.get_queue_attributes(QueueUrl=QueueUrl, AttributeNames=AttributeNames)
        if QueueUrl == self._url:
            response["Attributes"]["RedriveAllowPolicy"] = json.dumps(self._policy)
        return dict(response)


def test_pair_from_a_url_and_from_redrive_allow_policy(pipeline: Pipeline) -> None:
    pair = redrive.resolve_pair(pipeline.sqs, pipeline.queue_url(Output.OTLP_DLQ_URL))
    assert pair.source_name == "otlp-logs-processing-queue"
    # A DLQ no queue points at any more, found through its RedriveAllowPolicy instead.
    source = pipeline.sqs.create_queue(QueueName="orders")["QueueUrl"]
    attributes = pipeline.sqs.get_queue_attributes(QueueUrl=source, AttributeNames=["QueueArn"])["Attributes"]
    dead = pipeline.sqs.create_queue(QueueName="orders-dead")["QueueUrl"]
    sqs = WithAllowPolicy(pipeline.sqs, dead, {"redrivePermission": "byQueue",
                                               "sourceQueueArns": [attributes["QueueArn"]]})
    assert redrive.resolve_pair(sqs, "orders-dead").source_url == source


def test_unknown_or_unpaired_queue_is_a_clear_error(pipeline: Pipeline) -> None:
    with pytest.raises(redrive.RedriveError, match="no queue named 'nope'"):
        redrive.resolve_pair(pipeline.sqs, "nope")
    pipeline.sqs.create_queue(QueueName="lonely")
    with pytest.raises(redrive.RedriveError, match="name the source queue"):
        redrive.resolve_pair(pipeline.sqs, "lonely")


def test_redrive_dlq_moves_every_message_with_its_attributes(pipeline: Pipeline) -> None:
    dlq = _fill_dlq(pipeline, 13)
    out = io.StringIO()
    # Not local (no endpoint): the move task is tried first; moto lacks it, so the copy loop takes over.
    _pair, result = redrive.redrive_dlq(pipeline.env, "telemetry-registry-queue_dlq", out)
    assert result is not None
    assert (result.method, result.moved, result.failed) == ("receive-send-delete", 13, 0)
    assert "message-move task unavailable" in out.getvalue()
    assert _depths(pipeline, dlq) == (0, 0)
    moved = _drain(pipeline, pipeline.queue_url(Output.REGISTRY_QUEUE_URL))
    assert sorted(json.loads(m["Body"])["n"] for m in moved) == list(range(13))
    assert {m["MessageAttributes"]["origin"]["StringValue"] for m in moved} == {f"test-{i}" for i in range(13)}


def test_max_and_dry_run(pipeline: Pipeline) -> None:
    dlq = _fill_dlq(pipeline, 5)
    out = io.StringIO()
    _pair, nothing = redrive.redrive_dlq(pipeline.env, "telemetry-registry-queue", out, dry_run=True)
    assert nothing is None
    assert "dry run: would move 5 message(s)" in out.getvalue()
    assert _depths(pipeline, dlq) == (5, 0)
    _pair, result = redrive.redrive_dlq(pipeline.env, "telemetry-registry-queue", io.StringIO(), max_messages=3)
    assert result is not None
    assert result.moved == 3
    assert _depths(pipeline, dlq) == (2, 0)
    assert len(_drain(pipeline, pipeline.queue_url(Output.REGISTRY_QUEUE_URL))) == 3


class FailingSends:
    """The real client, except SendMessageBatch refuses the entries with the given ids."""

    def __init__(self, sqs: Any, refuse: set[str]) -> None:
        self._sqs = sqs
        self._refuse = refuse
        self.deleted_receipts: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sqs, name)

    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        accepted = [e for e in Entries if e["Id"] not in self._refuse]
        response = self._sqs.send_message_batch(QueueUrl=QueueUrl, Entries=accepted) if accepted else {}
        failed = [{"Id": e["Id"], "Code": "KMS.ThrottlingException", "SenderFault": False, "Message": "slow down"}
                  for e in Entries if e["Id"] in self._refuse]
        return {"Successful": response.get("Successful", []), "Failed": failed}


def test_copy_loop_never_deletes_a_message_whose_copy_failed(pipeline: Pipeline) -> None:
    dlq = _fill_dlq(pipeline, 4)
    sqs = FailingSends(pipeline.sqs, refuse={"1"})
    pair = redrive.resolve_pair(sqs, "telemetry-registry-queue_dlq")
    out = io.StringIO()
    result = redrive.move_by_copy(sqs, pair, out)
    assert (result.moved, result.failed) == (3, 1)
    assert "not moved" in out.getvalue()
    assert "KMS.ThrottlingException" in out.getvalue()
    # The refused one is still in the DLQ (invisible until its receive times out), not lost.
    assert _depths(pipeline, dlq) == (0, 1)
    assert len(_drain(pipeline, pair.source_url)) == 3


class MoveTaskSqs:
    """SQS with message-move tasks (as real SQS has): records the task and reports it completed."""

    def __init__(self, sqs: Any) -> None:
        self._sqs = sqs
        self.started: list[dict[str, str]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sqs, name)

    def start_message_move_task(self, **kwargs: str) -> dict[str, str]:
        self.started.append(kwargs)
        return {"TaskHandle": "handle-1"}

    def list_message_move_tasks(self, **_kwargs: Any) -> dict[str, Any]:
        return {"Results": [{"Status": "COMPLETED", "ApproximateNumberOfMessagesMoved": 7}]}


def test_real_sqs_uses_a_message_move_task_from_dlq_to_source(pipeline: Pipeline) -> None:
    sqs = MoveTaskSqs(pipeline.sqs)
    pair = redrive.resolve_pair(sqs, "telemetry-processing-queue")
    result = redrive.move_with_task(sqs, pair, io.StringIO(), sleep=lambda _s: None)
    assert sqs.started == [{"SourceArn": pair.dlq_arn, "DestinationArn": pair.source_arn}]
    assert (result.method, result.moved, result.task_handle) == ("message-move task", 7, "handle-1")


def test_redrive_raw_enqueues_each_object_of_the_hours_once(pipeline: Pipeline) -> None:
    first = datetime(2026, 11, 25, 10, tzinfo=UTC)
    keys = set()
    for hour_offset, count in ((0, 12), (1, 3)):
        for index in range(count):
            put = pipeline.put_raw("json_telemetry", first + timedelta(hours=hour_offset), f"obj-{index}", [{}])
            keys.add((put["key"], put["etag"]))
    pipeline.put_raw("json_telemetry", first + timedelta(hours=2), "outside-range", [{}])
    pipeline.put_raw("otlp_logs", first, "other-source", [{}])

    out = io.StringIO()
    dry = redrive.redrive_raw(pipeline.env, "json_telemetry", [first, first + timedelta(hours=1)], out,
                              dry_run=True)
    assert (dry.objects, dry.sent) == (15, 0)
    assert _depths(pipeline, pipeline.queue_url(Output.REDRIVE_QUEUE_URL)) == (0, 0)

    result = redrive.redrive_raw(pipeline.env, "json_telemetry", [first, first + timedelta(hours=1)], out)
    assert (result.objects, result.sent, result.failed) == (15, 15, 0)
    messages = _drain(pipeline, pipeline.queue_url(Output.REDRIVE_QUEUE_URL))
    refs = [ref for m in messages for ref in parse_s3_notification(m["Body"])]
    assert {(ref.key, ref.etag) for ref in refs} == keys
    assert {ref.bucket for ref in refs} == {RAW}
    assert all(ref.event_time and ref.event_time.endswith("Z") for ref in refs)


def test_redrive_raw_command_arguments(pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    pipeline.put_raw("otlp_logs", datetime(2026, 11, 25, 9, tzinfo=UTC), "a", [{}])
    monkeypatch.setattr(redrive, "environment_from_args", lambda _args: pipeline.env)
    parser = argparse.ArgumentParser(prog="signals")
    redrive.register(parser.add_subparsers())
    args = parser.parse_args(["redrive", "raw", "--source", "otlp_logs", "--from", "2026-11-25T08",
                              "--to", "2026-11-25T09:59Z"])
    assert args.func(args) == 0
    text = capsys.readouterr().out
    assert "(2 hour(s))" in text
    assert "sent 1 of 1 raw object(s)" in text
    backwards = parser.parse_args(["redrive", "raw", "--source", "otlp_logs", "--from", "2026-11-25T10",
                                   "--to", "2026-11-25T09"])
    assert backwards.func(backwards) == 2
    with pytest.raises(SystemExit):
        parser.parse_args(["redrive", "raw", "--source", "nope", "--from", "2026-11-25T10"])


def test_redrive_dlq_command_exit_codes(pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    _fill_dlq(pipeline, 2)
    monkeypatch.setattr(redrive, "environment_from_args", lambda _args: pipeline.env)
    parser = argparse.ArgumentParser(prog="signals")
    redrive.register(parser.add_subparsers())
    args = parser.parse_args(["redrive", "dlq", "telemetry-registry-queue_dlq"])
    assert args.func(args) == 0
    assert "moved 2 message(s) from telemetry-registry-queue_dlq to telemetry-registry-queue" in capsys.readouterr().out
    missing = parser.parse_args(["redrive", "dlq", "no-such-queue"])
    assert missing.func(missing) == 2
    assert "no queue named 'no-such-queue'" in capsys.readouterr().err


def _quarantine(pipeline: Pipeline, raw: dict[str, Any], hour: datetime, records: list[tuple[str, dict[str, Any]]]
                ) -> str:
    """The quarantine file the parser would have written for this raw object (its deterministic name)."""
    lines = [json.dumps({"reason": reason, "errors": [], "source_key": raw["key"], "line": i + 1,
                         "original": json.dumps(original)}) for i, (reason, original) in enumerate(records)]
    name = output_name(RAW, raw["key"], raw["etag"])
    key = f"quarantine/source=json_telemetry/{partition_of(hour).path}/{name}.jsonl.gz"
    pipeline.s3.put_object(Bucket=QUARANTINE, Key=key, Body=gzip.compress("\n".join(lines).encode() + b"\n"))
    return key


def _lock(event_id: str, **fields: Any) -> dict[str, Any]:
    return {"event_id": event_id, "device_id": "d", "device_type": "lock", "event_name": "x",
            "event_time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), **fields}


def test_redrive_quarantine_sends_only_the_objects_the_current_schema_cures(pipeline: Pipeline) -> None:
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    # Quarantined under an older schema, valid under this one (as if an enum had been widened).
    cured = pipeline.put_raw("json_telemetry", hour, "cured", [_lock("a"), _lock("b", bolt_state="jammed")])
    _quarantine(pipeline, cured, hour, [("invalid_value", _lock("b", bolt_state="jammed"))])
    still = pipeline.put_raw("json_telemetry", hour, "still", [_lock("c", battery_pct=140)])
    _quarantine(pipeline, still, hour, [("invalid_value", _lock("c", battery_pct=140))])
    gone = pipeline.put_raw("json_telemetry", hour, "gone", [_lock("d")])
    _quarantine(pipeline, gone, hour, [("invalid_value", _lock("d"))])
    pipeline.s3.delete_object(Bucket=RAW, Key=gone["key"])
    parked = pipeline.put_raw("json_telemetry", hour, "parked", [{**_lock("e"), "device_type": "thermostat"}])
    _quarantine(pipeline, parked, hour, [("unknown_device_type", {**_lock("e"), "device_type": "thermostat"})])
    queue = pipeline.queue_url(Output.REDRIVE_QUEUE_URL)

    out = io.StringIO()
    dry = redrive.redrive_quarantine(pipeline.env, "invalid_value", out, dry_run=True)
    assert (dry.records, dry.cured, dry.still_failing, dry.not_replayable, dry.objects_sent) == (3, 1, 1, 1, 0)
    assert _depths(pipeline, queue) == (0, 0)
    assert "dry run: would send 1 raw object(s)" in out.getvalue()

    result = redrive.redrive_quarantine(pipeline.env, "invalid_value", out, hours=[hour])
    assert (result.cured, result.objects_sent, result.cured_by_type) == (1, 1, {"lock": 1})
    [message] = _drain(pipeline, queue)
    [ref] = parse_s3_notification(message["Body"])
    assert (ref.bucket, ref.key, ref.etag) == (RAW, cured["key"], cured["etag"])

    out = io.StringIO()
    unknown = redrive.redrive_quarantine(pipeline.env, "unknown_device_type", out)
    assert (unknown.records, unknown.cured, unknown.objects_sent) == (1, 0, 0)
    assert unknown.still_by_value == {"thermostat": 1}
    assert "device types the schema does not know yet: thermostat 1" in out.getvalue()
    assert "nothing the current schema cures: nothing sent" in out.getvalue()
    # Another hour holds nothing.
    assert redrive.redrive_quarantine(pipeline.env, "invalid_value", out,
                                      hours=[hour - timedelta(hours=1)]).records == 0


def test_redrive_quarantine_refuses_otlp(pipeline: Pipeline) -> None:
    with pytest.raises(redrive.RedriveError, match="device telemetry only"):
        redrive.redrive_quarantine(pipeline.env, "invalid_value", io.StringIO(), source="otlp_logs")
