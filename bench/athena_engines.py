"""The embedded Athena's two engines side by side: DuckDB (the default) and Trino (`--athena-engine trino`).

For each engine, in the same run and on the same demo-sized load (`signals demo`'s defaults: 12
simulated devices for 15 s, 10 % of POSTs retried, an OTel app at 20 records/s):

- the stack's start-up time (Trino: the server's own, from launch to `/v1/info` starting:false),
- one compactor run over what landed (DuckDB: its local engine, pyiceberg commits; Trino: its athena
  engine, the code that runs in AWS, whose MERGE / $files / OPTIMIZE / VACUUM Trino executes),
- the Trino server's peak resident memory (VmHWM),
- the median latency of a list of queries through the Athena API (`--queries FILE`: one statement per
  line, `--` comments skipped; the hook for the differential corpus: pass its queries here), each
  run `--repeat` times.

    .venv/bin/python bench/athena_engines.py [--engines duckdb,trino] [--devices 12] [--minutes 0.25]
                                             [--queries FILE] [--repeat 3]

Trino must be fetched first (`signals trino fetch`). Figures: docs/local-stack.md ("Trino behind the
local Athena").
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as `python bench/athena_engines.py`, this file's directory comes first on sys.path, and
# bench/compactor.py would shadow the `compactor` package the stack loads.
if Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)

import argparse
import statistics
import threading
import time
from typing import Any

DEFAULT_QUERIES = (
    "SELECT count(*) FROM telemetry_lock_flat",
    "SELECT device_id, count(*) AS n, max(event_time) AS latest FROM telemetry_lock_flat GROUP BY device_id "
    "ORDER BY n DESC LIMIT 5",
    "SELECT count(*), count(DISTINCT event_id) FROM telemetry_alerts_local.int_lock_compacted_daily",
)


def athena_latency(stack: Any, sql: str) -> float:
    client = stack.client("athena")
    started = time.monotonic()
    execution_id = client.start_query_execution(
        QueryString=sql, QueryExecutionContext={"Database": "telemetry-parser-db"},
        WorkGroup=stack.outputs["HumanWorkgroup"])["QueryExecutionId"]
    while True:
        status = client.get_query_execution(QueryExecutionId=execution_id)["QueryExecution"]["Status"]
        if status["State"] in ("SUCCEEDED", "FAILED", "CANCELLED"):
            break
        time.sleep(0.02)
    if status["State"] != "SUCCEEDED":
        raise RuntimeError(f"{sql!r}: {status['State']} {status.get('StateChangeReason')}")
    return time.monotonic() - started


def measure(engine: str, args: argparse.Namespace, queries: list[str]) -> dict[str, Any]:
    from signals.local.demo import RETRY_SHARE, compact_now, resend_otlp_batch  # noqa: PLC0415
    from signals.local.simulate import DeviceFleet, OtelApp, Tally  # noqa: PLC0415
    from signals.local.stack import LocalSettings, LocalStack  # noqa: PLC0415
    from signals.local.wiring import LocalTimings  # noqa: PLC0415

    figures: dict[str, Any] = {"engine": engine}
    started = time.monotonic()
    settings = LocalSettings(port=0, aws_port=0, write_state=False, run_schedules=False, athena_engine=engine,
                             timings=LocalTimings(buffer_seconds=1.0), drain_on_stop_seconds=0)
    with LocalStack(settings) as stack:
        figures["stack start (s)"] = time.monotonic() - started
        if stack.trino is not None:
            figures["trino start (s)"] = stack.trino.startup_seconds
        tally = Tally()
        fleet = DeviceFleet(stack.api_url, stack.api_key, args.devices, tally, retry_share=RETRY_SHARE)
        app = OtelApp(stack.api_url, stack.api_key, tally)
        app_thread = threading.Thread(target=app.run, args=(args.minutes * 60, 20.0), daemon=True)
        app_thread.start()
        fleet.run(args.minutes * 60)
        app_thread.join()
        app.close()
        resend_otlp_batch(stack, tally)
        stack.wait_until_drained(120, flush_firehose=True)
        compact_started = time.monotonic()
        result = compact_now(stack)
        figures["compaction (s)"] = time.monotonic() - compact_started
        figures["compactor engine"] = result.get("engine")
        figures["days compacted"] = result.get("days_compacted")
        figures["days failed"] = result.get("days_failed")
        figures["rows inserted"] = (result.get("totals") or {}).get("inserted")
        latencies = [athena_latency(stack, sql) for _ in range(args.repeat) for sql in queries]
        figures["query median (s)"] = statistics.median(latencies) if latencies else None
        if stack.trino is not None:
            peak = stack.trino.peak_rss_bytes()
            figures["trino peak RSS (MiB)"] = peak / 2**20 if peak else None
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engines", default="duckdb,trino")
    parser.add_argument("--devices", type=int, default=12)
    parser.add_argument("--minutes", type=float, default=0.25)
    parser.add_argument("--queries", type=Path, default=None, help="one SQL statement per line (the corpus hook)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    queries = list(DEFAULT_QUERIES)
    if args.queries is not None:
        queries = [line.strip().rstrip(";") for line in args.queries.read_text().splitlines()
                   if line.strip() and not line.strip().startswith("--")]
    results = [measure(engine.strip(), args, queries) for engine in args.engines.split(",")]
    keys = list(dict.fromkeys(key for figures in results for key in figures))
    print(f"{'':28}" + "".join(f"{r['engine']:>16}" for r in results))
    for key in keys[1:]:
        cells = []
        for figures in results:
            value = figures.get(key)
            cells.append(f"{value:>16.1f}" if isinstance(value, float) else f"{value!s:>16}")
        print(f"{key:28}" + "".join(cells))
    base = next((r for r in results if r["engine"] == "duckdb"), None)
    if base is not None:
        for figures in results:
            if figures is not base and base.get("compaction (s)"):
                ratio = figures["compaction (s)"] / base["compaction (s)"]
                print(f"compaction {figures['engine']} / duckdb: {ratio:.1f}x")
            if figures is not base and base.get("query median (s)") and figures.get("query median (s)"):
                print(f"query median {figures['engine']} / duckdb: "
                      f"{figures['query median (s)'] / base['query median (s)']:.1f}x")


if __name__ == "__main__":
    main()
