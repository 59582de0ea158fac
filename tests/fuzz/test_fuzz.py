"""Fuzz tier (issue 12): hostile bodies and raw objects through the ingester and the parser.

Properties: no exception escapes, no 5xx for data, every line ends in one place (rows +
quarantined + blank = lines), and no verified row carries content that was not sent.

`make test` runs a bounded number of examples (a few seconds); `make fuzz` runs many more:
`SIGNALS_FUZZ_EXAMPLES` sets the count per property (default 25 here, 2,000 in `make fuzz`).
"""

from __future__ import annotations

import gzip
import io
import json
import os
import tempfile
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingester.firehose import FirehoseWriter
from ingester.service import Ingester, Request
from parser.core import ParseSettings, RawObject, parse_raw
from parser.device import parse_block
from parser.device_lines import DAY_MS, DeviceContext, per_line_only
from shared.timeparse import format_rfc3339_ms
from tests.unit.ingester.fakes import RecordingSink

EXAMPLES = int(os.environ.get("SIGNALS_FUZZ_EXAMPLES", "25"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize="SIGNALS_FUZZ_EXAMPLES" not in os.environ,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
ARRIVAL_MS = 1_795_633_200_000
CTX = DeviceContext("raw/json_telemetry/2026/11/25/19/fuzz.gz", ARRIVAL_MS, 30 * DAY_MS, DAY_MS)

_SCALARS = st.one_of(
    st.none(), st.booleans(), st.text(max_size=8),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
)


def _nested(depth: int, leaf: str = "1") -> str:
    return "[" * depth + leaf + "]" * depth


_NUMBER_TEXT = st.sampled_from([
    "18446744073709551616", "-9223372036854775809", "9007199254740993.0", "1e400", "-1e400", "1e-400",
    "NaN", "Infinity", "-0.0", "0.30000000000000001", "4.9e-324", "123456789012345678901234567890",
])
_HOSTILE_VALUE = st.one_of(
    _NUMBER_TEXT,
    st.integers(min_value=200, max_value=1500).map(_nested),
    st.sampled_from([254, 255, 1024, 1025, 4095, 8191, 20_000]).map(_nested),  # pyarrow dies near 20,000
    st.integers(min_value=250, max_value=9000).map(lambda depth: "[" * depth),  # never closed
    st.integers(min_value=200, max_value=400).map(lambda depth: '{"a":' * depth + "1" + "}" * depth),
    st.sampled_from(['"\\ud800"', '"\\u0000"', '"\x00"', '"a\rb"', '"é"']),
)


@st.composite
def event_texts(draw: st.DrawFn) -> str:
    """One event as text: a sane envelope, sometimes a hostile value in an unknown field or attribute."""
    fields = {
        "event_id": draw(st.text(min_size=1, max_size=6)), "device_id": "d-1",
        "device_type": draw(st.sampled_from(["lock", "bridge", "video_doorbell", "toaster"])),
        "event_name": "x", "event_time": "2026-11-25T18:59:30.250Z",
        "battery_pct": draw(_SCALARS),
    }
    text = json.dumps(fields, separators=(",", ":"))[:-1]  # json: integers beyond 64 bits too
    if draw(st.booleans()):
        hostile = draw(_HOSTILE_VALUE)
        text += f',"x":{hostile}' if draw(st.booleans()) else f',"attributes":{{"a":{hostile}}}'
    return text + "}"


def _body_bytes(data: st.DataObject) -> tuple[bytes, str, list[str] | None]:
    """A body, its media type, and the texts of its events when they are intact (no bytes injected)."""
    texts = data.draw(st.lists(event_texts(), min_size=1, max_size=6))
    texts += data.draw(st.lists(st.sampled_from(["42", "null", "[1,2]", '{"device_type":', "\x00"]), max_size=2))
    ndjson = data.draw(st.booleans())
    separator = data.draw(st.sampled_from(["\n", "\r\n", "\n\n"])) if ndjson else ", "
    body = (separator.join(texts) if ndjson else f"[{separator.join(texts)}]").encode()
    if data.draw(st.booleans()):
        body = b"\xef\xbb\xbf" + body
    intact: list[str] | None = texts
    if data.draw(st.booleans()):  # invalid UTF-8 somewhere
        position = data.draw(st.integers(min_value=0, max_value=len(body)))
        body = body[:position] + data.draw(st.sampled_from([b"\xff", b"\xed\xa0\x80", b"\xc3"])) + body[position:]
        intact = None
    return body, "application/x-ndjson" if ndjson else "application/json", intact


_DOUBLE_MIN_NORMAL = Decimal("2.2250738585072014e-308")


def _decimal(text: str) -> Decimal | float:
    """A decimal exactly, except below the double's normal range, where raw may hold the double
    orjson read (`1e-400` as 0.0: the documented limit of `ingester.rawjson.may_round`)."""
    value = Decimal(text)
    return float(value) if value and abs(value) < _DOUBLE_MIN_NORMAL else value


def _exact(text: str | bytes) -> object:
    """A JSON value with every number exact (integers as int, decimals as Decimal)."""
    return json.loads(text, parse_float=_decimal)


@FUZZ
@given(st.data())
def test_ingester_never_answers_5xx_for_data_and_raw_holds_only_what_was_sent(data: st.DataObject) -> None:
    body, media, intact = _body_bytes(data)
    encoding = None
    if data.draw(st.booleans()):
        body, encoding = gzip.compress(body), "gzip"
        if data.draw(st.booleans()):  # truncated or bit-flipped gzip
            flipped = bytearray(body)
            flipped[data.draw(st.integers(min_value=0, max_value=len(flipped) - 1))] ^= 1 << data.draw(
                st.integers(min_value=0, max_value=7))
            body = bytes(flipped)[:data.draw(st.integers(min_value=1, max_value=len(flipped)))]
    sink = RecordingSink()
    service = Ingester(FirehoseWriter(sink), telemetry_stream="t", otlp_stream="o", max_body_bytes=1 << 20,
                       wall_clock=lambda: ARRIVAL_MS / 1000)
    reply, _ = service.telemetry(Request(body, media, encoding, 1.0))
    assert reply.status in (200, 400, 413)
    answer = orjson.loads(reply.body)
    if reply.status != 200:
        return
    written = [line for line in b"".join(sink.written).split(b"\n") if line]
    assert len(written) == answer["accepted"]
    if intact is None:
        return
    sent = []
    for text in intact:
        try:
            sent.append(_exact(text))
        except (ValueError, RecursionError):  # not JSON, or deeper than Python's json follows
            continue
    for line in written:  # raw holds each accepted event with every value exactly as sent
        event = _exact(line)
        assert isinstance(event, dict)
        assert event.pop("received_at") == format_rfc3339_ms(ARRIVAL_MS)
        assert event in [{key: value for key, value in item.items() if key != "received_at"}
                         for item in sent if isinstance(item, dict)]


_LINE_PIECES = st.one_of(
    event_texts().map(str.encode),
    st.sampled_from([b"", b"   ", b"null", b"[1]", b'{"a":', b"\x00\x00", b"\xff\xfe", b"NaN",
                     b'{"device_type":"lock","battery_pct":NaN}']),
    st.binary(max_size=20),
)


def _rows(tables: list[tuple[str, int, pa.Table]]) -> list[dict[str, Any]]:
    return [row for _, _, table in tables for row in table.to_pylist()]


@FUZZ
@given(st.lists(_LINE_PIECES, min_size=1, max_size=12), st.sampled_from([b"\n", b"\r\n"]))
def test_parser_block_path_agrees_with_the_line_path_and_every_line_ends_somewhere(
        pieces: list[bytes], newline: bytes) -> None:
    lines = [piece.replace(b"\n", b" ").replace(b"\r", b" ") for piece in pieces]
    block = newline.join(lines) + newline
    result = parse_block(block, 1, CTX)
    reference = per_line_only(enumerate((item + newline[:-1] for item in lines), start=1), CTX)
    rows = _rows(result.tables)
    assert len(rows) + len(result.rejections) + result.blank_lines == len(lines)
    assert sorted((item.line, item.reason) for item in result.rejections) == sorted(
        (item.line, item.reason) for item in reference.rejections)
    sent_ids = {orjson.loads(item).get("event_id") for item in lines if _is_object(item)}
    assert {row["event_id"] for row in rows} <= sent_ids


def _is_object(text: bytes) -> bool:
    try:
        return isinstance(orjson.loads(text), dict)
    except orjson.JSONDecodeError:
        return False


@FUZZ
@given(st.lists(event_texts().map(str.encode), min_size=5, max_size=40), st.data())
def test_damaged_gzip_never_publishes_a_row_that_was_not_sent(lines: list[bytes], data: st.DataObject) -> None:
    members = data.draw(st.integers(min_value=1, max_value=3))
    step = max(1, len(lines) // members)
    compressed = b"".join(gzip.compress(b"\n".join(lines[start:start + step]) + b"\n")
                          for start in range(0, len(lines), step))
    damaged = bytearray(compressed)
    damage = data.draw(st.sampled_from(["flip", "truncate", "both", "none"]))
    if damage in ("flip", "both"):
        damaged[data.draw(st.integers(min_value=0, max_value=len(damaged) - 1))] ^= 1 << data.draw(
            st.integers(min_value=0, max_value=7))
    if damage in ("truncate", "both"):
        del damaged[data.draw(st.integers(min_value=1, max_value=len(damaged) - 1)):]
    with tempfile.TemporaryDirectory() as scratch:
        raw = RawObject("json_telemetry", CTX.source_key, ARRIVAL_MS)
        outcome = parse_raw(io.BytesIO(bytes(damaged)), raw, Path(scratch),
                            ParseSettings(block_bytes=data.draw(st.sampled_from([512, 1 << 20])), workers=2))
        rows = [row for item in outcome.verified for row in pq.read_table(item.path).to_pylist()]
    for row in rows:  # every verified row is the line sent at that position
        sent = json.loads(lines[int(row["source_line"]) - 1])
        assert row["event_id"] == sent["event_id"]
        assert row.get("battery_pct", sent.get("battery_pct")) == sent.get("battery_pct")
    if damage == "none":
        assert outcome.rows + outcome.quarantined + outcome.counts.blank_lines == len(lines)
