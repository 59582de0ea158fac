"""The compactor's run: lease, plan from the registry, one (table, day) at a time, watermark, report.

Plan. The changed (table, day) come from the registry's `status-index`: `registered` file items
updated after the watermark and at least SETTLE_SECONDS ago (younger updates wait for the next run,
so an item still propagating to the index is never skipped). Nothing lists the lake or scans the
table. A forced run (`{"days": [...], "tables": [...]}`) recomputes exactly those days instead and
leaves the watermark alone.

Run. Each (table, day) is recomputed whole by the engine (compactor.dedup's queries over the day's
verified rows, MERGE on the key), so it is idempotent: a rerun, or a crash between the commit and
the watermark, finds every kept row present and changes nothing. Before each unit the run checks
the time left; at TIME_RESERVE_MS it stops and the next run resumes. The watermark advances only
past updates whose days were all compacted: a failed or unreached day holds it at its oldest
update, so the next run retries that day (and recomputes, harmlessly, any later day it redoes).

A lease item (conditional write with expiry) keeps runs from overlapping; the function's reserved
concurrency of 1 does the same on AWS, the lease covers `signals compact` beside the schedule.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Protocol

from compactor.dal import Artifacts, CompactorStore
from compactor.dedup import check_day
from shared import registry_keys as rk
from shared.handler import RemainingMs
from shared.schema import (
    AUDIT_TABLES,
    COMPACTED_BY_NAME,
    COMPACTED_BY_TYPE,
    COMPACTED_TABLES,
    TABLES,
    AuditTableSpec,
    CompactedTableSpec,
)
from shared.timeparse import parse_rfc3339_ms

Clock = Callable[[], datetime]

SUCCEEDED: Final = "succeeded"
FAILED: Final = "failed"
STOPPED: Final = "stopped"  # out of time while the day ran: not compacted, the next run does it

REPORT_PREFIX: Final = "compactor/run_results/"
LATEST_REPORT_KEY: Final = "compactor/latest/run_results.json"
_log = logging.getLogger(__name__)


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso_us(moment: datetime) -> str:
    """RFC 3339 UTC with microseconds (the audit tables' timestamps)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def iso_ms(moment: datetime) -> str:
    """RFC 3339 UTC with milliseconds: the registry's `updated_at` format, so strings compare in order."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


# --- units and results ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DayUnit:
    """One (compacted table, day) to recompute, with the registry updates that made it due."""

    table: CompactedTableSpec
    day: str
    files: int = 0
    first_update: str | None = None
    last_update: str | None = None

    @property
    def label(self) -> str:
        return f"{self.table.name}/day={self.day}"


@dataclass
class DayCounts:
    verified_rows: int = 0  # verified rows in the day, all copies
    inserted: int = 0  # kept rows added to the compacted table
    replaced: int = 0  # compacted rows replaced by an earlier copy that arrived later
    refreshed: int = 0  # compacted rows re-derived: their own copy's verified file was rewritten (backfill)
    natural_duplicates: int = 0  # dropped copies with the kept one's content
    conflicting_duplicates: int = 0  # dropped copies with other content (see duplicate_conflicts)
    conflicts_recorded: int = 0  # of those, newly written to duplicate_conflicts by this run
    late_rows: int = 0  # rows written whose event day is before the day they were received

    def add(self, other: DayCounts) -> None:
        for name, value in asdict(other).items():
            setattr(self, name, getattr(self, name) + value)


@dataclass
class DayOutcome:
    """What an engine did for one day."""

    counts: DayCounts
    statements: list[str] = field(default_factory=list)  # the SQL submitted (athena) or run (local)
    data_files: int | None = None
    rewritten: bool = False  # bin-packed after the MERGE (too many files)
    queries: list[str] = field(default_factory=list)  # Athena query execution ids


@dataclass
class DayResult:
    unit: DayUnit
    outcome: str
    started_at: datetime
    finished_at: datetime
    counts: DayCounts = field(default_factory=DayCounts)
    engine: str = ""
    error: str | None = None
    detail: DayOutcome | None = None

    @property
    def duration_ms(self) -> int:
        return int((self.finished_at - self.started_at).total_seconds() * 1000)

    def as_dict(self) -> dict[str, Any]:
        return {
            "table": self.unit.table.name,
            "day": self.unit.day,
            "outcome": self.outcome,
            **asdict(self.counts),
            "files_changed": self.unit.files,
            "data_files": self.detail.data_files if self.detail else None,
            "rewritten": self.detail.rewritten if self.detail else False,
            "duration_ms": self.duration_ms,
            "error": self.error,
        }


class OutOfTime(RuntimeError):
    """The engine gave up waiting because the function's time is nearly up."""


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    started_at: datetime

    @property
    def started_iso(self) -> str:
        return iso_us(self.started_at)


class Engine(Protocol):
    name: str

    @property
    def env_name(self) -> str:
        """The env `signals schema apply --env` takes for these tables."""

    def compact_day(self, unit: DayUnit, run: RunInfo, remaining_ms: RemainingMs) -> DayOutcome:
        """Recompute one day (raises on failure, OutOfTime when the time is up)."""

    def record_runs(self, rows: Sequence[Mapping[str, Any]], remaining_ms: RemainingMs) -> None:
        """Append rows to `compaction_runs`."""

    def expire_snapshots(self, table: CompactedTableSpec, older_than: datetime, remaining_ms: RemainingMs) -> str:
        """Expire the table's old snapshots; returns what was done (for the report)."""

    def schema_mismatch(self, table: CompactedTableSpec) -> str | None:
        """Why the live table does not have the columns this code writes (ids and types of the field-id
        ledger), or None (shared.iceberg.live_schema_mismatch over Glue's description of the table)."""

    def maintain_audit(self, table: AuditTableSpec, older_than: datetime, remaining_ms: RemainingMs) -> str:
        """Bin-pack an audit table and expire its old snapshots; returns what was done."""


# --- the request ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunRequest:
    """`{"tables": [...], "days": [...]}`: days given force a recompute; tables alone filter the plan."""

    tables: tuple[CompactedTableSpec, ...] = ()
    days: tuple[str, ...] = ()

    @property
    def forced(self) -> bool:
        return bool(self.days)

    @property
    def filtered(self) -> bool:
        return bool(self.tables) or bool(self.days)


def compacted_table(name: str) -> CompactedTableSpec:
    """A compacted table by its name, its verified table's name or its type (`lock`)."""
    found = COMPACTED_BY_NAME.get(name) or COMPACTED_BY_TYPE.get(name)
    if found is None:
        found = next((t for t in COMPACTED_TABLES if t.source.name == name), None)
    if found is None:
        known = ", ".join(t.name for t in COMPACTED_TABLES)
        raise ValueError(f"unknown table {name!r}; expected one of {known} "
                         "(or a type: lock, bridge, video_doorbell, otlp_logs)")
    return found


def parse_request(event: Mapping[str, Any] | None) -> RunRequest:
    """The EventBridge payload is ignored except `tables` and `days`."""
    event = event or {}
    tables = event.get("tables") or []
    days = event.get("days") or []
    if isinstance(tables, str):
        tables = [tables]
    if isinstance(days, str):
        days = [days]
    specs = tuple(dict.fromkeys(compacted_table(str(name)) for name in tables))
    return RunRequest(tables=specs, days=tuple(dict.fromkeys(check_day(str(day)) for day in days)))


# --- the plan ------------------------------------------------------------------------------------

_TABLE_BY_VERIFIED: Final = {t.source.name: t for t in COMPACTED_TABLES}
_VERIFIED_TYPES: Final = {t.type_value for t in TABLES}


def plan(items: Iterable[Mapping[str, Any]], tables: Sequence[CompactedTableSpec] = ()) -> list[DayUnit]:
    """Registry file items -> the (table, day) units they changed, oldest update first."""
    grouped: dict[tuple[str, str], list[str]] = {}
    for item in items:
        type_value = str(item.get("type", ""))
        table = COMPACTED_BY_TYPE.get(type_value) or _TABLE_BY_VERIFIED.get(str(item.get("table", "")))
        day = str(item.get("day", ""))
        if table is None or not day:
            continue
        grouped.setdefault((table.name, day), []).append(str(item.get(rk.STATUS_SORT_ATTR, "")))
    wanted = {t.name for t in tables}
    units = [
        DayUnit(COMPACTED_BY_NAME[name], day, files=len(updates), first_update=min(updates), last_update=max(updates))
        for (name, day), updates in grouped.items()
        if not wanted or name in wanted
    ]
    return sorted(units, key=lambda u: (u.first_update or "", u.table.name, u.day))


def forced_units(request: RunRequest) -> list[DayUnit]:
    tables = request.tables or COMPACTED_TABLES
    return [DayUnit(table, day) for day in sorted(request.days) for table in tables]


def advanced_watermark(
    watermark: str | None, updates: Iterable[str], unfinished: Iterable[DayUnit]
) -> str | None:
    """The latest update such that every update at or before it belongs to a compacted day."""
    blocked = min((u.first_update for u in unfinished if u.first_update), default=None)
    eligible = [u for u in updates if blocked is None or u < blocked]
    newest = max(eligible, default=None)
    if newest is None or (watermark is not None and newest <= watermark):
        return watermark
    return newest


# --- the run -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    time_reserve_ms: int = 60_000
    lease_seconds: int = 960
    settle_seconds: float = 120.0
    snapshot_retention_hours: float = 168.0
    maintenance_interval_hours: float = 24.0
    audit_maintenance_interval_hours: float = 168.0
    function_name: str = "telemetry-compactor"


@dataclass
class RunResult:
    run_id: str
    engine: str
    started_at: datetime
    finished_at: datetime | None = None
    skipped: str | None = None  # why nothing ran (lease held)
    forced: bool = False
    complete: bool = True
    watermark_before: str | None = None
    watermark_after: str | None = None
    days: list[DayResult] = field(default_factory=list)
    maintenance: list[str] = field(default_factory=list)
    lag_seconds: float = 0.0
    report_uri: str | None = None
    errors: list[str] = field(default_factory=list)
    schema_blocked: list[str] = field(default_factory=list)  # tables stopped: live schema is not the ledger's

    @property
    def totals(self) -> DayCounts:
        total = DayCounts()
        for result in self.days:
            total.add(result.counts)
        return total

    @property
    def days_compacted(self) -> int:
        return sum(1 for r in self.days if r.outcome == SUCCEEDED)

    @property
    def days_failed(self) -> int:
        return sum(1 for r in self.days if r.outcome == FAILED)

    @property
    def ok(self) -> bool:
        return self.skipped is None and self.days_failed == 0 and not self.errors

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "engine": self.engine,
            "started_at": iso_us(self.started_at),
            "finished_at": iso_us(self.finished_at) if self.finished_at else None,
            "skipped": self.skipped,
            "forced": self.forced,
            "complete": self.complete,
            "watermark_before": self.watermark_before,
            "watermark_after": self.watermark_after,
            "days_compacted": self.days_compacted,
            "days_failed": self.days_failed,
            "days_stopped": sum(1 for r in self.days if r.outcome == STOPPED),
            "totals": asdict(self.totals),
            "lag_seconds": round(self.lag_seconds, 3),
            "maintenance": list(self.maintenance),
            "report": self.report_uri,
            "errors": list(self.errors),
            "schema_blocked": list(self.schema_blocked),
            "days": [r.as_dict() for r in self.days],
        }


