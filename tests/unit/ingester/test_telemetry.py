"""Splitting device telemetry bodies: forms, indices, reject reasons, received_at."""

from __future__ import annotations

import json

import orjson
import pytest

from ingester.firehose import MAX_LINE_BYTES
from ingester.telemetry import Rejected, split_events

STAMP = "2026-11-25T19:30:00.123Z"


def event(index: int, device_type: object = "lock", **extra: object) -> dict[str, object]:
    return {"event_id": f"e{index}", "device_id": "d1", "device_type": device_type, "event_name": "x",
            "event_time": 1, **extra}


def lines_as_json(lines: list[bytes]) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in lines]


def test_json_array_events_get_received_at_and_keep_everything_else() -> None:
    events = [event(0, battery_pct="eighty", unknown_field={"a": 1}), event(1, "bridge")]
    batch = split_events(json.dumps(events).encode(), "application/json", STAMP, MAX_LINE_BYTES)
    assert batch.accepted == 2
    assert batch.rejected == []
    assert lines_as_json(batch.lines) == [{**e, "received_at": STAMP} for e in events]
    assert batch.indices == [0, 1]


def test_received_at_set_by_a_client_is_replaced() -> None:
    body = json.dumps([event(0, received_at=0)]).encode()
    [line] = split_events(body, "application/json", STAMP, MAX_LINE_BYTES).lines
    assert orjson.loads(line)["received_at"] == STAMP


def test_events_envelope_and_single_object() -> None:
    wrapped = split_events(json.dumps({"events": [event(0), event(1)]}).encode(), "application/json", STAMP,
                           MAX_LINE_BYTES)
    assert wrapped.accepted == 2
    single = split_events(json.dumps(event(0)).encode(), "application/json", STAMP, MAX_LINE_BYTES)
    assert single.accepted == 1
    assert single.indices == [0]


@pytest.mark.parametrize("media", ["application/x-ndjson", "application/json"])
def test_ndjson_indices_count_non_blank_lines_and_bad_lines_are_rejects(media: str) -> None:
    body = b"\n".join([
        json.dumps(event(0)).encode(), b"", b"   ", b"{not json", b"\r",
        json.dumps(event(2)).encode() + b"\r", b"[1, 2]", b'"text"', json.dumps(event(5, "Fridge")).encode(),
    ]) + b"\n"
    batch = split_events(body, media, STAMP, MAX_LINE_BYTES)
    assert batch.indices == [0, 2]
    assert batch.rejected == [Rejected(1, "invalid_json"), Rejected(3, "not_an_object"),
                              Rejected(4, "not_an_object"), Rejected(5, "unknown_device_type")]
    assert batch.events_seen == 6


@pytest.mark.parametrize(
    ("value", "reason"),
    [(42, "not_an_object"), ("x", "not_an_object"), ([event(0)], "not_an_object"), (None, "not_an_object"),
     ({"event_id": "e"}, "missing_field"), (event(0, None), "missing_field"),
     (event(0, "toaster-2"), "unknown_device_type"), (event(0, 3), "unknown_device_type"),
     (event(0, ["lock"]), "unknown_device_type"), (event(0, "Lock"), "unknown_device_type")],
)
def test_structural_rejects(value: object, reason: str) -> None:
    batch = split_events(json.dumps([event(0), value]).encode(), "application/json", STAMP, MAX_LINE_BYTES)
    assert batch.indices == [0]
    assert batch.rejected == [Rejected(1, reason)]
    assert batch.rejected_by_reason() == {reason: 1}


def test_event_larger_than_a_record_is_rejected() -> None:
    big = event(1, note="x" * MAX_LINE_BYTES)
    batch = split_events(json.dumps([event(0), big]).encode(), "application/json", STAMP, MAX_LINE_BYTES)
    assert batch.rejected == [Rejected(1, "record_too_large")]
    assert all(len(line) <= MAX_LINE_BYTES for line in batch.lines)


def test_event_exactly_filling_a_record_is_kept() -> None:
    base = len(orjson.dumps({**event(0), "note": "", "received_at": STAMP}))
    fits = event(0, note="x" * (MAX_LINE_BYTES - base))
    batch = split_events(orjson.dumps([fits]), "application/json", STAMP, MAX_LINE_BYTES)
    assert batch.accepted == 1
    assert len(batch.lines[0]) == MAX_LINE_BYTES


def test_byte_order_mark_is_ignored() -> None:
    batch = split_events(b"\xef\xbb\xbf" + json.dumps([event(0)]).encode(), "application/json", STAMP, MAX_LINE_BYTES)
    assert batch.accepted == 1


def test_nothing_json_at_all() -> None:
    batch = split_events(b"\x00\x01garbage\nmore garbage", "application/json", STAMP, MAX_LINE_BYTES)
    assert batch.accepted == 0
    assert batch.json_values == 0
    assert [r.reason for r in batch.rejected] == ["invalid_json", "invalid_json"]


@pytest.mark.parametrize(
    "tricky",
    [{"note": "},{"}, {"attributes": {"a": "x"}, "nested": [{"a": 1}, {"b": 2}]}, {"note": "line\nbreak"},
     {"note": "}\n{"}],
)
def test_lines_are_each_events_own_serialization_whatever_the_strings_hold(tricky: dict[str, object]) -> None:
    events = [event(0), event(1, **tricky), event(2)]
    batch = split_events(json.dumps(events).encode(), "application/json", STAMP, MAX_LINE_BYTES)
    assert batch.lines == [orjson.dumps({**e, "received_at": STAMP}) for e in events]
    assert all(b"\n" not in line for line in batch.lines)
