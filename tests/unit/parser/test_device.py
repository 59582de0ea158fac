"""Device lines through the vectorized block parser, checked against the per-line reference."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parser.device import parse_block
from parser.device_lines import DeviceContext, per_line_only
from parser.records import MAX_LINE_BYTES
from tests.unit.parser.conftest import block_of, line, reasons_of, rows_of


def parse(lines: list[bytes], ctx: DeviceContext) -> Any:
    return parse_block(block_of(lines), 1, ctx)


@pytest.mark.parametrize(
    ("bad_line", "reason", "field"),
    [
        (b'{"event_id": "e1", ', "invalid_json", "$"),
        (b'{"event_id": "e1"} trailing', "invalid_json", "$"),
        (b'{"event_id": "e1"}{"event_id": "e2"}', "invalid_json", "$"),
        (b"\xff\xfe not utf-8", "invalid_json", "$"),
        (b"[1, 2]", "not_an_object", None),
        (b'"just a string"', "not_an_object", None),
        (b"null", "not_an_object", None),  # a top-level null can crash pyarrow's JSON reader: never given to it
        (b"  null", "not_an_object", None),
        (line(device_type="toaster"), "unknown_device_type", "device_type"),
        (line(device_type=None), "missing_field", "device_type"),
        (line(device_id=...), "missing_field", "device_id"),
        (line(device_id=None), "missing_field", "device_id"),  # null equals absent
        (line(event_time=...), "missing_field", "event_time"),
        (line(battery_pct=101), "invalid_value", "battery_pct"),
        (line(battery_pct=87.5), "invalid_value", "battery_pct"),
        (line(battery_pct="87"), "invalid_value", "battery_pct"),
        (line(battery_pct=True), "invalid_value", "battery_pct"),
        (line(bolt_state="LOCKED"), "invalid_value", "bolt_state"),
        (line(event_id=""), "invalid_value", "event_id"),
        (line(event_id="x" * 129), "invalid_value", "event_id"),
        (line(event_time="2026-02-30T00:00:00Z"), "invalid_value", "event_time"),
        (line(event_time="2026-11-25T18:59"), "invalid_value", "event_time"),
        (line(received_at="yesterday"), "invalid_value", "received_at"),
        (line(attributes={"nested": {"a": 1}}), "invalid_value", "attributes"),
        (line(attributes="not an object"), "invalid_value", "attributes"),
        (line("e1", "bridge", cpu_pct=100.5), "invalid_value", "cpu_pct"),
        (line("e1", "video_doorbell", motion_detected=1), "invalid_value", "motion_detected"),
        (line(schema_version=0), "invalid_value", "schema_version"),
        (line(uptime_s=2**62), None, None),  # a foreign field: kept in extra, never validated
        (line(event_time="2025-01-01T00:00:00Z"), "event_time_out_of_range", "event_time"),
        (line(event_time="2026-11-27T19:00:00.001Z"), "event_time_out_of_range", "event_time"),
    ],
)
def test_each_bad_line_gets_its_reason_and_its_neighbours_stay_rows(
        bad_line: bytes, reason: str | None, field: str | None, ctx: DeviceContext) -> None:
    lines = [line("a"), bad_line, line("b", "bridge", uptime_s=5)]
    result = parse(lines, ctx)
    rows = rows_of(result)
    if reason is None:
        assert sorted(rows) == [1, 2, 3]
        return
    assert sorted(rows) == [1, 3]
    assert reasons_of(result) == {2: reason}
    [rejected] = result.rejections
    if field is not None:
        assert field in {error.field for error in rejected.errors}
    assert rejected.original == bad_line


def test_nan_is_an_invalid_value_not_json(ctx: DeviceContext) -> None:
    nan_line = line(temperature_c=0.0).replace(b"0.0", b"NaN")
    result = parse([line("a"), nan_line], ctx)
    assert reasons_of(result) == {2: "invalid_value"}


def test_oversized_line_is_record_too_large(ctx: DeviceContext) -> None:
    huge = line(firmware_version="x" * (MAX_LINE_BYTES + 1))
    result = parse([line("a"), huge, line("b")], ctx)
    assert reasons_of(result) == {2: "record_too_large"}
    assert sorted(rows_of(result)) == [1, 3]
    assert len(result.rejections[0].original) < len(huge)


def test_blank_lines_are_skipped_counted_and_line_numbers_stay_true(ctx: DeviceContext) -> None:
    result = parse([line("a"), b"", b"   ", b"\r", line("b"), b"[1]"], ctx)
    assert result.blank_lines == 3
    assert sorted(rows_of(result)) == [1, 5]
    assert reasons_of(result) == {6: "not_an_object"}


def test_offsets_land_in_the_right_utc_hour_and_are_stored_as_utc(ctx: DeviceContext) -> None:
    result = parse([
        line("a", event_time="2026-11-25T20:30:00.999999+02:00"),  # 18:30:00.999 UTC
        line("b", event_time="2026-11-25 13:05:00-05:00"),  # space separator, 18:05 UTC
        line("c", event_time="2026-11-25t18:59:59.5z"),  # lower-case t and z
        line("d", event_time=1_795_632_000_000),  # epoch ms: 18:40 UTC
    ], ctx)
    rows = rows_of(result)
    hour_18 = datetime(2026, 11, 25, 18, tzinfo=UTC)
    assert {n: hour for n, (_, hour, _) in rows.items()} == {n: int(hour_18.timestamp() * 1000) for n in (1, 2, 3, 4)}
    assert rows[1][2]["event_time"] == datetime(2026, 11, 25, 18, 30, 0, 999000, tzinfo=UTC)
    assert rows[2][2]["event_time"] == datetime(2026, 11, 25, 18, 5, tzinfo=UTC)
    assert rows[3][2]["event_time"] == datetime(2026, 11, 25, 18, 59, 59, 500000, tzinfo=UTC)
    assert rows[4][2]["event_time"] == datetime(2026, 11, 25, 18, 40, tzinfo=UTC)


def test_missing_received_at_takes_the_arrival_time(ctx: DeviceContext) -> None:
    rows = rows_of(parse([line("a", received_at=...)], ctx))
    assert rows[1][2]["received_at"] == datetime(2026, 11, 25, 19, tzinfo=UTC)


def test_unknown_and_foreign_fields_are_kept_in_extra(ctx: DeviceContext) -> None:
    rows = rows_of(parse([
        line("a", sensor_rev="b", nested={"x": [1, None]}, dropped=None),
        line("b", cpu_pct=12.5),  # typed for bridges, unknown for a lock
        line("c"),
    ], ctx))
    assert orjson.loads(rows[1][2]["extra"]) == {"nested": {"x": [1, None]}, "sensor_rev": "b"}
    assert orjson.loads(rows[2][2]["extra"]) == {"cpu_pct": 12.5}
    assert rows[3][2]["extra"] is None


def test_attributes_become_strings_and_nulls_are_dropped(ctx: DeviceContext) -> None:
    rows = rows_of(parse([
        line("a", attributes={"s": "x", "i": 3, "b": True, "f": 1.5, "n": None, "t": "2026-01-01T00:00:00Z"}),
        line("b", attributes={"s": "y", "i": -4, "b": False}),
        line("c", attributes={}),
        line("d"),
    ], ctx))
    assert rows[1][2]["attributes"] == {"s": "x", "i": "3", "b": "true", "f": "1.5", "t": "2026-01-01T00:00:00Z"}
    assert rows[2][2]["attributes"] == {"s": "y", "i": "-4", "b": "false"}
    assert rows[3][2]["attributes"] == {}
    assert rows[4][2]["attributes"] is None


def test_lossless_numbers_and_defaults(ctx: DeviceContext) -> None:
    rows = rows_of(parse([line("a", battery_pct=87.0, rssi_dbm=-60, temperature_c=21)], ctx))
    row = rows[1][2]
    assert (row["battery_pct"], row["rssi_dbm"], row["temperature_c"], row["schema_version"]) == (87, -60, 21.0, 1)
    assert row["source_key"] == ctx.source_key
    assert row["source_line"] == 1


def test_mixed_device_types_split_into_their_tables(ctx: DeviceContext) -> None:
    result = parse([line("a"), line("b", "bridge", uptime_s=1), line("c", "video_doorbell", night_mode=True)], ctx)
    assert sorted(type_value for type_value, _, _ in result.tables) == ["bridge", "lock", "video_doorbell"]
    for type_value, _, table in result.tables:
        assert set(table.column("device_type").to_pylist()) == {type_value}


def _bad_lines() -> st.SearchStrategy[bytes]:
    return st.sampled_from([
        b"", b"  ", b"{", b"[]", b"42", b"null", b'{"a":1}{"b":2}', b"\xc3\x28",
        line(device_type="toaster"), line(device_type=None), line(event_id=...), line(battery_pct=-1),
        line(battery_pct="5"), line(event_time="2020-01-01T00:00:00Z"), line(event_time="nope"),
        line(attributes=[1]), line(attributes={"a": {"b": 1}}), line(schema_version=1.5),
        line(temperature_c=0.0).replace(b"0.0", b"Infinity"), line(received_at="2026-11-25T19:00:00"),
    ])


_UNKNOWN_FIELDS: list[dict[str, Any]] = [
    {}, {"extra_field": 1}, {"battery_pct": 5}, {"note": "x", "flag": True},
    {"n": None, "when": "2026-01-01T00:00:00Z"}, {"f": 1.0},
]


def _good_lines() -> st.SearchStrategy[bytes]:
    event_times = st.sampled_from(["2026-11-25T18:00:00Z", "2026-11-25 17:00:00.123456+01:00",
                                   "2026-11-24T00:00:00.1Z", 1_795_600_000_000, "2026-11-25T18:30:00.5-00:30"])
    return st.one_of(
        st.builds(lambda n, t, b, a: line(f"l{n}", event_time=t, battery_pct=b, attributes=a),
                  st.integers(0, 999), event_times, st.integers(0, 100),
                  st.one_of(st.none(), st.dictionaries(st.sampled_from("abc"),
                                                       st.one_of(st.none(), st.booleans(), st.integers(-5, 5),
                                                                 st.text(max_size=3)), max_size=3))),
        st.builds(lambda n, u, x: line(f"b{n}", "bridge", uptime_s=u, **x), st.integers(0, 999),
                  st.integers(0, 2**40), st.sampled_from(_UNKNOWN_FIELDS)),
        st.builds(lambda n, m: line(f"v{n}", "video_doorbell", motion_detected=m), st.integers(0, 999), st.booleans()),
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(st.one_of(_good_lines(), _bad_lines()), min_size=1, max_size=40))
def test_every_non_blank_line_ends_in_exactly_one_place_as_the_per_line_path_says(
        lines: list[bytes], ctx: DeviceContext) -> None:
    result = parse(lines, ctx)
    rows, reasons = rows_of(result), reasons_of(result)
    non_blank = sum(1 for item in lines if item.strip())
    total_rows = sum(table.num_rows for _, _, table in result.tables)
    assert total_rows + len(result.rejections) == non_blank
    assert not set(rows) & set(reasons)
    assert result.blank_lines == len(lines) - non_blank

    reference = per_line_only(enumerate(lines, 1), ctx)
    assert rows == rows_of(reference)
    assert reasons == reasons_of(reference)


def test_a_block_of_epoch_ms_event_times_is_read_as_numbers(ctx: DeviceContext) -> None:
    lines = [line(f"e{n}", event_time=1_795_632_000_000 + n) for n in range(300)] + [line("x", event_time=1.5)]
    result = parse(lines, ctx)
    assert len(rows_of(result)) == 300
    assert reasons_of(result) == {301: "invalid_value"}
    assert rows_of(result) == rows_of(per_line_only(enumerate(lines, 1), ctx))


def test_a_block_where_most_lines_are_refused_still_ends_every_line_somewhere(ctx: DeviceContext) -> None:
    lines = [line(f"e{n}", "bridge", uptime_s=str(n)) if n % 3 else line(f"e{n}") for n in range(1200)]
    result = parse(lines, ctx)
    assert len(rows_of(result)) == 400
    assert set(reasons_of(result).values()) == {"invalid_value"}
    assert len(result.rejections) == 800


def _agrees_with_per_line(lines: list[bytes], ctx: DeviceContext) -> tuple[dict[int, Any], dict[int, str]]:
    result = parse(lines, ctx)
    reference = per_line_only(enumerate(lines, 1), ctx)
    assert rows_of(result) == rows_of(reference)
    assert reasons_of(result) == reasons_of(reference)
    return rows_of(result), reasons_of(result)


def test_a_one_byte_refused_line_has_no_room_to_blank_and_still_ends_alone(ctx: DeviceContext) -> None:
    lines = [line(f"e{n}") for n in range(50)]
    lines[20] = b"7"
    rows, reasons = _agrees_with_per_line(lines, ctx)
    assert reasons == {21: "not_an_object"}
    assert len(rows) == 49


def test_a_field_name_inside_a_nested_value_is_a_false_alarm_not_a_rejection(ctx: DeviceContext) -> None:
    # The pre-scan flags `"battery_pct":"87"` wherever it appears; inside `meta` it is just extra data.
    lines = [line(f"e{n}") for n in range(50)]
    lines[10] = line("nested", meta={"battery_pct": "87"}, firmware_version='"battery_pct":"87"')
    rows, reasons = _agrees_with_per_line(lines, ctx)
    assert reasons == {}
    assert orjson.loads(rows[11][2]["extra"]) == {"meta": {"battery_pct": "87"}}


def test_refusals_only_arrow_inference_sees_are_still_every_line_in_one_place(ctx: DeviceContext) -> None:
    # An unknown field whose JSON type changes from line to line: no declared field is wrong, so the
    # pre-scan flags nothing, yet Arrow's inference refuses the block; every line must still be a row.
    values: list[Any] = [1, "one", {"n": 1}, [1], True, 2.5]
    lines = [line(f"e{n}", custom=values[n % len(values)]) for n in range(60)]
    rows, reasons = _agrees_with_per_line(lines, ctx)
    assert reasons == {}
    assert len(rows) == 60
