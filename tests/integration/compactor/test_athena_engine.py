"""The athena engine's orchestration against the embedded Athena (moto behind AwsGateway).

moto's Athena answers SUCCEEDED to everything and runs nothing, so these tests pin what the Lambda
does around the SQL: the statements it submits per (table, day) and their order, polling a query
that is still running, retrying a FAILED query and a throttled StartQueryExecution, and giving up
on a day after ATHENA_MAX_ATTEMPTS, reporting it failed without moving the watermark past it.
Failures are injected at the API boundary, in the shape Athena sends them.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from botocore.config import Config
from moto.athena.models import athena_backends
from werkzeug.wrappers import Response

from shared import registry_keys as rk
from signals.local.gateway import AwsGateway, AwsRequest, json_error
from tests.integration.compactor.support import BASE, REGION, WORKGROUP, World, day_of, lock_row

DAY, HOUR = day_of(BASE)
NO_SDK_RETRIES = Config(retries={"mode": "standard", "max_attempts": 1})
ATHENA_ENV = {"COMPACTOR_ENGINE": "athena", "ATHENA_POLL_MAX_SECONDS": "0.01", "ATHENA_MAX_ATTEMPTS": "3"}
STATS = {"verified_rows": 12, "inserted": 5, "replaced": 1, "natural_duplicates": 6, "conflicting_duplicates": 1,
         "conflicts_recorded": 1, "late_rows": 2}


def json_response(document: dict[str, Any]) -> Response:
    return Response(json.dumps(document), status=200, headers={"Content-Type": "application/x-amz-json-1.1"})


def sql_of(query_id: str) -> str:
    return str(athena_backends["123456789012"][REGION].executions[query_id].query)


@dataclass
class Faults:
    """What the embedded Athena answers beyond moto's SUCCEEDED."""

    running_polls: int = 0  # RUNNING this many times per query first
    running: Callable[[str], bool] = lambda sql: True  # which queries running_polls applies to
    fail: Callable[[str], str | None] = lambda sql: None  # sql -> failure reason
    throttle_starts: int = 0
    stats: dict[str, int] = field(default_factory=lambda: dict(STATS))
    files: int = 3
    polls: Counter[str] = field(default_factory=Counter)
    starts: list[str] = field(default_factory=list)  # every StartQueryExecution's SQL, throttled ones too

    def start(self, request: AwsRequest) -> Response | None:
        self.starts.append(request.json()["QueryString"])
        if self.throttle_starts:
            self.throttle_starts -= 1
            return json_error(400, "TooManyRequestsException", "Rate exceeded")
        return None

    def status(self, request: AwsRequest) -> Response | None:
        query_id = request.json()["QueryExecutionId"]
        self.polls[query_id] += 1
        sql = sql_of(query_id)
        if self.polls[query_id] <= self.running_polls and self.running(sql):
            state: dict[str, Any] = {"State": "RUNNING"}
        elif reason := self.fail(sql):
            state = {"State": "FAILED", "StateChangeReason": reason,
                     "AthenaError": {"ErrorCategory": 1, "ErrorType": 401, "Retryable": True, "ErrorMessage": reason}}
        else:
            return None
        return json_response({"QueryExecution": {"QueryExecutionId": query_id, "Query": sql, "Status": state,
                                                 "WorkGroup": WORKGROUP}})

    def results(self, request: AwsRequest) -> Response | None:
        sql = sql_of(request.json()["QueryExecutionId"])
        if sql.startswith("WITH"):
            row = self.stats
        elif "$partitions" in sql:
            row = {"data_files": self.files}
        else:
            return None
        return json_response({"ResultSet": {
            "Rows": [{"Data": [{"VarCharValue": n} for n in row]},
                     {"Data": [{"VarCharValue": str(v)} for v in row.values()]}],
            "ResultSetMetadata": {"ColumnInfo": [{"Name": n, "Type": "bigint"} for n in row]}}})


@pytest.fixture
def faults(world: World, gateway: AwsGateway) -> Iterator[Faults]:
    world.client("athena").create_work_group(
        Name=WORKGROUP, Configuration={"ResultConfiguration": {"OutputLocation": "s3://test-dbt-artifacts/athena/"}})
    answers = Faults()
    removers = [gateway.intercept("athena", answers.start, operation="StartQueryExecution"),
                gateway.intercept("athena", answers.status, operation="GetQueryExecution"),
                gateway.intercept("athena", answers.results, operation="GetQueryResults")]
    yield answers
    for remove in removers:
        remove()


