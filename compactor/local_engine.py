"""The `local` engine: the dedup queries on DuckDB, commits with pyiceberg on the Glue catalog.

Used by the local stack, `signals compact` and the tests; the Lambda runs the `athena` engine and
never imports this module (pyarrow, DuckDB and pyiceberg are imported here only).

For one (table, day): the day's verified Parquet is read with boto3 + pyarrow from the partitions
Glue lists for that day (DuckDB's httpfs extension is not available offline), the compacted
table's day and the day's recorded conflicts are scanned with pyiceberg, and DuckDB runs the DuckDB
rendering of compactor.dedup's queries over the three. The commit mirrors Athena's MERGE: only
inserts -> one append; a replacement (an earlier copy arrived after a later one was compacted) ->
the day is overwritten with the kept rows (copy-on-write, as Athena does for an UPDATE). A day with
more than MAX_FILES_PER_DAY data files is then rewritten into one (the bin-pack rewrite), and old
snapshots expire like VACUUM. Timestamps are handled as the Iceberg tables hold them (UTC, no zone,
microseconds) after the verified rows are read the way Athena reads the Hive tables: rounded to the
millisecond (`hive_millis`).
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from pyiceberg.catalog.glue import GlueCatalog
from pyiceberg.exceptions import NoSuchNamespaceError, NoSuchTableError

from compactor.dedup import DUCKDB, DayQuery, Relations, key_sql, literal
from compactor.logic import DayCounts, DayOutcome, DayUnit, RunInfo
from shared.arrow import arrow_type, hive_timestamp_millis, parquet_input
from shared.handler import RemainingMs
from shared.iceberg import glue_catalog
from shared.ledger import live_schema_mismatch
from shared.schema import COMPACTION_RUNS, DUPLICATE_CONFLICTS, AuditTableSpec, CompactedTableSpec, FieldSpec, Kind

_TIMESTAMP_KINDS = (Kind.TIMESTAMP_MS, Kind.TIMESTAMP_US)


class IcebergTableMissing(RuntimeError):
    pass


def working_type(spec: FieldSpec) -> pa.DataType:
    """Arrow type of a column as the Iceberg tables hold it (timestamps: us, no zone, UTC)."""
    return pa.timestamp("us") if spec.kind in _TIMESTAMP_KINDS else arrow_type(spec.kind)


def working_schema(fields: Sequence[FieldSpec]) -> pa.Schema:
    return pa.schema([pa.field(s.name, working_type(s), nullable=not s.required) for s in fields])


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Columns in the schema's order and types; a column the input lacks reads as nulls."""
    columns = []
    for target in schema:
        if target.name in table.column_names:
            column = table.column(target.name)
            if pa.types.is_timestamp(column.type) and column.type.tz is not None:
                column = column.cast(pa.timestamp(column.type.unit, tz="UTC")).cast(pa.timestamp(column.type.unit))
            columns.append(column.cast(target.type))
        else:
            columns.append(pa.nulls(table.num_rows, target.type))
    return pa.Table.from_arrays(columns, schema=schema)


@dataclass
class IoCounts:
    """Objects this engine read from the verified bucket (pyiceberg's own IO is counted by the caller)."""

    verified_objects_read: int = 0
    verified_bytes_read: int = 0


def catalog_for(glue: Any, s3: Any, credentials: Any, region: str) -> GlueCatalog:
    """pyiceberg's Glue catalog on the same endpoint and credentials as the boto3 clients."""
    endpoint = getattr(s3.meta, "endpoint_url", None)
    local_endpoint = endpoint if endpoint and "amazonaws.com" not in endpoint else None
    catalog: GlueCatalog = glue_catalog("compactor", region=region, endpoint_url=local_endpoint,
                                        credentials=credentials, glue=glue)
    return catalog



