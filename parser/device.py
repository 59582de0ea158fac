"""Device telemetry: a block of JSONL lines to validated Arrow tables per (type, hour), column-wise.

The fast path hands a whole block to Arrow's JSON reader with an explicit read schema and checks
every FieldSpec constraint with Arrow compute. Only the lines Arrow cannot read or the vectorized
checks do not accept go one by one through `shared.models.validate_device_event`, which has the
last word, so a record is judged exactly as everywhere else:

- Arrow reports the row of a parse error (`... in row N`) when the block is read as one chunk. The
  lines before it are read again as one segment, line N goes to the per-line path, and reading goes
  on after it, so one bad line costs one extra read of the lines before it, never a slow block.
- A failure without a row (an integer that overflows, invalid UTF-8, two objects on a line) is
  located by decoding or bisecting that segment.
- Rows that pass every check but carry something Arrow cannot hand back exactly (unknown fields for
  `extra`, attribute values that are not strings, integers or booleans) get those two columns from
  their own line; everything else about them stays vectorized.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import accumulate
from typing import Any, Final

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

from parser.records import (
    MAX_LINE_BYTES,
    QUARANTINE_PREVIEW_BYTES,
    JsonLineError,
    Rejection,
    decode_line,
    json_line_rejection,
    rejection,
)
from parser.vectorized_time import rfc3339_to_epoch_ms
from shared.arrow import arrow_schema
from shared.models import EventRejected, extra_json, validate_device_event
from shared.schema import (
    DEVICE_FIELDS,
    DEVICE_TABLES,
    ENVELOPE,
    DeviceType,
    FieldSpec,
    Kind,
    Reason,
)
from shared.timeparse import MAX_EPOCH_MS, MIN_EPOCH_MS, format_rfc3339_ms

HOUR_MS: Final = 3_600_000
DAY_MS: Final = 86_400_000
_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1
_EXACT_FLOAT_INT: Final = 2.0**53  # beyond this a float64 read of a JSON integer may have rounded
_ROW_IN_ERROR: Final = re.compile(r" in row (\d+)")
_SUSPICIOUS_LINE: Final = re.compile(rb"\n(?:[ \t\r\n]|null)")
#: A segment that fails without telling where is bisected down to this many lines, then read per line.
_PER_LINE_BELOW: Final = 16


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


# --- the read schema -----------------------------------------------------------------------------


def _read_type(spec: FieldSpec) -> pa.DataType:
    if spec.kind in (Kind.INT, Kind.INT32, Kind.FLOAT):
        return pa.float64()  # integers too: a float read never fails, integrality is checked after
    if spec.kind == Kind.BOOL:
        return pa.bool_()
    return pa.string()  # strings, and timestamps (RFC 3339; epoch ms numbers go per line)


def _typed_union() -> dict[str, FieldSpec]:
    union: dict[str, FieldSpec] = {}
    for specs in DEVICE_FIELDS.values():
        for spec in specs:
            known = union.setdefault(spec.name, spec)
            if known.kind != spec.kind:
                raise AssertionError(f"{spec.name} has two kinds across device types")
    return union


_ENVELOPE_READ: Final = tuple(spec for spec in ENVELOPE if spec.name != "attributes")
_TYPED_UNION: Final = _typed_union()
#: Declared columns; `attributes` and unknown fields are left to Arrow's inference.
READ_SCHEMA: Final = pa.schema(
    [pa.field(spec.name, _read_type(spec)) for spec in (*_ENVELOPE_READ, *_TYPED_UNION.values())]
)
_DECLARED: Final = frozenset(READ_SCHEMA.names)
_PARSE_OPTIONS: Final = pa_json.ParseOptions(explicit_schema=READ_SCHEMA, unexpected_field_behavior="infer")
#: For blocks whose event times are epoch milliseconds (JSON numbers) rather than RFC 3339 strings.
_EPOCH_PARSE_OPTIONS: Final = pa_json.ParseOptions(
    explicit_schema=pa.schema([pa.field(f.name, pa.float64()) if f.name == "event_time" else f for f in READ_SCHEMA]),
    unexpected_field_behavior="infer",
)
_EPOCH_EVENT_TIME_ERROR: Final = "Column(/event_time) changed from string to number"
#: Refused lines per block beyond which the rest of the block goes per line (each refusal costs a read).
_MAX_REFUSALS: Final = 256
_PROBE_OPTIONS: Final = pa_json.ParseOptions(explicit_schema=READ_SCHEMA, unexpected_field_behavior="ignore")
_PATCH_ATTEMPTS: Final = 4
_VECTOR_ATTRIBUTE_TYPES: Final = (pa.string(), pa.int64(), pa.bool_())
_STRING_MAP: Final = pa.map_(pa.string(), pa.string())
#: Output columns computed from the checks rather than copied from the read.
_COMPUTED: Final = frozenset({"event_time", "received_at", "extra", "source_key", "source_line"})


# --- blocks to Arrow segments --------------------------------------------------------------------


class _Lines:
    """Line access for a block, built only when something needs it."""

    def __init__(self, block: bytes) -> None:
        self.block = block
        parts = block.split(b"\n")
        if parts and parts[-1] == b"":
            parts.pop()
        self.items = parts
        self._lengths: list[int] | None = None  # cumulative lengths without newlines, from 0

    def start(self, index: int) -> int:
        if self._lengths is None:
            self._lengths = list(accumulate(map(len, self.items), initial=0))
        return self._lengths[index] + index  # plus one newline per line before it

    def span(self, first: int, stop: int) -> memoryview:
        end = min(self.start(stop), len(self.block))
        return memoryview(self.block)[self.start(first):end]

    def line_at_offset(self, offset: int) -> int:
        return bisect.bisect_right(range(len(self.items) + 1), offset, key=self.start) - 1


def _looks_plain(block: bytes) -> bool:
    """No line near the size limit. (Blank lines show as fewer rows than lines, checked after the read.)"""
    window = MAX_LINE_BYTES // 2
    # A line of MAX_LINE_BYTES or more covers a whole aligned window without a newline.
    return all(block.find(b"\n", start, start + window) != -1 for start in range(0, len(block) - window, window))


def _suspicious(block: bytes) -> bool:
    """A blank or whitespace-led line (Arrow skips blank lines, which shifts its row numbers) or a
    top-level `null` line (pyarrow's JSON reader can crash with a segfault on one)."""
    return (block[:1] in (b"\n", b" ", b"\t", b"\r") or block.startswith(b"null")
            or _SUSPICIOUS_LINE.search(block) is not None)


def _read(data: bytes | memoryview, options: pa_json.ParseOptions = _PARSE_OPTIONS) -> pa.Table:
    """One Arrow read as a single chunk, so `in row N` in an error counts from the start of `data`."""
    read_options = pa_json.ReadOptions(use_threads=False, block_size=max(len(data) + 1, 1 << 16))
    return pa_json.read_json(pa.BufferReader(pa.py_buffer(data)), read_options=read_options, parse_options=options)


@dataclass
class _Segments:
    """Arrow tables read from a block, each with the block-relative index of its first line."""

    tables: list[tuple[int, pa.Table]] = field(default_factory=list)
    per_line: list[int] = field(default_factory=list)  # block-relative line indexes


def _read_segments(block: bytes, line_count: int, result: BlockResult, first_line: int) -> tuple[
        _Segments, _Lines | None]:
    segments = _Segments()
    lines: _Lines | None = None
    pending: list[tuple[int, int]] = []
    plain = _looks_plain(block) and not _suspicious(block)
    if plain:
        try:
            table = _read(block)
        except pa.ArrowInvalid as exc:
            table = None
            if _EPOCH_EVENT_TIME_ERROR in str(exc):  # a fleet sending epoch ms: read the block that way
                try:
                    table = _read(block, _EPOCH_PARSE_OPTIONS)
                except (pa.ArrowInvalid, UnicodeDecodeError):
                    table = None
        except UnicodeDecodeError:
            table = None
        if table is not None and table.num_rows == line_count:
            segments.tables.append((0, table))
            return segments, None
    lines = _Lines(block)
    if plain:
        pending.extend(_locate_and_patch(lines, segments))
    else:
        pending.extend(_candidate_runs(lines, result, first_line, segments.per_line))
    while pending:
        start, stop = pending.pop()
        if start >= stop:
            continue
        data = lines.span(start, stop)
        try:
            table = _read(data)
        except pa.ArrowInvalid as exc:
            found = _ROW_IN_ERROR.findall(str(exc))
            row = int(found[-1]) if found else None
            if row is not None and start + row < stop:
                segments.per_line.append(start + row)
                pending.append((start + row + 1, stop))
                pending.append((start, start + row))
            else:
                _bisect(start, stop, pending, segments)
            continue
        except UnicodeDecodeError:
            try:
                bytes(data).decode("utf-8")
            except UnicodeDecodeError as decode_error:
                bad = lines.line_at_offset(lines.start(start) + decode_error.start)
                segments.per_line.append(bad)
                pending.append((bad + 1, stop))
                pending.append((start, bad))
            else:
                _bisect(start, stop, pending, segments)
            continue
        if table.num_rows != stop - start:  # e.g. two objects on one line: find it
            _bisect(start, stop, pending, segments)
            continue
        segments.tables.append((start, table))
    return segments, lines


def _error_row(exc: pa.ArrowInvalid) -> int | None:
    found = _ROW_IN_ERROR.findall(str(exc))
    return int(found[-1]) if found else None


def _locate_and_patch(lines: _Lines, segments: _Segments) -> list[tuple[int, int]]:
    """Read a block with bad lines in two passes instead of two reads per bad line.

    Pass 1 finds every line Arrow refuses by reading on from each error with a probe that ignores
    undeclared fields (cheaper, and it refuses the same lines: syntax, non-objects, wrong types of
    declared fields). Pass 2 reads the whole block once with the refused lines replaced by `{}`, so
    rows still match lines (those rows fail the checks and go per line anyway). A refusal the probe
    could not see (an attribute whose type changes between rows) is added and pass 2 retried.
    Returns the ranges still to read the careful way when this does not work out.
    """
    total = len(lines.items)
    refused: list[int] = []
    start = 0
    while start < total:
        try:
            _read(lines.span(start, total), _PROBE_OPTIONS)
        except pa.ArrowInvalid as exc:
            row = _error_row(exc)
            if row is None or start + row >= total:
                return _careful(refused, segments, total)
            refused.append(start + row)
            start += row + 1
            if len(refused) > _MAX_REFUSALS:  # mostly unreadable: the rest is cheaper line by line
                segments.per_line.extend(range(start, total))
                total = start
                break
            continue
        except UnicodeDecodeError:
            return _careful(refused, segments, total)
        break
    if total == 0:
        return []
    for _ in range(_PATCH_ATTEMPTS):
        bad = set(refused)
        items = lines.items[:total]
        for index in bad:
            items[index] = b"{}"
        patched = b"\n".join(items)
        try:
            table = _read(patched)
        except pa.ArrowInvalid as exc:
            row = _error_row(exc)
            if row is None or row >= total or row in bad:
                break
            refused.append(row)
            refused.sort()
            continue
        except UnicodeDecodeError:
            break
        if table.num_rows != total:
            break
        segments.per_line.extend(refused)
        segments.tables.append((0, table))
        return []
    return _careful(refused, segments, total)


def _careful(refused: list[int], segments: _Segments, total: int) -> list[tuple[int, int]]:
    """Hand the block to the careful loop: refused lines go per line, the ranges between them are read again."""
    ordered = sorted(set(refused))
    segments.per_line.extend(ordered)
    return [*_between(ordered, 0), (ordered[-1] + 1 if ordered else 0, total)]


def _between(refused: list[int], first: int) -> list[tuple[int, int]]:
    """The ranges of lines between refused ones, from `first` up to the last refused line."""
    ranges: list[tuple[int, int]] = []
    for index in refused:
        ranges.append((first, index))
        first = index + 1
    return ranges


def _bisect(start: int, stop: int, pending: list[tuple[int, int]], segments: _Segments) -> None:
    if stop - start <= _PER_LINE_BELOW:
        segments.per_line.extend(range(start, stop))
        return
    middle = (start + stop) // 2
    pending.append((middle, stop))
    pending.append((start, middle))


def _candidate_runs(lines: _Lines, result: BlockResult, first_line: int, per_line: list[int]) -> Iterator[
        tuple[int, int]]:
    """Runs of lines worth giving to Arrow; blank lines are counted, oversized lines rejected, and
    top-level `null` lines kept from Arrow (they crash its JSON reader) for the per-line path."""
    run_start: int | None = None
    for index, line in enumerate(lines.items):
        if len(line) > MAX_LINE_BYTES:
            result.rejections.append(too_large(first_line + index, line))
        elif line.lstrip().startswith(b"null"):
            per_line.append(index)
        elif line.strip():
            if run_start is None:
                run_start = index
            continue
        else:
            result.blank_lines += 1
        if run_start is not None:
            yield run_start, index
            run_start = None
    if run_start is not None:
        yield run_start, len(lines.items)


def too_large(line_number: int, line: bytes, size: int | None = None) -> Rejection:
    size = len(line) if size is None else size
    return rejection(Reason.RECORD_TOO_LARGE, line_number, line[:QUARANTINE_PREVIEW_BYTES],
                     ("$", "too_large", f"line is {size} bytes; the limit is {MAX_LINE_BYTES} (original truncated)"))


# --- per-line path -------------------------------------------------------------------------------


@dataclass
class _PerLineRows:
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
    row["extra"] = extra_json(record, device_type)
    row["source_key"] = ctx.source_key
    row["source_line"] = line_number
    return device_type.value, event_ms, row


def _datetime_ms(moment: datetime) -> int:
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


# --- column-wise validation ----------------------------------------------------------------------


def _column(table: pa.Table, name: str) -> pa.Array:
    """A column of a table with one chunk per column (`combine_chunks` was applied)."""
    index = table.schema.get_field_index(name)
    if index < 0:
        return pa.nulls(table.num_rows)
    column = table.column(index)
    return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()


def _ok_when_present(spec: FieldSpec, values: pa.Array) -> pa.Array:
    """True where the value is absent (null) or satisfies the field's type-level constraints."""
    conditions: list[pa.Array] = []
    if spec.kind in (Kind.INT, Kind.INT32):
        conditions.append(pc.equal(pc.floor(values), values))  # false for NaN
        conditions.append(pc.less(pc.abs(values), _EXACT_FLOAT_INT))  # false for infinities
    elif spec.kind == Kind.FLOAT:
        conditions.append(pc.is_finite(values))
    if spec.minimum is not None:
        conditions.append(pc.greater_equal(values, spec.minimum))
    if spec.maximum is not None:
        conditions.append(pc.less_equal(values, spec.maximum))
    if spec.choices:
        conditions.append(pc.is_in(values, value_set=pa.array(spec.choices, pa.string())))
    if spec.min_length is not None or spec.max_length is not None:
        length = pc.utf8_length(values)
        if spec.min_length is not None:
            conditions.append(pc.greater_equal(length, spec.min_length))
        if spec.max_length is not None:
            conditions.append(pc.less_equal(length, spec.max_length))
    if not conditions:
        return pa.array([True] * len(values), pa.bool_()) if len(values) else pa.array([], pa.bool_())
    combined = conditions[0]
    for condition in conditions[1:]:
        combined = pc.and_(combined, condition)
    return pc.fill_null(combined, True)


def _all(masks: Sequence[pa.Array], length: int) -> pa.Array:
    if not masks:
        return pc.fill_null(pa.nulls(length, pa.bool_()), True)
    combined = masks[0]
    for mask in masks[1:]:
        combined = pc.and_(combined, mask)
    return combined


def _any(masks: Sequence[pa.Array], length: int) -> pa.Array:
    if not masks:
        return pc.fill_null(pa.nulls(length, pa.bool_()), False)
    combined = masks[0]
    for mask in masks[1:]:
        combined = pc.or_(combined, mask)
    return combined


@dataclass
class _Checked:
    """A segment table after the column-wise checks."""

    table: pa.Table
    line_numbers: pa.Array  # int64, absolute
    device_type: pa.Array
    event_ms: pa.Array
    received_ms: pa.Array
    accepted: pa.Array  # bool: every constraint holds (per-line otherwise)
    needs_own_line: pa.Array  # bool: extra/attributes must come from the line itself
    simple_extra: pa.Array  # bool: rows whose unknown fields are all scalar columns (extra built from them)
    simple_columns: list[str]  # those scalar unknown columns
    in_window: pa.Array  # bool


def _event_ms(values: pa.Array) -> pa.Array:
    """Epoch ms from RFC 3339 strings, or from epoch-ms numbers (a block read with the epoch schema)."""
    if not pa.types.is_floating(values.type):
        return rfc3339_to_epoch_ms(values)
    whole = pc.and_(pc.equal(pc.floor(values), values),
                    pc.and_(pc.greater_equal(values, MIN_EPOCH_MS), pc.less(values, MAX_EPOCH_MS)))
    return pc.if_else(pc.fill_null(whole, False), pc.cast(values, pa.int64(), safe=False), pa.scalar(None, pa.int64()))


def _check_table(table: pa.Table, line_numbers: pa.Array, ctx: DeviceContext) -> _Checked:
    length = table.num_rows
    masks: list[pa.Array] = []
    for spec in _ENVELOPE_READ:
        if spec.kind == Kind.TIMESTAMP_MS or spec.name == "device_type":
            continue
        values = _column(table, spec.name)
        if spec.required:
            masks.append(pc.is_valid(values))
        masks.append(_ok_when_present(spec, values))
    event_ms = _event_ms(_column(table, "event_time"))
    masks.append(pc.is_valid(event_ms))
    received_text = _column(table, "received_at")
    parsed_received = rfc3339_to_epoch_ms(received_text)
    masks.append(pc.or_(pc.is_null(received_text), pc.is_valid(parsed_received)))
    received_ms = pc.fill_null(parsed_received, ctx.arrival_ms)

    device_type = _column(table, "device_type")
    typed_ok: list[pa.Array] = []
    foreign_present: list[pa.Array] = []
    present = {name: pc.is_valid(_column(table, name)) for name in _TYPED_UNION}
    for device_type_value, specs in DEVICE_FIELDS.items():
        is_type = pc.fill_null(pc.equal(device_type, device_type_value.value), False)
        own = {spec.name for spec in specs}
        checks = [_ok_when_present(spec, _column(table, spec.name)) for spec in specs]
        typed_ok.append(pc.and_(is_type, _all(checks, length)))
        foreign = [present[name] for name in _TYPED_UNION if name not in own and present[name].true_count]
        foreign_present.append(pc.and_(is_type, _any(foreign, length)))
    masks.append(_any(typed_ok, length))

    # Unknown fields Arrow read as strings, integers or booleans print back exactly as JSON, so their
    # `extra` is built from the columns; anything else (floats, objects, timestamps Arrow inferred
    # from strings, fields typed for another device type) is taken from the line itself.
    complex_parts: list[pa.Array] = [*foreign_present]
    simple_parts: list[pa.Array] = []
    simple_columns: list[str] = []
    for name in table.column_names:
        if name in _DECLARED or name == "attributes":
            continue
        values = _column(table, name)
        if pa.types.is_null(values.type):
            continue
        if values.type in _VECTOR_ATTRIBUTE_TYPES:
            simple_columns.append(name)
            simple_parts.append(pc.is_valid(values))
        else:
            complex_parts.append(pc.is_valid(values))
    if "attributes" in table.column_names:
        attributes = _column(table, "attributes")
        if pa.types.is_struct(attributes.type):
            for index in range(attributes.type.num_fields):
                child_type = attributes.type.field(index).type
                if child_type in _VECTOR_ATTRIBUTE_TYPES or pa.types.is_null(child_type):
                    continue
                complex_parts.append(pc.is_valid(pc.struct_field(attributes, [index])))
        elif not pa.types.is_null(attributes.type):
            masks.append(pc.is_null(attributes))  # not an object: per line (invalid_value)
    accepted = pc.fill_null(_all(masks, length), False)
    lower = pc.subtract(received_ms, ctx.past_ms)
    upper = pc.add(received_ms, ctx.future_ms)
    in_window = pc.fill_null(pc.and_(pc.greater_equal(event_ms, lower), pc.less_equal(event_ms, upper)), False)
    complex_rows = _any(complex_parts, length)
    simple_rows = _any(simple_parts, length)
    return _Checked(table, line_numbers, device_type, event_ms, received_ms, accepted,
                    needs_own_line=complex_rows, simple_extra=pc.and_(simple_rows, pc.invert(complex_rows)),
                    simple_columns=simple_columns, in_window=in_window)


def _attributes_map(attributes: pa.Array) -> pa.Array:
    """map<string,string> from an inferred struct: strings as they are, integers and booleans as JSON text."""
    length = len(attributes)
    if not pa.types.is_struct(attributes.type):
        offsets = pa.array([0] * (length + 1), pa.int32())
        return pa.MapArray.from_arrays(offsets, pa.array([], pa.string()), pa.array([], pa.string()),
                                       type=_STRING_MAP, mask=pc.is_null(attributes))
    names: list[str] = []
    children: list[pa.Array] = []
    for index in range(attributes.type.num_fields):
        child_field = attributes.type.field(index)
        if child_field.type not in _VECTOR_ATTRIBUTE_TYPES:
            continue  # rows with such values take their attributes from their own line
        names.append(child_field.name)
        children.append(pc.cast(pc.struct_field(attributes, [index]), pa.string()))
    width = len(children)
    if width == 0:
        counts = pa.array([0] * length, pa.int32())
        keys = values = pa.array([], pa.string())
    else:
        positions = _arange(length * width)
        row = pc.divide(positions, width)
        child_index = pc.subtract(positions, pc.multiply(row, width))
        column_major = pa.concat_arrays(children)
        row_major = pc.take(column_major, pc.add(pc.multiply(child_index, length), row))
        present = pc.is_valid(row_major)
        values = pc.filter(row_major, present)
        keys = pc.filter(pc.take(pa.array(names, pa.string()), child_index), present)
        counts = pc.cast(pc.is_valid(children[0]), pa.int32())
        for child in children[1:]:
            counts = pc.add(counts, pc.cast(pc.is_valid(child), pa.int32()))
    offsets = pa.concat_arrays([pa.array([0], pa.int32()), pc.cumulative_sum(counts).cast(pa.int32())])
    return pa.MapArray.from_arrays(offsets, keys, values, type=_STRING_MAP, mask=pc.is_null(attributes))


def _arange(count: int) -> pa.Array:
    """0, 1, ..., count - 1 as int64, built in Arrow rather than from a Python range."""
    return pc.subtract(pc.cumulative_sum(pc.fill_null(pa.nulls(count, pa.int64()), 1)), 1)


def _simple_extra(checked: _Checked, rows: pa.Array) -> pa.Array:
    """`extra` for rows whose unknown fields are all strings, integers or booleans (null otherwise)."""
    flagged = pc.take(checked.simple_extra, rows)
    if not checked.simple_columns or not flagged.true_count:
        return pa.nulls(len(rows), pa.string())
    positions = pc.indices_nonzero(flagged)
    picked = pc.take(rows, positions)
    columns = {name: pc.take(_column(checked.table, name), picked).to_pylist() for name in checked.simple_columns}
    texts = []
    for index in range(len(picked)):
        present = {name: values[index] for name, values in columns.items() if values[index] is not None}
        texts.append(orjson.dumps(present, option=orjson.OPT_SORT_KEYS).decode())
    return pc.replace_with_mask(pa.nulls(len(rows), pa.string()), flagged, pa.array(texts, pa.string()))


def _as_int64(values: pa.Array) -> pa.Array:
    return pc.cast(values, pa.int64(), safe=False)  # integral and within 2**53 already checked


def _build_type_table(checked: _Checked, rows: pa.Array, device_type: DeviceType, ctx: DeviceContext) -> pa.Table:
    schema = arrow_schema(DEVICE_TABLES[device_type])
    wanted = [name for name in schema.names if name in checked.table.column_names and name not in _COMPUTED]
    table = checked.table.select(wanted).take(rows)
    columns: list[pa.Array] = []
    for schema_field in schema:
        name = schema_field.name
        if name == "event_time":
            values = pc.cast(pc.take(checked.event_ms, rows), schema_field.type)
        elif name == "received_at":
            values = pc.cast(pc.take(checked.received_ms, rows), schema_field.type)
        elif name == "attributes":
            values = _attributes_map(_column(table, "attributes"))
        elif name == "extra":
            values = _simple_extra(checked, rows)
        elif name == "source_key":
            values = pa.array([ctx.source_key] * len(rows), pa.string())
        elif name == "source_line":
            values = pc.take(checked.line_numbers, rows)
        elif name == "schema_version":
            values = _as_int64(pc.fill_null(_column(table, name), 1.0))
        else:
            values = _column(table, name)
            if schema_field.type == pa.int64():
                values = _as_int64(values)
            elif values.type != schema_field.type:
                values = pc.cast(values, schema_field.type)
        columns.append(values)
    return pa.Table.from_arrays(columns, schema=schema)


def _own_line_columns(line: bytes, device_type: DeviceType) -> tuple[list[tuple[str, str]] | None, str | None] | None:
    """(attributes, extra) computed from the line itself; None when the line needs the full per-line path."""
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(record, dict):
        return None
    attributes = record.get("attributes")
    pairs: list[tuple[str, str]] | None = None
    if attributes is not None:
        if not isinstance(attributes, dict):
            return None
        pairs = []
        for key, value in attributes.items():
            if value is None:
                continue
            if isinstance(value, str):
                pairs.append((key, value))
            elif isinstance(value, bool | int | float):
                pairs.append((key, orjson.dumps(value).decode()))
            else:
                return None
    return pairs, extra_json(record, device_type)


def _row_with_own_line(row: dict[str, Any], line: bytes, device_type: DeviceType) -> dict[str, Any] | None:
    own = _own_line_columns(line, device_type)
    if own is None:
        return None
    row["attributes"], row["extra"] = own
    return row


def parse_block(block: bytes, first_line: int, ctx: DeviceContext, line_count: int | None = None) -> BlockResult:
    """Every line of `block` (numbered from `first_line`; `line_count` if known) to a row or a rejection."""
    result = BlockResult()
    if line_count is None:
        line_count = block.count(b"\n") + (0 if block.endswith(b"\n") else 1)
    segments, lines = _read_segments(block, line_count, result, first_line)
    per_line_indexes = list(segments.per_line)
    checked_parts: list[_Checked] = []
    for table, numbers in _combine(segments.tables, first_line):
        checked_parts.append(_check_table(table, numbers, ctx))

    slow = _PerLineRows()
    for checked in checked_parts:
        rejected = pc.invert(checked.accepted)
        if rejected.true_count:
            per_line_indexes.extend(n - first_line for n in pc.filter(checked.line_numbers, rejected).to_pylist())
        good = checked.accepted
        out_of_window = pc.and_(good, pc.invert(checked.in_window))
        if out_of_window.true_count:
            if lines is None:
                lines = _Lines(block)
            for number, event_ms, received_ms in zip(
                pc.filter(checked.line_numbers, out_of_window).to_pylist(),
                pc.filter(checked.event_ms, out_of_window).to_pylist(),
                pc.filter(checked.received_ms, out_of_window).to_pylist(),
                strict=True,
            ):
                line = lines.items[number - first_line]
                message = ctx.window_error(event_ms, received_ms) or "event_time out of range"
                result.rejections.append(rejection(Reason.EVENT_TIME_OUT_OF_RANGE, number, line,
                                                   ("event_time", "out_of_range", message)))
        good = pc.and_(good, checked.in_window)
        for device_type in DeviceType:
            of_type = pc.and_(good, pc.fill_null(pc.equal(checked.device_type, device_type.value), False))
            if not of_type.true_count:
                continue
            plain = pc.and_(of_type, pc.invert(checked.needs_own_line))
            if plain.true_count:
                rows = pc.indices_nonzero(plain)
                table = _build_type_table(checked, rows, device_type, ctx)
                result.tables.extend(_split_hours(device_type.value, table, pc.take(checked.event_ms, rows)))
            special = pc.and_(of_type, checked.needs_own_line)
            if special.true_count:
                if lines is None:
                    lines = _Lines(block)
                rows = pc.indices_nonzero(special)
                table = _build_type_table(checked, rows, device_type, ctx)
                for row, event_ms in zip(table.to_pylist(), pc.take(checked.event_ms, rows).to_pylist(),
                                         strict=True):
                    line = lines.items[row["source_line"] - first_line]
                    fixed = _row_with_own_line(row, line, device_type)
                    if fixed is None:
                        per_line_indexes.append(row["source_line"] - first_line)
                    else:
                        slow.add(device_type.value, event_ms, fixed)

    if per_line_indexes:
        if lines is None:
            lines = _Lines(block)
        for index in sorted(set(per_line_indexes)):
            outcome = validate_line(lines.items[index], first_line + index, ctx)
            if isinstance(outcome, Rejection):
                result.rejections.append(outcome)
            else:
                type_value, event_ms, row = outcome
                slow.add(type_value, event_ms, row)
    result.tables.extend(slow.tables())
    return result


def _combine(tables: list[tuple[int, pa.Table]], first_line: int) -> list[tuple[pa.Table, pa.Array]]:
    """Segments of one block as few tables as their (inferred) schemas allow, each with its line numbers."""
    ordered = sorted(tables, key=lambda item: item[0])
    numbered = [(table, pc.add(_arange(table.num_rows), first_line + start)) for start, table in ordered]
    if len(numbered) <= 1:
        return [(table.combine_chunks(), numbers) for table, numbers in numbered]
    try:
        combined = pa.concat_tables([table for table, _ in numbered], promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return [(table.combine_chunks(), numbers) for table, numbers in numbered]
    return [(combined.combine_chunks(), pa.concat_arrays([numbers for _, numbers in numbered]))]


def _split_hours(type_value: str, table: pa.Table, event_ms: pa.Array) -> Iterator[tuple[str, int, pa.Table]]:
    hours = pc.multiply(pc.divide(event_ms, HOUR_MS), HOUR_MS)
    distinct = pc.unique(hours).to_pylist()
    if len(distinct) == 1:
        yield type_value, int(distinct[0]), table
        return
    for hour in distinct:
        yield type_value, int(hour), table.filter(pc.equal(hours, hour))


def per_line_only(lines: Iterable[tuple[int, bytes]], ctx: DeviceContext) -> BlockResult:
    """The reference path: every line through the per-line validator (tests compare against it)."""
    result = BlockResult()
    slow = _PerLineRows()
    for number, line in lines:
        if not line.strip():
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

