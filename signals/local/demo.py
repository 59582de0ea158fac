"""`signals demo`: start the local stack, drive devices and an OTel app through it, show what landed where.

Exit 0 when every accepted event is accounted for: each device table holds exactly the good events
accepted for its type, the quarantine holds the bad ones with the predicted reasons, the OTLP table
holds every log record the SDK emitted, no DLQ has a message and every verified file is registered
in a Glue partition.
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
        fleet = DeviceFleet(stack.api_url, stack.api_key, args.devices, tally)
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
        timings["send (devices and OTel app)"] = time.monotonic() - send_started
        progress.phase = "draining"
        drain_started = time.monotonic()
        drained = stack.wait_until_drained(args.drain_timeout)
        timings["drain: last POST to all registered"] = time.monotonic() - drain_started
        progress.stop()
        report_started = time.monotonic()
        landed = survey(stack)
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


def run_query(stack: Any, sql: str) -> Any:
    from signals.env import Environment  # noqa: PLC0415
    from signals.query import query_local  # noqa: PLC0415

    env = Environment(name="local", session=stack.session(), outputs=stack.outputs,
                      endpoint_url=stack.aws_endpoint_url, api_key=stack.api_key)
    return query_local(env, sql)


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
    checks.append(Check("OTLP log rows", landed.otlp_rows == tally.logs_emitted,
                        f"{landed.otlp_rows} rows, {tally.logs_emitted} records emitted by the SDK"))
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
    from signals.query import render  # noqa: PLC0415

    write = out.write
    write("\nSent\n")
    write(f"  {tally.requests} requests, {tally.events_sent} device events: {tally.accepted} accepted, "
          f"{sum(tally.rejected.values())} rejected by the ingester "
          f"({', '.join(f'{k} {v}' for k, v in sorted(tally.rejected.items())) or 'none'})\n")
    write(f"  {tally.logs_emitted} log records from the OpenTelemetry SDK (OTLP/HTTP, gzip)\n")
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
