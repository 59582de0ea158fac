"""Lifting promoted keys out of `extra`: the pure part of `signals backfill` (no AWS, no files).

A promotion is a key the parser used to keep in `extra` (unknown then) that the schema now types as
a column. For one verified file's rows, `lift` moves each such key's value into its column when the
value passes the column's validation (`shared.models.field_adapter`: the same type, range, choices
and lossless coercions the parser applies), and rewrites `extra` without it exactly as the parser
now would (`shared.models.extra_without`). A value that does not fit stays in `extra` and is
counted: a row that was verified is never quarantined by a later schema. Nothing else in the row
changes (lineage, `received_at`, the other columns), so the compacted row it produced is refreshed
in place, not duplicated (compactor.dedup, "refresh").
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
import pyarrow as pa
from pydantic import ValidationError

from shared.arrow import arrow_schema, arrow_type
from shared.models import extra_without, field_adapter
from shared.schema import EXTRA, FieldSpec, Kind, TableSpec


class CannotRewrite(ValueError):
    """The file holds something the current schema cannot carry (rewriting it would lose data)."""


@dataclass
class LiftResult:
    rows: int = 0
    lifted: Counter[str] = field(default_factory=Counter)  # column -> values moved out of extra
    unfit: Counter[str] = field(default_factory=Counter)  # column -> values left in extra
    table: pa.Table | None = None  # the rewritten rows, None when nothing was lifted


def promotable(table: TableSpec) -> tuple[FieldSpec, ...]:
    """The columns a device may send (not set by the pipeline): a key of `extra` by one of these names
    was unknown when its row was parsed."""
    return tuple(spec for spec in table.fields if not spec.derived)


def _arrow_value(spec: FieldSpec, value: Any) -> Any:
    if spec.kind is Kind.STRING_MAP:
        return list(value.items())
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return value


def conform(rows: pa.Table, table: TableSpec) -> pa.Table:
    """The rows in the table's current schema (a column the file predates reads as nulls)."""
    schema = arrow_schema(table)
    unknown = [name for name in rows.column_names if name not in schema.names]
    if unknown:
        raise CannotRewrite(f"columns {', '.join(unknown)} are not in the current {table.name} schema "
                            "(rewriting the file would drop them)")
    columns = [rows.column(target.name).cast(target.type) if target.name in rows.column_names
               else pa.nulls(rows.num_rows, target.type) for target in schema]
    return pa.Table.from_arrays(columns, schema=schema)


def lift(rows: pa.Table, table: TableSpec) -> LiftResult:
    """Move promoted keys out of `extra` into their columns; `table` is None when no row changed."""
    result = LiftResult(rows=rows.num_rows)
    if EXTRA.name not in rows.column_names:
        return result
    specs = {spec.name: spec for spec in promotable(table)}
    extras: list[str | None] = rows.column(EXTRA.name).to_pylist()
    current = {name: (rows.column(name).to_pylist() if name in rows.column_names else [None] * rows.num_rows)
               for name in specs}
    new_values: dict[str, dict[int, Any]] = {}
    new_extra: dict[int, str | None] = {}
    for index, extra in enumerate(extras):
        if not extra:
            continue
        record = orjson.loads(extra)
        if not isinstance(record, dict):
            raise CannotRewrite(f"row {index + 1}: extra is not a JSON object")
        taken: set[str] = set()
        for name in record.keys() & specs.keys():
            value = record[name]
            if value is None:
                continue
            spec = specs[name]
            if current[name][index] is not None:  # the column already holds a value: keep both as they are
                result.unfit[name] += 1
                continue
            try:
                checked = field_adapter(spec).validate_python(value)
            except ValidationError:
                result.unfit[name] += 1
                continue
            new_values.setdefault(name, {})[index] = _arrow_value(spec, checked)
            result.lifted[name] += 1
            taken.add(name)
        if taken:
            new_extra[index] = extra_without(extra, frozenset(taken))
    if not new_extra:
        return result
    out = conform(rows, table)
    for name, changes in new_values.items():
        position = out.schema.get_field_index(name)
        values = out.column(name).to_pylist()
        for index, value in changes.items():
            values[index] = value
        out = out.set_column(position, out.schema.field(position), pa.array(values, type=arrow_type(specs[name].kind)))
    position = out.schema.get_field_index(EXTRA.name)
    extras_out = [new_extra.get(index, extra) for index, extra in enumerate(extras)]
    out = out.set_column(position, out.schema.field(position), pa.array(extras_out, type=pa.string()))
    result.table = out
    return result
