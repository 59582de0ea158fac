"""The lossless coercion policy and quarantine reasons of `shared.models`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from shared.models import EventRejected, extra_json, validate_device_event
from shared.schema import DeviceType


def lock(**fields: Any) -> dict[str, Any]:
    event = {
        "event_id": "evt-1",
        "device_id": "lock-1",
        "device_type": "lock",
        "event_name": "bolt_changed",
        "event_time": "2026-11-25T19:30:00.123Z",
    }
    event.update(fields)
    return event


def rejected(record: object) -> EventRejected:
    with pytest.raises(EventRejected) as info:
        validate_device_event(record)
    return info.value


def test_valid_lock_event() -> None:
    event = validate_device_event(lock(battery_pct=87, bolt_state="locked", temperature_c=21))
    assert event.battery_pct == 87  # type: ignore[attr-defined]
    assert event.temperature_c == 21.0  # type: ignore[attr-defined]
    assert event.event_time == datetime(2026, 11, 25, 19, 30, 0, 123000, tzinfo=UTC)  # type: ignore[attr-defined]
    assert event.schema_version == 1  # type: ignore[attr-defined]


@pytest.mark.parametrize(("value", "accepted"), [
    (87, True), (87.0, True), ("87", False), (True, False), (87.5, False), (101, False), (-1, False),
])
def test_int_coercion_is_lossless_only(value: object, accepted: bool) -> None:
    if accepted:
        assert validate_device_event(lock(battery_pct=value)).battery_pct == 87  # type: ignore[attr-defined]
    else:
        error = rejected(lock(battery_pct=value))
        assert error.reason == "invalid_value"
        assert [e.field for e in error.errors] == ["battery_pct"]


@pytest.mark.parametrize("value", ["true", 1, 0, None])
def test_bool_accepts_only_json_booleans(value: object) -> None:
    event = {"event_id": "e", "device_id": "d", "device_type": "video_doorbell", "event_name": "ring",
             "event_time": 1764099000000, "motion_detected": value}
    if value is None:  # null equals absent
        assert validate_device_event(event).motion_detected is None  # type: ignore[attr-defined]
    else:
        assert rejected(event).reason == "invalid_value"


@pytest.mark.parametrize("value", [float("nan"), float("inf"), "12.5", False])
def test_float_rejects_non_finite_strings_and_bools(value: object) -> None:
    event = {"event_id": "e", "device_id": "d", "device_type": "bridge", "event_name": "health",
             "event_time": 1764099000000, "cpu_pct": value}
    assert rejected(event).reason == "invalid_value"


def test_enum_is_case_sensitive() -> None:
    assert rejected(lock(bolt_state="LOCKED")).reason == "invalid_value"


def test_string_fields_do_not_take_numbers() -> None:
    assert rejected(lock(firmware_version=1.2)).reason == "invalid_value"


@pytest.mark.parametrize(("record", "reason"), [
    ([1, 2], "not_an_object"),
    ("text", "not_an_object"),
    ({"event_id": "e"}, "missing_field"),
    (lock(device_type="toaster"), "unknown_device_type"),
    (lock(device_type=7), "unknown_device_type"),
    (lock(event_id=None), "missing_field"),  # null equals absent, also for required fields
    (lock(event_id=""), "invalid_value"),
    (lock(event_id="x" * 129), "invalid_value"),
    (lock(event_time="yesterday"), "invalid_value"),
    (lock(event_time=True), "invalid_value"),
    (lock(attributes={"nested": {"a": 1}}), "invalid_value"),
    (lock(attributes=["a"]), "invalid_value"),
])
def test_reasons(record: object, reason: str) -> None:
    assert rejected(record).reason == reason


def test_missing_device_type_names_the_field() -> None:
    error = rejected({"event_id": "e"})
    assert error.reason == "missing_field"
    assert error.errors[0].field == "device_type"


def test_attributes_store_scalars_as_json_text_and_drop_nulls() -> None:
    event = validate_device_event(lock(attributes={"s": "x", "i": 3, "f": 1.5, "b": True, "n": None}))
    assert event.attributes == {"s": "x", "i": "3", "f": "1.5", "b": "true"}  # type: ignore[attr-defined]


def test_unknown_fields_and_fields_of_other_device_types_go_to_extra() -> None:
    record = lock(wifi_rssi_dbm=-40, custom={"k": [1, 2]}, ignored=None)
    event = validate_device_event(record)
    assert set(event.extra_fields()) == {"wifi_rssi_dbm", "custom"}
    assert orjson.loads(extra_json(record, DeviceType.LOCK) or "") == {"wifi_rssi_dbm": -40, "custom": {"k": [1, 2]}}
    assert extra_json(lock(), DeviceType.LOCK) is None


def test_epoch_milliseconds_event_time() -> None:
    event = validate_device_event(lock(event_time=1764099000123))
    assert event.event_time == datetime(2025, 11, 25, 19, 30, 0, 123000, tzinfo=UTC)  # type: ignore[attr-defined]