class Compactor:
    def __init__(
        self,
        store: CompactorStore,
        engine: Engine,
        artifacts: Artifacts,
        settings: Settings,
        *,
        clock: Clock = utc_now,
        logger: Any = None,
    ) -> None:
        self._store = store
        self._engine = engine
        self._artifacts = artifacts
        self._settings = settings
        self._clock = clock
        self._log = logger or _log

    @property
    def engine(self) -> Engine:
        return self._engine

    def run(self, remaining_ms: RemainingMs, request: RunRequest | None = None) -> RunResult:
        request = request or RunRequest()
        started = self._clock()
        run = RunInfo(run_id=f"{started:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}", started_at=started)
        result = RunResult(run_id=run.run_id, engine=self._engine.name, started_at=started, forced=request.forced)
        held = self._store.acquire_lease(run.run_id, int(started.timestamp()), self._settings.lease_seconds)
        if held is not None:
            until = datetime.fromtimestamp(held.expires_at, UTC)
            result.skipped = f"another compaction holds the lease (run {held.owner}, until {iso_ms(until)})"
            result.complete = False
            result.finished_at = self._clock()
            return result
        try:
            self._run(run, request, result, remaining_ms)
        finally:
            self._store.release_lease(run.run_id)
        return result

    def _run(self, run: RunInfo, request: RunRequest, result: RunResult, remaining_ms: RemainingMs) -> None:
        state = self._store.get_state()
        watermark = state.get("watermark")
        result.watermark_before = result.watermark_after = watermark
        updates: list[str] = []
        if request.forced:
            units = forced_units(request)
        else:
            upper = iso_ms(run.started_at - timedelta(seconds=self._settings.settle_seconds))
            items = list(self._store.registered_since(watermark, upper))
            updates = [str(item[rk.STATUS_SORT_ATTR]) for item in items]
            units = plan(items, request.tables)
        unfinished: list[DayUnit] = []
        blocked: dict[str, str | None] = {}
        for index, unit in enumerate(units):
            if remaining_ms() <= self._settings.time_reserve_ms:
                unfinished.extend(units[index:])
                result.complete = False
                break
            if unit.table.name not in blocked:
                blocked[unit.table.name] = self._schema_check(unit.table, units, result)
            if blocked[unit.table.name] is not None:
                unfinished.append(unit)  # the watermark stays before it: compacted after the apply
                continue
            day_result = self._compact(unit, run, remaining_ms)
            result.days.append(day_result)
            if day_result.outcome != SUCCEEDED:
                unfinished.append(unit)
                if day_result.outcome == STOPPED:
                    result.complete = False
                    unfinished.extend(units[index + 1:])
                    break
        self._record_runs(run, result, remaining_ms)
        maintained = self._maintain(result, state, remaining_ms)
        if not request.filtered:
            result.watermark_after = advanced_watermark(watermark, updates, unfinished)
        result.lag_seconds = self._lag(result.watermark_after)
        result.finished_at = self._clock()
        self._store.put_state({
            "item_type": "compactor_state",
            "watermark": result.watermark_after,
            "last_run_id": run.run_id,
            "last_run_at": iso_ms(run.started_at),
            "last_finished_at": iso_ms(result.finished_at),
            "last_outcome": outcome_of(result),
            "last_summary": {**asdict(result.totals), "days_compacted": result.days_compacted,
                             "days_failed": result.days_failed, "lag_seconds": round(result.lag_seconds, 3)},
            "maintained_at": {**(state.get("maintained_at") or {}), **maintained},
        })
        self._write_report(run, request, result)

    def _compact(self, unit: DayUnit, run: RunInfo, remaining_ms: RemainingMs) -> DayResult:
        started = self._clock()
        try:
            outcome = self._engine.compact_day(unit, run, remaining_ms)
        except OutOfTime as exc:
            self._log.warning("compaction stopped: out of time", extra={"unit": unit.label})
            return DayResult(unit, STOPPED, started, self._clock(), engine=self._engine.name, error=str(exc))
        except Exception as exc:
            self._log.exception("compaction failed", extra={"unit": unit.label})
            return DayResult(unit, FAILED, started, self._clock(), engine=self._engine.name,
                             error=f"{type(exc).__name__}: {exc}"[:2000])
        self._log.info("compacted", extra={"unit": unit.label, "counts": asdict(outcome.counts)})
        return DayResult(unit, SUCCEEDED, started, self._clock(), counts=outcome.counts, engine=self._engine.name,
                         detail=outcome)

    def _schema_check(self, table: CompactedTableSpec, units: Sequence[DayUnit], result: RunResult) -> str | None:
        """One clear error per table whose live schema is not the ledger's; its days wait, untried."""
        try:
            problem = self._engine.schema_mismatch(table)
        except Exception as exc:
            problem = f"could not read the table's schema: {type(exc).__name__}: {exc}"
        if problem is None:
            return None
        waiting = sum(1 for u in units if u.table.name == table.name)
        message = (f"{table.name}: {problem}. Run `signals schema apply --env {self._engine.env_name}` "
                   f"(docs/deploy.md, 'Schema releases'); its {waiting} day(s) were not compacted and wait for it"
                   )[:2000]
        self._log.error("compacted table schema does not match the ledger", extra={"table": table.name,
                                                                                   "error": message})
        result.errors.append(message)
        result.schema_blocked.append(table.name)
        return message

    def _record_runs(self, run: RunInfo, result: RunResult, remaining_ms: RemainingMs) -> None:
        rows = [
            {
                "run_id": run.run_id,
                "started_at": run.started_at,
                "table_name": r.unit.table.name,
                "day": r.unit.day,
                **{name: getattr(r.counts, name) for name in
                   ("verified_rows", "inserted", "replaced", "natural_duplicates", "conflicting_duplicates",
                    "late_rows")},
                "engine": r.engine,
                "duration_ms": r.duration_ms,
                "outcome": r.outcome,
                "error": r.error,
            }
            for r in result.days
        ]
        if not rows:
            return
        try:
            self._engine.record_runs(rows, remaining_ms)
        except Exception as exc:  # the compacted tables are committed; say loudly the audit is short
            self._log.exception("could not append to compaction_runs")
            result.errors.append(f"compaction_runs not written: {type(exc).__name__}: {exc}"[:2000])

    def _maintain(self, result: RunResult, state: Mapping[str, Any], remaining_ms: RemainingMs) -> dict[str, str]:
        """Expire old snapshots of the tables this run changed, at most once per interval each; then
        bin-pack and vacuum each audit table once per (slower) audit interval. An audit table first
        seen now starts its interval: each run appends to it, so it always has something to do."""
        done: dict[str, str] = {}
        last = state.get("maintained_at") or {}
        now = self._clock()
        interval = timedelta(hours=self._settings.maintenance_interval_hours)
        cutoff = now - timedelta(hours=self._settings.snapshot_retention_hours)
        changed = {r.unit.table.name: r.unit.table for r in result.days
                   if r.outcome == SUCCEEDED and (r.counts.inserted or r.counts.replaced or r.counts.refreshed)}
        for name, table in sorted(changed.items()):
            previous = last.get(name)
            if previous and now - _parse_time(str(previous)) < interval:
                continue
            if remaining_ms() <= self._settings.time_reserve_ms:
                return done
            try:
                what = self._engine.expire_snapshots(table, cutoff, remaining_ms)
            except OutOfTime:
                return done
            except Exception as exc:
                self._log.exception("snapshot expiry failed", extra={"table": name})
                result.errors.append(f"snapshot expiry of {name}: {type(exc).__name__}: {exc}"[:2000])
                continue
            result.maintenance.append(what)
            done[name] = iso_ms(now)
        audit_interval = timedelta(hours=self._settings.audit_maintenance_interval_hours)
        for audit in AUDIT_TABLES if result.days else ():
            previous = last.get(audit.name)
            if not previous:
                done[audit.name] = iso_ms(now)
                continue
            if now - _parse_time(str(previous)) < audit_interval:
                continue
            if remaining_ms() <= self._settings.time_reserve_ms:
                return done
            try:
                what = self._engine.maintain_audit(audit, cutoff, remaining_ms)
            except OutOfTime:
                return done
            except Exception as exc:
                self._log.exception("audit maintenance failed", extra={"table": audit.name})
                result.errors.append(f"maintenance of {audit.name}: {type(exc).__name__}: {exc}"[:2000])
                continue
            result.maintenance.append(what)
            done[audit.name] = iso_ms(now)
        return done

    def _lag(self, watermark: str | None) -> float:
        oldest = self._store.oldest_registered_after(watermark)
        if oldest is None:
            return 0.0
        updated = _parse_time(str(oldest[rk.STATUS_SORT_ATTR]))
        return max(0.0, (self._clock() - updated).total_seconds())

    def _write_report(self, run: RunInfo, request: RunRequest, result: RunResult) -> None:
        report = run_report(run, request, result, self._settings.function_name)
        key = f"{REPORT_PREFIX}{run.started_at:%Y/%m/%d}/{run.run_id}.json"
        try:
            result.report_uri = self._artifacts.put_json(key, report)
            self._artifacts.put_json(LATEST_REPORT_KEY, report)
        except Exception as exc:
            self._log.exception("could not write the run report")
            result.errors.append(f"run report not written: {type(exc).__name__}: {exc}"[:2000])


