"""Writers for one raw object's output: Parquet per (type, hour) and one gzip JSONL quarantine file.

Both write to local scratch files while the object streams, so memory stays bounded whatever the
object's size; `finish()` returns the finished files for the caller to publish (one PutObject per
file in S3, or a move into the output directory for `signals parse-file`).

Row groups: rows are buffered per (type, hour) as Arrow tables and written as one row group when a
buffer reaches ROW_GROUP_BYTES of Arrow data, or, when all buffers together pass BUFFER_BUDGET_BYTES,
the largest buffer is written early. That keeps row groups large enough for Athena's scans (tens of
MB before compression, capped at ROW_GROUP_ROWS) while peak memory stays within the budget.
"""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from parser.records import Rejection
from shared.arrow import arrow_schema
from shared.layout import Partition
from shared.schema import TABLES_BY_TYPE, Kind, TableSpec

ROW_GROUP_BYTES: Final = 32 * 1024 * 1024
ROW_GROUP_ROWS: Final = 1_000_000
BUFFER_BUDGET_BYTES: Final = 64 * 1024 * 1024
_QUARANTINE_CHUNK_BYTES: Final = 1024 * 1024


@dataclass(frozen=True)
class VerifiedFile:
    type_value: str
    partition: Partition
    path: Path
    rows: int


@dataclass(frozen=True)
class QuarantineFile:
    path: Path
    records: int


@dataclass
class _Buffer:
    writer: pq.ParquetWriter
    path: Path
    tables: list[pa.Table] = field(default_factory=list)
    buffered_rows: int = 0
    buffered_bytes: int = 0
    rows: int = 0


#: Columns whose values repeat a lot; the rest (ids, times, line numbers, free numbers) would only
#: pay for a dictionary that overflows and falls back to plain encoding anyway.
_UNIQUE_STRINGS: Final = frozenset({"event_id", "trace_id", "span_id", "body", "extra"})


def dictionary_columns(table: TableSpec) -> list[str]:
    columns: list[str] = []
    for spec in table.fields:
        bounded_int = spec.kind in (Kind.INT, Kind.INT32) and spec.minimum is not None and spec.maximum is not None
        repeating_string = spec.kind == Kind.STRING and spec.name not in _UNIQUE_STRINGS
        if spec.kind == Kind.STRING_MAP:
            columns += [f"{spec.name}.key_value.key", f"{spec.name}.key_value.value"]
        elif repeating_string or bounded_int or spec.name == "schema_version":
            columns.append(spec.name)
    return columns


def parquet_writer(path: Path | str, type_value: str) -> pq.ParquetWriter:
    """The Parquet settings every verified file uses."""
    table = TABLES_BY_TYPE[type_value]
    unit = "us" if table.timestamp_kind == Kind.TIMESTAMP_US else "ms"
    return pq.ParquetWriter(
        str(path),
        arrow_schema(table),
        compression="zstd",
        use_dictionary=dictionary_columns(table),
        write_statistics=True,
        coerce_timestamps=unit,
        allow_truncated_timestamps=False,
        use_deprecated_int96_timestamps=False,
        version="2.6",
    )


