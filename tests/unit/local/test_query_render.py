"""How `signals query` prints results."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from signals.query import QueryResult, render

RESULT = QueryResult(
    columns=["event_time", "attributes", "note"],
    rows=[
        (datetime(2026, 11, 25, 19, 30, 0, 123000, tzinfo=UTC), [("zigbee", "true")], "x" * 100),
        (datetime(2026, 11, 25, 19, 30, 0, 123456, tzinfo=UTC), None, None),
    ],
)


def test_table_aligns_and_clips() -> None:
    lines = render(RESULT, "table").splitlines()
    assert lines[0].split(" | ")[0].strip() == "event_time"
    first = [cell.strip() for cell in lines[2].split(" | ")]
    assert first[:2] == ["2026-11-25T19:30:00.123Z", '{"zigbee":"true"}']
    assert first[2].endswith("...")
    assert len(first[2]) == 80
    assert lines[3].startswith("2026-11-25T19:30:00.123456Z")
    assert len({line.index("|") for line in lines[2:4]}) == 1  # columns line up
    assert lines[-1] == "(2 rows)"


def test_json_keeps_types_and_maps() -> None:
    records = json.loads(render(RESULT, "json"))
    assert records[0]["attributes"] == {"zigbee": "true"}
    assert records[0]["event_time"] == "2026-11-25T19:30:00.123Z"
    assert records[1]["note"] is None


def test_csv_has_a_header_and_empty_nulls() -> None:
    lines = render(RESULT, "csv").splitlines()
    assert lines[0] == "event_time,attributes,note"
    assert lines[2] == "2026-11-25T19:30:00.123456Z,,"
