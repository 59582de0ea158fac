"""One campaign: a local stack, clients through the tap, the seeded faults, the settle phase, the ledger.

Phases:
1. start a local stack on free ports (no state file, its own schedules off: the campaign runs the
   reconciler itself so it can add up every run's repairs), the tap in front of its ingest API, the
   fault hooks;
2. send for `minutes` (devices and the OpenTelemetry app, through the tap) while the schedule's
   faults are injected at their times; the reconciler runs every `reconcile_seconds`;
3. stop the faults, flush Firehose and let the pipeline settle: drain, wait out the reconciler's
   local grace periods, run it until a run repairs nothing, run the compactor (when the stack has
   one) until a run changes nothing;
4. read the lake and reconcile it with the ledger.

Local grace periods (LOCAL_ENVIRONMENT): the reconciler leaves raw objects alone for 15 s
(template: 30 min) and verified files for 9 s (template: 20 min; the registry's local batching
window plus visibility timeout is 3.5 s); the compactor takes registry updates older than 2 s
(template: 120 s) and its lease lasts 20 s (template: 960 s, longer than its 900 s timeout; a
killed run keeps the lease until it expires); the ingester's Firehose retry budget is 3 s
(template: 10 s), so a Firehose outage of a few seconds reaches clients as a 503 with Retry-After.
The compactor runs every 15 s while clients send (template: hourly).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TextIO

from signals.chaos import schedule as fault_schedule
from signals.chaos.clients import DeviceClients, OtelLogsApp, answered
from signals.chaos.faults import Faults
from signals.chaos.lake import read_lake, trace_raw
from signals.chaos.ledger import Ledger, Report, reconcile
from signals.chaos.readers import AthenaReader
from signals.chaos.tap import Exchange, IngestTap

log = logging.getLogger("signals.chaos")

RAW_GRACE_MINUTES: Final = 0.25
REGISTRY_GRACE_MINUTES: Final = 0.15
LOCAL_ENVIRONMENT: Final = {
    "reconciler.app": {"RAW_GRACE_MINUTES": str(RAW_GRACE_MINUTES),
                       "REGISTRY_GRACE_MINUTES": str(REGISTRY_GRACE_MINUTES)},
    "ingester.app": {"FIREHOSE_RETRY_BUDGET_S": "3"},
    "compactor.app": {"SETTLE_SECONDS": "2", "LEASE_SECONDS": "20"},
}
#: The settle phase's time limit is this many times longer with Trino behind the embedded Athena.
TRINO_SETTLE_FACTOR: Final = 4
#: How often the compactor runs while clients send (template: hourly).
COMPACT_EVERY_S: Final = 15.0
#: Reconciler counts that are bookkeeping, not repairs.
_NOT_REPAIRS: Final = frozenset({"verified_prefixes_listed", "raw_prefixes_listed"})


@dataclass
class CampaignSettings:
    minutes: float = 2.0
    seed: int = 7
    faults: tuple[str, ...] = fault_schedule.FAULTS
    rate: float = 150.0  # events per second, devices and log records together
    keep_dir: Path | None = None
    reconcile_seconds: float = 8.0
    settle_timeout_s: float = 300.0
    port: int = 0
    aws_port: int = 0
    # "trino": a real Trino behind the embedded Athena; the compactor then runs its athena engine on it.
    athena_engine: str = "duckdb"


@dataclass
class Progress:
    out: TextIO | None
    started: float = field(default_factory=time.monotonic)

    def say(self, text: str) -> None:
        if self.out is not None:
            self.out.write(f"  [{time.monotonic() - self.started:6.1f} s] {text}\n")
            self.out.flush()


class Compactions:
    """The compactor's runs (its return values), for the report and the settle phase."""

    def __init__(self) -> None:
        self.runs = 0
        self.skipped = 0
        self.failed_runs = 0
        self.days_compacted = 0
        self.days_failed = 0
        self.totals: Counter[str] = Counter()
        self._lock = threading.Lock()

    def run(self, stack: Any) -> dict[str, Any] | None:
        compactor = _compactor(stack)
        if compactor is None:
            return None
        try:
            result = stack.run_schedule(compactor.spec.module)
        except Exception:
            with self._lock:
                self.failed_runs += 1
            log.info("compactor run failed (see its log)", exc_info=True)
            return None
        with self._lock:
            self.runs += 1
            self.skipped += int(bool(result.get("skipped")))
            self.days_compacted += int(result.get("days_compacted") or 0)
            self.days_failed += int(result.get("days_failed") or 0)
            self.totals.update({k: int(v) for k, v in (result.get("totals") or {}).items()})
        return dict(result)

    def as_dict(self) -> dict[str, Any]:
        return {"runs": self.runs, "killed_or_failed": self.failed_runs, "skipped_lease_held": self.skipped,
                "days_compacted": self.days_compacted, "days_failed": self.days_failed,
                **dict(sorted(self.totals.items()))}


