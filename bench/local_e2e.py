"""The local stack end to end: events/s from HTTP to queryable, and POST-to-row latency.

    .venv/bin/python bench/local_e2e.py [--events 20000] [--runs 3] [--latency-seconds 20]

Throughput: device events are POSTed in batches of 500 from 4 clients as fast as the API takes
them; the run ends when `signals query` counts every event. Baseline, same run: the HTTP accept
rate alone (the front door's own ceiling). Medians of `--runs` runs, and the ratio.

Latency: one event per POST, 5 POSTs a second, each followed until its row is returned by a query
(polled every 0.25 s). Firehose interval 1 s (`--buffer-seconds 1`); the baseline is that interval,
the floor every POST waits in the buffer, side by side with p50 and p95.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from typing import Any
from urllib.parse import urlsplit

from signals.env import Environment
from signals.local.stack import LocalSettings, LocalStack
from signals.local.wiring import LocalTimings
from signals.query import query_local

BATCH = 500
CLIENTS = 4


def environment(stack: LocalStack) -> Environment:
    return Environment(name="local", session=stack.session(), outputs=stack.outputs,
                       endpoint_url=stack.aws_endpoint_url, api_key=stack.api_key)


def events_for(prefix: str, count: int) -> list[dict[str, Any]]:
    now = time.time()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z"
    return [{"event_id": f"{prefix}-{i}", "device_id": f"{prefix}-dev-{i % 50}", "device_type": "lock",
             "event_name": "bolt_changed", "event_time": stamp, "battery_pct": 20 + i % 80, "bolt_state": "locked",
             "rssi_dbm": -60, "attributes": {"home_id": f"h{i % 9}"}} for i in range(count)]


def post(connection: http.client.HTTPConnection, api_key: str, body: bytes) -> int:
    connection.request("POST", "/v1/telemetry", body=body,
                       headers={"x-api-key": api_key, "content-type": "application/json"})
    response = connection.getresponse()
    response.read()
    return response.status


def count_rows(env: Environment, prefix: str) -> int:
    rows = query_local(env, f"SELECT count(*) FROM telemetry_lock_flat WHERE device_id LIKE '{prefix}-dev-%'").rows
    return int(rows[0][0])


def throughput_run(stack: LocalStack, env: Environment, total: int) -> tuple[float, float]:
    """(HTTP accept events/s, HTTP-to-queryable events/s)."""
    prefix = f"tp{uuid.uuid4().hex[:8]}"
    events = events_for(prefix, total)
    bodies = [json.dumps(events[i:i + BATCH]).encode() for i in range(0, total, BATCH)]
    api = urlsplit(stack.api_url)

    def client(share: list[bytes]) -> None:
        connection = http.client.HTTPConnection(api.hostname or "127.0.0.1", api.port, timeout=60)
        for body in share:
            status = post(connection, stack.api_key, body)
            if status != 200:
                raise RuntimeError(f"POST answered {status}")
        connection.close()

    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(bodies[i::CLIENTS],)) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    accepted = time.monotonic()
    while True:
        if stack.is_idle() and count_rows(env, prefix) == total:
            break
        time.sleep(0.25)
    queryable = time.monotonic()
    return total / (accepted - started), total / (queryable - started)


def latency_run(stack: LocalStack, env: Environment, seconds: float, per_second: float = 5.0) -> list[float]:
    prefix = f"lt{uuid.uuid4().hex[:8]}"
    api = urlsplit(stack.api_url)
    posted: dict[str, float] = {}
    landed: dict[str, float] = {}
    stop = threading.Event()

    def watcher() -> None:
        while not stop.is_set() or len(landed) < len(posted):
            rows = query_local(env, f"SELECT event_id FROM telemetry_lock_flat WHERE device_id LIKE '{prefix}-dev-%'")
            now = time.monotonic()
            for (event_id,) in rows.rows:
                landed.setdefault(event_id, now)
            time.sleep(0.25)

    watching = threading.Thread(target=watcher, daemon=True)
    watching.start()
    connection = http.client.HTTPConnection(api.hostname or "127.0.0.1", api.port, timeout=60)
    deadline = time.monotonic() + seconds
    index = 0
    while time.monotonic() < deadline:
        (event,) = events_for(prefix, 1)
        event["event_id"] = f"{prefix}-{index}"
        sent = time.monotonic()
        post(connection, stack.api_key, json.dumps([event]).encode())
        posted[event["event_id"]] = sent
        index += 1
        time.sleep(max(0.0, 1.0 / per_second - (time.monotonic() - sent)))
    stop.set()
    watching.join(timeout=120)
    return [landed[k] - posted[k] for k in posted if k in landed]


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--latency-seconds", type=float, default=20.0)
    args = parser.parse_args()
    os.environ["SIGNALS_HOME"] = tempfile.mkdtemp(prefix="signals-bench-")
    settings = LocalSettings(port=0, aws_port=0, write_state=False, run_schedules=False,
                             timings=LocalTimings(buffer_seconds=1.0), drain_on_stop_seconds=0)
    with LocalStack(settings) as stack:
        env = environment(stack)
        throughput_run(stack, env, 1000)  # warm-up: imports, first files, Glue partitions
        accept_rates, e2e_rates = [], []
        for _ in range(args.runs):
            accept, e2e = throughput_run(stack, env, args.events)
            accept_rates.append(accept)
            e2e_rates.append(e2e)
        latencies = latency_run(stack, env, args.latency_seconds)
    accept_median, e2e_median = statistics.median(accept_rates), statistics.median(e2e_rates)
    print(f"local stack end to end, {os.cpu_count()} CPUs, {args.events} events x {args.runs} runs, "
          f"batches of {BATCH} from {CLIENTS} clients, Firehose interval 1 s")
    print(f"{'measure':44} {'value':>12} {'baseline':>12} {'ratio':>7}")
    print(f"{'events/s HTTP -> queryable (median)':44} {e2e_median:12,.0f} {accept_median:12,.0f} "
          f"{e2e_median / accept_median:7.2f}   baseline: HTTP accept rate alone")
    if latencies:
        p50, p95 = percentile(latencies, 0.50), percentile(latencies, 0.95)
        print(f"{'POST -> row latency p50 (s)':44} {p50:12.2f} {1.0:12.2f} {p50:7.2f}   baseline: Firehose interval")
        print(f"{'POST -> row latency p95 (s)':44} {p95:12.2f} {1.0:12.2f} {p95:7.2f}   "
              f"({len(latencies)} POSTs, polled every 0.25 s)")
    print("runs (accept, e2e events/s):", ", ".join(f"({a:,.0f}, {e:,.0f})" for a, e in zip(accept_rates, e2e_rates,
                                                                                            strict=True)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
