"""`signals backfill`: give old rows a promoted column's value, for a table and a range of event days.

A promotion makes a key the parser kept in `extra` (unknown when the row was parsed) a typed column.
New rows get it from the parser; old rows still hold it only in `extra`. For each verified file of
the days, `backfill` lifts the key out of the row's own `extra` into its column (signals.promote:
the column's validation; a value that does not fit stays in `extra` and is counted, the row is never
quarantined), and rewrites the file in place: same key, same rows, same lineage, same S3 metadata,
so a rerun overwrites its own output and the registry re-registers the new version from its
notification. Then it recomputes the compacted days it changed (one forced compactor run): each
compacted row is refreshed from its backfilled copy (compactor.dedup, "refresh"), so counts do not
change and no duplicate or conflict appears. One `backfill_runs` row per day goes to the dq_audit
database. A second run finds nothing left to lift and changes nothing.

Why lift from `extra` rather than parse raw again: the value in `extra` is what the device sent for
that very row (the parser keeps unknown keys whole, the exact text of a number a double would
round included), so the lift needs no raw object (raw expires after 400 days; the verified and
compacted tables do not) and cannot change anything but the promoted column. A reparse would
re-derive every column with today's parser and could move a row to quarantine. Rows the old parser
quarantined never reached `extra`; a schema change that cures them is replayed by `signals redrive
quarantine`, not here (docs/operations.md, "Backfilling a promoted column").

Run it after `signals schema apply` (the tables must already have the columns; it checks and says
so). OTLP records have no `extra`: a new OTLP column is filled by `signals redrive raw`, and their
dedup key is pinned, so a reparsed record stays one row.

    signals backfill --env dev --table lock --from 2026-11-01 --to 2026-11-30
    signals backfill --table lock --from 2026-11-25 --to 2026-11-25 --dry-run
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Final, TextIO

from signals.env import Environment, EnvironmentNotFound, Output
from signals.ops.common import add_env_arguments, environment_from_args

COLUMNS: Final = ("day", "files", "rewritten", "rows", "lifted", "unfit", "refreshed", "outcome")
MAX_DAYS: Final = 400  # raw retention: nothing older is expected in the verified tables' working range


class BackfillError(RuntimeError):
    pass


@dataclass
class DayReport:
    day: str
    files_read: int = 0
    files_rewritten: int = 0
    rows_read: int = 0
    lifted: Counter[str] = field(default_factory=Counter)
    unfit: Counter[str] = field(default_factory=Counter)
    compacted_refreshed: int = 0
    compacted_inserted: int = 0
    duration_ms: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def outcome(self) -> str:
        if self.errors:
            return "failed"
        return "succeeded" if self.files_rewritten else "unchanged"

    def as_dict(self) -> dict[str, Any]:
        return {
            "day": self.day, "files_read": self.files_read, "files_rewritten": self.files_rewritten,
            "rows_read": self.rows_read, "values_lifted": sum(self.lifted.values()), "lifted": dict(self.lifted),
            "values_unfit": sum(self.unfit.values()), "unfit": dict(self.unfit),
            "compacted_refreshed": self.compacted_refreshed, "compacted_inserted": self.compacted_inserted,
            "duration_ms": self.duration_ms, "outcome": self.outcome, "error": "; ".join(self.errors) or None,
        }


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "backfill",
        help="fill promoted columns of existing rows from their extra, then recompute the compacted days",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_env_arguments(parser)
    parser.add_argument("--table", required=True,
                        help="a device type (lock, ...), its verified table or its compacted table")
    parser.add_argument("--from", dest="first", required=True, help="first event day (YYYY-MM-DD)")
    parser.add_argument("--to", dest="last", required=True, help="last event day (YYYY-MM-DD), inclusive")
    parser.add_argument("--dry-run", action="store_true",
                        help="count what would be lifted; write nothing, compact nothing")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        days = day_range(args.first, args.last)
        table = device_table_named(args.table)
    except BackfillError as exc:
        print(f"signals backfill: {exc}", file=sys.stderr)
        return 2
    env = environment_from_args(args)
    if env is None:
        return 1
    try:
        result = backfill(env, table, days, dry_run=args.dry_run)
    except (BackfillError, EnvironmentNotFound) as exc:
        print(f"signals backfill: {exc}", file=sys.stderr)
        return 1
    if args.json:
        json.dump(result, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    else:
        print_result(result, sys.stdout)
    return 1 if result["errors"] or any(d["outcome"] == "failed" for d in result["days"]) else 0


def day_range(first: str, last: str) -> list[str]:
    try:
        start, end = date.fromisoformat(first), date.fromisoformat(last)
    except ValueError as exc:
        raise BackfillError(f"not a day (YYYY-MM-DD): {exc}") from None
    if end < start:
        raise BackfillError(f"--to {last} is before --from {first}")
    count = (end - start).days + 1
    if count > MAX_DAYS:
        raise BackfillError(f"{count} days: backfill at most {MAX_DAYS} days per run")
    return [(start + timedelta(days=offset)).isoformat() for offset in range(count)]


def device_table_named(name: str) -> Any:
    from shared.schema import COMPACTED_TABLES, OTLP_TYPE  # noqa: PLC0415

    for compacted in COMPACTED_TABLES:
        if name in (compacted.type_value, compacted.source.name, compacted.name):
            if compacted.type_value == OTLP_TYPE:
                raise BackfillError("OTLP log records have no extra column to lift from: fill a new OTLP column with "
                                    "`signals redrive raw` (their dedup key is pinned, so a reparsed record stays "
                                    "one row)")
            return compacted
    known = ", ".join(t.type_value for t in COMPACTED_TABLES if t.type_value != OTLP_TYPE)
    raise BackfillError(f"unknown table {name!r}; expected a device type ({known}) or its verified/compacted table")


# --- the run ---------------------------------------------------------------------------------------


def backfill(env: Environment, table: Any, days: Sequence[str], *, dry_run: bool = False) -> dict[str, Any]:
    """Lift, rewrite, recompute, audit; the run's result (JSON-ready)."""
    started = datetime.now(UTC)
    run_id = f"backfill-{started:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
    check_columns(env, table)
    s3 = env.client("s3")
    bucket = env.output(Output.VERIFIED_BUCKET)
    reports = []
    for day in days:
        clock = time.perf_counter()
        report = backfill_day(s3, bucket, table, day, dry_run=dry_run)
        report.duration_ms = int((time.perf_counter() - clock) * 1000)
        reports.append(report)
    errors: list[str] = []
    changed = [r.day for r in reports if r.files_rewritten]
    compaction: dict[str, Any] | None = None
    if changed and not dry_run:
        compaction = recompute(env, table, changed, reports, errors)
    if not dry_run:
        try:
            record_audit(env, run_id, started, table, reports)
        except Exception as exc:  # the data is right; say loudly the audit is short
            errors.append(f"backfill_runs not written: {type(exc).__name__}: {exc}"[:2000])
    return {
        "run_id": run_id,
        "table": table.source.name,
        "compacted_table": table.name,
        "dry_run": dry_run,
        "method": "extra",
        "days": [r.as_dict() for r in reports],
        "totals": {
            "files_rewritten": sum(r.files_rewritten for r in reports),
            "rows_read": sum(r.rows_read for r in reports),
            "values_lifted": sum(sum(r.lifted.values()) for r in reports),
            "values_unfit": sum(sum(r.unfit.values()) for r in reports),
            "compacted_refreshed": sum(r.compacted_refreshed for r in reports),
            "compacted_inserted": sum(r.compacted_inserted for r in reports),
        },
        "compaction_run": compaction.get("run_id") if compaction else None,
        "errors": errors,
    }


