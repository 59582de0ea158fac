"""Hostile raw lines and damaged objects (issue 12): a bad line costs only itself, never the object."""

from __future__ import annotations

import gzip
import io
import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pyarrow.parquet as pq
import pytest

from parser import source
from parser.core import ParseOutcome, ParseSettings, RawObject, parse_raw
from parser.device import parse_block
from parser.device_lines import DeviceContext, per_line_only
from parser.device_read import ARROW_SAFE_DEPTH
from tests.unit.parser.conftest import ARRIVAL_MS, block_of, line, reasons_of, rows_of

RAW = RawObject("json_telemetry", "raw/json_telemetry/2026/11/25/19/x.gz", ARRIVAL_MS)
REPO = Path(__file__).resolve().parents[3]


def deep_line(depth: int, where: str = "extra") -> bytes:
    nested = b"[" * depth + b"]" * depth
    tail = b',"x":' + nested if where == "extra" else b',"attributes":{"a":' + nested + b"}"
    return line("deep")[:-1] + tail + b"}"


def parse(data: bytes, tmp_path: Path, workers: int = 2, raw: RawObject = RAW) -> ParseOutcome:
    tmp_path.mkdir(parents=True, exist_ok=True)
    return parse_raw(io.BytesIO(data), raw, tmp_path, ParseSettings(block_bytes=64 * 1024, workers=workers))


@pytest.mark.parametrize("depth", [254, 255, 1024, 1100])
@pytest.mark.parametrize("where", ["extra", "attributes"])
def test_a_deep_line_is_quarantined_and_its_neighbours_verify(depth: int, where: str, ctx: DeviceContext) -> None:
    lines = [line(f"e{n}") for n in range(50)] + [deep_line(depth, where)] + [line(f"e{n}") for n in range(50, 100)]
    result = parse_block(block_of(lines), 1, ctx)
    assert reasons_of(result) == {51: "too_deep"}
    assert len(rows_of(result)) == 100
    [rejection] = result.rejections
    assert rejection.errors[0].error == "too_deep"
    assert "254 levels" in rejection.errors[0].message
    reference = per_line_only(enumerate(lines, start=1), ctx)
    assert reasons_of(reference) == reasons_of(result)
    assert rows_of(reference) == rows_of(result)


def test_a_line_within_the_depth_limit_still_verifies(ctx: DeviceContext) -> None:
    result = parse_block(block_of([line("a"), deep_line(253)]), 1, ctx)
    assert result.rejections == []
    assert orjson.loads(rows_of(result)[2][2]["extra"])["x"] == orjson.loads(b"[" * 253 + b"]" * 253)


def test_many_brackets_but_shallow_verifies_on_the_per_line_path(ctx: DeviceContext) -> None:
    wide = line("wide")[:-1] + b',"x":[' + b",".join([b"{}"] * 400) + b"]}"
    result = parse_block(block_of([line("a"), wide]), 1, ctx)
    assert result.rejections == []
    assert len(json.loads(rows_of(result)[2][2]["extra"])["x"]) == 400


