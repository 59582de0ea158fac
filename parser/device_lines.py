"""Device lines one at a time: the per-line judgement every record can fall back to.

`validate_line` decodes a line strictly, validates it with `shared.models.validate_device_event`
(the same judgement as everywhere else) and checks the event-time window; it returns the row for
its table or a rejection with the quarantine reason. The column-wise parser (`parser.device`) sends
only the lines it cannot decide here, and tests compare it with `per_line_only`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import pyarrow as pa

from parser.records import (
    JSON_SPACE,
    MAX_LINE_BYTES,
    QUARANTINE_PREVIEW_BYTES,
    JsonLineError,
    Rejection,
    decode_line,
    json_line_rejection,
    rejection,
)
from shared.arrow import arrow_schema
from shared.models import EventRejected, extra_json, validate_device_event
from shared.schema import DEVICE_TABLES, DeviceType, Kind, Reason
from shared.timeparse import format_rfc3339_ms

HOUR_MS: Final = 3_600_000
DAY_MS: Final = 86_400_000
_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1


@dataclass(frozen=True)
class DeviceContext:
    """What every line of one raw object shares."""

    source_key: str
    arrival_ms: int
    past_ms: int
    future_ms: int

    def window_error(self, event_ms: int, received_ms: int) -> str | None:
        if received_ms - self.past_ms <= event_ms <= received_ms + self.future_ms:
            return None
        return (
            f"event_time {format_rfc3339_ms(event_ms)} is outside {self.past_ms / DAY_MS:g} days before to "
            f"{self.future_ms / DAY_MS:g} days after received_at {format_rfc3339_ms(received_ms)}"
        )


@dataclass
class BlockResult:
    """One block's output: tables keyed by (type, hour start in epoch ms), rejections, blank lines."""

    tables: list[tuple[str, int, pa.Table]] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    blank_lines: int = 0


def too_large(line_number: int, line: bytes, size: int | None = None) -> Rejection:
    size = len(line) if size is None else size
    return rejection(Reason.RECORD_TOO_LARGE, line_number, line[:QUARANTINE_PREVIEW_BYTES],
                     ("$", "too_large", f"line is {size} bytes; the limit is {MAX_LINE_BYTES} (original truncated)"))


@dataclass
class PerLineRows:
    rows: dict[tuple[str, int], list[dict[str, Any]]] = field(default_factory=dict)

    def add(self, type_value: str, event_ms: int, row: dict[str, Any]) -> None:
        self.rows.setdefault((type_value, event_ms // HOUR_MS * HOUR_MS), []).append(row)

    def tables(self) -> Iterator[tuple[str, int, pa.Table]]:
        for (type_value, hour_ms), rows in self.rows.items():
            schema = arrow_schema(DEVICE_TABLES[DeviceType(type_value)])
            yield type_value, hour_ms, pa.Table.from_pylist(rows, schema=schema)


def validate_line(line: bytes, line_number: int, ctx: DeviceContext) -> tuple[str, int, dict[str, Any]] | Rejection:
    """The per-line judgement of one device line: (type, event ms, row) or a rejection."""
    try:
        record = decode_line(line)
    except JsonLineError as exc:
        return json_line_rejection(exc, line_number, line)
    try:
        model = validate_device_event(record)
    except EventRejected as exc:
        return Rejection(exc.reason, tuple(exc.errors), line_number, line)
    assert isinstance(record, dict)  # validate_device_event accepts objects only
    device_type = DeviceType(model.device_type)  # type: ignore[attr-defined]
    table = DEVICE_TABLES[device_type]
    row: dict[str, Any] = {}
    for spec in table.fields:
        if spec.name in ("extra", "source_key", "source_line"):
            continue
        value = getattr(model, spec.name, None)
        if spec.kind == Kind.INT and isinstance(value, int) and not _INT64_MIN <= value <= _INT64_MAX:
            return rejection(Reason.INVALID_VALUE, line_number, line,
                             (spec.name, "int64_range", "integer does not fit in 64 bits"))
        row[spec.name] = value
    event_ms = _datetime_ms(row["event_time"])
    received_ms = ctx.arrival_ms if row["received_at"] is None else _datetime_ms(row["received_at"])
    problem = ctx.window_error(event_ms, received_ms)
    if problem is not None:
        return rejection(Reason.EVENT_TIME_OUT_OF_RANGE, line_number, line, ("event_time", "out_of_range", problem))
    row["received_at"] = datetime.fromtimestamp(received_ms / 1000, tz=UTC)
    row["attributes"] = list(row["attributes"].items()) if row["attributes"] is not None else None
    row["extra"] = extra_json(record, device_type, line)
    row["source_key"] = ctx.source_key
    row["source_line"] = line_number
    return device_type.value, event_ms, row


def _datetime_ms(moment: datetime) -> int:
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def per_line_only(lines: Iterable[tuple[int, bytes]], ctx: DeviceContext) -> BlockResult:
    """The reference path: every line through the per-line validator (tests compare against it)."""
    result = BlockResult()
    slow = PerLineRows()
    for number, line in lines:
        if not line.strip(JSON_SPACE):
            result.blank_lines += 1
            continue
        if len(line) > MAX_LINE_BYTES:
            result.rejections.append(too_large(number, line))
            continue
        outcome = validate_line(line, number, ctx)
        if isinstance(outcome, Rejection):
            result.rejections.append(outcome)
        else:
            slow.add(outcome[0], outcome[1], outcome[2])
    result.tables.extend(slow.tables())
    return result