def check_columns(env: Environment, table: Any) -> None:
    """The verified Glue table and the compacted Iceberg table have every column of the schema."""
    glue = env.client("glue")
    wanted = [spec.name for spec in table.source.fields]
    databases = ((env.output(Output.GLUE_DATABASE), table.source.name),
                 (env.outputs.get(Output.ALERTS_DATABASE) or f"telemetry_alerts_{env.name}", table.name))
    for database, name in databases:
        try:
            found = glue.get_table(DatabaseName=database, Name=name)["Table"]
        except glue.exceptions.EntityNotFoundException:
            raise BackfillError(f"Glue table {database}.{name} does not exist") from None
        have = {column["Name"] for column in found.get("StorageDescriptor", {}).get("Columns", [])}
        missing = [column for column in wanted if column not in have]
        if missing:
            raise BackfillError(f"{database}.{name} lacks {', '.join(missing)}: deploy the schema and run "
                                f"`signals schema apply --env {env.name}` before backfilling")


def backfill_day(s3: Any, bucket: str, table: Any, day: str, *, dry_run: bool) -> DayReport:
    import pyarrow.parquet as pq  # noqa: PLC0415

    from shared.arrow import parquet_input  # noqa: PLC0415
    from shared.layout import VERIFIED_ROOT  # noqa: PLC0415
    from signals.promote import CannotRewrite, lift  # noqa: PLC0415

    report = DayReport(day)
    prefix = f"{VERIFIED_ROOT}type={table.type_value}/day={day}/"
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            key = item["Key"]
            if not key.endswith(".parquet") or item.get("Size", 0) == 0:
                continue
            obj = s3.get_object(Bucket=bucket, Key=key)
            body = obj["Body"].read()
            report.files_read += 1
            try:
                result = lift(pq.read_table(parquet_input(body)), table.source)
            except (CannotRewrite, ValueError) as exc:
                report.errors.append(f"{key}: {exc}")
                continue
            report.rows_read += result.rows
            report.lifted.update(result.lifted)
            report.unfit.update(result.unfit)
            if result.table is None:
                continue
            report.files_rewritten += 1
            if not dry_run:
                write_verified(s3, bucket, key, result.table, type_value=table.type_value, original=obj)
    return report


