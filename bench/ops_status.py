"""`signals status` wall time: concurrent reads (the default, 8 workers) vs every call in turn.

Starts `signals local` in a child process (as an operator's status runs beside a running stack),
lands an hour of data through the API (one raw object per batch, so the hour holds many raw,
verified and quarantine objects to list, HEAD and read), then times the whole status report with
8 workers and with 1 (the baseline: the same checks, each call waiting for the previous one),
alternating, several runs each. Against moto a call costs a few milliseconds of CPU; in AWS each
costs a network round trip, so the runs are repeated with an emulated round trip added to every
call (a sleep before it is sent, `--rtt-ms`).

    .venv/bin/python bench/ops_status.py [--batches 60] [--runs 5] [--rtt-ms 30]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path

from signals.env import resolve
from signals.ops.checks import StatusContext, run_checks
from signals.ops.common import hour_start


def start_stack(home: Path) -> subprocess.Popen[bytes]:
    child = subprocess.Popen(
        [sys.executable, "-m", "signals.cli", "local", "--port", "0", "--aws-port", "0", "--buffer-seconds", "0.5"],
        env={**os.environ, "SIGNALS_HOME": str(home)}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = home / "local-stack.json"
    deadline = time.monotonic() + 120
    while not state.exists():
        if child.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("signals local did not start")
        time.sleep(0.2)
    return child


def post(url: str, key: str, body: bytes) -> None:
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/json", "x-api-key": key})
    with urllib.request.urlopen(request, timeout=30) as response:
        response.read()


def land(api: str, key: str, batches: int) -> None:
    types = ("lock", "bridge", "video_doorbell")
    for batch in range(batches):
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        events = [{"event_id": uuid.uuid4().hex, "device_id": f"d{i % 20}", "device_type": types[i % 3],
                   "event_name": "heartbeat", "event_time": now, "battery_pct": 50} for i in range(50)]
        events += [{"event_id": f"bad-{batch}", "device_id": "d", "device_type": "lock", "event_name": "x",
                    "event_time": "never"}]
        post(f"{api}/v1/telemetry", key, json.dumps(events).encode())
        time.sleep(0.6)  # past the 0.5 s buffer: one raw object per batch


def wait_processed(env: object, hour: datetime, expected: int) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        results = run_checks(StatusContext(env, hour, datetime.now(UTC)))  # type: ignore[arg-type]
        processed = next((r for r in results if r.check == "raw processed json_telemetry"), None)
        queues = [r for r in results if r.check.startswith("queue ")]
        if (processed is not None and processed.details.get("processed", 0) >= expected
                and all(r.details.get("visible", 1) == 0 and r.details.get("in_flight", 1) == 0 for r in queues)):
            return
        time.sleep(1)
    raise SystemExit("the pipeline did not drain")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--batches", type=int, default=60)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--rtt-ms", type=int, default=30, help="emulated round trip per AWS call")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        os.environ["SIGNALS_HOME"] = home
        child = start_stack(Path(home))
        try:
            env = resolve("local")
            hour = hour_start(datetime.now(UTC))
            land(env.extra["api_endpoint"], str(env.api_key), args.batches)
            wait_processed(env, hour, args.batches)
            timings: dict[tuple[int, int], list[float]] = {}
            calls: dict[tuple[int, int], int] = {}
            lines = 0
            for _run in range(args.runs):
                for rtt_ms in (0, args.rtt_ms):
                    for workers in (8, 1):
                        ctx = StatusContext(env, hour, datetime.now(UTC), workers=workers)
                        counter = add_round_trip(ctx, rtt_ms / 1000)
                        started = time.perf_counter()
                        results = run_checks(ctx)
                        timings.setdefault((rtt_ms, workers), []).append(time.perf_counter() - started)
                        calls[(rtt_ms, workers)] = counter[0]
                        lines = len(results)
            facts = next(r for r in results if r.check == "registry files this hour").details
        finally:
            child.send_signal(signal.SIGTERM)
            child.wait(timeout=60)
    print(f"hour with {args.batches} raw objects, {facts.get('files')} verified files, {lines} status lines, "
          f"{calls[(0, 8)]} AWS calls per report; {args.runs} runs each")
    print(f"{'signals status wall time, median (s)':<44}{'8 workers':>10}{'1 worker (baseline)':>21}{'ratio':>7}")
    for rtt_ms in (0, args.rtt_ms):
        concurrent, sequential = statistics.median(timings[(rtt_ms, 8)]), statistics.median(timings[(rtt_ms, 1)])
        label = "moto as is" if rtt_ms == 0 else f"+{rtt_ms} ms per call (network round trip)"
        print(f"{label:<44}{concurrent:>10.2f}{sequential:>21.2f}{sequential / concurrent:>7.2f}")
    for (rtt_ms, workers), runs in sorted(timings.items()):
        print(f"  runs rtt={rtt_ms} ms workers={workers}: " + ", ".join(f"{t:.2f}" for t in runs))
    return 0


def add_round_trip(ctx: StatusContext, seconds: float) -> list[int]:
    """Every call of the report's clients waits `seconds` before it is sent (an emulated round trip)."""
    counter = [0]

    def delay(**_kwargs: object) -> None:
        counter[0] += 1
        if seconds:
            time.sleep(seconds)

    for service in ("s3", "sqs", "dynamodb", "glue", "cloudwatch", "firehose"):
        ctx.client(service).meta.events.register("before-send", delay)
    return counter


if __name__ == "__main__":
    sys.exit(main())
