"""The local stack with a real Trino behind its Athena (`signals local --athena-engine trino`), slow tier.

The compactor runs its athena engine (the code that runs in AWS) on it: MERGE, the `$files` count,
OPTIMIZE and VACUUM all run on Trino, and the compacted table it writes reads back the same through
Trino (the Athena API), DuckDB (`signals.sql.engine.LocalEngine`) and pyiceberg.

Nothing here skips: without a fetched Trino (`signals trino fetch`, `make trino`) or a JDK 24+, the stack
fails to start with the message that says so, and so do these tests.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.iceberg import glue_catalog
from signals.local.stack import LocalSettings, LocalStack
from signals.local.wiring import LocalTimings
from signals.sql.engine import LocalEngine
from tests.e2e.local.conftest import post

pytestmark = pytest.mark.slow

API_KEY = "e2e-trino-key"
HEADERS = {"x-api-key": API_KEY, "content-type": "application/json"}
ALERTS = "telemetry_alerts_local"
COMPACTED = "int_lock_compacted_daily"
PARSER_DB = "telemetry-parser-db"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SIGNALS_HOME", str(tmp_path_factory.mktemp("signals-home")))
        settings = LocalSettings(
            port=0, aws_port=0, api_key=API_KEY, athena_engine="trino", run_schedules=False,
            timings=LocalTimings(buffer_seconds=0.5, visibility_seconds=1, reconcile_seconds=3.0),
            drain_on_stop_seconds=2.0,
            # Two data files in a day are one too many: the second run must OPTIMIZE.
            function_environment={"compactor.app": {"SETTLE_SECONDS": "0", "MAX_FILES_PER_DAY": "1"}},
        )
        with LocalStack(settings) as running:
            yield running


def athena(stack: LocalStack, sql: str, database: str = PARSER_DB,
           catalog: str | None = None) -> tuple[str, dict[str, Any]]:
    """Run one statement through the Athena API; (final state, GetQueryExecution's execution)."""
    client = stack.client("athena")
    context = {"Database": database, **({"Catalog": catalog} if catalog else {})}
    execution_id = client.start_query_execution(
        QueryString=sql, QueryExecutionContext=context, WorkGroup=stack.outputs["HumanWorkgroup"])["QueryExecutionId"]
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        execution: dict[str, Any] = client.get_query_execution(QueryExecutionId=execution_id)["QueryExecution"]
        if execution["Status"]["State"] in ("SUCCEEDED", "FAILED", "CANCELLED"):
            return execution["Status"]["State"], execution
        time.sleep(0.2)
    raise AssertionError(f"{sql!r} did not finish")


def results(stack: LocalStack, execution: dict[str, Any], *, header: bool = True
            ) -> tuple[list[str], list[list[str | None]]]:
    """(ColumnInfo types, rows as text without the header row queries have) of a finished query."""
    pages = stack.client("athena").get_paginator("get_query_results").paginate(
        QueryExecutionId=execution["QueryExecutionId"])
    types: list[str] = []
    rows: list[list[str | None]] = []
    for page in pages:
        types = [c["Type"] for c in page["ResultSet"]["ResultSetMetadata"]["ColumnInfo"]]
        rows += [[d.get("VarCharValue") for d in row["Data"]] for row in page["ResultSet"]["Rows"]]
    return types, rows[1:] if header else rows


def send(stack: LocalStack, body: list[dict[str, Any]]) -> None:
    status, answer = post(stack, "/v1/telemetry", json.dumps(body).encode(), HEADERS)
    assert status == 200, answer
    assert not answer.get("rejected"), answer


def rfc3339(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def test_queries_run_on_trino_with_athena_types_errors_and_catalog(stack: LocalStack) -> None:
    state, execution = athena(stack, "SELECT 7 / 2 AS q, CAST(1.5 AS decimal(4,2)) AS d, DATE '2026-01-02' AS day, "
                              "TIMESTAMP '2026-01-02 03:04:05.678' AS ts, 'x' AS s")
    assert state == "SUCCEEDED", execution["Status"]
    assert results(stack, execution) == (["integer", "decimal", "date", "timestamp", "varchar"],
                                         [["3", "1.50", "2026-01-02", "2026-01-02 03:04:05.678", "x"]])
    # ROW values as Athena prints them: named fields, and field0, field1 for anonymous ones.
    state, execution = athena(stack, "SELECT ROW(1, 'x') AS r, CAST(ROW(1, 'x') AS ROW(a integer, b varchar)) AS n, "
                              "ARRAY[ROW(1, 2)] AS l")
    assert state == "SUCCEEDED", execution["Status"]
    assert results(stack, execution)[1] == [["{field0=1, field1=x}", "{a=1, b=x}", "[{field0=1, field1=2}]"]]
    # Athena's catalog name, in any case, and the request's database as the session schema.
    state, execution = athena(stack, 'SELECT count(*) FROM "AwsDataCatalog"."telemetry-parser-db".telemetry_lock_flat')
    assert state == "SUCCEEDED", execution["Status"]
    state, execution = athena(stack, "SELECT count(*) FROM telemetry_lock_flat", catalog="AwsDataCatalog")
    assert state == "SUCCEEDED", execution["Status"]
    state, execution = athena(stack, "SELECT no_such_column FROM telemetry_lock_flat")
    assert state == "FAILED"
    assert execution["Status"]["StateChangeReason"].startswith("COLUMN_NOT_FOUND: line 1:8: "), execution["Status"]
    assert execution["Status"]["AthenaError"]["ErrorCategory"] == 2
    # Trino rejects what a lenient engine could take: a varchar compared with an integer.
    state, execution = athena(stack, "SELECT count(*) FROM telemetry_lock_flat WHERE device_id = 1")
    assert state == "FAILED"
    assert execution["Status"]["StateChangeReason"].startswith("TYPE_MISMATCH"), execution["Status"]
    state, execution = athena(stack, "SHOW TABLES")
    assert state == "SUCCEEDED"
    assert ["telemetry_lock_flat"] in results(stack, execution, header=False)[1]  # as Athena prints it, from Glue


def test_the_compactors_athena_engine_merges_optimizes_and_vacuums_on_trino(stack: LocalStack) -> None:
    now = datetime.now(UTC) - timedelta(minutes=5)
    events = [{"event_id": f"trino-{i}", "device_id": "trino-lock", "device_type": "lock",
               "event_name": "bolt_changed", "event_time": rfc3339(now), "battery_pct": 40 + i} for i in range(8)]
    send(stack, events)
    send(stack, events)  # a retried POST: every event twice in verified
    send(stack, [dict(events[0], battery_pct=1)])  # the same event_id with other content: a conflict
    assert stack.wait_until_drained(60, flush_firehose=True)
    first = stack.run_schedule("compactor.app")
    assert first["engine"] == "athena"
    assert first["days_failed"] == 0, first
    day = first["days"][0]
    assert (day["inserted"], day["conflicts_recorded"], day["rewritten"]) == (8, 1, False), day
    assert any("VACUUM" in m for m in first["maintenance"]), first["maintenance"]

    later = [dict(e, event_id=f"trino-late-{i}") for i, e in enumerate(events[:3])]
    send(stack, later)
    assert stack.wait_until_drained(60, flush_firehose=True)
    second = stack.run_schedule("compactor.app")
    assert second["days_failed"] == 0, second
    assert second["totals"]["inserted"] == 3
    assert second["days"][0]["rewritten"] is True, second["days"][0]  # 2 files > MAX_FILES_PER_DAY=1: OPTIMIZE

    state, execution = athena(stack, f'SELECT count(*) FROM "{COMPACTED}$files"', database=ALERTS)
    assert state == "SUCCEEDED", execution["Status"]
    assert results(stack, execution)[1] == [["1"]]  # bin-packed into one file

    select = f"SELECT * FROM {ALERTS}.{COMPACTED} WHERE device_id = 'trino-lock' ORDER BY event_id"
    state, execution = athena(stack, select)
    assert state == "SUCCEEDED", execution["Status"]
    trino_types, trino_rows = results(stack, execution)
    assert len(trino_rows) == 11
    ids = [row[0] for row in trino_rows]
    assert len(set(ids)) == 11

    duck = LocalEngine(stack.session(), stack.aws_endpoint_url).execute(select, database=PARSER_DB)
    from signals.local.athena import _texts  # noqa: PLC0415 (the text the Athena API sends)
    duck_texts = _texts(duck)
    assert duck.athena_types == trino_types
    assert duck_texts[0] == duck.columns
    assert duck_texts[1:] == trino_rows

    catalog = glue_catalog("check", region="us-west-2", endpoint_url=stack.aws_endpoint_url,
                           credentials=stack.session().get_credentials())
    table = catalog.load_table(f"{ALERTS}.{COMPACTED}").scan(row_filter="device_id == 'trino-lock'").to_arrow()
    assert table.column_names == duck.columns
    by_id = sorted(table.to_pylist(), key=lambda row: row["event_id"])
    assert [[_plain(v) for v in row.values()] for row in by_id] == [[_plain(v) for v in row] for row in duck.rows]

    # Athena's VACUUM keeps what the table's own vacuum_max_snapshot_age_seconds says, on Trino too: at
    # one second, every snapshot but the current one goes, and no row with them.
    compacted = catalog.load_table(f"{ALERTS}.{COMPACTED}")
    assert len(compacted.snapshots()) >= 2  # two runs' MERGEs and the OPTIMIZE
    with compacted.transaction() as transaction:
        transaction.set_properties(vacuum_max_snapshot_age_seconds="1")
    time.sleep(1.5)
    state, execution = athena(stack, f"VACUUM {COMPACTED}", database=ALERTS)
    assert state == "SUCCEEDED", execution["Status"]
    vacuumed = catalog.load_table(f"{ALERTS}.{COMPACTED}")
    assert [s.snapshot_id for s in vacuumed.snapshots()] == [compacted.current_snapshot().snapshot_id]
    state, execution = athena(stack, select)
    assert state == "SUCCEEDED", execution["Status"]
    assert results(stack, execution)[1] == trino_rows


def _plain(value: Any) -> Any:
    """pyiceberg's and DuckDB's Python values on one footing (UTC-aware timestamps as naive UTC)."""
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    return value
