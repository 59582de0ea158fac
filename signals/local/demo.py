"""`signals demo`: start the local stack, drive devices and an OTel app through it, show what landed where.

Some requests are sent twice on purpose (a client retrying after a timeout) and one OTLP batch is
resent (an exporter retrying after a 503): the verified tables hold every copy, and after one run of
the compactor the compacted tables hold each event once.

Exit 0 when every accepted event is accounted for: each device table holds exactly the good events
accepted for its type (every copy), the quarantine holds the bad ones with the predicted reasons, the
OTLP table holds every log record the SDK emitted, each compacted table holds every distinct good
event exactly once, no DLQ has a message and every verified file is registered in a Glue partition.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, TextIO

from signals.local.command import add_stack_options, settings_from

#: Share of device requests POSTed twice (each good event then has two verified copies).
RETRY_SHARE = 0.1
#: Log records of the OTLP batch that is POSTed twice (service `demo-resend`).
RESENT_RECORDS = 5
RESEND_SERVICE = "demo-resend"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run the pipeline locally with simulated devices and an OTel app, then show what landed where",
        description=__doc__,
    )
    parser.add_argument("--devices", type=int, default=12, help="simulated devices, all three types (default 12)")
    parser.add_argument("--minutes", type=float, default=0.25, help="how long devices send (default 0.25 = 15 s)")
    parser.add_argument("--logs-per-second", type=float, default=20.0, help="OTel log records per second (default 20)")
    parser.add_argument("--drain-timeout", type=float, default=120.0, help="seconds to wait for the pipeline to drain")
    add_stack_options(parser, port=0, aws_port=0, buffer_seconds=1.0)
    parser.set_defaults(func=run)


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class Landed:
    rows: dict[str, dict[str, int]] = field(default_factory=dict)  # table -> "day hour" -> rows
    quarantine: Counter[str] = field(default_factory=Counter)
    quarantine_by_type: Counter[str] = field(default_factory=Counter)
    files: dict[str, tuple[int, int]] = field(default_factory=dict)  # what -> (count, bytes)
    partitions: dict[str, list[str]] = field(default_factory=dict)
    registry_status: Counter[str] = field(default_factory=Counter)
    dlq_depth: dict[str, int] = field(default_factory=dict)
    otlp_rows: int = 0
    otlp_with_trace: int = 0
    resent_rows: int = 0  # verified rows of the resent OTLP batch (both copies)
    compacted: dict[str, int] = field(default_factory=dict)  # compacted table -> rows
    conflicts: int = 0  # rows of dq_audit.duplicate_conflicts
    compaction: dict[str, Any] = field(default_factory=dict)  # the compactor run's result


def run(args: argparse.Namespace) -> int:
    from signals.local.simulate import DeviceFleet, OtelApp, Tally  # noqa: PLC0415 (OTel SDK loads with it)
    from signals.local.stack import LocalStack  # noqa: PLC0415 (moto loads with it)

    out = sys.stdout
    timings: dict[str, float] = {}
    started = time.monotonic()
    settings = settings_from(args, write_state=False, run_schedules=True)
    print(f"signals demo: {args.devices} devices and an OpenTelemetry app for {args.minutes * 60:g} s", file=out)
    with LocalStack(settings) as stack:
        timings["start the local stack"] = time.monotonic() - started
        print(f"  local stack up in {timings['start the local stack']:.1f} s: ingest API {stack.api_url}, "
              f"embedded AWS {stack.aws_endpoint_url}, function logs in {stack.log_dir}/", file=out)
        tally = Tally()
        fleet = DeviceFleet(stack.api_url, stack.api_key, args.devices, tally, retry_share=RETRY_SHARE)
        app = OtelApp(stack.api_url, stack.api_key, tally)
        progress = Progress(stack, tally, out)
        progress.start()
        send_started = time.monotonic()
        seconds = args.minutes * 60
        app_thread = threading.Thread(target=app.run, args=(seconds, args.logs_per_second), daemon=True)
        app_thread.start()
        fleet.run(seconds)
        app_thread.join()
        app.close()
        resend_otlp_batch(stack, tally)
        timings["send (devices and OTel app)"] = time.monotonic() - send_started
        progress.phase = "draining"
        drain_started = time.monotonic()
        drained = stack.wait_until_drained(args.drain_timeout)
        timings["drain: last POST to all registered"] = time.monotonic() - drain_started
        progress.stop()
        compact_started = time.monotonic()
        compaction = compact_now(stack)
        timings["compact (one compactor run)"] = time.monotonic() - compact_started
        report_started = time.monotonic()
        landed = survey(stack)
        landed.compaction = compaction
        sample_sql = ("SELECT bolt_state, count(*) AS events, round(avg(battery_pct), 1) AS avg_battery, "
                      "max(event_time) AS latest FROM telemetry_lock_flat GROUP BY bolt_state ORDER BY events DESC")
        sample = run_query(stack, sample_sql)
        timings["survey and sample query"] = time.monotonic() - report_started
        stack.settings.drain_on_stop_seconds = 0
    timings["total"] = time.monotonic() - started
    checks = judge(tally, landed, drained)
    print_report(out, tally, landed, timings, checks, sample_sql=sample_sql, sample=sample)
    return 0 if all(c.ok for c in checks) else 1


class Progress:
    """One status line while the demo runs (rewritten in place on a terminal, every few seconds otherwise)."""

    def __init__(self, stack: Any, tally: Any, out: TextIO) -> None:
        self.stack = stack
        self.tally = tally
        self.out = out
        self.phase = "sending"
        self.tty = out.isatty()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demo-progress", daemon=True)
        self._started = time.monotonic()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self._print(final=True)

    def _run(self) -> None:
        while not self._stop.wait(0.5 if self.tty else 3.0):
            self._print()

    def _line(self) -> str:
        stack = self.stack
        raw_objects = sum(s.objects_out for s in stack.firehose.stats.values())
        try:
            depths = stack.queue_depths()
        except Exception:
            depths = {}
        in_queues = sum(sum(v) for k, v in depths.items() if not k.endswith("_dlq"))
        parser = stack.function("parser.app")
        registry = stack.function("registry.app")
        return (
            f"  [{self.phase:8}] {time.monotonic() - self._started:5.1f} s | events {self.tally.events_sent} "
            f"(accepted {self.tally.accepted}) | logs {self.tally.logs_emitted} | firehose buffered "
            f"{stack.firehose.pending_records()} | raw objects {raw_objects} | queued {in_queues} | "
            f"parser runs {parser.invocations} | registry runs {registry.invocations}"
        )

    def _print(self, final: bool = False) -> None:
        line = self._line()
        if self.tty:
            self.out.write("\r\x1b[2K" + line + ("\n" if final else ""))
        else:
            self.out.write(line + "\n")
        self.out.flush()


def resend_otlp_batch(stack: Any, tally: Any) -> None:
    """One OTLP/JSON request POSTed twice, as an exporter resending a batch after a 503."""
    import urllib.request  # noqa: PLC0415

    nanos = time.time_ns()
    records = [{"timeUnixNano": str(nanos + i), "severityNumber": 9, "severityText": "INFO",
                "body": {"stringValue": f"batch resent after a 503, record {i}"}} for i in range(RESENT_RECORDS)]
    body = json.dumps({"resourceLogs": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": RESEND_SERVICE}}]},
        "scopeLogs": [{"scope": {"name": "signals.demo"}, "logRecords": records}]}]}).encode()
    for _copy in range(2):
        request = urllib.request.Request(f"{stack.api_url}/v1/logs", data=body, method="POST", headers={
            "content-type": "application/json", "x-api-key": stack.api_key})
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()
    with tally.lock:
        tally.requests += 2


def compact_now(stack: Any) -> dict[str, Any]:
    """One run of the compactor, as its hourly rule would start it, once the registry has settled."""
    from shared.config import CompactorConfig, load  # noqa: PLC0415

    compactor = stack.function("compactor.app")
    time.sleep(load(CompactorConfig, compactor.spec.environment).settle_seconds + 0.5)
    result: dict[str, Any] = stack.run_schedule("compactor.app")
    return result


def local_env(stack: Any) -> Any:
    from signals.env import Environment  # noqa: PLC0415

    return Environment(name="local", session=stack.session(), outputs=stack.outputs,
                       endpoint_url=stack.aws_endpoint_url, api_key=stack.api_key)


def run_query(stack: Any, sql: str) -> Any:
    from signals.query import query_local  # noqa: PLC0415

    return query_local(local_env(stack), sql)


def survey(stack: Any) -> Landed:
    """What is in the lake, the quarantine, Glue, the registry and the DLQs."""
    from shared import registry_keys  # noqa: PLC0415
    from shared.schema import OTLP_TABLE, TABLES  # noqa: PLC0415
    from signals.env import Output  # noqa: PLC0415

    landed = Landed()
    union = " UNION ALL ".join(
        f"SELECT '{t.name}' AS tbl, day, hour, count(*) AS n FROM {t.name} GROUP BY day, hour" for t in TABLES
    )
    for table_name, day, hour, rows in run_query(stack, union + " ORDER BY 1, 2, 3").rows:
        landed.rows.setdefault(table_name, {})[f"{day} {hour}h"] = int(rows)
    otlp = run_query(stack, f"SELECT count(*), count(trace_id) FROM {OTLP_TABLE.name} "
                     "WHERE service_name = 'demo-checkout'").rows[0]
    landed.otlp_rows, landed.otlp_with_trace = int(otlp[0]), int(otlp[1])
    landed.resent_rows = int(run_query(stack, f"SELECT count(*) FROM {OTLP_TABLE.name} "
                                       f"WHERE service_name = '{RESEND_SERVICE}'").rows[0][0])
    from shared.schema import COMPACTED_TABLES, DUPLICATE_CONFLICTS  # noqa: PLC0415
    from signals.ops.compaction import audit_rows, compacted_rows_by_day  # noqa: PLC0415

    env = local_env(stack)
    for compacted in COMPACTED_TABLES:
        landed.compacted[compacted.name] = sum(compacted_rows_by_day(env, compacted.type_value).values())
    landed.conflicts = len(audit_rows(env, DUPLICATE_CONFLICTS.name))

    s3 = stack.client("s3")
    for what, bucket, prefix in (
        ("raw", stack.outputs[Output.RAW_BUCKET], "raw/"),
        ("verified", stack.outputs[Output.VERIFIED_BUCKET], "telemetry_flat/"),
        ("quarantine", stack.outputs[Output.QUARANTINE_BUCKET], "quarantine/"),
    ):
        count = size = 0
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                count += 1
                size += int(item["Size"])
                if what == "quarantine":
                    body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
                    for line in gzip.decompress(body).splitlines():
                        record = json.loads(line)
                        landed.quarantine[str(record.get("reason"))] += 1
                        landed.quarantine_by_type[_device_type_of(record.get("original"))] += 1
        landed.files[what] = (count, size)

    glue = stack.client("glue")
    database = stack.outputs[Output.GLUE_DATABASE]
    for table in TABLES:
        pages = glue.get_paginator("get_partitions").paginate(DatabaseName=database, TableName=table.name)
        names = [f"{p['Values'][0]} {p['Values'][1]}h" for page in pages for p in page["Partitions"]]
        landed.partitions[table.name] = sorted(names)

    dynamodb = stack.client("dynamodb")
    for status in registry_keys.FILE_STATUSES:
        response = dynamodb.query(
            TableName=stack.outputs[Output.REGISTRY_TABLE], IndexName=registry_keys.STATUS_INDEX,
            KeyConditionExpression="#s = :s", ExpressionAttributeNames={"#s": registry_keys.STATUS_ATTR},
            ExpressionAttributeValues={":s": {"S": status}}, Select="COUNT",
        )
        landed.registry_status[status] = int(response["Count"])
    for name, (visible, in_flight, delayed) in stack.queue_depths().items():
        if name.endswith("_dlq"):
            landed.dlq_depth[name] = visible + in_flight + delayed
    return landed


def _device_type_of(original: object) -> str:
    try:
        record = json.loads(str(original))
    except ValueError:
        return "?"
    return str(record.get("device_type", "?")) if isinstance(record, dict) else "?"


def judge(tally: Any, landed: Landed, drained: bool) -> list[Check]:
    from shared.schema import DEVICE_TABLES  # noqa: PLC0415

    checks = [Check("pipeline drained", drained, "every queue empty, Firehose flushed" if drained
                    else "timed out waiting for the queues to drain")]
    for device_type, table in DEVICE_TABLES.items():
        expected = tally.expected_rows[device_type.value]
        got = sum(landed.rows.get(table.name, {}).values())
        checks.append(Check(f"{table.name} rows", got == expected, f"{got} rows, {expected} good events accepted"))
    expected_quarantine = sum(tally.expected_quarantine.values())
    got_quarantine = sum(landed.quarantine.values())
    checks.append(Check("quarantine", landed.quarantine == tally.expected_quarantine,
                        f"{got_quarantine} records, {expected_quarantine} bad events accepted"
                        + ("" if landed.quarantine == tally.expected_quarantine
                           else f" (got {dict(landed.quarantine)}, expected {dict(tally.expected_quarantine)})")))
    parked = sum(tally.parked.values())
    parked_landed = sum(count for device_type, count in landed.quarantine_by_type.items()
                        if device_type not in {t.value for t in DEVICE_TABLES})
    checks.append(Check("parked events in quarantine", parked_landed == parked,
                        f"{parked_landed} records of an unknown device type, {parked} parked by the ingester"))
    checks.append(Check("OTLP log rows", landed.otlp_rows == tally.logs_emitted,
                        f"{landed.otlp_rows} rows, {tally.logs_emitted} records emitted by the SDK"))
    checks.append(Check("resent OTLP batch", landed.resent_rows == 2 * RESENT_RECORDS,
                        f"{landed.resent_rows} verified rows, {RESENT_RECORDS} records sent twice"))
    run = landed.compaction
    checks.append(Check("compactor run", bool(run) and not run.get("days_failed") and bool(run.get("complete"))
                        and not run.get("skipped"),
                        f"{run.get('days_compacted', 0)} table-days compacted, {run.get('days_failed', 0)} failed"
                        + (f", skipped: {run['skipped']}" if run.get("skipped") else "")))
    from shared.schema import COMPACTED_BY_TYPE, OTLP_TYPE  # noqa: PLC0415

    for device_type in DEVICE_TABLES:
        compacted = COMPACTED_BY_TYPE[device_type.value].name
        expected = tally.expected_distinct[device_type.value]
        got = landed.compacted.get(compacted, 0)
        checks.append(Check(f"{compacted} rows", got == expected,
                            f"{got} rows, {expected} distinct good events accepted"))
    otlp_compacted = COMPACTED_BY_TYPE[OTLP_TYPE].name
    expected_otlp = tally.logs_emitted + RESENT_RECORDS
    got_otlp = landed.compacted.get(otlp_compacted, 0)
    checks.append(Check(f"{otlp_compacted} rows", got_otlp == expected_otlp,
                        f"{got_otlp} rows, {expected_otlp} distinct log records"))
    checks.append(Check("duplicate conflicts", landed.conflicts == 0,
                        f"{landed.conflicts} recorded (every retry resent the same content)"))
    dlq_total = sum(landed.dlq_depth.values())
    checks.append(Check("dead-letter queues empty", dlq_total == 0, f"{dlq_total} messages"))
    unregistered = sum(v for k, v in landed.registry_status.items() if k != "registered")
    checks.append(Check("every verified file registered", unregistered == 0 and landed.registry_status["registered"]
                        == landed.files.get("verified", (0, 0))[0],
                        f"{landed.registry_status['registered']} registered, {unregistered} pending or failed, "
                        f"{landed.files.get('verified', (0, 0))[0]} files in the lake"))
    checks.append(Check("HTTP errors", not tally.http_errors, dict(tally.http_errors).__repr__()
                        if tally.http_errors else "none"))
    return checks


def _size(count_bytes: tuple[int, int]) -> str:
    count, size = count_bytes
    return f"{count} files, {size / 1024:.1f} KiB"


def print_report(out: TextIO, tally: Any, landed: Landed, timings: dict[str, float], checks: list[Check], *,
                 sample_sql: str, sample: Any) -> None:
    from signals.local.simulate import NEW_DEVICE_TYPE  # noqa: PLC0415
    from signals.query import render  # noqa: PLC0415

    write = out.write
    write("\nSent\n")
    write(f"  {tally.requests} requests, {tally.events_sent} device events: {tally.accepted} accepted, "
          f"{sum(tally.rejected.values())} rejected by the ingester "
          f"({', '.join(f'{k} {v}' for k, v in sorted(tally.rejected.items())) or 'none'})\n")
    write(f"  of the accepted, {sum(tally.parked.values())} parked: a device type the schema does not know yet "
          f"({NEW_DEVICE_TYPE}); in raw, quarantined as unknown_device_type until the type is added and "
          "`signals redrive quarantine --reason unknown_device_type` replays them\n")
    write(f"  {tally.logs_emitted} log records from the OpenTelemetry SDK (OTLP/HTTP, gzip)\n")
    write(f"  retries on purpose: {tally.retried_requests} device requests POSTed twice ({tally.retried_rows} good "
          f"events sent again), one OTLP batch of {RESENT_RECORDS} records resent\n")
    write("\nRows per table and partition (signals query)\n")
    for table_name, partitions in sorted(landed.rows.items()):
        for partition, rows in sorted(partitions.items()):
            write(f"  {table_name:30} {partition:16} {rows:7}\n")
    write(f"  OTLP rows with a trace id: {landed.otlp_with_trace} of {landed.otlp_rows}\n")
    write("\nQuarantine per reason\n")
    for reason, count in sorted(landed.quarantine.items()):
        write(f"  {reason:30} {count:7}\n")
    if not landed.quarantine:
        write("  (none)\n")
    write(f"  by device type: {', '.join(f'{k} {v}' for k, v in sorted(landed.quarantine_by_type.items()))}\n")
    write("\nFiles\n")
    for what in ("raw", "verified", "quarantine"):
        write(f"  {what:11} {_size(landed.files.get(what, (0, 0)))}\n")
    write("\nExactly once: verified (every copy) beside compacted (one row per event)\n")
    verified_rows = {table: sum(parts.values()) for table, parts in landed.rows.items()}
    from shared.schema import COMPACTED_TABLES  # noqa: PLC0415

    for compacted in COMPACTED_TABLES:
        verified = verified_rows.get(compacted.source.name, 0)
        rows = landed.compacted.get(compacted.name, 0)
        write(f"  {compacted.source.name:30} {verified:6}  ->  {compacted.name:36} {rows:6}  "
              f"({verified - rows} duplicates removed)\n")
    run = landed.compaction
    write(f"  compactor run: {run.get('days_compacted', 0)} table-days, engine {run.get('engine', '?')}, "
          f"natural duplicates {(run.get('totals') or {}).get('natural_duplicates', 0)}, conflicts {landed.conflicts}"
          f"; run report {run.get('report') or '(none)'}\n")
    write("\nGlue partitions\n")
    for table_name, names in sorted(landed.partitions.items()):
        write(f"  {table_name:30} {', '.join(names) or '(none)'}\n")
    write(f"  registry: {', '.join(f'{k} {v}' for k, v in sorted(landed.registry_status.items()))}\n")
    write("\nTimings\n")
    for name, seconds in timings.items():
        write(f"  {name:36} {seconds:6.1f} s\n")
    write(f"\nSample query\n  $ signals query \"{sample_sql}\"\n")
    for line in render(sample, "table").splitlines():
        write(f"  {line}\n")
    write("\nChecks\n")
    for check in checks:
        write(f"  {'ok  ' if check.ok else 'FAIL'} {check.name}: {check.detail}\n")
    verdict = "everything accepted landed where it should" if all(c.ok for c in checks) else "something did not land"
    write(f"\n{verdict}\n")
    out.flush()
