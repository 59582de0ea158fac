"""Compare `shared.schema` with the field-id ledger and record compatible changes.

Each difference is classified (docs/schema-evolution.md):

- `new table`: a table the ledger lacks; its ids are assigned as Iceberg assigns them when it
  creates a table (columns 1..n, then map keys and values), so the created table has them;
- `addition`: a new optional column: the id after the table's last one (a map: its key and value
  take the two after that);
- `promotion`: a type change Iceberg allows in place, int -> long or float -> double, same id;
- `relaxed`: a required column made optional (Iceberg allows it);
- `tombstone`: a column removed from `shared.schema` and listed in `RETIRED_FIELDS`: it keeps its id
  and stays in the deployed table (old values readable), the pipeline stops writing it;
- `incompatible`: anything else (another type change, a narrowing, a new required column, an
  optional column made required, a drop that is not tombstoned, a tombstoned name used again):
  `signals schema check` exits 1 and names the safe alternatives.

Every recorded change bumps that table's `schema-version` by one.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from shared.iceberg import IcebergTable, iceberg_type_of, partition_column
from shared.ledger import Ledger, LedgerTable
from shared.schema import AUDIT_TABLES, COMPACTED_TABLES, RETIRED_FIELDS, FieldSpec, Kind

ADDITION: Final = "addition"
NEW_TABLE: Final = "new table"
PROMOTION: Final = "promotion"
RELAXED: Final = "relaxed"
TOMBSTONE: Final = "tombstone"
INCOMPATIBLE: Final = "incompatible"

#: Iceberg's in-place type promotions (https://iceberg.apache.org/spec/#schema-evolution) that our kinds can express.
PROMOTIONS: Final = {("int", "long"), ("float", "double")}


@dataclass(frozen=True)
class Change:
    table: str
    column: str
    kind: str
    detail: str
    field_id: int | None = None
    alternatives: str = ""

    def line(self) -> str:
        where = f"{self.table}.{self.column}" if self.column else self.table
        ident = f" (id {self.field_id})" if self.field_id is not None else ""
        text = f"{self.kind:<12} {where}{ident}: {self.detail}"
        if self.alternatives:
            text += f"\n             safe alternatives: {self.alternatives}"
        return text


@dataclass
class Comparison:
    changes: list[Change] = field(default_factory=list)
    ledger: Ledger | None = None  # the ledger with every compatible change recorded

    @property
    def incompatible(self) -> list[Change]:
        return [c for c in self.changes if c.kind == INCOMPATIBLE]

    @property
    def pending(self) -> list[Change]:
        return [c for c in self.changes if c.kind != INCOMPATIBLE]


def iceberg_tables() -> tuple[IcebergTable, ...]:
    return (*COMPACTED_TABLES, *AUDIT_TABLES)


def _type_json(kind: Kind, key_id: int = 0, value_id: int = 0) -> Any:
    return iceberg_type_of(kind, key_id, value_id).model_dump(by_alias=True)


def _field_json(field_id: int, spec: FieldSpec, key_id: int = 0, value_id: int = 0) -> dict[str, Any]:
    return {"id": field_id, "name": spec.name, "type": _type_json(spec.kind, key_id, value_id),
            "required": spec.required}


def new_table(table: IcebergTable, version: int = 1) -> LedgerTable:
    """Ids as Iceberg assigns them when it creates the table (pyiceberg's own assignment)."""
    from pyiceberg.schema import Schema, assign_fresh_schema_ids  # noqa: PLC0415
    from pyiceberg.types import NestedField  # noqa: PLC0415

    draft = Schema(*(NestedField(field_id=index, name=spec.name, field_type=iceberg_type_of(spec.kind, -1, -2),
                                 required=spec.required)
                     for index, spec in enumerate(table.fields, start=1)))
    fresh = assign_fresh_schema_ids(draft)
    fields = [f.model_dump(by_alias=True, exclude_none=True) for f in fresh.fields]
    ids = {f["name"]: f["id"] for f in fields}
    column = partition_column(table)
    return LedgerTable(
        name=table.name, schema_version=version, last_column_id=fresh.highest_field_id, fields=tuple(fields),
        dropped=(), created={"type": "struct", "schema-id": 0, "fields": fields},
        partition_spec={"spec-id": 0, "fields": [{"source-id": ids[column], "field-id": 1000,
                                                  "transform": "identity", "name": column}]},
    )


def _primitive_name(type_json: Any) -> str:
    return type_json if isinstance(type_json, str) else str(type_json.get("type"))


def _same_type(old: Any, new: Any) -> bool:
    """Equal types, map key/value ids aside (the ledger keeps the old ids)."""
    if isinstance(old, dict) and isinstance(new, dict):
        strip = {"key-id", "value-id"}
        return {k: v for k, v in old.items() if k not in strip} == {k: v for k, v in new.items() if k not in strip}
    return bool(old == new)


def compare_table(table: IcebergTable, old: LedgerTable | None,
                  retired: Iterable[str] = ()) -> tuple[list[Change], LedgerTable]:
    """The changes from the ledger's table to `shared.schema`'s, and the ledger table recording the compatible ones."""
    if old is None:
        fresh = new_table(table)
        return [Change(table.name, "", NEW_TABLE, f"{len(fresh.fields)} columns, ids 1..{fresh.last_column_id}")], fresh
    changes: list[Change] = []
    next_id = itertools.count(old.last_column_id + 1)
    retired = set(retired)
    fields: list[dict[str, Any]] = []
    for spec in table.fields:
        before = old.field(spec.name)
        if before is None:
            tomb = old.dropped_field(spec.name)
            if tomb is not None:
                changes.append(Change(table.name, spec.name, INCOMPATIBLE,
                                      f"the name was tombstoned (id {tomb['id']}) and its column is still in the table",
                                      alternatives="give the new column another name"))
                continue
            if spec.required:
                changes.append(Change(table.name, spec.name, INCOMPATIBLE,
                                      "a new required column: the rows already in the table have no value for it",
                                      alternatives="declare it optional (required=False; null in old rows)"))
                continue
            field_id = next(next_id)
            key_id, value_id = (next(next_id), next(next_id)) if spec.kind is Kind.STRING_MAP else (0, 0)
            fields.append(_field_json(field_id, spec, key_id, value_id))
            changes.append(Change(table.name, spec.name, ADDITION,
                                  f"new optional {_primitive_name(fields[-1]['type'])}", field_id=field_id))
            continue
        current = dict(before)
        new_type = _type_json(spec.kind, *_map_ids(before))
        if not _same_type(before["type"], new_type):
            pair = (_primitive_name(before["type"]), _primitive_name(new_type))
            if pair in PROMOTIONS:
                current["type"] = new_type
                changes.append(Change(table.name, spec.name, PROMOTION, f"{pair[0]} -> {pair[1]}",
                                      field_id=int(before["id"])))
            else:
                narrowing = pair in {(b, a) for a, b in PROMOTIONS}
                changes.append(Change(
                    table.name, spec.name, INCOMPATIBLE,
                    f"{'narrowing' if narrowing else 'type change'} {pair[0]} -> {pair[1]}: files already written "
                    f"hold {pair[0]} under id {before['id']}",
                    field_id=int(before["id"]),
                    alternatives=(f"keep {pair[0]} and bound the values (minimum/maximum)" if narrowing else
                                  f"add a new optional column (e.g. {spec.name}_{pair[1]}) and keep {spec.name}; "
                                  "Iceberg promotes in place only int -> long and float -> double")))
        if bool(before["required"]) != spec.required:
            if spec.required:
                changes.append(Change(table.name, spec.name, INCOMPATIBLE,
                                      "an optional column made required: old rows may hold nulls",
                                      field_id=int(before["id"]),
                                      alternatives="keep it optional and validate it at ingest"))
            else:
                current["required"] = False
                changes.append(Change(table.name, spec.name, RELAXED, "required -> optional",
                                      field_id=int(before["id"])))
        fields.append(current)
    names = set(table.column_names)
    dropped = [dict(f) for f in old.dropped]
    version = old.schema_version + 1
    for before in old.fields:
        if before["name"] in names:
            continue
        if before["name"] in retired and not before["required"]:
            dropped.append({**before, "dropped-in": version})
            changes.append(Change(table.name, str(before["name"]), TOMBSTONE,
                                  "removed from shared.schema; the column and its values stay in the table",
                                  field_id=int(before["id"])))
        else:
            why = ("a required column cannot be tombstoned (new rows would have no value)" if before["required"]
                   else "removed from shared.schema but not tombstoned")
            changes.append(Change(table.name, str(before["name"]), INCOMPATIBLE, why, field_id=int(before["id"]),
                                  alternatives="keep the field in shared.schema, or (optional columns) list it in "
                                               f"shared.schema.RETIRED_FIELDS[{table.name!r}] to tombstone it"))
            fields.append(dict(before))  # kept in the ledger until the change is resolved
    compatible = [c for c in changes if c.kind != INCOMPATIBLE]
    if not compatible:
        return changes, old
    return changes, LedgerTable(
        name=old.name, schema_version=version, last_column_id=max(old.last_column_id, *(int(f["id"]) for f in fields),
                                                                  *_nested_ids(fields)),
        fields=tuple(fields), dropped=tuple(dropped), partition_spec=old.partition_spec, created=old.created)


def _map_ids(field_json: Mapping[str, Any]) -> tuple[int, int]:
    kind = field_json["type"]
    if isinstance(kind, dict) and kind.get("type") == "map":
        return int(kind["key-id"]), int(kind["value-id"])
    return 0, 0


def _nested_ids(fields: Sequence[Mapping[str, Any]]) -> list[int]:
    return [i for f in fields for i in _map_ids(f) if i]


def compare(ledger: Ledger | None, tables: Sequence[IcebergTable] | None = None,
            retired: Mapping[str, Sequence[str]] | None = None) -> Comparison:
    """Every table of `shared.schema` (or `tables`) against the ledger."""
    tables = iceberg_tables() if tables is None else tables
    retired = RETIRED_FIELDS if retired is None else retired
    result = Comparison()
    recorded: dict[str, LedgerTable] = dict(ledger.tables) if ledger else {}
    for table in tables:
        changes, updated = compare_table(table, recorded.get(table.name), retired.get(table.name, ()))
        result.changes.extend(changes)
        recorded[table.name] = updated
    for name in sorted(set(recorded) - {t.name for t in tables}):
        result.changes.append(Change(name, "", INCOMPATIBLE, "a table in the ledger that shared.schema no longer "
                                     "declares (its data would be orphaned)",
                                     alternatives="keep the table in shared.schema"))
    result.ledger = Ledger(recorded)
    return result
