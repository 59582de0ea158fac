"""OTLP/JSON lines to one row per log record; partitions by time, observed time or arrival."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from parser.device_lines import DAY_MS
from parser.otlp import OtlpContext, parse_line
from parser.records import Rejection
from tests.unit.parser.conftest import ARRIVAL_MS

CTX = OtlpContext("raw/otlp_logs/2026/11/25/19/x.gz", ARRIVAL_MS, 30 * DAY_MS, DAY_MS)
T_NS = (ARRIVAL_MS - 3_600_000) * 1_000_000 + 123_456_789  # 18:00:00.123456789Z


def request(*records: dict[str, Any], resource: list[dict[str, Any]] | None = None) -> bytes:
    return orjson.dumps({"resourceLogs": [{
        "resource": {"attributes": resource if resource is not None else [
            {"key": "service.name", "value": {"stringValue": "checkout"}},
            {"key": "device.id", "value": {"stringValue": "lock-7"}},
            {"key": "host.cores", "value": {"intValue": "8"}},
        ]},
        "scopeLogs": [{"scope": {"name": "app.logger", "version": "1.2"}, "logRecords": list(records)}],
    }]})


def outcomes(line: bytes) -> list[Any]:
    return list(parse_line(line, 7, CTX))


def test_a_record_is_flattened_with_all_its_columns() -> None:
    [(partition_ms, row)] = outcomes(request({
        "timeUnixNano": str(T_NS), "observedTimeUnixNano": T_NS + 1000, "severityNumber": 9,
        "severityText": "INFO", "body": {"stringValue": "door opened"},
        "attributes": [{"key": "user", "value": {"stringValue": "ann"}}, {"key": "n", "value": {"intValue": 3}},
                       {"key": "ok", "value": {"boolValue": True}},
                       {"key": "list", "value": {"arrayValue": {"values": [{"intValue": "1"}]}}},
                       {"key": "none", "value": {}}],
        "traceId": "0AF7651916CD43DD8448EB211C80319C", "spanId": "b7ad6b7169203331", "flags": 1,
        "droppedAttributesCount": 2, "eventName": "door.open",
    }))
    assert partition_ms == T_NS // 1_000_000
    assert row["time"] == datetime(2026, 11, 25, 18, 0, 0, 123456, tzinfo=UTC)
    assert row["time_unix_nano"] == T_NS
    assert (row["severity_number"], row["severity_text"], row["body"]) == (9, "INFO", "door opened")
    assert dict(row["attributes"]) == {"user": "ann", "n": "3", "ok": "true", "list": "[1]"}
    assert dict(row["resource_attributes"]) == {"service.name": "checkout", "device.id": "lock-7", "host.cores": "8"}
    assert (row["service_name"], row["device_id"]) == ("checkout", "lock-7")
    assert (row["scope_name"], row["scope_version"]) == ("app.logger", "1.2")
    assert (row["trace_id"], row["span_id"]) == ("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331")
    assert (row["flags"], row["dropped_attributes_count"], row["event_name"]) == (1, 2, "door.open")
    assert row["received_at"] == datetime(2026, 11, 25, 19, tzinfo=UTC)
    assert (row["source_key"], row["source_line"]) == (CTX.source_key, 7)


def test_a_non_string_body_is_stored_as_its_otlp_json() -> None:
    [(_, row)] = outcomes(request({"body": {"kvlistValue": {"values": [{"key": "a", "value": {"intValue": "1"}}]}}}))
    assert orjson.loads(row["body"]) == {"kvlistValue": {"values": [{"key": "a", "value": {"intValue": "1"}}]}}


@pytest.mark.parametrize(("record", "expected_ms"), [
    ({"timeUnixNano": T_NS}, T_NS // 1_000_000),
    ({"timeUnixNano": "0", "observedTimeUnixNano": T_NS}, T_NS // 1_000_000),
    ({"timeUnixNano": 1_000_000_000, "observedTimeUnixNano": T_NS}, T_NS // 1_000_000),  # 1970: outside the window
    ({}, ARRIVAL_MS),
    ({"timeUnixNano": 1_000_000_000}, ARRIVAL_MS),
])
def test_partition_time_is_the_first_inside_the_window_and_never_a_rejection(
        record: dict[str, Any], expected_ms: int) -> None:
    [(partition_ms, _)] = outcomes(request(record))
    assert partition_ms == expected_ms


def test_a_bad_record_is_one_rejection_with_its_path_and_its_neighbours_stay() -> None:
    results = outcomes(request({"severityNumber": 9}, {"severityNumber": 30}, {"traceId": "xyz"}))
    assert [isinstance(item, Rejection) for item in results] == [False, True, True]
    rejected = results[1]
    assert (rejected.reason, rejected.path) == ("invalid_value", "resourceLogs[0].scopeLogs[0].logRecords[1]")
    assert orjson.loads(rejected.original) == {"severityNumber": 30}


@pytest.mark.parametrize(("line", "reason"), [
    (b"{nope", "invalid_json"),
    (b"[1]", "not_an_object"),
    (b'{"something": "else"}', "invalid_value"),
    (b'{"resourceLogs": {"not": "a list"}}', "invalid_value"),
])
def test_a_line_that_is_not_a_request_is_one_rejection(line: bytes, reason: str) -> None:
    [rejected] = outcomes(line)
    assert isinstance(rejected, Rejection)
    assert (rejected.reason, rejected.line, rejected.original) == (reason, 7, line)


def test_snake_case_keys_are_read_too() -> None:
    line = orjson.dumps({"resource_logs": [{"scope_logs": [{"log_records": [
        {"time_unix_nano": str(T_NS), "severity_text": "WARN"}]}]}]})
    [(_, row)] = outcomes(line)
    assert (row["time_unix_nano"], row["severity_text"]) == (T_NS, "WARN")