def outcome_of(result: RunResult) -> str:
    """`succeeded`, `failed` (a day failed or the audit/report could not be written) or `partial` (time ran out)."""
    if not result.ok:
        return "failed"
    return "succeeded" if result.complete else "partial"


def _parse_time(text: str) -> datetime:
    return datetime.fromtimestamp(parse_rfc3339_ms(text) / 1000, UTC)


def run_report(run: RunInfo, request: RunRequest, result: RunResult, function_name: str) -> dict[str, Any]:
    """The run as dbt's run_results.json has it: metadata, one result per table-day, elapsed time."""
    finished = result.finished_at or utc_now()
    results = []
    for day in result.days:
        detail = day.detail
        results.append({
            "unique_id": f"compaction.{day.unit.table.name}.{day.unit.day}",
            "status": {SUCCEEDED: "success", FAILED: "error", STOPPED: "skipped"}[day.outcome],
            "timing": [{"name": "execute", "started_at": iso_us(day.started_at),
                        "completed_at": iso_us(day.finished_at)}],
            "thread_id": "main",
            "execution_time": round(day.duration_ms / 1000, 3),
            "adapter_response": {**asdict(day.counts), "engine": day.engine,
                                 "query_ids": detail.queries if detail else [],
                                 "data_files": detail.data_files if detail else None,
                                 "rewritten": detail.rewritten if detail else False},
            "message": day.error or f"{day.counts.inserted} inserted, {day.counts.replaced} replaced",
            "failures": None if day.outcome == SUCCEEDED else 1,
            "compiled_code": "\n;\n".join(detail.statements) if detail and detail.statements else None,
            "relation_name": day.unit.table.name,
            "day": day.unit.day,
            "files_changed": day.unit.files,
        })
    return {
        "metadata": {
            "dbt_schema_version": "https://schemas.getdbt.com/dbt/run-results/v6.json",
            "generated_at": iso_us(finished),
            "invocation_id": run.run_id,
            "invocation_started_at": iso_us(run.started_at),
            "tool": function_name,
            "engine": result.engine,
        },
        "results": results,
        "elapsed_time": round((finished - run.started_at).total_seconds(), 3),
        "args": {"tables": [t.name for t in request.tables], "days": list(request.days), "forced": request.forced},
        "summary": {k: v for k, v in result.as_dict().items() if k not in ("days", "report")},
    }


def time_left_from(deadline_monotonic: float) -> RemainingMs:
    return lambda: int((deadline_monotonic - time.monotonic()) * 1000)
