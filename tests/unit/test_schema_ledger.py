"""The field-id ledger: today's ids kept exactly, additions after the last id, changes classified."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from shared import ledger
from shared.iceberg import field_ids, map_field_ids, pyiceberg_partition_spec
from shared.schema import AUDIT_TABLES, COMPACTED_BY_TYPE, COMPACTED_TABLES, CompactedTableSpec, FieldSpec, Kind
from signals.schema.evolution import ADDITION, INCOMPATIBLE, PROMOTION, TOMBSTONE, compare

ROOT = Path(__file__).resolve().parents[2]
LOCK = COMPACTED_BY_TYPE["lock"]


def _positional(table: object) -> tuple[dict[str, int], dict[str, tuple[int, int]]]:
    """The rule deployed tables were created by (written out again here): columns 1..n in schema
    order, then each map's key and value in column order."""
    fields = table.fields  # type: ignore[attr-defined]
    ids = {spec.name: index for index, spec in enumerate(fields, start=1)}
    next_id, maps = len(fields) + 1, {}
    for spec in fields:
        if spec.kind is Kind.STRING_MAP:
            maps[spec.name] = (next_id, next_id + 1)
            next_id += 2
    return ids, maps


@pytest.mark.parametrize("table", [*COMPACTED_TABLES, *AUDIT_TABLES], ids=lambda t: t.name)
def test_the_ledger_keeps_the_ids_deployed_tables_have(table: object) -> None:
    ids, maps = _positional(table)
    assert field_ids(table) == ids  # type: ignore[arg-type]
    assert map_field_ids(table) == maps  # type: ignore[arg-type]
    recorded = ledger.load().table(table.name)  # type: ignore[attr-defined]
    assert recorded.last_column_id == max([*ids.values(), *(i for pair in maps.values() for i in pair)])
    (partition,) = pyiceberg_partition_spec(table).fields  # type: ignore[arg-type]
    assert (partition.source_id, partition.field_id) == (ids["day"], 1000)


def test_lock_ids_as_deployed() -> None:
    ids = field_ids(LOCK)
    assert (ids["battery_pct"], ids["extra"], ids["source_key"], ids["day"], ids["hour"]) == (10, 16, 17, 19, 20)
    assert map_field_ids(LOCK) == {"attributes": (21, 22)}


def _with_lock_fields(*extra: FieldSpec, drop: str = "", replace: FieldSpec | None = None) -> CompactedTableSpec:
    source = LOCK.source
    fields = [replace if replace is not None and f.name == replace.name else f for f in source.fields
              if f.name != drop]
    at = fields.index(source.field("extra"))
    fields[at:at] = extra
    return dataclasses.replace(LOCK, source=dataclasses.replace(source, fields=tuple(fields)))


def _compare_lock(table: CompactedTableSpec, retired: tuple[str, ...] = ()) -> tuple[list, ledger.LedgerTable]:
    result = compare(ledger.load(), [table, *(t for t in COMPACTED_TABLES if t is not LOCK), *AUDIT_TABLES],
                     retired={LOCK.name: retired})
    assert result.ledger is not None
    return [c for c in result.changes if c.table == LOCK.name], result.ledger.table(LOCK.name)


def test_adding_a_field_keeps_every_existing_id_and_takes_the_next_one() -> None:
    before = ledger.load().table(LOCK.name)
    changes, after = _compare_lock(_with_lock_fields(FieldSpec("auto_lock_delay_s", Kind.INT, "Delay.")))
    assert [(c.kind, c.column, c.field_id) for c in changes] == [(ADDITION, "auto_lock_delay_s", 23)]
    old_ids = before.ids()
    assert {name: after.ids()[name] for name in old_ids} == old_ids  # extra stays 16, source_key 17, day 19
    assert after.last_column_id == 23
    assert after.schema_version == before.schema_version + 1
    assert after.partition_spec == before.partition_spec
    assert after.created == before.created  # the template's CREATE declaration does not move


def test_a_new_map_column_takes_its_id_then_key_and_value() -> None:
    changes, after = _compare_lock(_with_lock_fields(FieldSpec("labels", Kind.STRING_MAP, "Labels.")))
    assert [(c.kind, c.field_id) for c in changes] == [(ADDITION, 23)]
    labels = after.field("labels")
    assert labels is not None
    assert (labels["type"]["key-id"], labels["type"]["value-id"], after.last_column_id) == (24, 25, 25)


def test_a_promotion_keeps_the_id_and_a_type_change_is_refused() -> None:
    promoted = dataclasses.replace(COMPACTED_BY_TYPE["otlp_logs"].source.field("severity_number"), kind=Kind.INT)
    otlp = COMPACTED_BY_TYPE["otlp_logs"]
    table = dataclasses.replace(otlp, source=dataclasses.replace(
        otlp.source, fields=tuple(promoted if f.name == "severity_number" else f for f in otlp.source.fields)))
    result = compare(ledger.load(), [table], retired={})
    kinds = [(c.kind, c.column, c.field_id) for c in result.changes if c.table == otlp.name]
    assert kinds == [(PROMOTION, "severity_number", field_ids(otlp)["severity_number"])]

    changes, unchanged = _compare_lock(_with_lock_fields(replace=FieldSpec("battery_pct", Kind.STRING, "now text")))
    (change,) = changes
    assert (change.kind, change.column) == (INCOMPATIBLE, "battery_pct")
    assert "long -> string" in change.detail
    assert "add a new optional column" in change.alternatives
    assert unchanged == ledger.load().table(LOCK.name)


