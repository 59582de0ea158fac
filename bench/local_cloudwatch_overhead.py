"""Function latency in the local stack with the CloudWatch publisher on, against the same stack with it off.

Baseline, measured in the same run on the same stack: invocations with the publisher detached (no
log sink on the router, no invocation observer), so a function's writes go only to its log file, as
before CloudWatch Logs existed locally. With it attached, every write is also queued and the
background thread sends PutLogEvents / PutMetricData to the embedded moto in this process (its CPU
and the GIL are shared, which is what this measures). Rounds alternate between the two; medians of
per-invocation wall time, the ingester on events/ingester_telemetry.json (one Firehose call each).

    .venv/bin/python bench/local_cloudwatch_overhead.py [--rounds 10] [--invocations 100]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--invocations", type=int, default=100)
    args = parser.parse_args()
    os.environ["SIGNALS_HOME"] = tempfile.mkdtemp(prefix="bench-cw-")
    from signals.local.stack import LocalSettings, LocalStack  # noqa: PLC0415
    from signals.local.wiring import LocalTimings  # noqa: PLC0415

    event = json.loads((ROOT / "events" / "ingester_telemetry.json").read_text())
    settings = LocalSettings(port=0, aws_port=0, write_state=False, run_schedules=False, drain_on_stop_seconds=0,
                             timings=LocalTimings(buffer_seconds=0.2))
    with LocalStack(settings) as stack:
        function = stack.function("ingester")
        publisher = stack.cloudwatch
        routed = stack.routed_output
        assert publisher is not None
        assert routed is not None
        samples: dict[str, list[float]] = {"publisher off (baseline)": [], "publisher on": []}
        for _ in range(20):  # warm up both paths
            function.invoke(event)
        for round_number in range(args.rounds):
            for label in (list(samples) if round_number % 2 == 0 else list(reversed(samples))):
                attached = label == "publisher on"
                if attached:
                    routed.add_sink(publisher.sink)
                    function.observers = [publisher]
                else:
                    routed.remove_sink(publisher.sink)
                    function.observers = []
                for _ in range(args.invocations):
                    started = time.perf_counter()
                    response = function.invoke(event)
                    samples[label].append(time.perf_counter() - started)
                    assert response["statusCode"] == 200
                publisher.flush()
        sent = publisher.events_put
    base = statistics.median(samples["publisher off (baseline)"])
    print(f"ingester invocations, {args.rounds} alternating rounds x {args.invocations}, median wall time:")
    for label, values in samples.items():
        median = statistics.median(values)
        p90 = statistics.quantiles(values, n=10)[-1]
        print(f"  {label:26} median {median * 1000:7.3f} ms   p90 {p90 * 1000:7.3f} ms   ratio {median / base:5.2f}")
    print(f"  log events sent to CloudWatch Logs: {sent}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