def quiet(result: dict[str, Any] | None) -> bool:
    """A compactor run that found nothing left to do."""
    return (result is not None and not result.get("skipped") and result.get("complete", True)
            and not result.get("days_compacted") and not result.get("days_failed"))


class Repairs:
    """Adds up the reconciler's counts over every run (its return value, as EventBridge would see it)."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.runs = 0
        self.failed_runs = 0
        self._lock = threading.Lock()

    def run(self, stack: Any) -> dict[str, int]:
        try:
            summary = stack.run_schedule("reconciler")
        except Exception:
            with self._lock:
                self.failed_runs += 1
            log.info("reconciler run failed (see its log)", exc_info=True)
            return {}
        counts = {k: int(v) for k, v in (summary or {}).get("counts", {}).items() if k not in _NOT_REPAIRS}
        with self._lock:
            self.runs += 1
            self.counts.update(counts)
        return counts


def record_exchange(ledger: Ledger) -> Any:
    def on_exchange(exchange: Exchange) -> None:
        if not exchange.path.split("?", 1)[0].rstrip("/").endswith(("/v1/telemetry", "/v1/logs")):
            return
        route, ids, accepted, rejected = answered(exchange.path, exchange.request_body, exchange.request_headers,
                                                  exchange.status, exchange.response_body)
        ledger.sent(ids)
        ledger.api_answer(route, exchange.status, accepted, rejected, at=exchange.at,
                          kept_from_client=exchange.kept_from_client)

    return on_exchange


def _compactor(stack: Any) -> Any | None:
    """The stack's compactor function, when the template has one."""
    for local in stack.functions.values():
        if local.spec.module.split(".")[0] == "compactor":
            return local
    return None


