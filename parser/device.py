"""Device telemetry: a block of JSONL lines to validated Arrow tables per (type, hour), column-wise.

`parser.device_read` turns a block into Arrow tables; here every FieldSpec constraint of
`shared.schema` is checked with Arrow compute (required fields, lengths, enums, ranges, lossless
integers, RFC 3339 times, the event-time window), the rows are split by device type and hour and
built in each table's exact schema. Only the lines Arrow refused or the checks did not accept go
one by one through `parser.device_lines.validate_line`, which has the last word, so a record is
judged exactly as everywhere else. Rows that pass but carry something Arrow cannot hand back
exactly (unknown fields that are not plain scalars, attribute values that are not strings,
integers or booleans) get `extra` and `attributes` from their own line; the rest stays vectorized.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from parser.device_lines import HOUR_MS, BlockResult, DeviceContext, PerLineRows, validate_line
from parser.device_read import DECLARED_COLUMNS, ENVELOPE_READ, TYPED_UNION, Lines, read_segments
from parser.records import Rejection, rejection
from parser.vectorized_time import rfc3339_to_epoch_ms
from shared.arrow import arrow_schema
from shared.jsondepth import too_deep
from shared.models import extra_json
from shared.schema import DEVICE_FIELDS, DEVICE_TABLES, DeviceType, FieldSpec, Kind, Reason
from shared.timeparse import MAX_EPOCH_MS, MIN_EPOCH_MS

_EXACT_FLOAT_INT: Final = 2.0**53  # beyond this a float64 read of a JSON integer may have rounded
_VECTOR_ATTRIBUTE_TYPES: Final = (pa.string(), pa.int64(), pa.bool_())
_STRING_MAP: Final = pa.map_(pa.string(), pa.string())
#: Output columns computed from the checks rather than copied from the read.
_COMPUTED: Final = frozenset({"event_time", "received_at", "extra", "source_key", "source_line"})


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
    for spec in ENVELOPE_READ:
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
    present = {name: pc.is_valid(_column(table, name)) for name in TYPED_UNION}
    for device_type_value, specs in DEVICE_FIELDS.items():
        is_type = pc.fill_null(pc.equal(device_type, device_type_value.value), False)
        own = {spec.name for spec in specs}
        checks = [_ok_when_present(spec, _column(table, spec.name)) for spec in specs]
        typed_ok.append(pc.and_(is_type, _all(checks, length)))
        foreign = [present[name] for name in TYPED_UNION if name not in own and present[name].true_count]
        foreign_present.append(pc.and_(is_type, _any(foreign, length)))
    masks.append(_any(typed_ok, length))

    # Unknown fields Arrow read as strings, integers or booleans print back exactly as JSON, so their
    # `extra` is built from the columns; anything else (floats, objects, timestamps Arrow inferred
    # from strings, fields typed for another device type) is taken from the line itself.
    complex_parts: list[pa.Array] = [*foreign_present]
    simple_parts: list[pa.Array] = []
    simple_columns: list[str] = []
    for name in table.column_names:
        if name in DECLARED_COLUMNS or name == "attributes":
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
    """(attributes, extra) computed from the line itself; None when the line needs the full per-line path
    (for one nested deeper than MAX_DEPTH, which Arrow may read but the per-line path calls too_deep)."""
    if too_deep(line):
        return None
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
    return pairs, extra_json(record, device_type, line)


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
    segments, lines = read_segments(block, line_count, result, first_line)
    per_line_indexes = list(segments.per_line)
    checked_parts: list[_Checked] = []
    for table, numbers in _combine(segments.tables, first_line):
        checked_parts.append(_check_table(table, numbers, ctx))

    slow = PerLineRows()
    for checked in checked_parts:
        rejected = pc.invert(checked.accepted)
        if rejected.true_count:
            per_line_indexes.extend(n - first_line for n in pc.filter(checked.line_numbers, rejected).to_pylist())
        good = checked.accepted
        out_of_window = pc.and_(good, pc.invert(checked.in_window))
        if out_of_window.true_count:
            if lines is None:
                lines = Lines(block)
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
                    lines = Lines(block)
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
            lines = Lines(block)
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


