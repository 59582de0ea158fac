"""`signals status` compaction lines against a hand-built pipeline in moto: the compactor's state item
and run reports as a run leaves them, then one fault at a time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from signals.ops.checks import (
    CheckResult,
    Level,
    StatusContext,
    check_compaction_conflicts,
    check_compaction_lag,
    check_compaction_run,
)
from tests.integration.ops.conftest import AUDIT_DATABASE, Clock, Pipeline


def delivered(pipeline: Pipeline, clock: Clock) -> str:
    """Two registered verified files; returns the later one's registration time (a watermark past both)."""
    raw = pipeline.put_raw("json_telemetry", clock.hour, "telemetry-1", [{"device_type": "lock"}] * 3)
    pipeline.deliver("lock", clock.part, "a" * 32, 2, raw["key"])
    bridge = pipeline.deliver("bridge", clock.part, "a" * 32, 1, raw["key"])
    return pipeline.registered_at(bridge)


CHECKS = {"compaction last run": check_compaction_run, "compaction lag": check_compaction_lag,
          "compaction conflicts": check_compaction_conflicts}


def line(pipeline: Pipeline, clock: Clock, name: str, now: datetime | None = None) -> CheckResult:
    """One compaction line as `signals status` prints it (test_status.py covers the whole report)."""
    (result,) = CHECKS[name](StatusContext(pipeline.env, clock.hour, now or clock.now))
    assert result.check == name
    return result


def test_a_recent_successful_run_with_nothing_waiting_is_ok(pipeline: Pipeline, clock: Clock) -> None:
    watermark = delivered(pipeline, clock)
    pipeline.compactor_ran(clock.now - timedelta(minutes=3), watermark=watermark)
    last_run = line(pipeline, clock, "compaction last run")
    assert last_run.level is Level.OK
    assert last_run.figure.startswith("last run 3m ago (")
    assert last_run.figure.endswith("succeeded: 1 table-day, 7 rows read, 5 inserted, 2 natural duplicates, "
                                    "0 conflicting duplicates")
    assert last_run.details["report"] == "s3://test-dbt-artifacts-abc/compactor/latest/run_results.json"
    lag = line(pipeline, clock, "compaction lag")
    assert (lag.level, lag.figure) == (Level.OK, "0s: every registered file is compacted")
    conflicts = line(pipeline, clock, "compaction conflicts")
    assert (conflicts.level, conflicts.figure) == (Level.OK, "none recorded this hour (1 run)")


def test_no_run_yet_warns_and_says_how_to_run_one(pipeline: Pipeline, clock: Clock) -> None:
    delivered(pipeline, clock)
    last_run = line(pipeline, clock, "compaction last run")
    assert last_run.level is Level.WARN
    assert last_run.figure == "no run recorded (scheduled every 60m)"
    assert "test-tps-telemetry-compactor" in (last_run.action or "")
    assert "signals compact" in (last_run.action or "")


def test_a_compactor_that_stopped_running_warns_then_fails(pipeline: Pipeline, clock: Clock) -> None:
    watermark = delivered(pipeline, clock)
    pipeline.compactor_ran(clock.now - timedelta(minutes=5), watermark=watermark)
    assert line(pipeline, clock, "compaction last run", clock.now + timedelta(minutes=80)).level is Level.WARN
    stopped = line(pipeline, clock, "compaction last run", clock.now + timedelta(hours=4))
    assert stopped.level is Level.FAIL
    assert "EventBridge rule test-tps-telemetry-compactor" in (stopped.action or "")


def test_a_failed_run_fails_and_names_the_failed_day_from_its_report(pipeline: Pipeline, clock: Clock) -> None:
    delivered(pipeline, clock)
    results = [{"status": "error", "relation_name": "int_bridge_compacted_daily", "day": "2026-11-24",
                "message": "AthenaQueryFailed: ICEBERG_COMMIT_ERROR", "adapter_response": {}}]
    pipeline.compactor_ran(clock.now - timedelta(minutes=2), watermark=None, outcome="failed", results=results)
    failed = line(pipeline, clock, "compaction last run")
    assert failed.level is Level.FAIL
    assert "failed" in failed.figure
    assert "int_bridge_compacted_daily 2026-11-24: AthenaQueryFailed: ICEBERG_COMMIT_ERROR" in (failed.action or "")


def test_a_partial_run_warns_that_the_next_one_resumes(pipeline: Pipeline, clock: Clock) -> None:
    watermark = delivered(pipeline, clock)
    pipeline.compactor_ran(clock.now - timedelta(minutes=2), watermark=watermark, outcome="partial")
    partial = line(pipeline, clock, "compaction last run")
    assert partial.level is Level.WARN
    assert "resumes" in (partial.action or "")


