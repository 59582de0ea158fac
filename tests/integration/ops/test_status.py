"""`signals status` against a hand-built pipeline in moto: healthy first, then one fault at a time."""

from __future__ import annotations

import argparse
import io
import json
from datetime import UTC, datetime, timedelta

import pytest

from shared import registry_keys
from shared.iceberg_properties import iceberg_table_properties
from shared.schema import COMPACTED_BY_TYPE
from signals.env import Output
from signals.ops import status
from signals.ops.checks import CheckResult, Level, StatusContext, run_checks
from tests.integration.ops.conftest import ALERTS_DATABASE, AUDIT_DATABASE, Clock, Pipeline, put_iceberg_table


def healthy(pipeline: Pipeline, clock: Clock) -> dict[str, str]:
    """One hour of both sources, fully processed, registered, partitioned and compacted; recent runs."""
    raw_telemetry = pipeline.put_raw("json_telemetry", clock.hour, "telemetry-1", [{"device_type": "lock"}] * 3)
    raw_otlp = pipeline.put_raw("otlp_logs", clock.hour, "otlp-1", [{"resourceLogs": []}])
    lock = pipeline.deliver("lock", clock.part, "a" * 32, 2, raw_telemetry["key"])
    bridge = pipeline.deliver("bridge", clock.part, "a" * 32, 1, raw_telemetry["key"])
    logs = pipeline.deliver("otlp_logs", clock.part, "b" * 32, 4, raw_otlp["key"])
    pipeline.record_processed(raw_telemetry["key"], [lock, bridge])
    pipeline.record_processed(raw_otlp["key"], [logs])
    pipeline.reconciler_ran(clock.now - timedelta(minutes=4))
    pipeline.compactor_ran(clock.now - timedelta(minutes=3), watermark=pipeline.registered_at(logs))
    return {"raw_telemetry": raw_telemetry["key"], "lock": lock}


def check(results: list[CheckResult], name: str) -> CheckResult:
    matching = [r for r in results if r.check == name]
    assert len(matching) == 1, f"{name!r} not in {[r.check for r in results]}"
    return matching[0]


def statuses(pipeline: Pipeline, clock: Clock, now: datetime | None = None) -> list[CheckResult]:
    return run_checks(StatusContext(pipeline.env, clock.hour, now or clock.now))


def test_healthy_pipeline_is_all_ok_with_its_figures(pipeline: Pipeline, clock: Clock) -> None:
    healthy(pipeline, clock)
    results = statuses(pipeline, clock)
    assert [r for r in results if r.level is not Level.OK] == []
    assert check(results, "raw arriving json_telemetry").figure.startswith("1 object,")
    assert check(results, "raw processed otlp_logs").figure == "1/1 processed"
    assert check(results, "verified lock").figure == "1 file, 2 rows"
    assert check(results, "verified otlp_logs").figure == "1 file, 4 rows"
    assert check(results, "verified video_doorbell").figure == "no files this hour"
    assert check(results, "partition lock").figure == "in Glue (1 verified file, registered)"
    assert check(results, "registry files this hour").figure == "3/3 verified files have a registry item"
    assert check(results, "reconciler").figure.startswith("last run 4m ago")
    assert "firehose errors json_telemetry" in {r.check for r in results}
    assert {r.check for r in results} >= {"queue telemetry", "queue otlp-logs", "queue redrive", "queue registry",
                                          "dlq telemetry", "dlq otlp-logs", "dlq redrive", "dlq registry",
                                          "glue table telemetry_lock_flat", "quarantine json_telemetry"}


def test_quiet_source_warns_and_does_not_fail(pipeline: Pipeline, clock: Clock) -> None:
    pipeline.reconciler_ran(clock.now)
    results = statuses(pipeline, clock)
    quiet = check(results, "raw arriving otlp_logs")
    assert quiet.level is Level.WARN
    assert "quiet" in quiet.figure
    assert all(r.level is not Level.FAIL for r in results)