def test_narrowing_required_and_drops() -> None:
    narrowed, _ = _compare_lock(_with_lock_fields(replace=FieldSpec("battery_pct", Kind.INT32, "narrow")))
    assert narrowed[0].kind == INCOMPATIBLE
    assert "narrowing" in narrowed[0].detail
    required, _ = _compare_lock(_with_lock_fields(FieldSpec("pin", Kind.STRING, "Pin.", required=True)))
    assert required[0].kind == INCOMPATIBLE
    assert "optional" in required[0].alternatives
    dropped, _ = _compare_lock(_with_lock_fields(drop="door_state"))
    assert dropped[0].kind == INCOMPATIBLE
    assert "RETIRED_FIELDS" in dropped[0].alternatives
    tombstoned, after = _compare_lock(_with_lock_fields(drop="door_state"), retired=("door_state",))
    assert [(c.kind, c.field_id) for c in tombstoned] == [(TOMBSTONE, 12)]
    assert after.dropped_field("door_state") is not None
    assert "door_state" not in after.ids()
    # the name is not reused, and the next addition does not reuse id 12
    again = FieldSpec("door_state", Kind.STRING, "again")
    reused, _ = compare_after(after, _with_lock_fields(again, drop="door_state"))
    assert reused[0].kind == INCOMPATIBLE
    added, later = compare_after(after, _with_lock_fields(FieldSpec("x", Kind.BOOL, "x"), drop="door_state"))
    assert [(c.kind, c.field_id) for c in added] == [(ADDITION, 23)]
    assert later.dropped_field("door_state")


def compare_after(base: ledger.LedgerTable, table: CompactedTableSpec) -> tuple[list, ledger.LedgerTable]:
    result = compare(ledger.Ledger({LOCK.name: base}), [table], retired={LOCK.name: ("door_state",)})
    assert result.ledger is not None
    return [c for c in result.changes if c.table == LOCK.name], result.ledger.table(LOCK.name)


def test_signals_schema_check_passes_on_the_committed_schema() -> None:
    """`make test` runs the check: shared/schema.py and the committed ledger agree."""
    done = subprocess.run([sys.executable, "-m", "signals.cli", "schema", "check"], cwd=ROOT, capture_output=True,
                          text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "agrees with iceberg_ids.json" in done.stdout


def test_check_write_records_a_table_the_ledger_lacks(tmp_path: Path) -> None:
    from signals.cli import main  # noqa: PLC0415

    partial = tmp_path / "ids.json"
    full = ledger.load()
    partial.write_text(ledger.Ledger({k: v for k, v in full.tables.items() if k != "compaction_runs"}).dumps())
    assert main(["schema", "check", "--ledger", str(partial)]) == 1
    assert main(["schema", "check", "--ledger", str(partial), "--write"]) == 0
    assert ledger.parse(partial.read_text()).table("compaction_runs") == full.table("compaction_runs")
    assert main(["schema", "check", "--ledger", str(partial)]) == 0


def _glue_columns(*, ids: bool = True) -> list[dict[str, object]]:
    from shared.schema import glue_type  # noqa: PLC0415

    return [{"Name": spec.name, "Type": glue_type(spec.kind),
             "Parameters": {"iceberg.field.id": str(field_ids(LOCK)[spec.name]), "iceberg.field.current": "true"}
             if ids else {}} for spec in LOCK.fields]


def test_the_compactor_guard_compares_glue_columns_with_the_ledger() -> None:
    from shared.ledger import live_schema_mismatch  # noqa: PLC0415

    columns = _glue_columns()
    assert live_schema_mismatch(LOCK, {"StorageDescriptor": {"Columns": columns}}) is None
    extra = [*columns, {"Name": "by_hand", "Type": "string", "Parameters": {"iceberg.field.id": "99"}}]
    assert live_schema_mismatch(LOCK, {"StorageDescriptor": {"Columns": extra}}) is None  # the MERGE names its columns
    assert live_schema_mismatch(LOCK, {"StorageDescriptor": {"Columns": _glue_columns(ids=False)}}) is None

    renumbered = [dict(c, Parameters={"iceberg.field.id": "17"}) if c["Name"] == "extra" else c for c in columns]
    problem = live_schema_mismatch(LOCK, {"StorageDescriptor": {"Columns": renumbered}})
    assert problem is not None
    assert "extra has id 17, the ledger 16" in problem
    retyped = [dict(c, Type="string") if c["Name"] == "battery_pct" else c for c in columns]
    assert "battery_pct is string, the ledger says bigint" in str(live_schema_mismatch(
        LOCK, {"StorageDescriptor": {"Columns": retyped}}))
    old = [dict(c, Parameters={"iceberg.field.id": "10", "iceberg.field.current": "false"})
           if c["Name"] == "battery_pct" else c for c in columns]
    assert "battery_pct (id 10) is missing" in str(live_schema_mismatch(LOCK, {"StorageDescriptor": {"Columns": old}}))