def run(world: World, **env: str) -> dict[str, Any]:
    return world.handler(config=NO_SDK_RETRIES, **ATHENA_ENV, **env)({}, None)


def kinds(statements: list[str]) -> list[str]:
    def kind(sql: str) -> str:
        if sql.startswith("WITH"):
            return "stats"
        if sql.startswith("MERGE INTO \"telemetry_alerts_test_dq_audit\".\"duplicate_conflicts\""):
            return "conflicts"
        if sql.startswith("MERGE INTO"):
            return "merge"
        return sql.split(maxsplit=1)[0].lower() if "$partitions" not in sql else "files"
    return [kind(sql) for sql in statements]


def test_one_day_submits_stats_conflicts_merge_and_files_then_the_audit_row_and_vacuum(
        world: World, faults: Faults) -> None:
    world.write_verified("lock", DAY, HOUR, [lock_row("e1")])
    faults.running_polls = 2

    result = run(world)

    (day,) = result["days"]
    assert day["outcome"] == "succeeded"
    assert {name: day[name] for name in STATS} == STATS  # the counts are the stats query's answer
    assert kinds(faults.starts) == ["stats", "conflicts", "merge", "files", "insert", "vacuum"]
    assert all(count == 3 for count in faults.polls.values())  # RUNNING, RUNNING, SUCCEEDED
    merge = faults.starts[2]
    assert merge.startswith('MERGE INTO "telemetry_alerts_test"."int_lock_compacted_daily" AS t')
    assert f"FROM \"telemetry-parser-db\".\"telemetry_lock_flat\" WHERE \"day\" = '{DAY}'" in merge
    insert = faults.starts[4]
    assert insert.startswith('INSERT INTO "telemetry_alerts_test_dq_audit"."compaction_runs"')
    assert "'succeeded'" in insert
    assert "'athena'" in insert
    assert result["watermark_after"] is not None
    execution = world.client("athena").get_query_execution(
        QueryExecutionId=world.client("athena").list_query_executions(WorkGroup=WORKGROUP)["QueryExecutionIds"][0])
    assert execution["QueryExecution"]["WorkGroup"] == WORKGROUP


def test_a_day_with_too_many_files_is_bin_packed(world: World, faults: Faults) -> None:
    world.write_verified("lock", DAY, HOUR, [lock_row("e1")])
    faults.files = 9

    (day,) = run(world, MAX_FILES_PER_DAY="8")["days"]

    assert day["rewritten"] is True
    optimize = next(sql for sql in faults.starts if sql.startswith("OPTIMIZE"))
    assert optimize == ('OPTIMIZE "telemetry_alerts_test"."int_lock_compacted_daily" REWRITE DATA USING BIN_PACK '
                        f"WHERE \"day\" = '{DAY}'")


def test_a_failed_query_and_a_throttled_start_are_retried(world: World, faults: Faults) -> None:
    world.write_verified("lock", DAY, HOUR, [lock_row("e1")])
    merges_failed: list[str] = []

    def fail_first_merge(sql: str) -> str | None:
        if sql.startswith('MERGE INTO "telemetry_alerts_test"') and not merges_failed:
            merges_failed.append(sql)
            return "ICEBERG_COMMIT_ERROR: Failed to commit Iceberg update to table"
        return None

    faults.fail = fail_first_merge
    faults.throttle_starts = 1

    (day,) = run(world)["days"]

    assert day["outcome"] == "succeeded"
    assert kinds(faults.starts)[:5] == ["stats", "stats", "conflicts", "merge", "merge"]


