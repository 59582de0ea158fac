"""The corpus's latency on each engine of the local Athena, side by side in one run.

    .venv/bin/python bench/corpus_engines.py [--rounds 3]

One local stack with `athena_engine="trino"` (needs `signals trino fetch` first), seeded by the
differential corpus's harness (tests/e2e/corpus: devices, OTLP logs, bad lines, one compaction),
then every corpus query through the Athena API (StartQueryExecution, GetQueryExecution polled every
20 ms, GetQueryResults, the result file) on DuckDB and on Trino in turn, `--rounds` times. Per
engine: the median and 90th percentile of the per-query latencies (each query's median over the
rounds), their total, and Trino's ratio to DuckDB (the baseline), plus how many queries agreed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

# Run as a script, bench/ is first on sys.path and bench/compactor.py would shadow the compactor
# package the stack's functions import: the repository goes there instead.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from signals.local.stack import LocalSettings, LocalStack
from signals.local.wiring import LocalTimings
from tests.e2e.corpus.harness import DuckDBAthena, load_corpus, own_engine, run_corpus, seed


def _p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10)[-1] if len(values) > 1 else values[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    os.environ["SIGNALS_HOME"] = tempfile.mkdtemp(prefix="bench-engines-")
    settings = LocalSettings(port=0, aws_port=0, write_state=False, run_schedules=False, drain_on_stop_seconds=0,
                             timings=LocalTimings(buffer_seconds=0.5, visibility_seconds=1, reconcile_seconds=3.0),
                             athena_engine="trino")
    queries = load_corpus()
    started = time.monotonic()
    with LocalStack(settings) as stack:
        up = time.monotonic() - started
        seeded = seed(stack)
        duckdb = DuckDBAthena(stack)
        try:
            reports = [run_corpus(stack, seeded, queries, duckdb=duckdb.switched_in, trino=own_engine)
                       for _ in range(args.rounds)]
        finally:
            duckdb.close()
    per_query = {
        engine: [statistics.median(report.results[i][1 + side].seconds for report in reports)
                 for i in range(len(queries))]
        for side, engine in enumerate(("duckdb", "trino"))
    }
    print(f"{len(queries)} corpus queries x {args.rounds} rounds through the Athena API "
          f"(stack with Trino up in {up:.1f} s); per query the median of its rounds")
    print(f"  {'engine':8} {'median':>9} {'p90':>9} {'total':>9}  ratio (median)")
    base = statistics.median(per_query["duckdb"])
    for engine, seconds in per_query.items():
        median = statistics.median(seconds)
        print(f"  {engine:8} {median * 1000:7.0f} ms {_p90(seconds) * 1000:7.0f} ms {sum(seconds):7.1f} s  "
              f"{median / base:5.2f}x" + ("  (baseline)" if engine == "duckdb" else ""))
    print(f"  {reports[-1].agree_line()} (last round)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
