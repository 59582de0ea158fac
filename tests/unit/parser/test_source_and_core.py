"""Streaming reads (gzip members, damage) and whole objects through the core to files."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from parser.core import ParseSettings, RawObject, parse_raw
from parser.source import Block, Damage, iter_blocks
from shared.arrow import arrow_schema
from shared.schema import DEVICE_TABLES, DeviceType
from tests.unit.parser.conftest import ARRIVAL_MS, block_of, line

LINES = [line(f"e{n}", battery_pct=n % 100) for n in range(1, 301)]
DATA = block_of(LINES)
RAW = RawObject("json_telemetry", "raw/json_telemetry/2026/11/25/19/x.gz", ARRIVAL_MS)


def lines_of(data: bytes, block_bytes: int = 1000) -> tuple[list[bytes], list[Damage]]:
    lines: list[bytes] = []
    damage: list[Damage] = []
    next_line = 1
    for item in iter_blocks(io.BytesIO(data), block_bytes):
        if isinstance(item, Block):
            assert item.first_line == next_line
            parts = item.data.split(b"\n")
            if item.data.endswith(b"\n"):
                parts.pop()
            assert item.line_count == len(parts)
            lines += parts
            next_line += len(parts)
        elif isinstance(item, Damage):
            damage.append(item)
    return lines, damage


@pytest.mark.parametrize("encode", [
    lambda data: data,
    gzip.compress,
    lambda data: gzip.compress(data[:5000]) + gzip.compress(data[5000:]) + gzip.compress(b""),  # members
    lambda data: gzip.compress(data) + b"\0" * 64,  # zero padding after the last member
])
def test_plain_gzip_and_multi_member_objects_give_every_line(encode: object) -> None:
    assert callable(encode)
    assert lines_of(encode(DATA)) == (LINES, [])


def test_a_last_line_without_newline_is_a_line() -> None:
    assert lines_of(DATA.rstrip(b"\n")) == (LINES, [])


def test_truncated_gzip_keeps_the_lines_before_the_damage() -> None:
    compressed = gzip.compress(DATA)
    lines, [damage] = lines_of(compressed[: len(compressed) // 2])
    assert 0 < len(lines) < len(LINES)
    assert lines == LINES[: len(lines)]
    assert damage.line == len(lines) + 1
    assert "truncated" in damage.message
    assert LINES[len(lines)].startswith(damage.partial)


def test_corrupt_gzip_keeps_the_lines_before_the_damage() -> None:
    compressed = bytearray(gzip.compress(DATA, compresslevel=1))
    compressed[len(compressed) // 2] ^= 0xFF
    lines, [damage] = lines_of(bytes(compressed))
    intact = [item for item in lines if item in LINES]
    assert len(intact) > 10
    assert lines[: len(intact)] == LINES[: len(intact)]
    assert "corrupt" in damage.message


def parse_bytes(data: bytes, tmp_path: Path, source: str = "json_telemetry", workers: int = 2) -> object:
    raw = RawObject(source, RAW.source_key, ARRIVAL_MS)
    return parse_raw(io.BytesIO(data), raw, tmp_path, ParseSettings(block_bytes=4096, workers=workers))


@pytest.mark.parametrize("workers", [1, 2])
def test_corrupt_object_quarantines_the_failed_member_as_corrupt_input(tmp_path: Path, workers: int) -> None:
    # Two intact members, then one cut short: its CRC and length never check out, so none of its
    # lines is verified (issue 12); each is quarantined with what could be inflated of it.
    compressed = gzip.compress(DATA[:8000]) + gzip.compress(DATA[8000:16000]) + gzip.compress(DATA[16000:])
    intact = DATA[:16000].count(b"\n")
    outcome = parse_raw(io.BytesIO(compressed[:-200]), RAW, tmp_path, ParseSettings(block_bytes=4096, workers=workers))
    assert outcome.rows == intact
    assert outcome.quarantine is not None
    records = [json.loads(item) for item in gzip.decompress(outcome.quarantine.path.read_bytes()).splitlines()]
    assert {record["reason"] for record in records} == {"corrupt_input"}
    assert [record["line"] for record in records] == list(range(intact + 1, intact + 1 + len(records)))
    assert outcome.counts.quarantined == {"corrupt_input": len(records)}
    *whole, partial = records
    assert [record["original"].encode() for record in whole] == LINES[intact:intact + len(whole)]
    assert LINES[intact + len(whole)].startswith(partial["original"].encode())
    assert records[0]["source_key"] == RAW.source_key
    assert set(records[0]) == {"reason", "errors", "source_key", "line", "original"}
    assert set(records[0]["errors"][0]) == {"field", "error", "message"}


def test_all_null_columns_keep_their_types_and_timestamps_are_int64_ms(tmp_path: Path) -> None:
    outcome = parse_raw(io.BytesIO(block_of([line("a"), line("b")])), RAW, tmp_path)
    [verified] = outcome.verified
    parquet = pq.ParquetFile(verified.path)
    assert parquet.schema_arrow == arrow_schema(DEVICE_TABLES[DeviceType.LOCK])
    table = parquet.read()
    assert table.column("battery_pct").type == pa.int64()
    assert table.column("battery_pct").null_count == 2
    for name in ("event_time", "received_at"):
        column = parquet.schema.column(parquet.schema_arrow.get_field_index(name))
        assert column.physical_type == "INT64"
        assert json.loads(column.logical_type.to_json())["timeUnit"] == "milliseconds"
    assert parquet.metadata.row_group(0).column(0).compression == "ZSTD"
    assert parquet.metadata.row_group(0).column(0).statistics is not None


def test_rows_per_partition_are_counted_and_files_are_per_type_and_hour(tmp_path: Path) -> None:
    lines = [line("a"), line("b", event_time="2026-11-25T17:00:00Z"), line("c", "bridge"), b"", b"{"]
    outcome = parse_raw(io.BytesIO(gzip.compress(block_of(lines))), RAW, tmp_path)
    assert outcome.counts.rows_out == {"lock": 2, "bridge": 1}
    assert outcome.counts.quarantined == {"invalid_json": 1}
    assert outcome.counts.blank_lines == 1
    assert sorted((f.type_value, f.partition.hour, f.rows) for f in outcome.verified) == [
        ("bridge", "18", 1), ("lock", "17", 1), ("lock", "18", 1)]
    assert outcome.bytes_in > 0
