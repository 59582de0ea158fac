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

Only the standard library, never pyiceberg (the compactor's Lambda reads ids and checks live schemas
from here); `shared.iceberg` turns a ledger table into pyiceberg's objects.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
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

    def fingerprint(self, glue_type_of: Mapping[str, str]) -> str:
        """Digest of the active columns as Glue shows a deployed Iceberg table: (id, name, Glue type)."""
        return columns_fingerprint((int(f["id"]), str(f["name"]), glue_type_of[str(f["name"])]) for f in self.fields)


def columns_fingerprint(columns: Iterable[tuple[int, str, str]]) -> str:
    """sha256 over sorted (field id, name, type) triples; the compactor compares two of these."""
    text = "\n".join(f"{i}\t{n}\t{t}" for i, n, t in sorted(columns))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def iceberg_field(field: Mapping[str, Any]) -> dict[str, Any]:
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


_override: list[Ledger] = []


def load() -> Ledger:
    """The committed ledger (read once per process), or the one `proposed` puts in its place."""
    return _override[-1] if _override else _committed()


@functools.cache
def _committed() -> Ledger:
    return parse(LEDGER_PATH.read_text())


@contextlib.contextmanager
def proposed(ledger: Ledger) -> Iterator[None]:
    """Within the block, `load()` is this ledger: what a proposed schema change renders as
    (`signals schema suggest` renders template.yaml with the ids it proposes)."""
    _override.append(ledger)
    try:
        yield
    finally:
        _override.pop()


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


# --- the compactor's schema guard ------------------------------------------------------------------

#: Column parameters Iceberg's Glue catalogs (Athena's, pyiceberg's) write on a table's Glue columns.
GLUE_FIELD_ID: Final = "iceberg.field.id"
GLUE_FIELD_CURRENT: Final = "iceberg.field.current"


def schema_fingerprint(columns: Mapping[str, tuple[int | None, str]]) -> str:
    return columns_fingerprint((fid or 0, name, kind.lower()) for name, (fid, kind) in columns.items())


def live_schema_mismatch(table: Any, glue_table: Mapping[str, Any]) -> str | None:
    """Why the live table (Glue `GetTable`'s description) cannot take the MERGE this code writes, or None.

    `table`: a `shared.schema` compacted or audit table. Every column the code writes must be in the
    table's current schema with the ledger's field id (when Glue shows ids: Iceberg's Glue catalogs
    write `iceberg.field.id` on each column) and type. Columns the table has beyond those (tombstoned,
    or added by hand) do not matter to the MERGE, which names its columns.
    """
    from shared.schema import glue_type  # noqa: PLC0415

    ids = load().table(table.name).ids()
    missing = [spec.name for spec in table.fields if spec.name not in ids]
    if missing:
        raise LedgerError(f"{table.name}: {', '.join(missing)} have no field id in {LEDGER_PATH.name}")
    expected = {spec.name: (ids[spec.name], glue_type(spec.kind)) for spec in table.fields}
    columns = (glue_table.get("StorageDescriptor") or {}).get("Columns") or []
    if not columns:
        return None  # a writer that lists no columns in Glue (Athena could not read it either): nothing to check
    live: dict[str, tuple[int | None, str]] = {}
    for column in columns:
        params = column.get("Parameters") or {}
        if str(params.get(GLUE_FIELD_CURRENT, "true")).lower() == "false":
            continue
        field_id = params.get(GLUE_FIELD_ID)
        live[str(column["Name"])] = (int(field_id) if field_id is not None else None, str(column["Type"]))
    problems = []
    for name, (field_id, kind) in expected.items():
        have = live.get(name)
        if have is None:
            problems.append(f"{name} (id {field_id}) is missing")
        elif have[1].lower() != kind:
            problems.append(f"{name} is {have[1]}, the ledger says {kind}")
        elif have[0] is not None and have[0] != field_id:
            problems.append(f"{name} has id {have[0]}, the ledger {field_id}")
    if not problems:
        return None
    seen = {name: live[name] for name in expected if name in live}
    return (f"schema fingerprint {schema_fingerprint(seen)} of the live table is not the ledger's "
            f"{schema_fingerprint(expected)}: {'; '.join(problems)}")
