"""One definition, two renderings: the Athena SQL parses as Trino and, transpiled to DuckDB, gives the
same rows as the local engine's DuckDB rendering on the same input; the OTLP fingerprint is the same
in both and matches a reference computed in Python."""

from __future__ import annotations

import hashlib
import random
from datetime import datetime, timedelta
from typing import Any

import duckdb
import pytest
import sqlglot

from compactor.athena_engine import insert_values
from compactor.dedup import ATHENA, DUCKDB, DayQuery, Relations, fingerprint_sql, relation, vacuum
from shared.schema import (
    BACKFILL_RUNS,
    COMPACTED_BY_TYPE,
    COMPACTED_TABLES,
    COMPACTION_RUNS,
    DUPLICATE_CONFLICTS,
    CompactedTableSpec,
    Kind,
    device_event_key,
)
from tests.unit.compactor.rows import DAY, T0, arrow, empty_conflicts, local_query, select

VERIFIED_DB, ALERTS_DB, AUDIT_DB = "telemetry-parser-db", "telemetry_alerts_test", "telemetry_alerts_test_dq_audit"


def athena_query(table: CompactedTableSpec) -> DayQuery:
    return DayQuery(ATHENA, table, DAY, Relations(
        verified=relation(VERIFIED_DB, table.source.name), compacted=relation(ALERTS_DB, table.name),
        conflicts=relation(AUDIT_DB, DUPLICATE_CONFLICTS.name), runs=relation(AUDIT_DB, COMPACTION_RUNS.name)))


def value(kind: Kind, rng: random.Random) -> Any:
    if rng.random() < 0.25:
        return None
    return {
        Kind.STRING: lambda: rng.choice(["a", "b,c", "ü", "", "n", "x'y"]),
        Kind.INT: lambda: rng.randint(-5, 5),
        Kind.INT32: lambda: rng.randint(0, 24),
        Kind.FLOAT: lambda: rng.choice([0.5, -1.25, 3.0]),
        Kind.BOOL: lambda: rng.random() < 0.5,
        Kind.TIMESTAMP_MS: lambda: T0 + timedelta(milliseconds=rng.randint(0, 10**6)),
        Kind.TIMESTAMP_US: lambda: T0 + timedelta(microseconds=rng.randint(0, 10**9)),
        Kind.STRING_MAP: lambda: [(k, rng.choice(["1", None, ""]))
                                  for k in rng.sample(["a", "b", "c"], rng.randint(0, 3))],
    }[kind]()


def sample_rows(table: CompactedTableSpec, seed: int, events: int = 40) -> list[dict[str, Any]]:
    """Events with 0-3 extra copies each: natural ones, conflicting ones (one column changed), ties."""
    rng = random.Random(seed)
    rows = []
    for number in range(events):
        base: dict[str, Any] = {}
        for spec in table.source.fields:
            base[spec.name] = value(spec.kind, rng) if not spec.required else None
        if table.key_columns:
            base["event_id"] = f"e{number}"
        for spec in table.source.fields:
            if spec.required and base.get(spec.name) is None:
                base[spec.name] = value(spec.kind, random.Random(number)) or {
                    Kind.STRING: "r", Kind.INT: 1, Kind.TIMESTAMP_MS: T0}.get(spec.kind)
        for copy in range(rng.randint(1, 4)):
            row = dict(base, received_at=T0 + timedelta(seconds=rng.choice([0, 0, 5, 9])),
                       source_key=rng.choice(["raw/a", "raw/b"]), source_line=number * 10 + copy, day=DAY, hour="12")
            if copy and rng.random() < 0.3:
                changed = rng.choice(table.content_columns)
                if not table.source.field(changed).required:
                    row[changed] = value(table.source.field(changed).kind, rng)
            rows.append(row)
    return rows


def duckdb_with(table: CompactedTableSpec, rows: list[dict[str, Any]], compacted: list[dict[str, Any]]) -> Any:
    """Both engines' relations in one DuckDB: the local names and Athena's database-qualified ones."""
    connection = duckdb.connect()
    connection.execute("SET TimeZone='UTC'")
    connection.register("verified_day", arrow(table, rows))
    connection.register("target_day", arrow(table, compacted))
    connection.register("recorded", empty_conflicts())
    for schema, name, source in ((VERIFIED_DB, table.source.name, "verified_day"),
                                 (ALERTS_DB, table.name, "target_day"),
                                 (AUDIT_DB, DUPLICATE_CONFLICTS.name, "recorded")):
        connection.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        connection.execute(f'CREATE TABLE "{schema}"."{name}" AS SELECT * FROM {source}')
    return connection


def transpiled(sql: str) -> str:
    (duck,) = sqlglot.transpile(sql, read="trino", write="duckdb")
    return duck


def ordered(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda r: (r["event_key"], r["source_key"], r["source_line"]))


