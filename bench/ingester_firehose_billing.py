"""Firehose billing: 5 KB units for 1,000 typical (~400 B) device events, packed vs one per record.

Firehose bills ingestion per record, each rounded up to the next 5 KB. The ingester packs
newline-terminated events into records of up to 1,000 KiB (`ingester.firehose.pack`); the
baseline, computed in the same run, sends each event as its own record. Target: packed <= 1/5.

    .venv/bin/python bench/ingester_firehose_billing.py [--events 1000]
"""

from __future__ import annotations

import argparse
import statistics

import orjson
from ingester_throughput import typical_events  # this folder is on sys.path when run as a script

from ingester.firehose import BILLING_UNIT_BYTES, Record, batches, billing_units, pack


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1000)
    args = parser.parse_args()
    stamp = "2026-11-25T19:30:00.123Z"
    lines = [orjson.dumps({**event, "received_at": stamp}) for event in typical_events(args.events)]
    packed_records = pack(lines)
    single_records = [Record(line + b"\n", index, index + 1) for index, line in enumerate(lines)]
    packed = [record.data for record in packed_records]
    one_each = [record.data for record in single_records]
    packed_units, single_units = billing_units(packed), billing_units(one_each)
    print(f"{len(lines)} events, median {statistics.median(map(len, lines)):.0f} B each, "
          f"billing unit {BILLING_UNIT_BYTES} B")
    print(f"  one event per record (baseline)  {len(one_each):5d} records  {single_units:5d} units  "
          f"{len(batches(single_records))} calls")
    print(f"  packed (ingester)                {len(packed):5d} records  {packed_units:5d} units  "
          f"{len(batches(packed_records))} calls")
    print(f"  ratio packed / one per record    {packed_units / single_units:.3f}   (target <= 0.2)")


if __name__ == "__main__":
    main()
