"""`signals schema suggest TYPE.KEY | TYPE`: the patch that makes a drifting key (or a parked device
type) part of the schema, ready for `git apply`.

- `TYPE.KEY`: the key as an optional column of the device type, of the kind `signals schema drift`
  inferred (int, float, bool or string; an object or array stays in `extra`), appended to the type's
  fields in `shared/schema.py`;
- `TYPE`: a device type seen only in events parked as `unknown_device_type`: a new `DeviceType`
  member and its fields, one per top-level key its events carried beyond the envelope, kinds
  inferred from every parked event (int and float together make float; mixed or nested values are
  left out and stay in `extra`).

The patch changes `shared/schema.py`, the field-id ledger (`shared/iceberg_ids.json`: the new ids,
after each table's last one, exactly what `signals schema check --write` would record, so
`signals schema check` accepts it) and template.yaml's generated Glue tables (what
`python -m deploy.glue_columns --write` would write). It is printed on stdout as a git diff (apply it
with `git apply`); what it proposes, with the new ids, is said on stderr. Nothing is written.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import re
import sys
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from shared import ledger as ledger_module
from shared.iceberg import IcebergTable
from shared.jsontext import json_kind
from shared.schema import (
    AUDIT_TABLES,
    COMPACTED_BY_TYPE,
    ENVELOPE,
    EXTRA,
    LINEAGE,
    TABLES,
    TABLES_BY_TYPE,
    CompactedTableSpec,
    FieldSpec,
    Kind,
    TableSpec,
    _compacted,
)
from signals.schema.evolution import ADDITION, NEW_TABLE, Comparison, compare

ROOT: Final = Path(__file__).resolve().parents[2]
SCHEMA_PY: Final = "shared/schema.py"
LEDGER_JSON: Final = "shared/iceberg_ids.json"
TEMPLATE: Final = "template.yaml"
KINDS: Final = {"int": Kind.INT, "float": Kind.FLOAT, "bool": Kind.BOOL, "string": Kind.STRING}
_NAME: Final = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


class SuggestError(RuntimeError):
    pass


# --- inference -------------------------------------------------------------------------------------


def _kind_of(value: Any) -> str | None:
    """The JSON kind (shared.jsontext.json_kind), arrays and objects together as `nested`."""
    kind = json_kind(value)
    return "nested" if kind in ("array", "object") else kind


def infer_fields(events: Sequence[Mapping[str, Any]]) -> tuple[list[tuple[str, str, int]], list[str]]:
    """(key, kind, events carrying it) for each top-level key beyond the envelope, and the keys left out."""
    envelope = {spec.name for spec in ENVELOPE}
    kinds: dict[str, Counter[str]] = {}
    for event in events:
        for key, value in event.items():
            kind = _kind_of(value)
            if key in envelope or kind is None:
                continue
            kinds.setdefault(key, Counter())[kind] += 1
    fields, skipped = [], []
    for key in sorted(kinds):
        seen = set(kinds[key])
        if seen <= {"int", "float"}:
            kind = "float" if "float" in seen else "int"
        elif len(seen) == 1 and "nested" not in seen:
            kind = next(iter(seen))
        else:
            kind = None
        if kind is None or not _NAME.match(key):
            skipped.append(key)
            continue
        fields.append((key, kind, sum(kinds[key].values())))
    return fields, skipped


# --- the text changes --------------------------------------------------------------------------------


def _field_line(key: str, kind: str, description: str) -> str:
    line = f'        FieldSpec("{key}", Kind.{KINDS[kind].name}, "{description}"),\n'
    if len(line) <= 121:
        return line
    return (f'        FieldSpec("{key}", Kind.{KINDS[kind].name},\n'
            f'                  "{description[:97]}"),\n')


def add_field_text(text: str, device_type: str, key: str, kind: str, description: str) -> str:
    member = device_type.upper()
    start = text.find(f"    DeviceType.{member}: (\n")
    if start < 0:
        raise SuggestError(f"{SCHEMA_PY}: no `DeviceType.{member}: (` entry in DEVICE_FIELDS")
    end = text.find("\n    ),\n", start)
    if end < 0:
        raise SuggestError(f"{SCHEMA_PY}: the DeviceType.{member} fields do not end with `    ),`")
    return text[:end + 1] + _field_line(key, kind, description) + text[end + 1:]


def add_type_text(text: str, device_type: str, fields: Sequence[tuple[str, str, str]]) -> str:
    member = device_type.upper()
    enum_start = text.find("class DeviceType(enum.StrEnum):\n")
    enum_end = text.find("\n\n", enum_start)
    if enum_start < 0 or enum_end < 0:
        raise SuggestError(f"{SCHEMA_PY}: class DeviceType not found")
    text = text[:enum_end + 1] + f'    {member} = "{device_type}"\n' + text[enum_end + 1:]
    start = text.find("DEVICE_FIELDS: Final[")
    end = text.find("\n}\n", start)
    if start < 0 or end < 0:
        raise SuggestError(f"{SCHEMA_PY}: DEVICE_FIELDS not found")
    block = f"    DeviceType.{member}: (\n" + "".join(_field_line(k, kind, d) for k, kind, d in fields) + "    ),"
    return text[:end + 1] + block + text[end:]


def unified(path: str, before: str, after: str) -> str:
    if before == after:
        return ""
    lines = difflib.unified_diff(before.splitlines(keepends=True), after.splitlines(keepends=True),
                                 fromfile=f"a/{path}", tofile=f"b/{path}")
    return f"diff --git a/{path} b/{path}\n" + "".join(lines)


# --- the tables a change makes ------------------------------------------------------------------------


def _with_field(table: TableSpec, spec: FieldSpec) -> TableSpec:
    fields = list(table.fields)
    fields.insert(fields.index(EXTRA), spec)
    return dataclasses.replace(table, fields=tuple(fields))


def _new_device_table(device_type: str, fields: Sequence[FieldSpec]) -> TableSpec:
    return TableSpec(name=f"telemetry_{device_type}_flat", type_value=device_type,
                     fields=(*ENVELOPE, *fields, EXTRA, *LINEAGE),
                     description=f"Validated {device_type} telemetry, one row per event.")


def render_template(text: str, tables: Sequence[TableSpec], compacted: Sequence[CompactedTableSpec],
                    ledger: ledger_module.Ledger) -> str:
    """template.yaml's generated blocks for these tables and ledger (deploy.glue_columns' renderers)."""
    from deploy import glue_columns as g  # noqa: PLC0415

    iceberg: list[IcebergTable] = [*compacted, *AUDIT_TABLES]
    with ledger_module.proposed(ledger):
        rendered = [*(g.render_iceberg_table(t) for t in iceberg), g.render_quarantine_table(), g.render_drift_table()]
        blocks = {
            g.BEGIN: g.BEGIN + "\n".join(g.render_table(t) for t in tables) + g.END,
            g.ICEBERG_BEGIN: g.ICEBERG_BEGIN + "\n".join(rendered) + g.ICEBERG_END,
        }
    for begin, end in ((g.BEGIN, g.END), (g.ICEBERG_BEGIN, g.ICEBERG_END)):
        head, _, tail = g._split(text, begin, end)
        text = head + blocks[begin] + tail
    return text



# --- the two suggestions ---------------------------------------------------------------------------------


@dataclass
class Suggestion:
    patch: str
    summary: list[str]


def _read(repo: Path, path: str) -> str:
    return (repo / path).read_text()


def _check_repo(repo: Path) -> ledger_module.Ledger:
    """The checkout's ledger, which must already agree with its schema (this code's)."""
    current = ledger_module.parse(_read(repo, LEDGER_JSON))
    pending = compare(current)
    if pending.changes:
        raise SuggestError(f"{repo}: shared/schema.py and {LEDGER_JSON} disagree already; run `signals schema check`")
    return current


def _ids_summary(result: Any, table_names: set[str]) -> list[str]:
    lines = []
    for change in result.changes:
        if change.table in table_names and change.kind in (ADDITION, NEW_TABLE):
            lines.append(change.line())
    return lines


def suggest_key(repo: Path, device_type: str, key: str, kind: str, description: str) -> Suggestion:
    if device_type not in TABLES_BY_TYPE or device_type not in COMPACTED_BY_TYPE:
        raise SuggestError(f"unknown device type {device_type!r}: `signals schema suggest {device_type}` proposes it")
    if not _NAME.match(key):
        raise SuggestError(f"{key!r} is not a column name (lower case letters, digits, _)")
    if kind not in KINDS:
        raise SuggestError(f"{device_type}.{key} came as {kind}: only int, float, bool and string become columns; "
                           "it stays in extra")
    if key in TABLES_BY_TYPE[device_type].column_names:
        raise SuggestError(f"{device_type}.{key} is a column already")
    current = _check_repo(repo)
    spec = FieldSpec(key, KINDS[kind], description)
    tables = [_with_field(t, spec) if t.type_value == device_type else t for t in TABLES]
    patch, result = _patch(repo, current, tables,
                           lambda text: add_field_text(text, device_type, key, kind, description))
    return Suggestion(patch, _ids_summary(result, {COMPACTED_BY_TYPE[device_type].name}))


def _patch(repo: Path, current: ledger_module.Ledger, tables: Sequence[TableSpec],
           edit_schema: Callable[[str], str]) -> tuple[str, Comparison]:
    """One git diff over shared/schema.py (`edit_schema` of its text), the ledger and template.yaml's
    generated blocks for `tables`, refused when the ledger calls the change incompatible."""
    compacted = [_compacted(t) for t in tables]
    result = compare(current, [*compacted, *AUDIT_TABLES])
    if result.incompatible or result.ledger is None:
        raise SuggestError("; ".join(c.line() for c in result.incompatible))
    schema_text = _read(repo, SCHEMA_PY)
    template_text = _read(repo, TEMPLATE)
    patch = (unified(SCHEMA_PY, schema_text, edit_schema(schema_text))
             + unified(LEDGER_JSON, _read(repo, LEDGER_JSON), result.ledger.dumps())
             + unified(TEMPLATE, template_text, render_template(template_text, tables, compacted, result.ledger)))
    return patch, result


def suggest_type(repo: Path, device_type: str, events: Sequence[Mapping[str, Any]]) -> Suggestion:
    if device_type in TABLES_BY_TYPE:
        raise SuggestError(f"{device_type!r} is a known device type; suggest one of its keys: "
                           f"`signals schema suggest {device_type}.KEY`")
    if not _NAME.match(device_type) or device_type.upper() == device_type:
        raise SuggestError(f"{device_type!r} is not a device type name (lower case letters, digits, _)")
    if not events:
        raise SuggestError(f"no parked events of device type {device_type!r} (reason unknown_device_type) in the "
                           "window: nothing to infer its fields from")
    inferred, skipped = infer_fields(events)
    versions = sorted({str(e["firmware_version"]) for e in events if e.get("firmware_version")})
    described = [(key, kind, f"Inferred from {count} of {len(events)} parked events.") for key, kind, count in inferred]
    specs = [FieldSpec(key, KINDS[kind], text) for key, kind, text in described]
    current = _check_repo(repo)
    table = _new_device_table(device_type, specs)
    tables = [*TABLES[:-1], table, TABLES[-1]]  # device tables first, OTLP last (as shared.schema orders them)
    patch, result = _patch(repo, current, tables, lambda text: add_type_text(text, device_type, described))
    summary = [f"new device type {device_type!r} from {len(events)} parked event(s)"
               + (f" (firmware {', '.join(versions)})" if versions else ""),
               *(f"  {key}: {kind} ({text})" for key, kind, text in described),
               *(f"  {key}: left in extra (mixed or nested values)" for key in skipped),
               *_ids_summary(result, {_compacted(table).name})]
    return Suggestion(patch, summary)


def main(args: argparse.Namespace) -> int:
    from signals.ops.common import environment_from_args  # noqa: PLC0415
    from signals.query import QueryFailed  # noqa: PLC0415
    from signals.schema.drift import key_drift, parked_events  # noqa: PLC0415

    repo = (args.repo or ROOT).resolve()
    target = str(args.target)
    env = environment_from_args(args)
    if env is None:
        return 2
    try:
        if "." in target:
            device_type, key = target.split(".", 1)
            found = [d for d in key_drift(env, days=args.days, device_type=device_type) if d.key == key]
            if not found:
                raise SuggestError(f"{target}: no drift seen in the last {args.days} days (`signals schema drift`)")
            drift = found[0]
            versions = ", ".join(sorted(drift.firmware_versions)[:3])
            description = (f"Was in extra: {drift.share:.0%} of rows from {(drift.first_seen or '')[:10]}"
                           + (f", firmware {versions}" if versions else "") + ".")
            suggestion = suggest_key(repo, device_type, key, drift.kind, description)
        else:
            suggestion = suggest_type(repo, target, parked_events(env, days=args.days, device_type=target))
    except (SuggestError, QueryFailed, ledger_module.LedgerError) as exc:
        print(f"signals schema suggest: {exc}", file=sys.stderr)
        return 1
    sys.stdout.write(suggestion.patch)
    for line in suggestion.summary:
        print(line, file=sys.stderr)
    print("apply with `git apply`, then `signals schema check` (it passes), deploy, `signals schema apply`",
          file=sys.stderr)
    return 0
