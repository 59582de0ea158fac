"""parser.drift: unknown keys counted per device type, kind and firmware from the verified rows."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

from parser.core import ParseSettings, RawObject, parse_raw
from parser.drift import drift_lines, encode
from tests.unit.parser.conftest import ARRIVAL_MS

RAW = RawObject("json_telemetry", "raw/json_telemetry/2026/11/25/19/x.gz", ARRIVAL_MS)


def _lock(number: int, **extra: object) -> dict[str, object]:
    return {"event_id": f"e{number}", "device_id": "d", "device_type": "lock", "event_name": "bolt_changed",
            "event_time": ARRIVAL_MS - 1000, "received_at": ARRIVAL_MS - 500 + number,
            "firmware_version": f"4.{number % 2}.0", **extra}


def _drift(events: list[dict[str, object]], tmp_path: Path) -> list[dict[str, object]]:
    body = b"".join(json.dumps(e).encode() + b"\n" for e in events)
    outcome = parse_raw(io.BytesIO(body), RAW, tmp_path, ParseSettings(workers=1))
    return drift_lines(outcome.verified, RAW.source_key)


def test_keys_are_counted_per_kind_with_share_firmware_and_times(tmp_path: Path) -> None:
    events = [_lock(n, auto_lock_delay_s=n * 10) if n % 10 < 3 else _lock(n) for n in range(20)]
    events[1]["chime"] = "ding"
    events[2]["auto_lock_delay_s"] = 2.5  # another kind for the same key
    events[4]["nothing"] = None  # null says nothing about the type
    lines = _drift(events, tmp_path)
    by = {(line["key"], line["kind"]): line for line in lines}
    assert sorted(by) == [("auto_lock_delay_s", "float"), ("auto_lock_delay_s", "int"), ("chime", "string")]
    delay = by[("auto_lock_delay_s", "int")]
    assert (delay["device_type"], delay["rows"], delay["type_rows"]) == ("lock", 5, 20)
    assert delay["firmware_versions"] == ["4.0.0", "4.1.0"]
    assert delay["first_seen"] < delay["last_seen"]
    assert delay["source_key"] == RAW.source_key
    assert by[("auto_lock_delay_s", "float")]["rows"] == 1


def test_an_object_without_unknown_keys_writes_nothing(tmp_path: Path) -> None:
    assert _drift([_lock(n) for n in range(5)], tmp_path) == []


def test_encoded_lines_are_gzip_json_lines(tmp_path: Path) -> None:
    lines = _drift([_lock(0, x=True)], tmp_path)
    decoded = [json.loads(text) for text in gzip.decompress(encode(lines)).splitlines()]
    assert decoded == lines
    assert decoded[0]["kind"] == "bool"
