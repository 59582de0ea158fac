"""Helpers for the parser's unit tests: device lines, a context, and results as plain rows."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from parser.device_lines import DAY_MS, BlockResult, DeviceContext

ARRIVAL_MS = 1_795_633_200_000  # 2026-11-25T19:00:00Z


def line(event_id: str = "e1", device_type: str = "lock", **fields: Any) -> bytes:
    event = {"event_id": event_id, "device_id": "dev-1", "device_type": device_type, "event_name": "ping",
             "event_time": "2026-11-25T18:59:30.250Z", "received_at": "2026-11-25T19:00:00.000Z", **fields}
    return orjson.dumps({key: value for key, value in event.items() if value is not ...})


def block_of(lines: list[bytes]) -> bytes:
    return b"\n".join(lines) + b"\n"


def rows_of(result: BlockResult) -> dict[int, tuple[str, int, dict[str, Any]]]:
    """source_line -> (type, hour, row), with maps as dicts (their order is not significant)."""
    rows: dict[int, tuple[str, int, dict[str, Any]]] = {}
    for type_value, hour_ms, table in result.tables:
        for row in table.to_pylist():
            row["attributes"] = None if row.get("attributes") is None else dict(row["attributes"])
            rows[row["source_line"]] = (type_value, hour_ms, row)
    return rows


def reasons_of(result: BlockResult) -> dict[int, str]:
    return {item.line: item.reason for item in result.rejections}


@pytest.fixture
def ctx() -> DeviceContext:
    return DeviceContext("raw/json_telemetry/2026/11/25/19/x.gz", ARRIVAL_MS, 30 * DAY_MS, DAY_MS)
