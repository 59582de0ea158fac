"""The field-id ledger: `shared/iceberg_ids.json`, the committed record of every Iceberg id.

Iceberg reads a data file's columns by field id, so an id, once a deployed table has it, must never
name another column. `shared.schema` says which columns a table has; this ledger says which id each
one has, forever. `signals schema check` compares the two and `signals schema check --write`
records a compatible change (docs/schema-evolution.md):

- a new column gets the id after the table's `last-column-id` (a map column: its id, then the map's
  key and value ids), which is the id Iceberg's own `update_schema().add_column` (and Athena's
  `ALTER TABLE ... ADD COLUMNS`) assigns when the additions are applied in id order;
- no id is renumbered or reused; a column removed from `shared.schema` and listed in
  `shared.schema.RETIRED_FIELDS` is tombstoned: it moves to `dropped`, keeps its id, and stays in
  the deployed table (its old values are never deleted);
- each change bumps the table's `schema-version`.

The file per table (the Iceberg parts in Iceberg's own JSON, read with pyiceberg's classes):

    "int_lock_compacted_daily": {
      "schema-version": 1,                  # bumped by each recorded change
      "last-column-id": 22,                 # the highest id ever assigned (Iceberg's last-column-id)
      "fields": [ {"id": 1, "name": "event_id", "required": true, "type": "string"}, ... ],
      "dropped": [ ... tombstoned fields, same shape, plus "dropped-in" ... ],
      "partition-spec": {"spec-id": 0, "fields": [{"source-id": 19, "field-id": 1000, ...}]},
      "created": { Iceberg schema JSON the table was created with; never changes }
    }

`fields` are in `shared.schema` order; a deployed table holds them in id order (additions are
appended). `created` is what template.yaml's `IcebergInput` declares, so a schema change never
changes the CloudFormation resource (whose `MetadataOperation: CREATE` cannot evolve a table):
`signals schema apply` adds the rest.

Only the standard library at import (the compactor's Lambda reads ids from here); pyiceberg is
imported by the functions that return its objects.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

LEDGER_PATH: Final = Path(__file__).resolve().with_name("iceberg_ids.json")
LEDGER_FORMAT: Final = 1


class LedgerError(RuntimeError):
    """The ledger lacks what the code needs (run `signals schema check --write`)."""


@dataclass(frozen=True)
class LedgerTable:
    name: str
    schema_version: int
    last_column_id: int
    fields: tuple[Mapping[str, Any], ...]
    dropped: tuple[Mapping[str, Any], ...]
    partition_spec: Mapping[str, Any]
    created: Mapping[str, Any]

    @classmethod
    def from_json(cls, name: str, data: Mapping[str, Any]) -> LedgerTable:
        return cls(name=name, schema_version=int(data["schema-version"]),
                   last_column_id=int(data["last-column-id"]), fields=tuple(data["fields"]),
                   dropped=tuple(data.get("dropped") or ()), partition_spec=data["partition-spec"],
                   created=data["created"])

    def to_json(self) -> dict[str, Any]:
        return {"schema-version": self.schema_version, "last-column-id": self.last_column_id,
                "fields": [dict(f) for f in self.fields], "dropped": [dict(f) for f in self.dropped],
                "partition-spec": dict(self.partition_spec), "created": dict(self.created)}

    def ids(self) -> dict[str, int]:
        """Active column name -> field id."""
        return {str(f["name"]): int(f["id"]) for f in self.fields}

    def field(self, name: str) -> Mapping[str, Any] | None:
        return next((f for f in self.fields if f["name"] == name), None)

    def dropped_field(self, name: str) -> Mapping[str, Any] | None:
        return next((f for f in self.dropped if f["name"] == name), None)

    def schema(self) -> Any:
        """The `pyiceberg.schema.Schema` a deployed table has once applied: every field the ledger
        ever assigned (tombstoned ones included: they stay in the table), in id order."""
        from pyiceberg.schema import Schema  # noqa: PLC0415

        every = sorted((_iceberg_field(f) for f in (*self.fields, *self.dropped)), key=lambda f: int(f["id"]))
        return Schema.model_validate({"type": "struct", "schema-id": 0, "fields": every})

    def active_schema(self) -> Any:
        """The columns the code writes (`shared.schema` order), as a pyiceberg Schema."""
        from pyiceberg.schema import Schema  # noqa: PLC0415

        return Schema.model_validate({"type": "struct", "schema-id": 0,
                                      "fields": [_iceberg_field(f) for f in self.fields]})

    def created_schema(self) -> Any:
        from pyiceberg.schema import Schema  # noqa: PLC0415

        return Schema.model_validate(dict(self.created))

    def partition(self) -> Any:
        from pyiceberg.partitioning import PartitionSpec  # noqa: PLC0415

        return PartitionSpec.model_validate(dict(self.partition_spec))

    def fingerprint(self, glue_type_of: Mapping[str, str]) -> str:
        """Digest of the active columns as Glue shows a deployed Iceberg table: (id, name, Glue type)."""
        return columns_fingerprint((int(f["id"]), str(f["name"]), glue_type_of[str(f["name"])]) for f in self.fields)


def columns_fingerprint(columns: Iterable[tuple[int, str, str]]) -> str:
    """sha256 over sorted (field id, name, type) triples; the compactor compares two of these."""
    text = "\n".join(f"{i}\t{n}\t{t}" for i, n, t in sorted(columns))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _iceberg_field(field: Mapping[str, Any]) -> dict[str, Any]:
    """A ledger field without the ledger's own keys (`dropped-in`), as Iceberg's JSON has it."""
    return {k: v for k, v in field.items() if k in ("id", "name", "type", "required", "doc")}


@dataclass(frozen=True)
class Ledger:
    tables: Mapping[str, LedgerTable]

    def table(self, name: str) -> LedgerTable:
        found = self.tables.get(name)
        if found is None:
            raise LedgerError(f"table {name} is not in {LEDGER_PATH.name}: run `signals schema check --write` "
                              "and commit it")
        return found

    def to_json(self) -> dict[str, Any]:
        return {"format": LEDGER_FORMAT,
                "note": "Iceberg field ids of the compacted and audit tables: never renumbered, never reused. "
                        "Written by `signals schema check --write` (docs/schema-evolution.md); do not edit by hand.",
                "tables": {name: table.to_json() for name, table in self.tables.items()}}

    def dumps(self) -> str:
        return dumps(self.to_json())


def parse(text: str) -> Ledger:
    data = json.loads(text)
    if data.get("format") != LEDGER_FORMAT:
        raise LedgerError(f"ledger format {data.get('format')!r} is not {LEDGER_FORMAT}")
    return Ledger({name: LedgerTable.from_json(name, table) for name, table in data["tables"].items()})


@functools.cache
def load() -> Ledger:
    """The committed ledger (read once per process)."""
    return parse(LEDGER_PATH.read_text())


def dumps(data: Mapping[str, Any]) -> str:
    """JSON with one field per line, so a change is a one-line diff that `git apply` takes."""
    lines = ["{"]
    lines.append(f'  "format": {json.dumps(data["format"])},')
    lines.append(f'  "note": {json.dumps(data["note"])},')
    lines.append('  "tables": {')
    tables = list(data["tables"].items())
    for t_index, (name, table) in enumerate(tables):
        lines.append(f"    {json.dumps(name)}: {{")
        lines.append(f'      "schema-version": {table["schema-version"]},')
        lines.append(f'      "last-column-id": {table["last-column-id"]},')
        for key in ("fields", "dropped"):
            lines.append(f'      "{key}": [')
            items = table[key]
            lines.extend(_items(items, "        "))
            lines.append("      ],")
        lines.append(f'      "partition-spec": {_one_line(table["partition-spec"])},')
        created = table["created"]
        lines.append('      "created": {')
        lines.append(f'        "type": "struct", "schema-id": {created.get("schema-id", 0)}, "fields": [')
        fields = created["fields"]
        lines.extend(_items(fields, "          "))
        lines.append("        ]")
        lines.append("      }")
        lines.append("    }" + ("," if t_index < len(tables) - 1 else ""))
    lines.append("  }")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _items(items: Any, indent: str) -> list[str]:
    return [f"{indent}{_one_line(item)}{',' if i < len(items) - 1 else ''}" for i, item in enumerate(items)]


def _one_line(value: Any) -> str:
    return json.dumps(value, separators=(", ", ": "))
