"""What the parser's drift counting (parser.drift) adds to parsing one raw object.

Baseline: `parse_raw` on a gzip JSONL object of lock events (the work the parser does anyway).
Measured beside it in the same run: `drift_lines` over the verified files that parse wrote, for a
share of rows carrying an unknown key (0%: nothing to count; 30%: one new firmware field; 100%:
every row). Medians of REPEATS runs; the ratio is drift time / parse time.

    .venv/bin/python bench/schema_drift.py [--lines 50000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import gzip
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

import orjson

from parser.core import ParseSettings, RawObject, parse_raw
from parser.drift import drift_lines

ARRIVAL_MS = 1_795_000_000_000


def raw_object(lines: int, share: float) -> bytes:
    every = round(1 / share) if share else 0
    out = io.BytesIO()
    for number in range(lines):
        event = {"event_id": f"e{number}", "device_id": f"d{number % 97}", "device_type": "lock",
                 "event_name": "bolt_changed", "event_time": ARRIVAL_MS - 60_000, "received_at": ARRIVAL_MS - 1000,
                 "battery_pct": number % 100, "bolt_state": "locked", "firmware_version": f"4.{number % 3}.0"}
        if every and (number % 10) < share * 10:
            event["auto_lock_delay_s"] = number % 600
        out.write(orjson.dumps(event) + b"\n")
    return gzip.compress(out.getvalue(), compresslevel=1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    raw = RawObject("json_telemetry", "raw/json_telemetry/2026/11/17/08/bench.gz", ARRIVAL_MS)
    print(f"{args.lines} lock events per object, median of {args.repeats} runs")
    print(f"{'share with key':>15} {'parse_raw ms':>13} {'drift_lines ms':>15} {'drift/parse':>12} {'drift lines':>12}")
    for share in (0.0, 0.3, 1.0):
        body = raw_object(args.lines, share)
        parse_s, drift_s, produced = [], [], 0
        for _ in range(args.repeats):
            with tempfile.TemporaryDirectory() as scratch:
                started = time.perf_counter()
                outcome = parse_raw(io.BytesIO(body), raw, Path(scratch), ParseSettings(workers=2))
                parse_s.append(time.perf_counter() - started)
                started = time.perf_counter()
                produced = len(drift_lines(outcome.verified, raw.source_key))
                drift_s.append(time.perf_counter() - started)
        parse_ms, drift_ms = statistics.median(parse_s) * 1000, statistics.median(drift_s) * 1000
        print(f"{share:>15.0%} {parse_ms:>13.1f} {drift_ms:>15.1f} {drift_ms / parse_ms:>12.2f} {produced:>12}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