class LocalEngine:
    name = "local"

    def __init__(
        self,
        *,
        glue: Any,
        s3: Any,
        catalog: GlueCatalog,
        glue_database: str,
        alerts_database: str,
        audit_database: str,
        max_files_per_day: int,
    ) -> None:
        self._glue = glue
        self._s3 = s3
        self._catalog = catalog
        self._glue_database = glue_database
        self._alerts_database = alerts_database
        self._audit_database = audit_database
        self._max_files = max_files_per_day
        self.io = IoCounts()
        self.seconds: dict[str, float] = {}  # time per phase (bench/compactor_bench.py prints it)

    @property
    def env_name(self) -> str:
        return self._alerts_database.removeprefix("telemetry_alerts_")

    def schema_mismatch(self, table: CompactedTableSpec) -> str | None:
        try:
            described = self._glue.get_table(DatabaseName=self._alerts_database, Name=table.name)["Table"]
        except self._glue.exceptions.EntityNotFoundException:
            return None  # no table at all: the day's own attempt reports it
        return live_schema_mismatch(table, described)

    # -- tables ------------------------------------------------------------------------------------

    def _load(self, database: str, name: str) -> Any:
        try:
            return self._catalog.load_table((database, name))
        except (NoSuchTableError, NoSuchNamespaceError):
            raise IcebergTableMissing(
                f"Iceberg table {database}.{name} does not exist: the stack's provisioning creates the compacted "
                "and audit tables from template.yaml (locally `signals local` does); the compactor never creates them"
            ) from None

    # -- one day -----------------------------------------------------------------------------------

    def compact_day(self, unit: DayUnit, run: RunInfo, remaining_ms: RemainingMs) -> DayOutcome:
        table = unit.table
        compacted = self._load(self._alerts_database, table.name)
        conflicts_table = self._load(self._audit_database, DUPLICATE_CONFLICTS.name)
        clock = time.perf_counter()
        verified = self.verified_day(table, unit.day)
        clock = self._lap("read verified", clock)
        day_filter = day_predicate(unit.day)
        target = conform(compacted.scan(row_filter=day_filter).to_arrow(), working_schema(table.fields))
        recorded = conflicts_table.scan(
            row_filter=f"table_name = {literal(table.name)} AND {day_filter}",
            selected_fields=("table_name", "day", "event_key", "conflicting_source_key", "conflicting_source_line"),
        ).to_arrow()
        relations = Relations("verified_day", "target_day", "recorded_conflicts", "runs")
        clock = self._lap("scan iceberg", clock)
        connection = duckdb.connect()
        try:
            connection.execute("SET TimeZone='UTC'")
            connection.register("verified_day", verified)
            connection.register("target_day", target)
            connection.register("recorded_conflicts", recorded)
            # The window once; the stats, plan and conflicts queries read its result.
            ranked_sql = DayQuery(DUCKDB, table, unit.day, relations).ranked_select()
            connection.execute(f"CREATE TEMP TABLE ranked_day AS {ranked_sql}")
            query = DayQuery(DUCKDB, table, unit.day, replace(relations, ranked="ranked_day"))
            stats_sql = query.stats_select(run.run_id)
            plan_sql = query.plan_select()
            conflicts_sql = (f"SELECT c.* FROM ({query.conflicts_select(run.run_id, run.started_iso)}) c "
                             "WHERE NOT EXISTS (SELECT 1 FROM recorded_conflicts a WHERE a.event_key = c.event_key "
                             "AND a.conflicting_source_key = c.conflicting_source_key "
                             "AND a.conflicting_source_line = c.conflicting_source_line)")
            stats = _one_row(connection, stats_sql)
            plan_rows = connection.sql(plan_sql).to_arrow_table()
            new_conflicts = connection.sql(conflicts_sql).to_arrow_table()
            replaced = int(stats["replaced"])
            refreshed = int(stats["refreshed"])
            schema = working_schema(table.fields)
            if replaced or refreshed:
                connection.register("plan_rows", plan_rows)
                columns = ", ".join(f'"{name}"' for name in table.column_names)
                keep_sql = (f"SELECT {columns} FROM target_day t WHERE {key_sql(DUCKDB, table, 't')} NOT IN "
                            f"(SELECT event_key FROM plan_rows WHERE action IN ('replace', 'refresh')) "
                            f"UNION ALL SELECT {columns} FROM plan_rows")
                day_rows = conform(connection.sql(keep_sql).to_arrow_table(), schema)
        finally:
            connection.close()
        clock = self._lap("duckdb", clock)
        if replaced or refreshed:
            compacted.overwrite(day_rows, overwrite_filter=day_filter)
        elif plan_rows.num_rows:
            compacted.append(conform(plan_rows, schema))
        if new_conflicts.num_rows:
            conflicts_table.append(conform(new_conflicts, working_schema(DUPLICATE_CONFLICTS.fields)))
        data_files, rewritten = self._bin_pack(compacted, unit.day, schema)
        self._lap("commit", clock)
        counts = DayCounts(
            verified_rows=int(stats["verified_rows"]),
            inserted=int(stats["inserted"]),
            replaced=replaced,
            refreshed=refreshed,
            natural_duplicates=int(stats["natural_duplicates"]),
            conflicting_duplicates=int(stats["conflicting_duplicates"]),
            conflicts_recorded=new_conflicts.num_rows,
            late_rows=int(stats["late_rows"]),
        )
        return DayOutcome(counts=counts, statements=[ranked_sql, stats_sql, plan_sql, conflicts_sql],
                          data_files=data_files, rewritten=rewritten)

    def _bin_pack(self, compacted: Any, day: str, schema: pa.Schema) -> tuple[int, bool]:
        """Rewrite a day that piled up more than MAX_FILES_PER_DAY data files into one file."""
        scan = compacted.scan(row_filter=day_predicate(day))
        files = len(list(scan.plan_files()))
        if files <= self._max_files:
            return files, False
        compacted.overwrite(conform(scan.to_arrow(), schema), overwrite_filter=day_predicate(day))
        compacted.refresh()
        return len(list(compacted.scan(row_filter=day_predicate(day)).plan_files())), True

    def _lap(self, phase: str, since: float) -> float:
        now = time.perf_counter()
        self.seconds[phase] = self.seconds.get(phase, 0.0) + now - since
        return now

    # -- verified input ----------------------------------------------------------------------------

    def verified_day(self, table: CompactedTableSpec, day: str) -> pa.Table:
        """The day's verified rows (all hours Glue lists for it) plus `day` and `hour`."""
        pages = self._glue.get_paginator("get_partitions").paginate(
            DatabaseName=self._glue_database, TableName=table.source.name, Expression=f"day = '{day}'"
        )
        jobs: list[tuple[str, str, str]] = []
        for page in pages:
            for partition in page["Partitions"]:
                values = list(partition["Values"])
                if len(values) != 2 or values[0] != day:
                    continue
                bucket, prefix = _split_s3_url(partition["StorageDescriptor"]["Location"])
                jobs.extend((bucket, key, values[1]) for key in self._data_keys(bucket, prefix))
        schema = working_schema(table.fields)
        if not jobs:
            return schema.empty_table()
        with ThreadPoolExecutor(max_workers=8) as pool:
            pieces = list(pool.map(lambda job: self._read(job[0], job[1]), jobs))
        tables = []
        for (_, _, hour), piece in zip(jobs, pieces, strict=True):
            with_keys = piece.append_column("day", pa.array([day] * piece.num_rows, pa.string()))
            with_keys = with_keys.append_column("hour", pa.array([hour] * piece.num_rows, pa.string()))
            tables.append(conform(with_keys, schema))
        return hive_millis(pa.concat_tables(tables))

    def _data_keys(self, bucket: str, prefix: str) -> list[str]:
        keys = []
        for page in self._s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                name = item["Key"].rsplit("/", 1)[-1]
                if item["Key"].endswith(".parquet") and name[:1] not in ("_", ".") and item.get("Size", 0) > 0:
                    keys.append(item["Key"])
        return keys

    def _read(self, bucket: str, key: str) -> pa.Table:
        body = self._s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        self.io.verified_objects_read += 1
        self.io.verified_bytes_read += len(body)
        return pq.read_table(parquet_input(body))

    # -- audit and maintenance ---------------------------------------------------------------------

    def record_runs(self, rows: Sequence[Mapping[str, Any]], remaining_ms: RemainingMs) -> None:
        runs = self._load(self._audit_database, COMPACTION_RUNS.name)
        runs.append(audit_rows(COMPACTION_RUNS, rows))

    def expire_snapshots(self, table: CompactedTableSpec, older_than: datetime, remaining_ms: RemainingMs) -> str:
        compacted = self._load(self._alerts_database, table.name)
        expired = _expire(compacted, older_than)
        return f"{table.name}: expired {expired} snapshot(s) older than {older_than:%Y-%m-%dT%H:%M:%SZ}"

    def maintain_audit(self, table: AuditTableSpec, older_than: datetime, remaining_ms: RemainingMs) -> str:
        """Rewrite an audit table whose partitions hold more than one file each into one file per
        partition (Athena's OPTIMIZE ... BIN_PACK), then expire its old snapshots (VACUUM)."""
        audit = self._load(self._audit_database, table.name)
        tasks = list(audit.scan().plan_files())
        partitions = {tuple(task.file.partition) for task in tasks}
        rewritten = len(tasks) > len(partitions)
        if rewritten:
            audit.overwrite(conform(audit.scan().to_arrow(), working_schema(table.fields)))
            audit.refresh()
        expired = _expire(audit, older_than)
        files = len(list(audit.scan().plan_files()))
        packed = f"rewrote {len(tasks)} file(s) into {files}" if rewritten else f"{files} file(s), already packed"
        return f"{table.name}: {packed}, expired {expired} snapshot(s) older than {older_than:%Y-%m-%dT%H:%M:%SZ}"