@pytest.mark.parametrize("table", COMPACTED_TABLES, ids=lambda t: t.name)
def test_athena_statements_parse_as_trino(table: CompactedTableSpec) -> None:
    query = athena_query(table)
    for sql in (query.dedup_select(), query.stats_select("run-1"), query.merge(),
                query.conflicts_merge("run-1", "2026-03-10T13:00:00.000000Z", DUPLICATE_CONFLICTS.column_names),
                query.data_files_select(ALERTS_DB),
                insert_values(relation(AUDIT_DB, COMPACTION_RUNS.name), [
                    {"run_id": "r", "started_at": datetime(2026, 3, 10, 13), "table_name": table.name, "day": DAY,
                     "inserted": 3, "outcome": "succeeded", "error": "it's fine"}]),
                insert_values(relation(AUDIT_DB, BACKFILL_RUNS.name), [
                    {"run_id": "b", "started_at": datetime(2026, 3, 10, 13), "table_name": table.name, "day": DAY,
                     "columns": "auto_lock_delay_s", "values_lifted": 30, "unfit_columns": '{"x": 1}',
                     "outcome": "succeeded"}], BACKFILL_RUNS)):
        parsed = sqlglot.parse_one(sql, read="trino", error_level=sqlglot.ErrorLevel.RAISE)
        assert not isinstance(parsed, sqlglot.exp.Command), sql[:80]
    merge = sqlglot.parse_one(query.merge(), read="trino")
    assert isinstance(merge, sqlglot.exp.Merge)
    assert merge.this.sql(dialect="trino") == f'"{ALERTS_DB}"."{table.name}" AS t'
    whens = merge.args["whens"].sql(dialect="trino")
    assert "WHEN MATCHED AND" in whens
    assert "THEN UPDATE SET" in whens
    assert "WHEN NOT MATCHED THEN INSERT" in whens
    # Athena-only statements (sqlglot keeps them as commands) at least name the right table and day.
    assert query.optimize() == (f'OPTIMIZE "{ALERTS_DB}"."{table.name}" REWRITE DATA USING BIN_PACK '
                                f"WHERE \"day\" = '{DAY}'")
    assert vacuum(query.relations.compacted) == f'VACUUM "{ALERTS_DB}"."{table.name}"'


@pytest.mark.parametrize("table", COMPACTED_TABLES, ids=lambda t: t.name)
@pytest.mark.parametrize("seed", [1, 2])
def test_the_athena_dedup_select_transpiled_returns_the_local_engines_rows(table: CompactedTableSpec,
                                                                          seed: int) -> None:
    rows = sample_rows(table, seed)
    connection = duckdb_with(table, rows, compacted=rows[:7])
    local = ordered(select(connection, local_query(table).dedup_select()))
    athena = ordered(select(connection, transpiled(athena_query(table).dedup_select())))
    assert len(local) < len(rows)  # the sample has duplicates
    assert athena == local
    local_stats = select(connection, local_query(table).stats_select("run"))
    athena_stats = select(connection, transpiled(athena_query(table).stats_select("run")))
    assert athena_stats == local_stats
    assert local_stats[0]["natural_duplicates"] > 0
    if table.key_columns:
        assert local_stats[0]["conflicting_duplicates"] > 0


def reference_fingerprint(table: CompactedTableSpec, row: dict[str, Any]) -> str:
    """The fingerprint as docs/data-contract.md defines it, computed in Python."""
    def sha(text: str) -> str:
        return hashlib.sha256(text.encode()).hexdigest()

    parts = []
    for name in table.identity_columns:
        kind, item = table.source.field(name).kind, row[name]
        if item is None:
            parts.append("n")
            continue
        if kind is Kind.STRING_MAP:
            text = ",".join(sorted(f"{sha(k)}:{'n' if v is None else sha(v)}" for k, v in item))
        elif kind in (Kind.TIMESTAMP_MS, Kind.TIMESTAMP_US):
            text = str((item - datetime(1970, 1, 1)) // timedelta(milliseconds=1))
        elif kind is Kind.BOOL:
            text = "true" if item else "false"
        else:
            text = str(item)
        parts.append(sha(text))
    return sha(",".join(parts))


def test_the_otlp_fingerprint_is_the_same_in_both_engines_and_in_python() -> None:
    table = COMPACTED_BY_TYPE["otlp_logs"]
    rows = sample_rows(table, seed=7, events=60)
    connection = duckdb_with(table, rows, compacted=[])
    for dialect, render in ((DUCKDB, lambda s: s), (ATHENA, transpiled)):
        source = f'"{VERIFIED_DB}"."{table.source.name}"'
        sql = render(f"SELECT {fingerprint_sql(dialect, table)} AS fp, source_line FROM {source}")
        found = {r["source_line"]: r["fp"] for r in select(connection, sql)}
        assert found == {r["source_line"]: reference_fingerprint(table, r) for r in rows}, dialect.name


@pytest.mark.parametrize("dialect", [DUCKDB, ATHENA], ids=lambda d: d.name)
def test_two_devices_with_the_same_event_id_are_two_events(dialect: Any) -> None:
    """Issue 18: device firmware numbering events from 1 (or a sender guessing an id) must not make
    another device's event a conflict. The key is (device_id, event_id), in both engines."""
    table = COMPACTED_BY_TYPE["lock"]
    rows = []
    for number, device in enumerate(["lock-1", "lock-2", "lock-1"]):
        row = {spec.name: None for spec in table.source.fields}
        row.update(event_id="1", device_id=device, device_type="lock", event_name="bolt_changed",
                   event_time=T0, received_at=T0 + timedelta(seconds=number), source_key="raw/a",
                   source_line=number + 1, day=DAY, hour="12", bolt_state="locked" if number < 2 else "unlocked")
        rows.append(row)
    connection = duckdb_with(table, rows, compacted=[])
    query = local_query(table) if dialect is DUCKDB else athena_query(table)
    render = (lambda s: s) if dialect is DUCKDB else transpiled
    kept = ordered(select(connection, render(query.dedup_select())))
    assert [(r["device_id"], r["source_line"]) for r in kept] == [("lock-1", 1), ("lock-2", 2)]
    assert [r["event_key"] for r in kept] == [device_event_key("lock-1", "1"), device_event_key("lock-2", "1")]
    stats = select(connection, render(query.stats_select("run")))[0]
    assert (stats["inserted"], stats["conflicting_duplicates"]) == (2, 1)  # lock-1's second copy, not lock-2


def test_the_device_key_text_is_unambiguous() -> None:
    assert device_event_key("a:b", "c") != device_event_key("a", "b:c")
    assert device_event_key("lock-1", "e1") == "6:lock-1:e1"
