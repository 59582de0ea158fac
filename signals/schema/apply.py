"""`signals schema apply --env E`: bring an env's tables to the ledger, by field id, additions only.

For each compacted and audit Iceberg table, the live schema (pyiceberg's Glue catalog: the table's
current metadata) is compared with the ledger (`shared.ledger`) field by field id:

- a ledger column the live table lacks, whose id is after the live `last-column-id`: added with
  pyiceberg's `update_schema().add_column` (one commit per table: a new metadata file and the Glue
  table's `metadata_location` swapped by Glue `UpdateTable` with optimistic locking, as Athena's
  `ALTER TABLE ... ADD COLUMNS` does). Iceberg gives a new column the id after `last-column-id`, so
  additions are applied in id order and the ids that result are checked against the ledger before the
  commit: if they would differ (the table's `last-column-id` moved outside the ledger) nothing is
  applied and the command says why;
- a promotion the ledger records (int -> long, float -> double): `update_column` with the wider type;
- a live column the ledger does not know (added by hand): reported as drift and left as it is;
- a live column whose id names another column, or whose type the ledger cannot promote to: reported,
  nothing applied to that table.

For each verified (Hive) table, the Glue columns are brought to `shared.schema.glue_columns`: missing
columns are added (Glue `UpdateTable`), columns added by hand are kept and reported, and every
existing partition whose column list differs is updated to the table's (Glue `BatchUpdatePartition`,
in chunks of 100) so Athena reads the new columns in old partitions as NULL rather than failing.

Idempotent: a second run finds nothing to do. `--dry-run` prints the plan and changes nothing.
A compacted table that does not exist yet (a new device type) is created from the ledger on the
local stack; on a deployed env the CloudFormation deploy creates it (docs/deploy.md, "Schema releases").
"""

from __future__ import annotations

import argparse
import copy
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from shared.iceberg import IcebergTable, ledger_schema
from shared.ledger import LedgerTable
from shared.ledger import load as load_ledger
from shared.schema import TABLES, CompactedTableSpec, TableSpec, glue_columns
from signals.env import Environment, Output
from signals.ops.common import environment_from_args
from signals.schema.evolution import PROMOTIONS, iceberg_tables

GLUE_BATCH_UPDATE_LIMIT: Final = 100  # BatchUpdatePartition entries per call


@dataclass
class TableReport:
    table: str
    applied: list[str] = field(default_factory=list)
    drift: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"{self.table}: {a}" for a in self.applied]
        out += [f"{self.table}: {n}" for n in self.notes]
        out += [f"{self.table}: DRIFT {d}" for d in self.drift]
        out += [f"{self.table}: ERROR {e}" for e in self.errors]
        return out


# --- Iceberg tables ------------------------------------------------------------------------------


@dataclass
class IcebergPlan:
    additions: list[Any] = field(default_factory=list)  # pyiceberg NestedField, id order
    promotions: list[Any] = field(default_factory=list)  # (live field, ledger field)
    drift: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _type_name(field_type: Any) -> str:
    return str(field_type) if field_type.is_primitive else "map"


def plan_iceberg(live_schema: Any, live_last_column_id: int, expected: LedgerTable) -> IcebergPlan:
    """What `apply` would do to a live table (pyiceberg Schema) to make it the ledger's."""
    plan = IcebergPlan()
    wanted = ledger_schema(expected)
    live_by_id = {f.field_id: f for f in live_schema.fields}
    for want in wanted.fields:
        live = live_by_id.get(want.field_id)
        if live is None:
            if want.field_id > live_last_column_id:
                plan.additions.append(want)
            else:
                plan.errors.append(f"id {want.field_id} ({want.name}) is not in the table, yet the table's "
                                   f"last-column-id is {live_last_column_id}: it was dropped outside the ledger")
            continue
        if live.name != want.name:
            plan.errors.append(f"id {want.field_id} is {live.name!r} in the table, {want.name!r} in the ledger: "
                               f"{want.name} cannot be added with its id")
            continue
        if _type_name(live.field_type) != _type_name(want.field_type):
            if (_type_name(live.field_type), _type_name(want.field_type)) in PROMOTIONS:
                plan.promotions.append((live, want))
            else:
                plan.errors.append(f"{want.name} (id {want.field_id}) is {live.field_type} in the table, "
                                   f"{want.field_type} in the ledger: not a promotion Iceberg allows")
    wanted_names = {f.field_id: f.name for f in wanted.fields}
    for live in live_schema.fields:
        if wanted_names.get(live.field_id) != live.name:
            plan.drift.append(f"column {live.name} (id {live.field_id}, {live.field_type}) is not in the ledger "
                              "(added outside it): left as it is; add it to shared/schema.py with "
                              "`signals schema suggest` or drop it by hand")
    # Iceberg numbers an added column (then its map key and value) after the table's last-column-id.
    next_id = live_last_column_id
    for want in plan.additions:
        ids = [want.field_id, *_nested_ids(want.field_type)]
        if ids != list(range(next_id + 1, next_id + 1 + len(ids))):
            plan.errors.append(f"{want.name} would get id {next_id + 1} from Iceberg, the ledger says "
                               f"{want.field_id}: the table's last-column-id ({live_last_column_id}) is not the "
                               "ledger's; a column was added outside the ledger")
            plan.additions = []
            break
        next_id = ids[-1]
    return plan