def run_campaign(settings: CampaignSettings, out: TextIO | None = None) -> Report:
    from signals.local.stack import LocalSettings, LocalStack  # noqa: PLC0415 (moto loads with it)
    from signals.local.wiring import LocalTimings  # noqa: PLC0415

    progress = Progress(out)
    seconds = settings.minutes * 60
    planned = fault_schedule.draw(settings.seed, seconds, settings.faults)
    ledger = Ledger()
    repairs = Repairs()
    compactions = Compactions()
    stack_settings = LocalSettings(
        port=settings.port, aws_port=settings.aws_port, api_key="chaos-key", write_state=False,
        run_schedules=False, keep_dir=settings.keep_dir, drain_on_stop_seconds=0,
        timings=LocalTimings(buffer_seconds=2.0, visibility_seconds=3, reconcile_seconds=settings.reconcile_seconds),
        function_environment={k: dict(v) for k, v in LOCAL_ENVIRONMENT.items()},
        athena_engine=settings.athena_engine,
    )
    with LocalStack(stack_settings) as stack:
        tap = IngestTap(stack.api_url, record_exchange(ledger))
        tap.start()
        faults = Faults(stack, tap, settings.seed)
        faults.install()
        progress.say(f"local stack up; ingest API behind the tap at {tap.url}; "
                     f"{len(planned)} injections planned over {seconds:g} s")
        stop_background = threading.Event()

        def reconcile_periodically() -> None:
            while not stop_background.wait(settings.reconcile_seconds):
                repairs.run(stack)

        def compact_periodically() -> None:
            while not stop_background.wait(COMPACT_EVERY_S):
                compactions.run(stack)

        def inject_on_schedule(started: float) -> None:
            for injection in planned:
                if stop_background.wait(max(0.0, started + injection.at_s - time.monotonic())):
                    return
                faults.inject(injection)
                progress.say(f"inject {injection.fault} {injection.params}")

        reader = AthenaReader(stack)
        if not reader.available():
            progress.say("the embedded Athena does not execute queries: no Athena reader, athena_error has no target")
        devices = DeviceClients(tap.url, stack.api_key, ledger, rate=settings.rate, seed=settings.seed)
        app = OtelLogsApp(tap.url, stack.api_key, ledger, rate=settings.rate, seed=settings.seed)
        send_started = time.monotonic()
        background = [
            threading.Thread(target=reconcile_periodically, name="chaos-reconciler", daemon=True),
            threading.Thread(target=compact_periodically, name="chaos-compactor", daemon=True),
            threading.Thread(target=reader.watch, args=(stop_background,), name="chaos-dashboard", daemon=True),
            threading.Thread(target=inject_on_schedule, args=(send_started,), name="chaos-faults", daemon=True),
        ]
        for thread in background:
            thread.start()
        app_thread = threading.Thread(target=app.run, args=(seconds,), name="chaos-otel", daemon=True)
        app_thread.start()
        devices.run(seconds)
        app_thread.join()
        app.close()  # the SDK exports what it still holds (and retries, as it would at shutdown)
        stop_background.set()
        for thread in background:
            thread.join()
        still_armed = faults.pending()
        faults.stop()
        progress.say(f"sending done: {devices.stats.attempts} device requests, {app.emitted} log records; "
                     f"faults stopped (armed but unmet: {still_armed or 'none'})")

        settle_started = time.monotonic()
        # Trino runs each of the compactor's statements in seconds where DuckDB takes tens of milliseconds.
        settle_timeout_s = settings.settle_timeout_s * (TRINO_SETTLE_FACTOR if settings.athena_engine == "trino" else 1)
        settled = settle(stack, repairs, compactions, settle_timeout_s, progress)
        settle_seconds = time.monotonic() - settle_started
        progress.say(f"settled in {settle_seconds:.1f} s" if settled else "did NOT settle in time")

        events = ledger.snapshot()
        lake = read_lake(stack, set(events))
        report = reconcile(events, lake)
        if report.lost:
            lost = {entry["event_id"] for entry in report.lost_ids}
            lake.raw_keys = trace_raw(stack, lost)
            report = reconcile(events, lake)
        if reader.available():
            try:
                report.extra["compacted_rows_via_athena"] = reader.compacted_rows()
            except Exception as exc:
                report.extra["compacted_rows_via_athena"] = f"failed: {type(exc).__name__}: {exc}"
        report.extra["athena_reader"] = reader.as_dict()
        depths: dict[str, tuple[int, int, int]] = stack.queue_depths()
        report.extra.update({
            "faults": {name: faults.injected.get(name, 0) for name in settings.faults},
            "fault_details": dict(sorted(faults.details.items())),
            "faults_planned": fault_schedule.counts(planned),
            "repairs": dict(sorted(repairs.counts.items())),
            "reconciler_runs": repairs.runs,
            "compactor": compactions.as_dict(),
            "settle_seconds": round(settle_seconds, 1),
            "settled": settled,
            "dlq_messages": {name: sum(v) for name, v in depths.items() if name.endswith("_dlq") and any(v)},
            "function_kills": {f.name: f.kills for f in stack.functions.values() if f.kills},
            "clients": {
                "device_requests": devices.stats.attempts,
                "device_batches": devices.stats.batches,
                "resends_after_503": devices.stats.resends_after_503,
                "resends_after_no_answer": devices.stats.resends_after_no_answer,
                "gave_up": devices.stats.gave_up,
                "log_records_emitted": app.emitted,
                "answers_kept_from_client": ledger.answers_kept_from_client,
                "answers_after_the_client_timed_out": tap.client_gone,
                "exchanges_the_ledger_could_not_read": tap.ledger_errors,
                "api_answers": dict(sorted(ledger.answers.items())),
            },
            "seed": settings.seed,
            "minutes": settings.minutes,
            "rate": settings.rate,
        })
        tap.stop()
    return report


def settle(stack: Any, repairs: Repairs, compactions: Compactions, timeout_s: float, progress: Progress) -> bool:
    """Drain, then reconcile until a run finds nothing to repair, then compact until a run has nothing to do."""
    deadline = time.monotonic() + timeout_s

    def left() -> float:
        return max(1.0, deadline - time.monotonic())

    grace_s = max(RAW_GRACE_MINUTES, REGISTRY_GRACE_MINUTES) * 60 + 1.0
    while True:
        if time.monotonic() >= deadline or not stack.wait_until_drained(left(), flush_firehose=True):
            return False
        # Everything written so far must be older than the grace periods before a run can see it.
        time.sleep(min(grace_s, left()))
        found = {k: v for k, v in repairs.run(stack).items() if v}
        progress.say(f"settle: reconciler run: {found or 'nothing to repair'}")
        if not found:
            break
    if _compactor(stack) is None:
        return bool(stack.wait_until_drained(left()))
    while time.monotonic() < deadline:
        stack.wait_until_drained(left())
        time.sleep(3.0)  # past the compactor's local settle period
        result = compactions.run(stack)
        summary = None if result is None else {k: result.get(k) for k in (
            "skipped", "days_compacted", "days_failed", "complete")}
        progress.say(f"settle: compactor run: {summary}")
        if quiet(result):
            return True
        if result is not None and result.get("skipped"):
            time.sleep(min(5.0, left()))  # a killed run's lease: wait for it to expire
    return False