def test_message_in_a_dlq_fails_its_line(pipeline: Pipeline, clock: Clock) -> None:
    healthy(pipeline, clock)
    pipeline.sqs.send_message(QueueUrl=pipeline.queue_url(Output.REGISTRY_DLQ_URL), MessageBody="{}")
    results = statuses(pipeline, clock)
    line = check(results, "dlq registry")
    assert line.level is Level.FAIL
    assert line.figure == "1 message(s) in telemetry-registry-queue_dlq"
    assert line.action is not None
    assert "signals redrive dlq telemetry-registry-queue_dlq" in line.action
    assert check(results, "dlq telemetry").level is Level.OK


def test_firehose_error_objects_of_the_hour_fail_their_line(pipeline: Pipeline, clock: Clock) -> None:
    healthy(pipeline, clock)
    assert check(statuses(pipeline, clock), "firehose errors otlp_logs").figure == "none this hour"
    pipeline.s3.put_object(Bucket="test-signal-data-lake-raw", Body=b"{}",
                           Key=f"errors/otlp_logs/processing-failed/{clock.hour:%Y/%m/%d/%H}/otlp-logs-1.gz")
    pipeline.s3.put_object(Bucket="test-signal-data-lake-raw", Body=b"{}",
                           Key="errors/json_telemetry/processing-failed/2026/01/01/00/old.gz")
    results = statuses(pipeline, clock)
    line = check(results, "firehose errors otlp_logs")
    assert line.level is Level.FAIL
    assert line.figure == "1 error object this hour (1 in all)"
    older = check(results, "firehose errors json_telemetry")
    assert older.level is Level.OK
    assert older.figure == "none this hour (1 older error object)"


def test_missing_glue_partition_fails_its_line(pipeline: Pipeline, clock: Clock) -> None:
    healthy(pipeline, clock)
    pipeline.glue.delete_partition(DatabaseName="telemetry-parser-db", TableName="telemetry_lock_flat",
                                   PartitionValues=clock.part.values)
    results = statuses(pipeline, clock)
    line = check(results, "partition lock")
    assert line.level is Level.FAIL
    assert "missing in Glue" in line.figure
    assert "1 verified file" in line.figure
    assert check(results, "partition bridge").level is Level.OK


def test_partition_failed_item_fails_the_registry_line(pipeline: Pipeline, clock: Clock) -> None:
    healthy(pipeline, clock)
    key = pipeline.put_verified("video_doorbell", clock.part, "c" * 32, 7, "raw/json_telemetry/x.gz")
    pipeline.register_file(key, "video_doorbell", clock.part, 7, status=registry_keys.STATUS_PARTITION_FAILED,
                           last_error="AccessDeniedException: glue:BatchCreatePartition")
    line = check(statuses(pipeline, clock), "registry not registered")
    assert line.level is Level.FAIL
    assert line.figure.startswith("1 partition_failed, 0 partition_pending")
    assert "AccessDeniedException" in line.figure
    assert line.details["failed_sample"][0]["verified_key"] == key


def test_old_partition_pending_warns_young_one_is_ok(pipeline: Pipeline, clock: Clock) -> None:
    healthy(pipeline, clock)
    key = pipeline.put_verified("bridge", clock.part, "d" * 32, 1, "raw/json_telemetry/y.gz")
    pipeline.register_file(key, "bridge", clock.part, 1, status=registry_keys.STATUS_PARTITION_PENDING)
    assert check(statuses(pipeline, clock), "registry not registered").level is Level.OK
    later = clock.now + timedelta(minutes=45)
    assert check(statuses(pipeline, clock, now=later), "registry not registered").level is Level.WARN