def test_a_run_without_its_report_warns(pipeline: Pipeline, clock: Clock) -> None:
    watermark = delivered(pipeline, clock)
    pipeline.compactor_ran(clock.now - timedelta(minutes=2), watermark=watermark, report=False)
    missing = line(pipeline, clock, "compaction last run")
    assert missing.level is Level.WARN
    assert missing.figure.endswith("; no run report")


def test_lag_is_the_age_of_the_oldest_registered_file_past_the_watermark(pipeline: Pipeline, clock: Clock) -> None:
    watermark = delivered(pipeline, clock)
    pipeline.compactor_ran(clock.now - timedelta(minutes=2), watermark=watermark)
    raw = pipeline.put_raw("json_telemetry", clock.hour, "telemetry-2", [{"device_type": "lock"}])
    for name, minutes in (("c" * 32, 90), ("d" * 32, 30)):
        key = pipeline.put_verified("lock", clock.part, name, 1, raw["key"])
        pipeline.register_file(key, "lock", clock.part, 1, at=clock.now - timedelta(minutes=minutes))
    # The last run's watermark is older than all four files (it never got to them).
    pipeline.compactor_ran(clock.now - timedelta(minutes=2), watermark=(clock.now - timedelta(hours=3)).isoformat())
    lag = line(pipeline, clock, "compaction lag")
    assert lag.level is Level.WARN
    assert lag.figure.startswith("90m: 4 registered files not yet compacted (oldest ")
    assert lag.details["waiting_files"] == 4
    assert line(pipeline, clock, "compaction lag", clock.now + timedelta(hours=1)).level is Level.FAIL
    # Once a run passes them, nothing waits.
    pipeline.compactor_ran(clock.now - timedelta(minutes=1), watermark=datetime.now(UTC).isoformat())
    assert line(pipeline, clock, "compaction lag").figure == "0s: every registered file is compacted"


def test_conflicts_recorded_this_hour_warn_and_point_at_the_audit_table(pipeline: Pipeline, clock: Clock) -> None:
    watermark = delivered(pipeline, clock)
    pipeline.compactor_ran(clock.now - timedelta(minutes=30), watermark=watermark)
    results = [{"status": "success", "relation_name": "int_lock_compacted_daily", "day": "2026-11-25",
                "adapter_response": {"verified_rows": 4, "inserted": 1, "natural_duplicates": 1,
                                     "conflicting_duplicates": 2, "conflicts_recorded": 2}}]
    pipeline.compactor_ran(clock.now - timedelta(minutes=1), watermark=watermark, results=results)
    conflicts = line(pipeline, clock, "compaction conflicts")
    assert conflicts.level is Level.WARN
    assert conflicts.figure == "2 new this hour (int_lock_compacted_daily 2026-11-25 2; 2 runs)"
    assert f"{AUDIT_DATABASE}.duplicate_conflicts WHERE day = '{clock.hour:%Y-%m-%d}'" in (conflicts.action or "")
    assert line(pipeline, clock, "compaction last run").figure.endswith("1 natural duplicate, 2 conflicting duplicates")


def test_the_local_stack_judges_runs_against_its_own_schedule_period(pipeline: Pipeline, clock: Clock) -> None:
    watermark = delivered(pipeline, clock)
    pipeline.compactor_ran(clock.now - timedelta(seconds=20), watermark=watermark)
    pipeline.env.extra["compactor_interval_s"] = 3.0
    assert line(pipeline, clock, "compaction last run").level is Level.FAIL
    pipeline.env.extra["compactor_interval_s"] = 60.0
    assert line(pipeline, clock, "compaction last run").level is Level.OK


def test_a_run_that_crossed_midnight_counts_in_the_hour_its_report_was_written(
        pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch) -> None:
    import moto.s3.models  # noqa: PLC0415 (its clock stamps LastModified)

    midnight = datetime(2026, 11, 26, tzinfo=UTC)
    monkeypatch.setattr(moto.s3.models, "utcnow", lambda: (midnight + timedelta(minutes=4)).replace(tzinfo=None))
    results = [{"status": "success", "relation_name": "int_lock_compacted_daily", "day": "2026-11-25",
                "adapter_response": {"conflicting_duplicates": 2, "conflicts_recorded": 2}}]
    # Started at 23:58 (its report is filed under 2026/11/25), written at 00:04.
    pipeline.compactor_ran(midnight - timedelta(minutes=2), watermark=None, results=results)
    (conflicts,) = check_compaction_conflicts(StatusContext(pipeline.env, midnight, midnight + timedelta(minutes=10)))
    assert conflicts.level is Level.WARN
    assert conflicts.figure == "2 new this hour (int_lock_compacted_daily 2026-11-25 2; 1 run)"