def _expire(table: Any, older_than: datetime) -> int:
    """Expire the snapshots older than `older_than`, never the current one (VACUUM's expiry)."""
    current = table.current_snapshot()
    cutoff_ms = int(older_than.timestamp() * 1000)
    old = [s.snapshot_id for s in table.snapshots()
           if s.timestamp_ms < cutoff_ms and (current is None or s.snapshot_id != current.snapshot_id)]
    if old:
        table.maintenance.expire_snapshots().by_ids(old).commit()
    return len(old)


def hive_millis(table: pa.Table) -> pa.Table:
    """The verified rows' timestamps as Athena reads the verified (Hive) tables in the MERGE's source:
    milliseconds, rounded (`shared.arrow.hive_timestamp_millis`). Athena then writes them into the
    Iceberg `timestamp` columns, which keep microseconds, so a compacted row holds the rounded value
    on either engine; `time_unix_nano` (a bigint) stays exact."""
    for index, field in enumerate(table.schema):
        if pa.types.is_timestamp(field.type):
            table = table.set_column(index, field, hive_timestamp_millis(table.column(index)))
    return table


def day_predicate(day: str) -> str:
    """A pyiceberg row filter on the partition column."""
    return f"day = {literal(day)}"


def audit_rows(spec: AuditTableSpec, rows: Sequence[Mapping[str, Any]]) -> pa.Table:
    schema = working_schema(spec.fields)
    columns: dict[str, list[Any]] = {f.name: [] for f in schema}
    for row in rows:
        for name, values in columns.items():
            value = row.get(name)
            if isinstance(value, datetime):
                value = value.astimezone(UTC).replace(tzinfo=None)
            values.append(value)
    return pa.Table.from_pydict(columns, schema=schema)


def _one_row(connection: Any, sql: str) -> dict[str, Any]:
    cursor = connection.execute(sql)
    names = [str(d[0]) for d in cursor.description]
    (values,) = cursor.fetchall()
    return dict(zip(names, values, strict=True))


def _split_s3_url(location: str) -> tuple[str, str]:
    without_scheme = re.sub(r"^s3a?://", "", location)
    bucket, _, prefix = without_scheme.partition("/")
    return bucket, prefix if not prefix or prefix.endswith("/") else prefix + "/"