def write_verified(s3: Any, bucket: str, key: str, rows: Any, *, type_value: str, original: Mapping[str, Any]) -> None:
    """The file again under its own key, with the parser's Parquet settings and the original metadata."""
    from parser.dal import PARQUET_CONTENT_TYPE  # noqa: PLC0415
    from parser.output import parquet_writer  # noqa: PLC0415
    from shared.layout import META_SCHEMA_VERSION  # noqa: PLC0415
    from shared.schema import SCHEMA_VERSION  # noqa: PLC0415

    with tempfile.TemporaryDirectory(prefix="backfill-") as scratch:
        path = Path(scratch) / "file.parquet"
        writer = parquet_writer(path, type_value)
        try:
            writer.write_table(rows)
        finally:
            writer.close()
        metadata = {**original.get("Metadata", {}), META_SCHEMA_VERSION: str(SCHEMA_VERSION)}
        s3.put_object(Bucket=bucket, Key=key, Body=path.read_bytes(), ContentType=PARQUET_CONTENT_TYPE,
                      Metadata=metadata)


def recompute(env: Environment, table: Any, days: Sequence[str], reports: Sequence[DayReport],
              errors: list[str]) -> dict[str, Any] | None:
    """One forced compactor run over the changed days; its per-day counts go into the reports."""
    from signals.ops.compaction import run_compactor  # noqa: PLC0415

    try:
        result = run_compactor(env, {"tables": [table.name], "days": list(days)})
    except Exception as exc:  # CompactionFailed, the compactor's own errors: reported, the files stay backfilled
        errors.append(f"compaction of {', '.join(days)} failed: {exc}; rerun `signals compact --day ...` "
                      "(the verified files are already backfilled)")
        for report in reports:
            if report.files_rewritten:
                report.errors.append("compaction failed")
        return None
    by_day = {str(d["day"]): d for d in result.get("days") or [] if d.get("table") == table.name}
    for report in reports:
        outcome = by_day.get(report.day)
        if not report.files_rewritten or outcome is None:
            continue
        report.compacted_refreshed = int(outcome.get("refreshed") or 0)
        report.compacted_inserted = int(outcome.get("inserted") or 0)
        if outcome.get("outcome") != "succeeded":
            report.errors.append(f"compaction {outcome.get('outcome')}: {outcome.get('error')}")
    errors.extend(str(e) for e in result.get("errors") or [])
    return result


