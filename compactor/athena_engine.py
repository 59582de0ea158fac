"""The `athena` engine: the Lambda plans and polls, Athena (the dbt workgroup) runs the SQL.

For one (table, day), in order, each a query on the workgroup:

1. the stats select (what the day holds, what the MERGE will change; read before it runs),
2. the conflicts MERGE into `duplicate_conflicts` (a conflict already on record is not added again),
3. the compacted table's MERGE (insert absent keys, replace a later copy by an earlier one),
4. the day's data-file count (`$partitions`' file_count), and `OPTIMIZE ... REWRITE DATA USING BIN_PACK` for that day
   when it exceeds MAX_FILES_PER_DAY.

Each query is polled with exponential backoff. A FAILED or CANCELLED query, or a throttled
StartQueryExecution, is tried again up to ATHENA_MAX_ATTEMPTS times; then the day is reported
failed (the run goes on with the next day and the watermark stays before the failed one). The
statements are idempotent, so a retry after a query that did commit changes nothing. When the
function's time runs short while a query runs, the query is stopped and the day left to the next
run. Only core dependencies: this module never imports pyarrow, DuckDB, pyiceberg or sqlglot.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from compactor.dal import AthenaQueries, AthenaThrottled
from compactor.dedup import ATHENA, DayQuery, Relations, literal, quote, relation, timestamp_literal, vacuum
from compactor.logic import DayCounts, DayOutcome, DayUnit, OutOfTime, RunInfo, iso_us
from shared.handler import RemainingMs
from shared.ledger import live_schema_mismatch
from shared.schema import COMPACTION_RUNS, DUPLICATE_CONFLICTS, AuditTableSpec, CompactedTableSpec, Kind

FIRST_POLL_S: Final = 0.25
#: Time kept back while polling, at least: a query still running then is stopped, and the rest of the
#: run's reserve is left for the audit INSERT, the watermark and the report.
MIN_POLL_RESERVE_MS: Final = 5_000


class QueryFailed(RuntimeError):
    def __init__(self, message: str, attempts: int) -> None:
        super().__init__(message)
        self.attempts = attempts


Sleep = Callable[[float], None]


class AthenaEngine:
    name = "athena"

    def __init__(
        self,
        queries: AthenaQueries,
        *,
        glue_database: str,
        alerts_database: str,
        audit_database: str,
        max_files_per_day: int,
        max_attempts: int = 3,
        poll_max_s: float = 5.0,
        poll_reserve_ms: int = MIN_POLL_RESERVE_MS,
        sleep: Sleep = time.sleep,
        logger: Any = None,
        glue: Any = None,
    ) -> None:
        self._queries = queries
        self._glue = glue
        self._glue_database = glue_database
        self._alerts_database = alerts_database
        self._audit_database = audit_database
        self._max_files = max_files_per_day
        self._max_attempts = max_attempts
        self._poll_max_s = poll_max_s
        self._poll_reserve_ms = max(poll_reserve_ms, MIN_POLL_RESERVE_MS)
        self._sleep = sleep
        self._log = logger

    @property
    def env_name(self) -> str:
        return env_of(self._alerts_database)

    def schema_mismatch(self, table: CompactedTableSpec) -> str | None:
        if self._glue is None:
            return None
        try:
            described = self._glue.get_table(DatabaseName=self._alerts_database, Name=table.name)["Table"]
        except self._glue.exceptions.EntityNotFoundException:
            return None  # no table at all: the day's own attempt reports it
        return live_schema_mismatch(table, described)

    def relations(self, table: CompactedTableSpec) -> Relations:
        return Relations(
            verified=relation(self._glue_database, table.source.name),
            compacted=relation(self._alerts_database, table.name),
            conflicts=relation(self._audit_database, DUPLICATE_CONFLICTS.name),
            runs=relation(self._audit_database, COMPACTION_RUNS.name),
        )

    def day_query(self, unit: DayUnit) -> DayQuery:
        return DayQuery(ATHENA, unit.table, unit.day, self.relations(unit.table))

    # -- one day -----------------------------------------------------------------------------------

    def compact_day(self, unit: DayUnit, run: RunInfo, remaining_ms: RemainingMs) -> DayOutcome:
        query = self.day_query(unit)
        outcome = DayOutcome(counts=DayCounts())
        stats_sql = query.stats_select(run.run_id)
        stats = self._run(stats_sql, run, unit, "stats", outcome, remaining_ms=remaining_ms, want_row=True)
        conflicts_sql = query.conflicts_merge(run.run_id, run.started_iso, DUPLICATE_CONFLICTS.column_names)
        self._run(conflicts_sql, run, unit, "conflicts", outcome, remaining_ms=remaining_ms)
        self._run(query.merge(), run, unit, "merge", outcome, remaining_ms=remaining_ms)
        outcome.counts = DayCounts(**{name: _int(stats.get(name)) for name in DayCounts.__dataclass_fields__})
        files_sql = query.data_files_select(self._alerts_database)
        files = self._run(files_sql, run, unit, "files", outcome, remaining_ms=remaining_ms, want_row=True)
        outcome.data_files = _int(files.get("data_files"))
        if outcome.data_files > self._max_files:
            self._run(query.optimize(), run, unit, "optimize", outcome, remaining_ms=remaining_ms)
            outcome.rewritten = True
        return outcome

    def record_runs(self, rows: Sequence[Mapping[str, Any]], remaining_ms: RemainingMs) -> None:
        run_id = str(rows[0]["run_id"])
        self._execute(insert_values(relation(self._audit_database, COMPACTION_RUNS.name), rows), f"{run_id}:runs",
                      remaining_ms)

    def expire_snapshots(self, table: CompactedTableSpec, older_than: datetime, remaining_ms: RemainingMs) -> str:
        # VACUUM expires snapshots older than the table's `vacuum_max_snapshot_age_seconds` property
        # (template.yaml sets it from the SNAPSHOT_RETENTION_HOURS default, shared.iceberg_properties)
        # and removes the orphaned files.
        sql = vacuum(relation(self._alerts_database, table.name))
        self._execute(sql, f"vacuum:{table.name}:{older_than:%Y%m%d%H}", remaining_ms)
        return f"{table.name}: {sql}"

    def maintain_audit(self, table: AuditTableSpec, older_than: datetime, remaining_ms: RemainingMs) -> str:
        """The audit tables take one small append per run: bin-pack the whole table, then VACUUM."""
        target = relation(self._audit_database, table.name)
        optimize = f"OPTIMIZE {target} REWRITE DATA USING BIN_PACK"
        self._execute(optimize, f"optimize:{table.name}:{older_than:%Y%m%d%H}", remaining_ms)
        self._execute(vacuum(target), f"vacuum:{table.name}:{older_than:%Y%m%d%H}", remaining_ms)
        return f"{table.name}: {optimize}; {vacuum(target)}"

    # -- queries -----------------------------------------------------------------------------------

    def _run(
        self, sql: str, run: RunInfo, unit: DayUnit, step: str, outcome: DayOutcome, *, remaining_ms: RemainingMs,
        want_row: bool = False,
    ) -> dict[str, str | None]:
        outcome.statements.append(sql)
        query_id = self._execute(sql, f"{run.run_id}:{unit.label}:{step}", remaining_ms)
        outcome.queries.append(query_id)
        return self._queries.first_row(query_id) if want_row else {}

    def _execute(self, sql: str, token_seed: str, remaining_ms: RemainingMs) -> str:
        """Run one statement to SUCCEEDED, trying again after a failure; returns its execution id."""
        last_error = ""
        for attempt in range(1, self._max_attempts + 1):
            # The same token for a retried Start of the same attempt: Athena runs it once.
            token = hashlib.sha256(f"{token_seed}:{attempt}".encode()).hexdigest()[:64]
            try:
                query_id = self._queries.start(sql, token)
            except AthenaThrottled as exc:
                last_error = f"StartQueryExecution throttled: {exc}"
                self._backoff(attempt)
                continue
            status = self._wait(query_id, remaining_ms)
            if status.state == "SUCCEEDED":
                return query_id
            last_error = f"query {query_id} {status.state}: {status.reason or 'no reason given'}"
            if self._log is not None:
                self._log.warning("athena query did not succeed", extra={"query_id": query_id, "attempt": attempt,
                                                                         "reason": status.reason})
            self._backoff(attempt)
        raise QueryFailed(f"gave up after {attempt} attempt(s): {last_error}", attempt)

    def _wait(self, query_id: str, remaining_ms: RemainingMs) -> Any:
        delay = FIRST_POLL_S
        while True:
            status = self._queries.status(query_id)
            if status.state in ("SUCCEEDED", "FAILED", "CANCELLED"):
                return status
            if remaining_ms() <= self._poll_reserve_ms:
                self._queries.stop(query_id)
                raise OutOfTime(f"query {query_id} still {status.state} when the time ran out (stopped)")
            self._sleep(delay)
            delay = min(delay * 2, self._poll_max_s)

    def _backoff(self, attempt: int) -> None:
        self._sleep(min(FIRST_POLL_S * 2**attempt, self._poll_max_s))


def env_of(alerts_database: str) -> str:
    """`telemetry_alerts_dev` -> `dev` (the env `signals schema apply --env` takes)."""
    return alerts_database.removeprefix("telemetry_alerts_")


def _int(value: object) -> int:
    if value is None or value == "":
        return 0
    return int(str(value))


def sql_value(value: Any, kind: Kind) -> str:
    if value is None:
        return "NULL"
    if kind in (Kind.TIMESTAMP_MS, Kind.TIMESTAMP_US):
        moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
        return timestamp_literal(iso_us(moment.astimezone(UTC)))
    if kind in (Kind.INT, Kind.INT32):
        return str(int(value))
    return literal(str(value))


def insert_values(target: str, rows: Sequence[Mapping[str, Any]], spec: AuditTableSpec = COMPACTION_RUNS) -> str:
    """`INSERT INTO compaction_runs (...) VALUES (...), ...` for the run's rows (or another audit table's)."""
    fields = spec.fields
    columns = ", ".join(quote(f.name) for f in fields)
    values = ",\n".join("(" + ", ".join(sql_value(row.get(f.name), f.kind) for f in fields) + ")" for row in rows)
    return f"INSERT INTO {target} ({columns}) VALUES\n{values}"