def test_a_query_failing_every_time_fails_its_day_after_the_last_attempt_and_holds_the_watermark(
        world: World, faults: Faults) -> None:
    world.write_verified("bridge", DAY, HOUR, [{**lock_row("b1"), "device_type": "bridge"}])
    world.write_verified("lock", DAY, HOUR, [lock_row("e1")])
    faults.fail = lambda sql: ("COLUMN_NOT_FOUND: line 1:8: Column 'x' cannot be resolved"
                               if "int_bridge_compacted_daily\" AS t" in sql else None)

    result = run(world)

    by_table = {d["table"]: d for d in result["days"]}
    failed = by_table["int_bridge_compacted_daily"]
    assert failed["outcome"] == "failed"
    assert "gave up after 3 attempt(s)" in failed["error"]
    assert "COLUMN_NOT_FOUND" in failed["error"]
    assert by_table["int_lock_compacted_daily"]["outcome"] == "succeeded"  # the run went on
    assert sum(1 for sql in faults.starts if "int_bridge_compacted_daily\" AS t" in sql) == 3
    assert result["days_failed"] == 1
    assert result["watermark_after"] is None  # the bridge file was registered first: nothing passes it
    insert = next(sql for sql in faults.starts if sql.startswith("INSERT INTO"))
    assert "'failed'" in insert
    assert "COLUMN_NOT_FOUND" in insert

    faults.fail = lambda sql: None
    retried = run(world)
    assert [d["table"] for d in retried["days"]] == ["int_bridge_compacted_daily", "int_lock_compacted_daily"]
    assert retried["days_failed"] == 0


class Countdown:
    def __init__(self, start_ms: int, step_ms: int) -> None:
        self.left, self.step = start_ms, step_ms

    def get_remaining_time_in_millis(self) -> int:
        self.left -= self.step
        return self.left


def test_a_query_still_running_when_time_runs_short_is_stopped_and_its_day_left_to_the_next_run(
        world: World, faults: Faults, gateway: AwsGateway) -> None:
    world.write_verified("lock", DAY, HOUR, [lock_row("e1")])
    faults.running_polls = 10**6
    faults.running = lambda sql: sql.startswith("WITH")  # the stats query never finishes
    stopped: list[str] = []
    remove = gateway.intercept("athena", lambda request: stopped.append(request.json()["QueryExecutionId"]) or None,
                               operation="StopQueryExecution")
    try:
        handler = world.handler(config=NO_SDK_RETRIES, **ATHENA_ENV, TIME_RESERVE_MS="10000")
        result = handler({}, Countdown(20_000, 1_000))
    finally:
        remove()

    (day,) = result["days"]
    assert day["outcome"] == "stopped"
    assert result["complete"] is False
    assert result["watermark_after"] is None
    assert len(stopped) == 1
    assert sql_of(stopped[0]).startswith("WITH")  # the stats query, the first of the day
    assert kinds(faults.starts) == ["stats", "insert"]  # nothing merged; the audit row says stopped
    assert "'stopped'" in faults.starts[-1]


def test_the_audit_tables_are_bin_packed_and_vacuumed_on_their_own_slower_cadence(
        world: World, faults: Faults) -> None:
    """compaction_runs and duplicate_conflicts take an append every run: once per
    AUDIT_MAINTENANCE_INTERVAL_HOURS (a week) each gets OPTIMIZE ... BIN_PACK and VACUUM."""
    audit = '"telemetry_alerts_test_dq_audit"'

    def audit_maintenance() -> list[str]:
        return [s for s in faults.starts if s.startswith(("OPTIMIZE", "VACUUM")) and audit in s]

    world.write_verified("lock", DAY, HOUR, [lock_row("e1")])
    run(world)
    assert audit_maintenance() == []  # first seen: the week starts now
    eight_days_ago = "2000-01-01T00:00:00.000Z"
    world.client("dynamodb").update_item(
        TableName=world.environ["REGISTRY_TABLE"], Key={k: {"S": v} for k, v in rk.compactor_state_key().items()},
        UpdateExpression="SET maintained_at.compaction_runs = :old, maintained_at.duplicate_conflicts = :old",
        ExpressionAttributeValues={":old": {"S": eight_days_ago}})
    world.write_verified("lock", DAY, HOUR, [lock_row("e2")])
    result = run(world)
    assert audit_maintenance() == [
        f'OPTIMIZE {audit}."compaction_runs" REWRITE DATA USING BIN_PACK', f'VACUUM {audit}."compaction_runs"',
        f'OPTIMIZE {audit}."duplicate_conflicts" REWRITE DATA USING BIN_PACK', f'VACUUM {audit}."duplicate_conflicts"']
    assert any(line.startswith("compaction_runs: OPTIMIZE") for line in result["maintenance"])
    world.write_verified("lock", DAY, HOUR, [lock_row("e3")])
    run(world)
    assert len(audit_maintenance()) == 4  # not again within the week
