"""The local Athena's Iceberg metadata tables have Athena engine version 3's columns, and the
compactor's file count per day reads only columns that exist there."""

from __future__ import annotations

from datetime import datetime

import pyarrow as pa
import pytest

from compactor.athena_engine import AthenaEngine
from compactor.dedup import ATHENA, DayQuery
from shared.schema import COMPACTED_BY_TYPE
from signals.sql.engine import LocalEngine
from signals.sql.errors import QueryError
from tests.integration.compactor.support import ALERTS_DATABASE, World

LOCK = COMPACTED_BY_TYPE["lock"]
QUALIFIED = f'"{ALERTS_DATABASE}"."{LOCK.name}'


def _rows(days: list[str], prefix: str) -> list[dict[str, object]]:
    rows = []
    for i, day in enumerate(days):
        row: dict[str, object] = dict.fromkeys(LOCK.column_names)
        row.update(event_id=f"{prefix}{i}", device_id="d-1", device_type="lock", event_name="bolt_changed",
                   event_time=datetime(2026, 3, 10, 1, 2, 3, 123456), source_key="raw/k", source_line=i + 1,
                   day=day, hour="01", battery_pct=10 + i, attributes=[("home", "h1")])
        rows.append(row)
    return rows


@pytest.fixture
def engine(world: World) -> LocalEngine:
    table = world.catalog.load_table((ALERTS_DATABASE, LOCK.name))
    arrow = table.schema().as_arrow()
    table.append(pa.Table.from_pylist(_rows(["2026-03-10", "2026-03-10"], "a"), schema=arrow))
    table.append(pa.Table.from_pylist(_rows(["2026-03-10", "2026-03-11"], "b"), schema=arrow))
    return LocalEngine(world.session, world.url, database=ALERTS_DATABASE)


def test_files_has_athenas_columns_and_no_partition_column(engine: LocalEngine) -> None:
    result = engine.execute(f'SELECT * FROM {QUALIFIED}$files"')
    assert result.columns == [
        "content", "file_path", "file_format", "record_count", "file_size_in_bytes", "column_sizes", "value_counts",
        "null_value_counts", "nan_value_counts", "lower_bounds", "upper_bounds", "key_metadata", "split_offsets",
        "equality_ids"]
    assert len(result.rows) == 3  # one data file per day and commit
    assert {row[2] for row in result.rows} == {"PARQUET"}
    lower = engine.execute(f"SELECT element_at(lower_bounds, 10) FROM {QUALIFIED}$files\" ORDER BY 1").rows
    assert lower == [("10",), ("10",), ("11",)]  # battery_pct (field 10) as Trino prints a bound
    # The column the compactor used to count files by: Athena answers COLUMN_NOT_FOUND, and so does this.
    with pytest.raises(QueryError, match="COLUMN_NOT_FOUND"):
        engine.execute(f"SELECT count(*) FROM {QUALIFIED}$files\" WHERE \"partition\".\"day\" = '2026-03-10'")


def test_partitions_counts_files_per_day(engine: LocalEngine) -> None:
    result = engine.execute(f"SELECT partition.day, record_count, file_count, total_size > 0, "
                            f"data.battery_pct.min, data.battery_pct.max, data.battery_pct.null_count "
                            f"FROM {QUALIFIED}$partitions\" ORDER BY 1")
    assert result.rows == [("2026-03-10", 3, 2, True, 10, 11, 0), ("2026-03-11", 1, 1, True, 11, 11, 0)]
    star = engine.execute(f'SELECT * FROM {QUALIFIED}$partitions"')
    assert star.columns == ["partition", "record_count", "file_count", "total_size", "data"]
    with pytest.raises(QueryError, match="COLUMN_NOT_FOUND"):
        engine.execute(f'SELECT spec_id FROM {QUALIFIED}$partitions"')  # pyiceberg's, not Athena's


def test_snapshots_and_history_have_trinos_columns(engine: LocalEngine) -> None:
    snapshots = engine.execute(f'SELECT * FROM {QUALIFIED}$snapshots" ORDER BY committed_at')
    assert snapshots.columns == ["committed_at", "snapshot_id", "parent_id", "operation", "manifest_list", "summary"]
    assert snapshots.athena_types[0] == "timestamp with time zone"
    assert [row[3] for row in snapshots.rows] == ["append", "append"]
    assert snapshots.rows[1][2] == snapshots.rows[0][1]  # the second commit's parent is the first
    history = engine.execute(f'SELECT * FROM {QUALIFIED}$history"')
    assert history.columns == ["made_current_at", "snapshot_id", "parent_id", "is_current_ancestor"]
    assert all(row[3] for row in history.rows)
    with pytest.raises(QueryError, match=r"NOT_SUPPORTED: .*\$manifests"):
        engine.execute(f'SELECT * FROM {QUALIFIED}$manifests"')


def test_the_compactors_file_count_runs_on_the_local_athena(engine: LocalEngine) -> None:
    query = DayQuery(ATHENA, LOCK, "2026-03-10", AthenaEngine.relations(_engine_stub(), LOCK))
    assert "$files" not in query.data_files_select(ALERTS_DATABASE)
    assert engine.execute(query.data_files_select(ALERTS_DATABASE)).rows == [(2,)]
    empty = DayQuery(ATHENA, LOCK, "2001-01-01", query.relations)
    assert engine.execute(empty.data_files_select(ALERTS_DATABASE)).rows == [(0,)]


def _engine_stub() -> AthenaEngine:
    return AthenaEngine(None, glue_database="telemetry-parser-db", alerts_database=ALERTS_DATABASE,  # type: ignore[arg-type]
                        audit_database="audit", max_files_per_day=1)