def _nested_ids(field_type: Any) -> list[int]:
    if field_type.is_primitive:
        return []
    return [int(field_type.key_id), int(field_type.value_id)]


def apply_iceberg(table: Any, expected: LedgerTable, spec: IcebergTable, *, dry_run: bool) -> TableReport:
    """Bring one loaded pyiceberg table to the ledger (one schema commit)."""
    report = TableReport(spec.name)
    plan = plan_iceberg(table.schema(), table.metadata.last_column_id, expected)
    report.drift.extend(plan.drift)
    if plan.errors:
        report.errors.extend(plan.errors)
        return report
    if not plan.additions and not plan.promotions:
        return report
    docs = {f.name: f.description for f in spec.fields}
    for want in plan.additions:
        report.applied.append(f"{'would add' if dry_run else 'added'} {want.name} {want.field_type} "
                              f"(id {want.field_id})")
    for live, want in plan.promotions:
        report.applied.append(f"{'would promote' if dry_run else 'promoted'} {want.name} (id {want.field_id}) "
                              f"{live.field_type} -> {want.field_type}")
    if dry_run:
        return report
    with table.update_schema() as update:
        for want in plan.additions:
            field_type = want.field_type
            if not field_type.is_primitive:  # fresh ids are assigned by Iceberg (checked below)
                field_type = type(field_type)(key_id=0, key_type=field_type.key_type, value_id=0,
                                              value_type=field_type.value_type,
                                              value_required=field_type.value_required)
            update.add_column(want.name, field_type, doc=docs.get(want.name), required=False)
        for _, want in plan.promotions:
            update.update_column(want.name, field_type=want.field_type)
    table.refresh()
    after = {f.name: f.field_id for f in table.schema().fields}
    wrong = [w.name for w in plan.additions if after.get(w.name) != w.field_id]
    if wrong:
        report.errors.append(f"Iceberg assigned other ids to {', '.join(wrong)} than the ledger: {after}")
    return report


def create_iceberg(catalog: Any, database: str, spec: IcebergTable, location: str) -> Any:
    """A table the ledger knows and the env lacks (local stack only): created as the template declares
    it (the ledger's `created` schema, the ids Iceberg assigns on create), then evolved like any other."""
    from shared.iceberg import (  # noqa: PLC0415
        iceberg_fields,
        partition_spec_from_fields,
        schema_from_fields,
    )

    expected = load_ledger().table(spec.name)
    return catalog.create_table(
        (database, spec.name), schema=schema_from_fields(iceberg_fields(spec)),
        partition_spec=partition_spec_from_fields([{"SourceId": f["source-id"], "FieldId": f["field-id"],
                                                    "Name": f["name"], "Transform": f["transform"]}
                                                   for f in expected.partition_spec["fields"]]),
        location=location.rstrip("/"),
        properties={"format-version": "2", "write.format.default": "parquet",
                    "write.parquet.compression-codec": "zstd"})


# --- verified (Hive) tables ------------------------------------------------------------------------


def _input_of(glue: Any, shape: str, description: Mapping[str, Any]) -> dict[str, Any]:
    """A Get* description cut to what the matching *Input shape accepts (botocore's service model)."""
    members = glue.meta.service_model.shape_for(shape).members
    return {k: copy.deepcopy(v) for k, v in description.items() if k in members}