class VerifiedWriter:
    def __init__(self, scratch: Path) -> None:
        self._scratch = scratch
        self._buffers: dict[tuple[str, Partition], _Buffer] = {}
        self._buffered_bytes = 0

    def write(self, type_value: str, partition: Partition, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        key = (type_value, partition)
        buffer = self._buffers.get(key)
        if buffer is None:
            path = self._scratch / f"{type_value}-{partition.day}-{partition.hour}.parquet"
            buffer = self._buffers[key] = _Buffer(parquet_writer(path, type_value), path)
        size = table.nbytes
        buffer.tables.append(table)
        buffer.buffered_rows += table.num_rows
        buffer.buffered_bytes += size
        self._buffered_bytes += size
        if buffer.buffered_bytes >= ROW_GROUP_BYTES or buffer.buffered_rows >= ROW_GROUP_ROWS:
            self._flush(buffer)
        while self._buffered_bytes > BUFFER_BUDGET_BYTES:
            self._flush(max(self._buffers.values(), key=lambda item: item.buffered_bytes))

    def _flush(self, buffer: _Buffer) -> None:
        if not buffer.tables:
            return
        combined = pa.concat_tables(buffer.tables)
        buffer.writer.write_table(combined, row_group_size=ROW_GROUP_ROWS)
        buffer.rows += combined.num_rows
        self._buffered_bytes -= buffer.buffered_bytes
        buffer.tables, buffer.buffered_rows, buffer.buffered_bytes = [], 0, 0

    def withdraw(self, from_line: int) -> dict[str, int]:
        """Drop every row whose `source_line` is `from_line` or later (rare: a damaged gzip member).

        Files already holding such rows are rewritten row group by row group; rows per type removed.
        """
        removed: dict[str, int] = {}
        for key, buffer in list(self._buffers.items()):
            type_value = key[0]
            kept_tables = []
            for table in buffer.tables:
                kept = table.filter(pc.less(table.column("source_line"), from_line))
                removed[type_value] = removed.get(type_value, 0) + table.num_rows - kept.num_rows
                if kept.num_rows:
                    kept_tables.append(kept)
            self._buffered_bytes -= buffer.buffered_bytes
            buffer.tables = kept_tables
            buffer.buffered_rows = sum(table.num_rows for table in kept_tables)
            buffer.buffered_bytes = sum(table.nbytes for table in kept_tables)
            self._buffered_bytes += buffer.buffered_bytes
            if buffer.rows:
                buffer.writer.close()
                old = buffer.path.with_suffix(".withdrawn")
                buffer.path.rename(old)
                buffer.writer = parquet_writer(buffer.path, type_value)
                written = buffer.rows
                buffer.rows = 0
                source = pq.ParquetFile(old)
                for index in range(source.num_row_groups):
                    group = source.read_row_group(index)
                    kept = group.filter(pc.less(group.column("source_line"), from_line))
                    if kept.num_rows:
                        buffer.writer.write_table(kept, row_group_size=ROW_GROUP_ROWS)
                        buffer.rows += kept.num_rows
                source.close()
                old.unlink()
                removed[type_value] = removed.get(type_value, 0) + written - buffer.rows
            if not buffer.rows and not buffer.tables:
                buffer.writer.close()
                buffer.path.unlink(missing_ok=True)
                del self._buffers[key]
        return {type_value: count for type_value, count in removed.items() if count}

    def finish(self) -> list[VerifiedFile]:
        files: list[VerifiedFile] = []
        for (type_value, partition), buffer in sorted(self._buffers.items()):
            self._flush(buffer)
            buffer.writer.close()
            files.append(VerifiedFile(type_value, partition, buffer.path, buffer.rows))
        self._buffers.clear()
        return files

    def abort(self) -> None:
        for buffer in self._buffers.values():
            buffer.writer.close()
        self._buffers.clear()


class QuarantineWriter:
    """gzip JSONL, one record per line; compressed in memory and appended to its file in chunks."""

    def __init__(self, scratch: Path, source_key: str) -> None:
        self._path = scratch / "quarantine.jsonl.gz"
        self._source_key = source_key
        self._compressor: Any = None
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self.records = 0

    def write(self, item: Rejection) -> None:
        self._write_line(item.to_json(self._source_key) + b"\n")

    def _write_line(self, record: bytes) -> None:
        if self._compressor is None:
            self._compressor = zlib.compressobj(6, zlib.DEFLATED, zlib.MAX_WBITS | 16)
        compressed = self._compressor.compress(record)
        self.records += 1
        if compressed:
            self._pending.append(compressed)
            self._pending_bytes += len(compressed)
            if self._pending_bytes >= _QUARANTINE_CHUNK_BYTES:
                self._append()

    def _append(self) -> None:
        with self._path.open("ab") as file:
            file.writelines(self._pending)
        self._pending, self._pending_bytes = [], 0

    def withdraw(self, from_line: int) -> dict[str, int]:
        """Drop the records of lines `from_line` and later (rare: a damaged gzip member); removed per reason."""
        if self._compressor is None:
            return {}
        self._pending.append(self._compressor.flush())
        self._append()
        self._compressor = None
        self.records = 0
        old = self._path.with_suffix(".withdrawn")
        self._path.rename(old)
        removed: dict[str, int] = {}
        with gzip.open(old, "rb") as records:
            for record in records:
                fields = orjson.loads(record)
                if fields["line"] >= from_line:
                    removed[fields["reason"]] = removed.get(fields["reason"], 0) + 1
                else:
                    self._write_line(record)
        old.unlink()
        if self._compressor is None:  # nothing kept
            self._path.unlink(missing_ok=True)
        return removed

    def finish(self) -> QuarantineFile | None:
        if self._compressor is None:
            return None
        self._pending.append(self._compressor.flush())
        self._append()
        self._compressor = None
        return QuarantineFile(self._path, self.records)

    def abort(self) -> None:
        self._compressor = None
        self._pending = []
