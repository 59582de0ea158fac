"""A re-derived copy (its verified file rewritten by `signals backfill` or a reparse) replaces the compacted
row it came from instead of being ignored, duplicated or called a conflict; the OTLP key survives a new column."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from compactor.dedup import ATHENA, DUCKDB, fingerprint_sql
from shared.schema import (
    COMPACTED_BY_TYPE,
    OTLP_FINGERPRINT_COLUMNS,
    CompactedTableSpec,
    FieldSpec,
    Kind,
)
from tests.unit.compactor.rows import connect, local_query, lock, otlp, select
from tests.unit.compactor.test_renderings import ALERTS_DB, athena_query, duckdb_with, transpiled

LOCK = COMPACTED_BY_TYPE["lock"]
OTLP = COMPACTED_BY_TYPE["otlp_logs"]


def with_column(table: CompactedTableSpec, spec: FieldSpec, before: str) -> CompactedTableSpec:
    """The table as a later schema has it: one column promoted, inserted before `before`."""
    fields = list(table.source.fields)
    fields.insert(table.source.column_names.index(before), spec)
    return replace(table, source=replace(table.source, fields=tuple(fields)))


DELAY = FieldSpec("auto_lock_delay_s", Kind.INT, "Seconds before the lock re-locks itself.", minimum=0)
LOCK_V2 = with_column(LOCK, DELAY, before="extra")


def plan(table: CompactedTableSpec, verified: list[dict[str, Any]], compacted: list[dict[str, Any]]) -> dict[str, str]:
    rows = select(connect(table, verified, compacted), local_query(table).plan_select())
    return {str(r.get("event_id") or r["event_key"]): r["action"] for r in rows}


def stats(table: CompactedTableSpec, verified: list[dict[str, Any]], compacted: list[dict[str, Any]]) -> dict[str, Any]:
    (row,) = select(connect(table, verified, compacted), local_query(table).stats_select("run"))
    return row


def test_a_backfilled_copy_refreshes_its_own_compacted_row_and_a_rerun_changes_nothing() -> None:
    before = lock("e1", auto_lock_delay_s=None, extra='{"auto_lock_delay_s":30}')
    after = lock("e1", auto_lock_delay_s=30, extra=None)  # same lineage, the key lifted out of extra
    untouched = lock("e2", source_key="raw/b", auto_lock_delay_s=None)
    assert plan(LOCK_V2, [after, untouched], [before, untouched]) == {"e1": "refresh"}
    counts = stats(LOCK_V2, [after, untouched], [before, untouched])
    assert (counts["inserted"], counts["replaced"], counts["refreshed"]) == (0, 0, 1)
    assert (counts["natural_duplicates"], counts["conflicting_duplicates"], counts["late_rows"]) == (0, 0, 0)
    assert plan(LOCK_V2, [after, untouched], [after, untouched]) == {}


def test_a_refresh_never_lets_a_later_copy_displace_the_earliest() -> None:
    early = lock("e1", source_key="raw/a", auto_lock_delay_s=30, extra=None)
    later = lock("e1", source_key="raw/z", auto_lock_delay_s=31, extra=None)  # other lineage, other content
    assert plan(LOCK_V2, [early, later], [early]) == {}
    counts = stats(LOCK_V2, [early, later], [early])
    assert (counts["refreshed"], counts["conflicting_duplicates"]) == (0, 1)


def test_the_athena_merge_refreshes_a_rederived_copy_as_the_local_engine_plans_it() -> None:
    before = lock("e1", auto_lock_delay_s=None, extra='{"auto_lock_delay_s":30}')
    after = lock("e1", auto_lock_delay_s=30, extra=None)
    connection = duckdb_with(LOCK_V2, [after], [before])
    query = athena_query(LOCK_V2)
    assert select(connection, transpiled(query.stats_select("run"))) == [stats(LOCK_V2, [after], [before])]
    connection.execute(transpiled(query.merge()))  # DuckDB runs MERGE INTO too
    (row,) = select(connection, f'SELECT * FROM "{ALERTS_DB}"."{LOCK_V2.name}"')
    assert (row["auto_lock_delay_s"], row["extra"]) == (30, None)


def test_the_otlp_key_is_pinned_so_a_new_column_keeps_every_record_one_row() -> None:
    added = FieldSpec("log_file", Kind.STRING, "A resource attribute promoted later.")
    otlp_v2 = with_column(OTLP, added, before="received_at")
    assert otlp_v2.identity_columns == OTLP_FINGERPRINT_COLUMNS[1] == OTLP.identity_columns
    for dialect in (DUCKDB, ATHENA):
        assert fingerprint_sql(dialect, otlp_v2) == fingerprint_sql(dialect, OTLP)
    old = otlp("door opened", log_file=None)
    reparsed = otlp("door opened", log_file="/var/log/door")  # same raw line, parsed by the newer parser
    assert plan(otlp_v2, [reparsed], [old]) == {next(iter(plan(otlp_v2, [reparsed], []))): "refresh"}
    counts = stats(otlp_v2, [reparsed], [old])
    assert (counts["inserted"], counts["refreshed"], counts["conflicting_duplicates"]) == (0, 1, 0)


def test_the_fingerprint_refuses_a_table_that_lost_an_identity_column() -> None:
    fields = tuple(f for f in OTLP.source.fields if f.name != "trace_id")
    shrunk = replace(OTLP, source=replace(OTLP.source, fields=fields))
    with pytest.raises(ValueError, match="trace_id"):
        fingerprint_sql(DUCKDB, shrunk)
