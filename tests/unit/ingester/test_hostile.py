"""Hostile bodies (issue 12): a bad event costs only itself; raw keeps values exactly as sent."""

from __future__ import annotations

import gzip
import json

import orjson
import pytest

from ingester.firehose import MAX_LINE_BYTES
from ingester.otlp import PROTOBUF_TYPES
from ingester.service import Ingester, Request
from ingester.telemetry import Rejected, split_events
from tests.unit.ingester.fakes import RecordingSink

STAMP = "2026-11-25T19:30:00.123Z"
JSON, NDJSON = "application/json", "application/x-ndjson"


def event_text(index: int, tail: str = "") -> str:
    return (f'{{"event_id": "e{index}", "device_id": "d1", "device_type": "lock", "event_name": "x", '
            f'"event_time": 1{tail}}}')


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("depth", [254, 300, 1023, 1024, 1100, 20_000])
@pytest.mark.parametrize("where", ["unknown field", "attribute"])
@pytest.mark.parametrize("media", [JSON, NDJSON])
def test_a_deeply_nested_event_is_rejected_and_its_neighbours_kept(depth: int, where: str, media: str) -> None:
    tail = f', "x": {nested(depth)}' if where == "unknown field" else f', "attributes": {{"a": {nested(depth)}}}'
    events = [event_text(0), event_text(1, tail), event_text(2)]
    body = (f"[{', '.join(events)}]" if media == JSON else "\n".join(events)).encode()
    batch = split_events(body, media, STAMP, MAX_LINE_BYTES)
    assert batch.rejected == [Rejected(1, "too_deep")]
    assert batch.indices == [0, 2]
    assert [orjson.loads(line)["event_id"] for line in batch.lines] == ["e0", "e2"]


def test_deep_event_inside_the_events_envelope() -> None:
    body = f'{{"events": [{event_text(0)}, {event_text(1, ", " + chr(34) + "x" + chr(34) + ": " + nested(5000))}]}}'
    batch = split_events(body.encode(), JSON, STAMP, MAX_LINE_BYTES)
    assert batch.rejected == [Rejected(1, "too_deep")]
    assert batch.indices == [0]


def ingester() -> tuple[Ingester, RecordingSink]:
    from ingester.firehose import FirehoseWriter  # noqa: PLC0415

    sink = RecordingSink()
    return Ingester(FirehoseWriter(sink), telemetry_stream="t", otlp_stream="o", max_body_bytes=32 << 20), sink


@pytest.mark.parametrize("depth", [254, 1100, 20_000])
def test_the_service_answers_200_never_5xx_for_a_deep_event(depth: int) -> None:
    service, _ = ingester()
    body = gzip.compress(f"[{event_text(0)}, {event_text(1, ', ' + chr(34) + 'x' + chr(34) + ': ' + nested(depth))}]"
                         .encode())
    reply, _ = service.telemetry(Request(body, JSON, "gzip", 1.0))
    assert reply.status == 200
    assert orjson.loads(reply.body) == {"accepted": 1, "rejected": [{"index": 1, "reason": "too_deep"}]}


@pytest.mark.parametrize("media", [JSON, NDJSON])
def test_numbers_reach_raw_exactly_as_sent(media: str) -> None:
    tail = ', "big": 18446744073709551616, "neg": -18446744073709551617, "f": 9007199254740993.0, "tiny": 1e-400'
    texts = [event_text(0, tail), event_text(1, ', "received_at": 5')]
    body = (f"[{', '.join(texts)}]" if media == JSON else "\n".join(texts)).encode()
    batch = split_events(body, media, STAMP, MAX_LINE_BYTES)
    assert batch.rejected == []
    first, second = batch.lines
    for number in (b'"big":18446744073709551616', b'"neg":-18446744073709551617', b'"f":9007199254740993.0',
                   b'"tiny":1e-400'):
        assert number in first
    assert json.loads(first)["big"] == 2**64
    assert json.loads(first)["received_at"] == STAMP
    assert json.loads(second)["received_at"] == STAMP  # the client's own value replaced
    assert second.count(b"received_at") == 1
    assert b"\n" not in first
    assert b" " not in first


def test_below_the_double_range_raw_holds_what_orjson_read() -> None:
    # The documented limit of the cheap pre-scan (ingester.rawjson): only 16+ digit numbers take
    # the exact path, so a lone 1e-400 is written as the double it reads as.
    [line] = split_events(event_text(0, ', "tiny": 1e-400').encode(), JSON, STAMP, MAX_LINE_BYTES).lines
    assert b'"tiny":0.0' in line


def test_exact_path_keeps_strings_and_rejects_like_the_fast_path() -> None:
    tail = ', "big": 18446744073709551616, "note": "a  b\\n } { \\" , "'
    body = f'[{event_text(0, tail)}, 42, {{"device_type": "toaster 2"}}, {{"x": 1}}]'.encode()
    batch = split_events(body, JSON, STAMP, MAX_LINE_BYTES)
    assert [(r.index, r.reason) for r in batch.rejected] == [
        (1, "not_an_object"), (2, "unknown_device_type"), (3, "missing_field")]
    assert json.loads(batch.lines[0])["note"] == 'a  b\n } { " , '


@pytest.mark.parametrize("protobuf", [False, True])
def test_otlp_deeply_nested_bodies_are_never_a_5xx(protobuf: bool) -> None:
    service, _ = ingester()
    value: dict[str, object] = {"stringValue": "leaf"}
    for _ in range(40 if protobuf else 90):  # protobuf's own limit is 100 message levels
        value = {"arrayValue": {"values": [value]}} if protobuf else {
            "kvlistValue": {"values": [{"key": "k", "value": value}]}}
    record = {"timeUnixNano": "1795633200000000000", "body": value}
    good = {"timeUnixNano": "1795633200000000000", "body": {"stringValue": "fine"}}
    document = {"resourceLogs": [{"scopeLogs": [{"logRecords": [good, record]}]}]}
    if protobuf:
        from google.protobuf.json_format import ParseDict  # noqa: PLC0415
        from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest  # noqa: PLC0415

        body = ParseDict(document, ExportLogsServiceRequest()).SerializeToString()
        media = next(iter(PROTOBUF_TYPES))
    else:
        body, media = json.dumps(document).encode(), JSON  # 360 levels: more than orjson writes
    reply, outcome = service.logs(Request(body, media, None, 1.0))
    assert reply.status == 200
    assert outcome.accepted == 1
    assert outcome.rejected == {"invalid_log_record": 1}
    # Deeper than any decoder follows: a 400 naming the problem, still not a 5xx.
    deep = b'{"resourceLogs": ' + b"[" * 20_000 + b"]" * 20_000 + b"}"
    reply, _ = service.logs(Request(deep, JSON, None, 1.0))
    assert reply.status == 400


def test_a_vertical_tab_line_is_an_event_not_a_blank_line() -> None:
    batch = split_events(f"{event_text(0)}\n\x0b\n \t\n{event_text(1)}".encode(), NDJSON, STAMP, MAX_LINE_BYTES)
    assert batch.rejected == [Rejected(1, "invalid_json")]
    assert batch.indices == [0, 2]
