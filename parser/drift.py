"""Schema drift: the unknown top-level keys a raw object's device rows carried in `extra`.

For each verified file of a device type, the rows whose `extra` is set are read back (three columns
of the scratch Parquet file just written: `extra`, `firmware_version`, `received_at`) and each key is
counted per inferred kind: `int`, `float`, `bool`, `string`, `object`, `array` (JSON null is not a
kind: a null value says nothing about the type). One JSON line per (device type, key, kind):

    {"device_type": "lock", "key": "auto_lock_delay_s", "kind": "int", "rows": 30, "type_rows": 100,
     "first_seen": "...Z", "last_seen": "...Z", "firmware_versions": ["4.2.0"], "source_key": "raw/..."}

`rows` are the rows carrying the key with that kind, `type_rows` all rows of the type in the
object; first/last seen are the rows' `received_at`. The lines go to one small gzip object per raw
object under `schema_drift/day=/hour=/` of the quarantine bucket (the arrival hour, the raw object's
output name: a reparse overwrites it), read by the `schema_drift` Glue table of the audit database,
and only when the object has drift at all: a clean object costs nothing. Cost otherwise: reading one
column of rows already in the scratch directory and a JSON parse of each non-null `extra`.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import orjson
import pyarrow.compute as pc
import pyarrow.parquet as pq

from parser.output import VerifiedFile
from shared.jsontext import json_kind
from shared.schema import OTLP_TYPE

#: Firmware versions listed per key and object (the rest are counted in `firmware_versions_more`).
MAX_FIRMWARE_VERSIONS: Final = 20

@dataclass
class _Tally:
    rows: int = 0
    first_ms: int | None = None
    last_ms: int | None = None
    firmware: set[str] = field(default_factory=set)

    def add(self, seen_ms: int | None, firmware: str | None) -> None:
        self.rows += 1
        if seen_ms is not None:
            self.first_ms = seen_ms if self.first_ms is None else min(self.first_ms, seen_ms)
            self.last_ms = seen_ms if self.last_ms is None else max(self.last_ms, seen_ms)
        if firmware is not None:
            self.firmware.add(firmware)


def _iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def drift_lines(files: Sequence[VerifiedFile], source_key: str) -> list[dict[str, Any]]:
    """The drift lines of one raw object's verified device files (empty when nothing was unknown)."""
    tallies: dict[tuple[str, str, str], _Tally] = {}
    type_rows: dict[str, int] = {}
    for verified in files:
        if verified.type_value == OTLP_TYPE:
            continue
        type_rows[verified.type_value] = type_rows.get(verified.type_value, 0) + verified.rows
        table = pq.read_table(verified.path, columns=["extra", "firmware_version", "received_at"])
        table = table.filter(pc.is_valid(table.column("extra")))
        if table.num_rows == 0:
            continue
        received = pc.cast(table.column("received_at"), "int64").to_pylist()
        for extra, firmware, seen in zip(table.column("extra").to_pylist(),
                                         table.column("firmware_version").to_pylist(), received, strict=True):
            for key, value in _object(extra):
                kind = json_kind(value)
                if kind is not None:
                    tally = tallies.setdefault((verified.type_value, key, kind), _Tally())
                    tally.add(seen, firmware)
    lines = []
    for (device_type, key, kind), tally in sorted(tallies.items()):
        versions = sorted(tally.firmware)
        lines.append({"device_type": device_type, "key": key, "kind": kind, "rows": tally.rows,
                      "type_rows": type_rows[device_type], "first_seen": _iso(tally.first_ms),
                      "last_seen": _iso(tally.last_ms), "firmware_versions": versions[:MAX_FIRMWARE_VERSIONS],
                      "firmware_versions_more": max(0, len(versions) - MAX_FIRMWARE_VERSIONS),
                      "source_key": source_key})
    return lines


def _object(text: str) -> Iterable[tuple[str, Any]]:
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return ()
    return value.items() if isinstance(value, dict) else ()


def encode(lines: Sequence[dict[str, Any]]) -> bytes:
    """gzip JSON lines (what the `schema_drift` table's JSON SerDe reads)."""
    return gzip.compress(b"".join(orjson.dumps(line) + b"\n" for line in lines), mtime=0)
