"""Rows of the verified tables as the local engine holds them (UTC timestamps without zone, us)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import duckdb
import pyarrow as pa

from compactor.dedup import DUCKDB, DayQuery, Relations
from compactor.local_engine import working_schema
from shared.schema import DUPLICATE_CONFLICTS, CompactedTableSpec

DAY = "2026-03-10"
T0 = datetime(2026, 3, 10, 12, 0)


def lock(event_id: str, *, received: datetime = T0, source_key: str = "raw/a", line: int = 1,
         **content: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "event_id": event_id, "device_id": "lock-1", "device_type": "lock", "event_name": "bolt_changed",
        "event_time": T0 - timedelta(seconds=5), "received_at": received, "firmware_version": "1.0",
        "schema_version": 1, "attributes": None, "battery_pct": 90, "bolt_state": "locked", "door_state": None,
        "operation_source": None, "rssi_dbm": None, "temperature_c": 20.5, "extra": None,
        "source_key": source_key, "source_line": line, "day": DAY, "hour": "12",
    }
    row.update(content)
    return row


def otlp(body: str | None, *, received: datetime = T0, source_key: str = "raw/o", line: int = 1,
         **content: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "time": T0, "observed_time": None, "time_unix_nano": 1_773_144_000_000_000_000, "severity_number": 9,
        "severity_text": "INFO", "body": body, "attributes": None, "resource_attributes": [("service.name", "door")],
        "scope_name": None, "scope_version": None, "trace_id": None, "span_id": None, "flags": 0,
        "dropped_attributes_count": 0, "event_name": None, "service_name": "door", "device_id": None,
        "received_at": received, "source_key": source_key, "source_line": line, "day": DAY, "hour": "12",
    }
    row.update(content)
    return row


def arrow(table: CompactedTableSpec, rows: Sequence[Mapping[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(list(rows), schema=working_schema(table.fields))


def empty_conflicts() -> pa.Table:
    return working_schema(DUPLICATE_CONFLICTS.fields).empty_table()


def connect(table: CompactedTableSpec, verified: Sequence[Mapping[str, Any]],
            compacted: Sequence[Mapping[str, Any]] = ()) -> Any:
    connection = duckdb.connect()
    connection.execute("SET TimeZone='UTC'")
    connection.register("verified_day", arrow(table, verified))
    connection.register("target_day", arrow(table, compacted))
    connection.register("recorded", empty_conflicts())
    return connection


def local_query(table: CompactedTableSpec, day: str = DAY) -> DayQuery:
    return DayQuery(DUCKDB, table, day, Relations("verified_day", "target_day", "recorded", "runs"))


def select(connection: Any, sql: str) -> list[dict[str, Any]]:
    return list(connection.sql(sql).to_arrow_table().to_pylist())