def test_20000_levels_never_reach_pyarrow_and_the_process_survives(tmp_path: Path) -> None:
    # pyarrow 26's read_json crashes the process (SIGSEGV) near 20,000 levels: run it in a child.
    lines = [line(f"e{n}") for n in range(50)] + [deep_line(20_000)] + [line(f"e{n}") for n in range(50, 100)]
    raw = tmp_path / "raw" / "json_telemetry" / "deep.jsonl.gz"
    raw.parent.mkdir(parents=True)
    raw.write_bytes(gzip.compress(block_of(lines)))
    done = subprocess.run([sys.executable, "-m", "signals.cli", "parse-file", str(raw), "--out", str(tmp_path / "out")],
                          cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    rows = sum(pq.read_table(path).num_rows for path in (tmp_path / "out").rglob("*.parquet"))
    assert rows == 100
    [quarantine] = (tmp_path / "out").rglob("*.jsonl.gz")
    [record] = [json.loads(item) for item in gzip.decompress(quarantine.read_bytes()).splitlines()]
    assert (record["reason"], record["line"]) == ("too_deep", 51)


@pytest.mark.parametrize("bad", [
    b"[" * 8191,  # the deepest a line shorter than ARROW_SAFE_DEPTH bytes can go (Arrow reads it)
    b'{"x":' + b"[" * 8180,
    line("b")[:-1] + b',"x":' + b"[" * 4000 + b"]" * 4000 + b"}",
    line("b")[:-1] + b',"attributes":{"a":' + b'{"a":' * 1300 + b"1" + b"}" * 1300 + b"}}",
])
def test_deep_lines_arrow_still_reads_end_as_too_deep_on_both_paths(tmp_path: Path, bad: bytes,
                                                                     ctx: DeviceContext) -> None:
    assert len(bad) < ARROW_SAFE_DEPTH
    lines = [line("a"), bad, line("c")] * 200
    outcome = parse(block_of(lines), tmp_path)
    assert outcome.rows == 400
    assert outcome.counts.quarantined == {"too_deep": 200}
    reference = per_line_only(enumerate(lines[:3], start=1), ctx)
    assert reasons_of(reference) == reasons_of(parse_block(block_of(lines[:3]), 1, ctx)) == {2: "too_deep"}


def test_deep_otlp_line_is_quarantined(tmp_path: Path) -> None:
    good = b'{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"stringValue":"ok"}}]}]}]}'
    deep = b'{"resourceLogs":' + b"[" * 3000 + b"]" * 3000 + b"}"
    raw = RawObject("otlp_logs", "raw/otlp_logs/2026/11/25/19/x.gz", ARRIVAL_MS)
    outcome = parse(block_of([good, deep, good]), tmp_path, raw=raw)
    assert outcome.rows == 2
    assert outcome.counts.quarantined == {"too_deep": 1}


def test_bom_before_the_first_line_and_cr_only_line_ends(ctx: DeviceContext, tmp_path: Path) -> None:
    lines = [line(f"e{n}") for n in range(5)]
    outcome = parse(b"\xef\xbb\xbf" + b"\r".join(lines) + b"\r", tmp_path)
    assert outcome.rows == 5
    assert outcome.quarantined == 0
    gz = parse(gzip.compress(b"\xef\xbb\xbf" + block_of(lines)), tmp_path / "gz")
    assert gz.rows == 5
    assert gz.quarantined == 0


def test_not_an_object_carries_an_error_and_invalid_utf8_is_said_plainly(ctx: DeviceContext) -> None:
    surrogate = line("s", note="x")[:-2] + b'\xed\xa0\x80"}'
    result = parse_block(block_of([b"[1, 2]", surrogate, line("a")[:-2] + b'\xff"}']), 1, ctx)
    by_line = {item.line: item for item in result.rejections}
    assert by_line[1].reason == "not_an_object"
    assert by_line[1].errors
    assert by_line[1].errors[0].message == "expected a JSON object, got an array"
    assert by_line[2].reason == "invalid_json"
    assert "not valid UTF-8" in by_line[2].errors[0].message
    assert "surrogate" in by_line[2].errors[0].message
    assert "surrogates not allowed" not in by_line[2].errors[0].message
    assert "byte 0xff" in by_line[3].errors[0].message


@pytest.mark.parametrize("bad", [
    b',"\x84x":1}',  # found by the fuzz tier: Arrow reads the key, then cannot give its name back
    b',"attributes":{"\x84":"v"}}',
    b',"n":{"\x84":1}}',
])
def test_a_key_that_is_not_utf8_is_one_invalid_json_line(ctx: DeviceContext, bad: bytes) -> None:
    lines = [line("a"), line("b")[:-1] + bad, line("z")]
    result = parse_block(block_of(lines), 1, ctx)
    assert reasons_of(result) == {2: "invalid_json"}
    assert len(rows_of(result)) == 2
    assert reasons_of(per_line_only(enumerate(lines, start=1), ctx)) == reasons_of(result)


def test_an_integer_beyond_int64_is_invalid_value(ctx: DeviceContext) -> None:
    big = line("big")[:-1] + b',"battery_pct":18446744073709551616}'
    result = parse_block(block_of([line("a"), big]), 1, ctx)
    assert reasons_of(result) == {2: "invalid_value"}


SENT = [line(f"e{n:05d}", battery_pct=n % 100) for n in range(2000)]
SENT_BY_ID = {f"e{n:05d}": orjson.loads(text) for n, text in enumerate(SENT)}


def _verified_rows(outcome: ParseOutcome) -> list[dict[str, Any]]:
    return [row for item in outcome.verified for row in pq.read_table(item.path).to_pylist()]


@pytest.mark.parametrize("seed", range(4))
def test_a_flipped_bit_never_publishes_an_altered_row(tmp_path: Path, seed: int) -> None:
    # 40 trials in all (10 per seed), each a 2,000-event object with one bit flipped.
    data = gzip.compress(block_of(SENT))
    rng = random.Random(seed)
    for trial in range(10):
        flipped = bytearray(data)
        flipped[rng.randrange(10, len(data))] ^= 1 << rng.randrange(8)
        outcome = parse(bytes(flipped), tmp_path / f"{seed}-{trial}", workers=1 + trial % 2)
        rows = _verified_rows(outcome)
        for row in rows:
            assert row["battery_pct"] == SENT_BY_ID[str(row["event_id"])]["battery_pct"]
            assert line(str(row["event_id"]), battery_pct=row["battery_pct"]) == SENT[row["source_line"] - 1]
        if outcome.counts.quarantined:
            # One member: nothing from it is verified; its lines are quarantined as far as they inflate.
            assert rows == []
            assert set(outcome.counts.quarantined) == {"corrupt_input"}
        else:  # the flip hit a field gzip does not check (the header's mtime, OS): every row intact
            assert len(rows) == len(SENT)


@pytest.mark.parametrize("spool_bytes", [source.SPOOL_MEMORY_BYTES, 1000])
def test_intact_members_before_a_damaged_one_verify(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    spool_bytes: int) -> None:
    monkeypatch.setattr(source, "SPOOL_MEMORY_BYTES", spool_bytes)  # 1000: the member spills to a file
    members = [gzip.compress(block_of(SENT[start:start + 500])) for start in range(0, 2000, 500)]
    damaged = bytearray(members[2])
    damaged[len(damaged) - 6] ^= 0x10  # inside the CRC-32 trailer: everything inflates, the check fails
    outcome = parse(members[0] + members[1] + bytes(damaged) + members[3], tmp_path)
    assert sorted(row["source_line"] for row in _verified_rows(outcome)) == list(range(1, 1001))
    assert outcome.counts.quarantined == {"corrupt_input": 500}
    quarantine = outcome.quarantine
    assert quarantine is not None
    records = [json.loads(item) for item in gzip.decompress(quarantine.path.read_bytes()).splitlines()]
    assert [record["line"] for record in records] == list(range(1001, 1501))
    assert [record["original"].encode() for record in records] == SENT[1000:1500]  # original bytes kept
    assert "incorrect data check" in records[0]["errors"][0]["message"]


def test_otlp_rows_from_a_failed_member_are_withdrawn_too(tmp_path: Path) -> None:
    def request(number: int) -> bytes:
        records = [{"timeUnixNano": str(1_795_633_190_000_000_000 + n), "body": {"stringValue": f"r{number}-{n}"}}
                   for n in range(3)]
        return orjson.dumps({"resourceLogs": [{"scopeLogs": [{"logRecords": records}]}]})

    lines = [request(number) for number in range(40)]
    second = bytearray(gzip.compress(block_of(lines[20:])))
    second[-7] ^= 0x01  # the CRC-32
    raw = RawObject("otlp_logs", "raw/otlp_logs/2026/11/25/19/x.gz", ARRIVAL_MS)
    outcome = parse(gzip.compress(block_of(lines[:20])) + bytes(second), tmp_path, raw=raw)
    assert outcome.rows == 60  # 3 log records per line, first member only
    assert sorted({row["source_line"] for row in _verified_rows(outcome)}) == list(range(1, 21))
    assert outcome.counts.quarantined == {"corrupt_input": 20}


@pytest.mark.parametrize("odd", [b"\x0b", b"\x0c", b" \x0b ", b"\x0c\x0b"])
def test_vertical_tab_or_form_feed_is_not_a_blank_line(ctx: DeviceContext, odd: bytes) -> None:
    # Found by the fuzz tier: Python's bytes.strip() strips \v and \f, JSON does not count them as
    # whitespace; the block path called such a line invalid_json, the per-line path blank.
    for lines in ([odd], [line("a"), odd, b" \t", line("b")]):
        result = parse_block(block_of(lines), 1, ctx)
        reference = per_line_only(enumerate(lines, start=1), ctx)
        assert reasons_of(result) == reasons_of(reference)
        assert "invalid_json" in reasons_of(result).values()
        assert result.blank_lines == reference.blank_lines == (1 if len(lines) > 1 else 0)


def test_extra_keeps_numbers_a_double_would_round(ctx: DeviceContext) -> None:
    exact = line("b")[:-1] + b',"big":18446744073709551616,"f":9007199254740993.0,"n":{"z":1,"a":"\\u00e9"},"e":null}'
    lines = [line("a"), exact, line("c")[:-1] + b',"id":12345678901234567,"t":"\\u00e9"}']
    rows = rows_of(parse_block(block_of(lines), 1, ctx))
    assert rows[2][2]["extra"] == '{"big":18446744073709551616,"f":9007199254740993.0,"n":{"a":"é","z":1}}'
    assert rows[3][2]["extra"] == '{"id":12345678901234567,"t":"é"}'
    assert rows == rows_of(per_line_only(enumerate(lines, start=1), ctx))