def _columns_key(columns: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
    return [(str(c["Name"]).lower(), str(c["Type"]).lower()) for c in columns]


def apply_verified(glue: Any, database: str, spec: TableSpec, *, dry_run: bool) -> TableReport:
    report = TableReport(spec.name)
    try:
        live = glue.get_table(DatabaseName=database, Name=spec.name)["Table"]
    except glue.exceptions.EntityNotFoundException:
        report.notes.append(f"not in {database} yet: the deploy creates it (and the registry, with the "
                            "table's first verified file), with the schema's columns")
        return report
    columns = list(live["StorageDescriptor"].get("Columns") or [])
    by_name = {str(c["Name"]).lower(): c for c in columns}
    wanted = glue_columns(spec)
    added: list[dict[str, str]] = []
    for column in wanted:
        have = by_name.get(column["Name"].lower())
        if have is None:
            added.append(column)
        elif str(have["Type"]).lower() != column["Type"].lower():
            if (str(have["Type"]).lower(), column["Type"]) in {("int", "bigint"), ("float", "double")}:
                have["Type"] = column["Type"]
                report.applied.append(f"{'would promote' if dry_run else 'promoted'} {column['Name']} to "
                                      f"{column['Type']}")
            else:
                report.errors.append(f"{column['Name']} is {have['Type']} in Glue, {column['Type']} in "
                                     "shared.schema: left as it is")
    known = {c["Name"].lower() for c in wanted}
    for column in columns:
        if str(column["Name"]).lower() not in known:
            report.drift.append(f"column {column['Name']} ({column['Type']}) is not in shared.schema: kept")
    # The schema's order, then the columns added by hand (Athena reads Parquet by name).
    new_columns = [by_name.get(c["Name"].lower(), c) for c in wanted]
    new_columns += [c for c in columns if str(c["Name"]).lower() not in known]
    for column in added:
        report.applied.append(f"{'would add' if dry_run else 'added'} column {column['Name']} {column['Type']}")
    if _columns_key(new_columns) != _columns_key(columns) and not dry_run:
        table_input = _input_of(glue, "TableInput", live)
        table_input["StorageDescriptor"]["Columns"] = new_columns
        glue.update_table(DatabaseName=database, TableInput=table_input)
    stale = [p for p in _partitions(glue, database, spec.name)
             if _columns_key(p["StorageDescriptor"].get("Columns") or []) != _columns_key(new_columns)]
    if stale:
        report.applied.append(f"{'would update' if dry_run else 'updated'} the column list of {len(stale)} "
                              "partition(s)")
    if stale and not dry_run:
        for start in range(0, len(stale), GLUE_BATCH_UPDATE_LIMIT):
            entries = []
            for partition in stale[start:start + GLUE_BATCH_UPDATE_LIMIT]:
                partition_input = _input_of(glue, "PartitionInput", partition)
                partition_input["StorageDescriptor"]["Columns"] = copy.deepcopy(new_columns)
                entries.append({"PartitionValueList": partition["Values"], "PartitionInput": partition_input})
            response = glue.batch_update_partition(DatabaseName=database, TableName=spec.name, Entries=entries)
            for error in response.get("Errors") or []:
                report.errors.append(f"partition {error.get('PartitionValueList')}: "
                                     f"{(error.get('ErrorDetail') or {}).get('ErrorMessage')}")
    return report


def _partitions(glue: Any, database: str, table: str) -> Iterator[dict[str, Any]]:
    for page in glue.get_paginator("get_partitions").paginate(DatabaseName=database, TableName=table):
        yield from page.get("Partitions") or []


# --- the command -----------------------------------------------------------------------------------


def apply_env(env: Environment, *, dry_run: bool = False) -> list[TableReport]:
    from pyiceberg.exceptions import NoSuchTableError  # noqa: PLC0415

    from signals.sql.catalog import iceberg_catalog  # noqa: PLC0415

    ledger = load_ledger()
    glue = env.client("glue")
    reports = [apply_verified(glue, env.output(Output.GLUE_DATABASE), spec, dry_run=dry_run) for spec in TABLES]
    catalog = iceberg_catalog(env.session, env.endpoint_url, name="schema-apply")
    for spec in iceberg_tables():
        database = env.output(Output.ALERTS_DATABASE if isinstance(spec, CompactedTableSpec)
                              else Output.AUDIT_DATABASE)
        try:
            table = catalog.load_table((database, spec.name))
        except NoSuchTableError:
            report = TableReport(spec.name)
            if env.endpoint_url is None or dry_run:
                report.errors.append(f"no such table in {database}: the deploy creates it (template.yaml)"
                                     if env.endpoint_url is None else "would create it from the ledger")
            else:
                location = f"s3://{env.output(Output.DBT_BUCKET)}/{spec.data_prefix}"
                table = create_iceberg(catalog, database, spec, location)
                evolved = apply_iceberg(table, ledger.table(spec.name), spec, dry_run=False)
                evolved.applied.insert(0, f"created {database}.{spec.name} from the ledger")
                report = evolved
            reports.append(report)
            continue
        reports.append(apply_iceberg(table, ledger.table(spec.name), spec, dry_run=dry_run))
    return reports


def main(args: argparse.Namespace) -> int:
    env = environment_from_args(args)
    if env is None:
        return 2
    reports = apply_env(env, dry_run=args.dry_run)
    for report in reports:
        for line in report.lines():
            print(line)
    applied = sum(len(r.applied) for r in reports)
    errors = sum(len(r.errors) for r in reports)
    drift = sum(len(r.drift) for r in reports)
    verb = "would change" if args.dry_run else "changed"
    print(f"signals schema apply --env {env.name}: {verb} {applied}, drift {drift}, errors {errors}"
          + ("" if applied or errors else " (the tables match the ledger)"))
    return 1 if errors else 0