def test_raw_object_never_processed_warns_then_fails_with_age(pipeline: Pipeline, clock: Clock) -> None:
    healthy(pipeline, clock)
    stuck = pipeline.put_raw("json_telemetry", clock.hour, "telemetry-2", [{"device_type": "lock"}])
    assert check(statuses(pipeline, clock), "raw processed json_telemetry").level is Level.OK  # still in flight
    warn = check(statuses(pipeline, clock, now=clock.now + timedelta(minutes=20)), "raw processed json_telemetry")
    assert warn.level is Level.WARN
    fail = check(statuses(pipeline, clock, now=clock.now + timedelta(minutes=90)), "raw processed json_telemetry")
    assert fail.level is Level.FAIL
    assert fail.figure.startswith("1/2 processed, 1 without a processing record")
    assert fail.details["unprocessed_keys"] == [stuck["key"]]
    assert fail.action is not None
    assert "signals redrive raw --source json_telemetry" in fail.action


def test_verified_file_without_registry_item_turns_from_warn_to_fail(pipeline: Pipeline, clock: Clock) -> None:
    healthy(pipeline, clock)
    pipeline.put_verified("lock", clock.part, "e" * 32, 3, "raw/json_telemetry/z.gz")
    later = statuses(pipeline, clock, now=clock.now + timedelta(minutes=20))
    assert check(later, "registry files this hour").level is Level.WARN
    line = check(statuses(pipeline, clock, now=clock.now + timedelta(minutes=60)), "registry files this hour")
    assert line.level is Level.FAIL
    assert line.figure.startswith("3/4 verified files have a registry item, 1 missing")


def test_glue_table_at_the_wrong_location_fails(pipeline: Pipeline, clock: Clock) -> None:
    healthy(pipeline, clock)
    table = pipeline.glue.get_table(DatabaseName="telemetry-parser-db", Name="telemetry_bridge_flat")["Table"]
    pipeline.glue.update_table(DatabaseName="telemetry-parser-db", TableInput={
        "Name": table["Name"], "PartitionKeys": table["PartitionKeys"],
        "StorageDescriptor": {**table["StorageDescriptor"], "Location": "s3://elsewhere/telemetry_flat/type=bridge/"},
    })
    line = check(statuses(pipeline, clock), "glue table telemetry_bridge_flat")
    assert line.level is Level.FAIL
    assert "s3://elsewhere/" in line.figure


def test_reconciler_that_stopped_running_warns_then_fails(pipeline: Pipeline, clock: Clock) -> None:
    healthy(pipeline, clock)
    assert check(statuses(pipeline, clock, now=clock.now + timedelta(minutes=20)), "reconciler").level is Level.WARN
    assert check(statuses(pipeline, clock, now=clock.now + timedelta(minutes=60)), "reconciler").level is Level.FAIL


def test_reconciler_run_with_errors_warns(pipeline: Pipeline, clock: Clock) -> None:
    pipeline.reconciler_ran(clock.now - timedelta(minutes=2), errors=3)
    line = check(statuses(pipeline, clock), "reconciler")
    assert line.level is Level.WARN
    assert "errors 3" in line.figure
    assert "raw_redriven 2" in line.figure


def test_quarantine_counts_per_reason_and_warns_above_one_percent(pipeline: Pipeline, clock: Clock) -> None:
    healthy(pipeline, clock)
    pipeline.put_quarantine("json_telemetry", clock.part, "f" * 32, ["invalid_value", "missing_field", "invalid_value"])
    line = check(statuses(pipeline, clock), "quarantine json_telemetry")
    assert line.level is Level.WARN
    assert line.details["reasons"] == {"invalid_value": 2, "missing_field": 1}
    assert line.figure.startswith("3 records (invalid_value 2, missing_field 1), 50.0%")
    assert check(statuses(pipeline, clock), "quarantine otlp_logs").figure == "none"


def test_unreadable_resource_is_a_failed_line_not_a_crash(pipeline: Pipeline, clock: Clock) -> None:
    healthy(pipeline, clock)
    pipeline.sqs.delete_queue(QueueUrl=pipeline.queue_url(Output.OTLP_DLQ_URL))
    line = check(statuses(pipeline, clock), "dlq otlp-logs")
    assert line.level is Level.FAIL
    assert line.figure.startswith("could not check:")


