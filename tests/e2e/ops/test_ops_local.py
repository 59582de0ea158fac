"""`signals status`, `verify` and `redrive` against the whole local stack, over its real endpoints.

Each fault is induced the way it happens in production (a consumer stopped, a message dead-lettered,
a Glue partition dropped, a registry item failed) and each test checks the status line turns, the
repair command fixes it, and the line turns back.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from datetime import timedelta
from typing import Any

import pyarrow.parquet as pq
import pytest

from shared import registry_keys
from shared.arrow import parquet_input
from shared.layout import Partition
from signals import cli
from signals.env import Environment, Output
from signals.local.stack import LocalStack
from signals.ops.checks import CheckResult, Level, StatusContext, run_checks
from signals.ops.common import hour_start
from tests.e2e.ops.conftest import (
    clear_of_hour_end,
    consumer_stopped,
    device_events,
    post_events,
    queue_name,
    raw_lines,
    utc_now,
)


def check(results: list[CheckResult], name: str) -> CheckResult:
    return next(r for r in results if r.check == name)


def status_at(env: Environment, hour: Any, *, minutes_later: float = 0) -> list[CheckResult]:
    return run_checks(StatusContext(env, hour_start(hour), utc_now() + timedelta(minutes=minutes_later)))


def land(stack: LocalStack, count: int = 12, bad: int = 0) -> Any:
    clear_of_hour_end()
    now = utc_now()
    answer = post_events(stack, device_events(count, now, bad=bad))
    assert answer["accepted"] == count + bad
    assert stack.wait_until_drained(60, flush_firehose=True)
    return now


def lake_rows(env: Environment, partition: Partition) -> dict[str, int]:
    """Rows per type in the hour, counted from the Parquet files themselves."""
    s3, bucket = env.client("s3"), env.output(Output.VERIFIED_BUCKET)
    rows: Counter[str] = Counter()
    for type_value in ("lock", "bridge", "video_doorbell", "otlp_logs"):
        listed = s3.list_objects_v2(Bucket=bucket, Prefix=f"telemetry_flat/type={type_value}/{partition.path}/")
        for obj in listed.get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
            rows[type_value] += pq.read_metadata(parquet_input(body)).num_rows
    return dict(rows)


def processed_at(env: Environment, hour: Any) -> dict[str, str]:
    """Each raw object of the hour and when the parser last finished it (its processing record)."""
    raw_bucket = env.output(Output.RAW_BUCKET)
    listed = env.client("s3").list_objects_v2(Bucket=raw_bucket, Prefix=f"raw/json_telemetry/{hour:%Y/%m/%d/%H}/")
    found = {}
    for obj in listed.get("Contents", []):
        item = env.client("dynamodb").get_item(
            TableName=env.output(Output.REGISTRY_TABLE),
            Key={k: {"S": v} for k, v in registry_keys.raw_key(raw_bucket, obj["Key"]).items()})["Item"]
        found[obj["Key"]] = item["processed_at"]["S"]
    return found


def test_verify_succeeds_on_a_healthy_stack(stack: LocalStack, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["verify", "--timeout", "60"]) == 0
    out = capsys.readouterr().out
    assert "signals verify: ok, every canary reached its compacted table" in out
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line.split()[:1] and
            line.split()[0] in ("lock", "bridge", "video_doorbell", "otlp_logs")}
    assert set(rows) == {"lock", "bridge", "video_doorbell", "otlp_logs"}
    for latencies in rows.values():
        seconds = [float(cell.rstrip("s")) for cell in latencies]
        assert len(seconds) == 5
        assert seconds == sorted(seconds)  # each stage after the one before


def test_verify_names_the_stage_whose_consumer_is_stopped(stack: LocalStack, env: Environment,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    with consumer_stopped(stack, env.output(Output.REGISTRY_QUEUE_URL)):
        assert cli.main(["verify", "--timeout", "5"]) == 1
    captured = capsys.readouterr()
    assert "FAILED at registry" in captured.err
    assert "lock, bridge, video_doorbell, otlp_logs" in captured.err
    assert stack.wait_until_drained(60)


def test_healthy_stack_status_has_no_failures(stack: LocalStack, env: Environment,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    sent = land(stack, bad=2)
    stack.run_schedule("reconciler")
    time.sleep(2.5)  # the compactor leaves registrations younger than its settle time (2 s locally)
    compacted = stack.run_schedule("compactor")
    assert compacted["days_compacted"] >= 1
    capsys.readouterr()  # the reconciler's and compactor's own output, printed from this thread
    hour = hour_start(sent).strftime("%Y-%m-%dT%H")
    assert cli.main(["status", "--hour", hour, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    by_name = {c["check"]: c for c in report["checks"]}
    assert [c["check"] for c in report["checks"] if c["level"] == "fail"] == []
    assert by_name["raw arriving json_telemetry"]["level"] == "ok"
    assert by_name["raw processed json_telemetry"]["figure"].endswith("processed")
    assert by_name["verified lock"]["details"]["rows"] >= 4
    assert by_name["quarantine json_telemetry"]["details"]["reasons"].get("invalid_value", 0) >= 2
    assert by_name["partition lock"]["level"] == "ok"
    assert by_name["reconciler"]["level"] == "ok"
    assert by_name["dlq telemetry"]["figure"] == "empty"
    assert by_name["compaction last run"]["level"] == "ok"
    assert by_name["compaction last run"]["details"]["last_run_id"] == compacted["run_id"]
    assert by_name["compaction lag"]["details"]["waiting_files"] == 0
    assert by_name["compaction conflicts"]["figure"].startswith("none recorded this hour")


def test_dead_lettered_raw_object_fails_status_and_redrive_gets_it_processed(
        stack: LocalStack, env: Environment, capsys: pytest.CaptureFixture[str]) -> None:
    s3, sqs = env.client("s3"), env.client("sqs")
    queue_url, dlq_url = env.output(Output.TELEMETRY_QUEUE_URL), env.output(Output.TELEMETRY_DLQ_URL)
    raw_bucket = env.output(Output.RAW_BUCKET)
    clear_of_hour_end()
    now = utc_now()
    key = f"raw/json_telemetry/{now:%Y/%m/%d/%H}/e2e-dead-lettered.gz"
    with consumer_stopped(stack, queue_url):
        s3.put_object(Bucket=raw_bucket, Key=key, Body=raw_lines(device_events(6, now)))
        # What SQS does after maxReceiveCount failed receives: the notification moves to the DLQ.
        moved = 0
        for _attempt in range(20):
            for message in sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10,
                                               WaitTimeSeconds=1).get("Messages", []):
                sqs.send_message(QueueUrl=dlq_url, MessageBody=message["Body"])
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
                moved += "e2e-dead-lettered" in message["Body"]
            if moved:
                break
        assert moved == 1

    faulty = status_at(env, now, minutes_later=90)
    assert check(faulty, "dlq telemetry").level is Level.FAIL
    unprocessed = check(faulty, "raw processed json_telemetry")
    assert unprocessed.level is Level.FAIL
    assert key in unprocessed.details["unprocessed_keys"]

    assert cli.main(["redrive", "dlq", queue_name(dlq_url)]) == 0
    assert "moved 1 message(s)" in capsys.readouterr().out
    assert stack.wait_until_drained(60)
    record = env.client("dynamodb").get_item(
        TableName=env.output(Output.REGISTRY_TABLE),
        Key={k: {"S": v} for k, v in registry_keys.raw_key(raw_bucket, key).items()}).get("Item")
    assert record is not None
    repaired = status_at(env, now, minutes_later=90)
    assert check(repaired, "dlq telemetry").level is Level.OK
    assert key not in check(repaired, "raw processed json_telemetry").details["unprocessed_keys"]


def test_missing_partition_and_failed_item_fail_status_until_the_reconciler_repairs(
        stack: LocalStack, env: Environment) -> None:
    sent = land(stack)
    partition = Partition.from_datetime(sent)
    glue, dynamodb = env.client("glue"), env.client("dynamodb")
    table = env.output(Output.REGISTRY_TABLE)
    glue.delete_partition(DatabaseName=env.output(Output.GLUE_DATABASE), TableName="telemetry_lock_flat",
                          PartitionValues=partition.values)
    bridge_file = next(o["Key"] for o in env.client("s3").list_objects_v2(
        Bucket=env.output(Output.VERIFIED_BUCKET), Prefix=f"telemetry_flat/type=bridge/{partition.path}/")["Contents"])
    earlier = (utc_now() - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    dynamodb.update_item(
        TableName=table, Key={k: {"S": v} for k, v in registry_keys.file_key(bridge_file).items()},
        UpdateExpression="SET #s = :s, last_error = :e, updated_at = :u",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":s": {"S": "partition_failed"}, ":e": {"S": "ThrottlingException (test)"},
                                   ":u": {"S": earlier}})

    broken = status_at(env, sent)
    assert check(broken, "partition lock").level is Level.FAIL
    failed = check(broken, "registry not registered")
    assert failed.level is Level.FAIL
    assert "ThrottlingException (test)" in failed.figure

    stack.run_schedule("reconciler")
    repaired = status_at(env, sent)
    assert check(repaired, "partition lock").level is Level.OK
    assert check(repaired, "registry not registered").level is Level.OK


def test_redriving_an_hour_of_raw_twice_leaves_row_counts_unchanged(
        stack: LocalStack, env: Environment, capsys: pytest.CaptureFixture[str]) -> None:
    sent = land(stack, count=30, bad=3)
    partition = Partition.from_datetime(sent)
    hour = hour_start(sent).strftime("%Y-%m-%dT%H")
    before = lake_rows(env, partition)
    quarantined_before = check(status_at(env, sent), "quarantine json_telemetry").details["records"]
    assert before["lock"] >= 10
    processed_before = processed_at(env, hour_start(sent))

    for _run in range(2):
        assert cli.main(["redrive", "raw", "--source", "json_telemetry", "--from", hour]) == 0
        assert stack.wait_until_drained(60)
    out = capsys.readouterr().out
    sent_count = int(out.split("sent ")[-1].split(" of ")[0])
    assert sent_count >= 1

    assert lake_rows(env, partition) == before
    processed_after = processed_at(env, hour_start(sent))
    assert processed_after.keys() == processed_before.keys()
    assert all(processed_after[key] > processed_before[key] for key in processed_before)  # parsed again
    assert check(status_at(env, sent), "quarantine json_telemetry").details["records"] == quarantined_before
    assert check(status_at(env, sent), "dlq redrive").level is Level.OK
