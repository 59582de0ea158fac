"""The reconciler's five repairs, bounded by the time left and resumable from the state item.

A run works through the repairs in order, one small unit at a time (a page of the status index,
one hour prefix of one type or source, one table), and checks the time left before each unit.
When the reserve is reached it stores where it stopped (repair, unit index and the window it was
working on) in the reconciler state item; the next run continues there. Every unit is idempotent,
so repeating one after a crash is harmless. Nothing here scans the table: the status index is
queried, and everything else is a key lookup for keys derived from the window's hour prefixes, so a
run costs in proportion to the failures and the window, not to the size of the registry.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from registry.dal import RedriveQueue, TableMissing
from registry.logic import Clock, PartitionRef, Registrar, rfc3339, utc_now
from shared import registry_keys as rk
from shared.handler import RemainingMs
from shared.layout import VERIFIED_SUFFIX, Partition, parse_verified_key, raw_prefix
from shared.s3events import s3_notification_body
from shared.schema import ALL_TYPES, TABLES, TABLES_BY_TYPE, Source
from shared.timeparse import parse_rfc3339_ms

RETRY: Final = "retry_partitions"
UNREGISTERED: Final = "register_lost_files"
GLUE: Final = "restore_glue_partitions"
LATE: Final = "register_late_files"
RAW: Final = "redrive_raw_objects"
PHASES: Final = (RETRY, UNREGISTERED, LATE, GLUE, RAW)

STATUS_PAGE_SIZE: Final = 100
_log = logging.getLogger(__name__)



@dataclass(frozen=True)
class Settings:
    verified_bucket: str
    raw_bucket: str
    lookback_hours: int = 6
    registry_grace: timedelta = timedelta(minutes=20)
    raw_grace: timedelta = timedelta(minutes=30)
    time_reserve_ms: int = 10_000


@dataclass
class RunSummary:
    counts: Counter[str] = field(default_factory=Counter)
    complete: bool = True
    resumed_from: str | None = None
    stopped_in: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "complete": self.complete,
            "resumed_from": self.resumed_from,
            "stopped_in": self.stopped_in,
            "counts": dict(sorted(self.counts.items())),
        }


class OutOfTime(Exception):
    def __init__(self, phase: str, index: int) -> None:
        super().__init__(f"stopped in {phase} at unit {index}")
        self.phase = phase
        self.index = index


def window_hours(window_end: datetime, lookback_hours: int) -> list[Partition]:
    """The hour partitions from `lookback_hours` before `window_end` up to its own hour, oldest first."""
    end = window_end.replace(minute=0, second=0, microsecond=0)
    return [Partition.from_datetime(end - timedelta(hours=back)) for back in range(lookback_hours, -1, -1)]


def raw_hour_prefix(source: str, hour: Partition) -> str:
    return f"{raw_prefix(source)}{hour.day.replace('-', '/')}/{hour.hour}/"


def verified_hour_prefix(type_value: str, hour: Partition) -> str:
    return f"{TABLES_BY_TYPE[type_value].location_prefix}{hour.path}/"


class Reconciler:
    def __init__(
        self,
        registrar: Registrar,
        redrive: RedriveQueue,
        settings: Settings,
        *,
        clock: Clock = utc_now,
        logger: Any = None,
    ) -> None:
        self._registrar = registrar
        self._store = registrar.store
        self._catalog = registrar.catalog
        self._objects = registrar.objects
        self._redrive = redrive
        self._settings = settings
        self._clock = clock
        self._log = logger or _log

    def run(self, remaining_ms: RemainingMs) -> RunSummary:
        started = self._clock()
        summary = RunSummary()
        state = self._store.get(rk.reconciler_state_key()) or {}
        phase = state.get("cursor_phase")
        start_index = int(state.get("cursor_index", 0))
        if phase in PHASES:
            window_end_ms = parse_rfc3339_ms(str(state["cursor_window_end"]))
            window_end = datetime.fromtimestamp(window_end_ms / 1000, started.tzinfo)
            summary.resumed_from = phase
        else:
            phase, start_index, window_end = RETRY, 0, started
        hours = window_hours(window_end, self._settings.lookback_hours)

        def check_time(current_phase: str, index: int) -> None:
            if remaining_ms() <= self._settings.time_reserve_ms:
                raise OutOfTime(current_phase, index)

        steps: dict[str, Callable[[int], None]] = {
            RETRY: lambda first: self._retry_partitions(started, summary.counts, check_time),
            UNREGISTERED: lambda first: self._register_lost_files(hours, first, summary.counts, check_time),
            LATE: lambda first: self._register_late_files(hours, first, summary.counts, check_time),
            GLUE: lambda first: self._restore_glue_partitions(hours, first, summary.counts, check_time),
            RAW: lambda first: self._redrive_raw_objects(hours, first, summary.counts, check_time),
        }
        try:
            check_time(phase, start_index)
            self._restore_tables(summary.counts)
            for current in PHASES[PHASES.index(phase):]:
                steps[current](start_index if current == phase else 0)
        except OutOfTime as stop:
            summary.complete = False
            summary.stopped_in = stop.phase
            self._save_state(started, summary, cursor=(stop.phase, stop.index, window_end))
        else:
            self._save_state(started, summary, cursor=None)
        return summary

    # -- state -----------------------------------------------------------------------------------

    def _save_state(self, started: datetime, summary: RunSummary, cursor: tuple[str, int, datetime] | None) -> None:
        item: dict[str, Any] = {
            **rk.reconciler_state_key(),
            "item_type": "reconciler_state",
            "last_run_at": rfc3339(started),
            "last_finished_at": rfc3339(self._clock()),
            "last_summary": {**summary.counts, "complete": int(summary.complete)},
        }
        if cursor is not None:
            phase, index, window_end = cursor
            item.update(cursor_phase=phase, cursor_index=index, cursor_window_end=rfc3339(window_end))
        self._store.put(item)

    # -- tables ----------------------------------------------------------------------------------

    def _restore_tables(self, counts: Counter[str]) -> None:
        """A dropped table is recreated from the shared schema (its partitions by repair 3)."""
        for table in TABLES:
            self._catalog.forget_table(table.name)  # a warm run must see a table dropped since the last one
            try:
                self._catalog.table(table.name)
            except TableMissing:
                try:
                    self._catalog.create_table(table, self._settings.verified_bucket)
                    counts["tables_recreated"] += 1
                    self._log.warning("recreated missing Glue table", extra={"table": table.name})
                except Exception:
                    counts["errors"] += 1
                    self._log.exception("could not recreate Glue table", extra={"table": table.name})
            except Exception:
                counts["errors"] += 1
                self._log.exception("could not read Glue table", extra={"table": table.name})

    # -- (1) pending and failed partitions -------------------------------------------------------

    def _retry_partitions(
        self, started: datetime, counts: Counter[str], check_time: Callable[[str, int], None]
    ) -> None:
        before = rfc3339(started)  # items this run updates move past it, so each is tried once per run
        for status in (rk.STATUS_PARTITION_PENDING, rk.STATUS_PARTITION_FAILED):
            start_key: dict[str, Any] | None = None
            while True:
                check_time(RETRY, 0)
                items, start_key = self._store.query_status(status, before, limit=STATUS_PAGE_SIZE, start_key=start_key)
                if items:
                    try:
                        self._retry_items(items, counts)
                    except Exception:  # one bad page must not stop the other repairs
                        counts["errors"] += 1
                        self._log.exception("retrying a page of the status index failed", extra={"status": status})
                if not start_key:
                    break

    def _retry_items(self, items: Sequence[dict[str, Any]], counts: Counter[str]) -> None:
        refs: dict[str, PartitionRef] = {
            item["verified_key"]: (str(item["table"]), Partition(str(item["day"]), str(item["hour"]))) for item in items
        }
        outcomes = self._registrar.ensure_partitions(set(refs.values()), counts)
        now = rfc3339(self._clock())
        for item in items:
            outcome = outcomes[refs[item["verified_key"]]]
            try:
                changed = self._store.set_file_status(
                    item["verified_key"], str(item["etag"]), outcome.status, now=now, last_error=outcome.error,
                    count_attempt=True,
                )
            except Exception:
                counts["errors"] += 1
                self._log.exception("could not update file item", extra={"key": item["verified_key"]})
                continue
            if changed:
                counts[f"retried_{outcome.status}"] += 1

    # -- (2) verified files with no item ---------------------------------------------------------

    def _register_lost_files(
        self, hours: Sequence[Partition], first: int, counts: Counter[str], check_time: Callable[[str, int], None]
    ) -> None:
        units = [(type_value, hour) for hour in hours for type_value in ALL_TYPES]
        newest = self._clock() - self._settings.registry_grace
        for index in range(first, len(units)):
            check_time(UNREGISTERED, index)
            type_value, hour = units[index]
            try:
                listed = [
                    entry for entry in self._objects.list_prefix(
                        self._settings.verified_bucket, verified_hour_prefix(type_value, hour)
                    )
                    if entry.key.endswith(VERIFIED_SUFFIX) and entry.last_modified <= newest
                ]
                counts["verified_prefixes_listed"] += 1
                if not listed:
                    continue
                on_record = self._store.batch_get([rk.file_key(entry.key) for entry in listed], ["etag"])
                lost = [
                    entry.key for entry in listed
                    if on_record.get(rk.file_key(entry.key)[rk.PK], {}).get("etag") != entry.etag
                ]
                if not lost:
                    continue
                counts["lost_files_found"] += len(lost)
                report = self._registrar.register_objects(self._settings.verified_bucket, lost)
                counts.update({f"lost_{name}": value for name, value in report.counts.items()})
                if report.failures:
                    counts["errors"] += len(report.failures)
            except Exception:
                counts["errors"] += 1
                self._log.exception("registering lost files failed", extra={"type": type_value, "hour": hour.path})

    # -- (2b) late files: outputs of recent raw objects in partitions outside the window ----------

    def _register_late_files(
        self, hours: Sequence[Partition], first: int, counts: Counter[str], check_time: Callable[[str, int], None]
    ) -> None:
        """Register what the parser wrote lately into old partitions (events days late) and nobody registered.

        Repair 2 lists the window's event-time partitions, so a file for events weeks old (the parser
        accepts 30 days back) is outside it. Raw objects are partitioned by arrival instead: the
        window's raw prefixes hold everything that arrived lately, and each one's processing record
        lists the verified files it produced. Files inside the window are left to repair 2.
        """
        units = [(source.value, hour) for hour in hours for source in Source]
        in_window = set(hours)
        newest = rfc3339(self._clock() - self._settings.registry_grace)
        bucket = self._settings.raw_bucket
        for index in range(first, len(units)):
            check_time(LATE, index)
            source, hour = units[index]
            try:
                listed = list(self._objects.list_prefix(bucket, raw_hour_prefix(source, hour)))
                if not listed:
                    continue
                records = self._store.batch_get([rk.raw_key(bucket, entry.key) for entry in listed],
                                                ["outputs", "processed_at"])
                outputs = sorted({
                    str(key) for record in records.values() if str(record.get("processed_at", "")) <= newest
                    for key in record.get("outputs") or []
                    if (parsed := parse_verified_key(str(key))) is not None and parsed.partition not in in_window
                })
                if not outputs:
                    continue
                on_record = self._store.batch_get([rk.file_key(key) for key in outputs], ["etag"])
                late = [key for key in outputs if rk.file_key(key)[rk.PK] not in on_record]
                if not late:
                    continue
                counts["late_files_found"] += len(late)
                report = self._registrar.register_objects(self._settings.verified_bucket, late)
                counts.update({f"late_{name}": value for name, value in report.counts.items()})
                if report.failures:
                    counts["errors"] += len(report.failures)
            except Exception:
                counts["errors"] += 1
                self._log.exception("registering late files failed", extra={"source": source, "hour": hour.path})

    # -- (3) partitions on record but missing from Glue ------------------------------------------

    def _restore_glue_partitions(
        self, hours: Sequence[Partition], first: int, counts: Counter[str], check_time: Callable[[str, int], None]
    ) -> None:
        for index in range(first, len(TABLES)):
            check_time(GLUE, index)
            table = TABLES[index].name
            try:
                records = self._store.batch_get([rk.partition_key(table, h.day, h.hour) for h in hours], ["created_at"])
                recorded = [h for h in hours if rk.partition_key(table, h.day, h.hour)[rk.PK] in records]
                if not recorded:
                    continue
                present = self._catalog.existing_partitions(table, recorded)
                missing = [(table, hour) for hour in recorded if hour not in present]
                if not missing:
                    continue
                restore_counts: Counter[str] = Counter()
                outcomes = self._registrar.ensure_partitions(missing, restore_counts, trust_records=False)
                counts["partitions_recreated"] += sum(1 for o in outcomes.values() if o.status == rk.STATUS_REGISTERED)
                failed = [ref for ref, o in outcomes.items() if o.status != rk.STATUS_REGISTERED]
                if failed:
                    counts["errors"] += len(failed)
                    self._log.warning("partitions not restored", extra={"table": table, "count": len(failed)})
            except Exception:
                counts["errors"] += 1
                self._log.exception("restoring Glue partitions failed", extra={"table": table})

    # -- (4) raw objects nobody processed --------------------------------------------------------

    def _redrive_raw_objects(
        self, hours: Sequence[Partition], first: int, counts: Counter[str], check_time: Callable[[str, int], None]
    ) -> None:
        units = [(source.value, hour) for hour in hours for source in Source]
        oldest_allowed = self._clock() - self._settings.raw_grace
        bucket = self._settings.raw_bucket
        for index in range(first, len(units)):
            check_time(RAW, index)
            source, hour = units[index]
            try:
                listed = [
                    entry for entry in self._objects.list_prefix(bucket, raw_hour_prefix(source, hour))
                    if entry.last_modified <= oldest_allowed
                ]
                counts["raw_prefixes_listed"] += 1
                if not listed:
                    continue
                processed = self._store.batch_get([rk.raw_key(bucket, entry.key) for entry in listed], ["etag"])
                unprocessed = [entry for entry in listed if rk.raw_key(bucket, entry.key)[rk.PK] not in processed]
                if not unprocessed:
                    continue
                bodies = [
                    s3_notification_body(
                        bucket, entry.key, entry.etag, entry.size, event_time=rfc3339(entry.last_modified)
                    )
                    for entry in unprocessed
                ]
                failed = self._redrive.send(bodies)
                counts["raw_redriven"] += len(bodies) - failed
                if failed:
                    counts["errors"] += failed
                self._log.info("redrove unprocessed raw objects", extra={"prefix": raw_hour_prefix(source, hour),
                                                                         "count": len(bodies) - failed})
            except Exception:
                counts["errors"] += 1
                self._log.exception("redriving raw objects failed", extra={"source": source, "hour": hour.path})