def audit_rows(run_id: str, started: datetime, table: Any, reports: Sequence[DayReport]) -> list[dict[str, Any]]:
    return [{
        "run_id": run_id, "started_at": started, "table_name": table.name, "day": r.day, "method": "extra",
        "columns": ",".join(sorted(r.lifted)) or None, "files_read": r.files_read,
        "files_rewritten": r.files_rewritten, "rows_read": r.rows_read, "values_lifted": sum(r.lifted.values()),
        "values_unfit": sum(r.unfit.values()),
        "unfit_columns": json.dumps(dict(sorted(r.unfit.items()))) if r.unfit else None,
        "compacted_refreshed": r.compacted_refreshed, "compacted_inserted": r.compacted_inserted,
        "duration_ms": r.duration_ms, "outcome": r.outcome, "error": "; ".join(r.errors)[:2000] or None,
    } for r in reports]


def record_audit(env: Environment, run_id: str, started: datetime, table: Any, reports: Sequence[DayReport]) -> None:
    """One `INSERT INTO backfill_runs ... VALUES` through `signals query`: Athena on a deployed env, the
    local Athena engine (the same statement, one Iceberg commit) on the local stack."""
    from compactor.athena_engine import insert_values  # noqa: PLC0415
    from compactor.dedup import relation  # noqa: PLC0415
    from shared.schema import BACKFILL_RUNS, audit_database  # noqa: PLC0415
    from signals.query import query  # noqa: PLC0415

    rows = audit_rows(run_id, started, table, reports)
    database = env.outputs.get(Output.AUDIT_DATABASE) or audit_database(env.name)
    query(env, insert_values(relation(database, BACKFILL_RUNS.name), rows, BACKFILL_RUNS))


def print_result(result: Mapping[str, Any], out: TextIO) -> None:
    from signals.query import render_table  # noqa: PLC0415

    rows = [[d["day"], str(d["files_read"]), str(d["files_rewritten"]), str(d["rows_read"]), str(d["values_lifted"]),
             str(d["values_unfit"]), str(d["compacted_refreshed"]), d["outcome"]] for d in result["days"]]
    out.write(render_table(COLUMNS, rows, max_width=100))
    totals = result["totals"]
    verb = "would lift" if result["dry_run"] else "lifted"
    out.write(f"{result['table']}: {verb} {totals['values_lifted']} value(s) out of extra in "
              f"{totals['files_rewritten']} file(s); {totals['values_unfit']} unfit value(s) left in extra; "
              f"{totals['compacted_refreshed']} compacted row(s) refreshed, {totals['compacted_inserted']} inserted\n")
    for day in result["days"]:
        if day["unfit"]:
            out.write(f"day={day['day']} unfit (left in extra): "
                      + ", ".join(f"{name} {count}" for name, count in sorted(day["unfit"].items())) + "\n")
        if day["error"]:
            out.write(f"day={day['day']} {day['outcome']}: {day['error']}\n")
    for error in result["errors"]:
        out.write(f"error: {error}\n")
    if not result["dry_run"]:
        out.write(f"run {result['run_id']}: one backfill_runs row per day in the dq_audit database\n")