def test_command_exit_code_text_and_json(pipeline: Pipeline, clock: Clock, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    healthy(pipeline, clock)
    monkeypatch.setattr(status, "environment_from_args", lambda _args: pipeline.env)
    parser = _parser()
    assert status.run(parser.parse_args(["status", "--hour", clock.hour.strftime("%Y-%m-%dT%H")])) == 0
    text = capsys.readouterr().out
    assert f"hour={clock.hour:%Y-%m-%dT%H} UTC" in text
    assert "\033[" not in text  # no colour when stdout is not a terminal
    assert text.rstrip().endswith("0 fail")

    pipeline.sqs.send_message(QueueUrl=pipeline.queue_url(Output.TELEMETRY_DLQ_URL), MessageBody="{}")
    assert status.run(parser.parse_args(["status", "--json"])) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["result"] == "fail"
    assert report["counts"]["fail"] == 1
    dlq = next(c for c in report["checks"] if c["check"] == "dlq telemetry")
    assert dlq["level"] == "fail"
    assert dlq["details"]["visible"] == 1


def test_hour_argument_must_reach_the_hour() -> None:
    parser = _parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["status", "--hour", "2026-11-25"])
    args = parser.parse_args(["status", "--hour", "2026-11-25T19:45+02:00"])
    assert args.hour == datetime(2026, 11, 25, 17, 45, tzinfo=UTC)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="signals")
    status.register(parser.add_subparsers())
    return parser


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_colour_only_on_a_terminal_and_never_with_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    results = [CheckResult("dlq registry", Level.FAIL, "1 message(s)", "redrive it"),
               CheckResult("dlq telemetry", Level.OK, "empty")]
    monkeypatch.delenv("NO_COLOR", raising=False)
    terminal = Terminal()
    status.render(results, "test", "2026-11-25T19", terminal)
    assert "\033[31mfail\033[0m  dlq registry" in terminal.getvalue()
    assert "-> redrive it" in terminal.getvalue()
    monkeypatch.setenv("NO_COLOR", "1")
    plain = Terminal()
    status.render(results, "test", "2026-11-25T19", plain)
    assert "\033[" not in plain.getvalue()
    assert plain.getvalue().splitlines()[-1] == "1 ok, 0 warn, 1 fail"


def test_an_iceberg_table_whose_properties_drifted_from_the_template_warns(pipeline: Pipeline, clock: Clock) -> None:
    """VACUUM reads the live table's properties: one left at Athena's 5-day default (or changed by hand)
    keeps another history than the compactor assumes, and status says so with the fix."""
    healthy(pipeline, clock)
    drifted = {**iceberg_table_properties(), "vacuum_max_snapshot_age_seconds": "432000"}
    del drifted["vacuum_min_snapshots_to_keep"]
    put_iceberg_table(pipeline.env.session, ALERTS_DATABASE, COMPACTED_BY_TYPE["lock"], drifted)
    results = statuses(pipeline, clock)
    line = check(results, "iceberg table int_lock_compacted_daily")
    assert line.level is Level.WARN
    assert line.figure == ("vacuum_max_snapshot_age_seconds is 432000 (declared 604800); "
                           "vacuum_min_snapshots_to_keep is not set (declared 1)")
    assert line.action is not None
    assert "ALTER TABLE `telemetry_alerts_test`.`int_lock_compacted_daily` SET TBLPROPERTIES (" in line.action
    assert check(results, "iceberg table compaction_runs").level is Level.OK
    assert all(r.level is not Level.FAIL for r in results)


def test_a_missing_iceberg_table_fails_and_points_at_the_recovery(pipeline: Pipeline, clock: Clock) -> None:
    healthy(pipeline, clock)
    pipeline.glue.delete_table(DatabaseName=AUDIT_DATABASE, Name="duplicate_conflicts")
    line = check(statuses(pipeline, clock), "iceberg table duplicate_conflicts")
    assert line.level is Level.FAIL
    assert line.action is not None
    assert "register the last metadata file" in line.action
