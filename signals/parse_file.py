"""`signals parse-file RAW [RAW...] --out DIR`: the parser's core on local raw files."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import orjson


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "parse-file",
        help="parse local raw files (gzip or plain JSONL) into verified Parquet and quarantine under DIR",
        description=(
            "Run the parser's core on local raw files and write the same key layout as the buckets: "
            "DIR/telemetry_flat/type=T/day=D/hour=H/NAME.parquet and DIR/quarantine/source=S/.../NAME.jsonl.gz. "
            "Exit 0 when the input was processed, bad records included."
        ),
    )
    parser.add_argument("raw", nargs="+", type=Path, metavar="RAW", help="raw object file(s)")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="output directory")
    parser.add_argument("--source", choices=("json_telemetry", "otlp_logs"),
                        help="raw source (default: otlp_logs for a path under raw/otlp_logs/, else json_telemetry)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from parser.local import parse_local_file  # noqa: PLC0415 (imports pyarrow: not for `signals --help`)

    report: dict[str, Any] = {"files": []}
    status = 0
    for path in args.raw:
        if not path.is_file():
            print(f"signals parse-file: {path}: no such file", file=sys.stderr)
            status = 1
            continue
        result = parse_local_file(path, args.out, args.source)
        outcome = result.outcome
        report["files"].append({
            "raw": str(path),
            "source": result.source,
            "bytes_in": outcome.bytes_in,
            "rows": outcome.rows,
            "quarantined": outcome.quarantined,
            "blank_lines": outcome.counts.blank_lines,
            "partitions": [{"key": key, "rows": rows} for key, rows in result.verified_keys],
            "quarantine_key": result.quarantine_key,
            "quarantined_by_reason": dict(sorted(outcome.counts.quarantined.items())),
        })
    if args.json:
        sys.stdout.write(orjson.dumps(report).decode() + "\n")
        return status
    for item in report["files"]:
        print(f"{item['raw']} ({item['source']}): {item['rows']} rows, {item['quarantined']} quarantined, "
              f"{item['blank_lines']} blank lines")
        for partition in item["partitions"]:
            print(f"  {partition['rows']:>9}  {args.out / partition['key']}")
        for reason, count in item["quarantined_by_reason"].items():
            print(f"  {count:>9}  quarantined: {reason}")
        if item["quarantine_key"]:
            print(f"             {args.out / item['quarantine_key']}")
    return status
