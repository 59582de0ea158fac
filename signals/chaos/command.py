"""`signals chaos`: run the pipeline locally under seeded faults and prove nothing was lost or doubled.

Starts a local stack on free ports, drives simulated devices and an OpenTelemetry SDK app through a
network tap in front of the ingest API, injects the faults the seed schedules, stops them, lets the
pipeline settle, and reconciles the ledger of every event sent and every API answer with the lake.
Exit 0 when no accepted event is lost and the compacted layer holds no extra copy; 1 otherwise,
naming the first event ids and where each was last seen. See docs/reliability.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, TextIO

from signals.chaos.schedule import FAULTS, UnknownFault, draw, parse_faults


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "chaos", help="fault campaign over the local stack: seeded faults, a ledger, nothing lost or doubled",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--minutes", type=float, default=2.0, help="how long clients send (default 2)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the fault schedule (default 7)")
    parser.add_argument("--faults", default=None, metavar="NAME,...",
                        help=f"faults to inject (default all): {', '.join(FAULTS)}")
    parser.add_argument("--rate", type=float, default=150.0,
                        help="events per second, device events and log records together (default 150)")
    parser.add_argument("--json", action="store_true", help="print the report as one JSON object")
    parser.add_argument("--keep", type=Path, default=None, metavar="DIR",
                        help="copy the verified lake and the quarantine into DIR at the end")
    parser.add_argument("--plan", action="store_true", help="print the fault schedule and exit")
    parser.add_argument("--athena-engine", choices=("duckdb", "trino"), default="duckdb",
                        help="the embedded Athena's engine (as `signals local --athena-engine`); with trino the "
                        "compactor runs its athena engine (MERGE, OPTIMIZE, VACUUM) on Trino")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from signals.chaos.campaign import CampaignSettings, run_campaign  # noqa: PLC0415 (moto loads with it)

    try:
        faults = parse_faults(args.faults)
    except UnknownFault as exc:
        print(f"signals chaos: {exc}", file=sys.stderr)
        return 2
    if args.minutes <= 0 or args.rate <= 0:
        print("signals chaos: --minutes and --rate must be positive", file=sys.stderr)
        return 2
    if args.plan:
        for injection in draw(args.seed, args.minutes * 60, faults):
            print(injection.describe())
        return 0
    settings = CampaignSettings(minutes=args.minutes, seed=args.seed, faults=faults, rate=args.rate,
                                keep_dir=args.keep, athena_engine=args.athena_engine)
    progress = sys.stderr if args.json else sys.stdout
    print(f"signals chaos: seed {args.seed}, {args.minutes:g} min at {args.rate:g} events/s, "
          f"faults: {', '.join(faults)}", file=progress)
    report = run_campaign(settings, progress)
    document = report.as_dict()
    if args.json:
        print(json.dumps(document, indent=2))
    else:
        print_table(document, sys.stdout)
    return 0 if report.ok else 1


def print_table(document: dict[str, Any], out: TextIO) -> None:
    write = out.write
    write("\nLedger against the lake\n")
    for name in ("events_sent", "accepted", "rejected", "verified_rows", "compacted_rows", "quarantined", "lost",
                 "duplicated_verified", "duplicated_compacted", "misjudged", "landed_unacknowledged",
                 "unknown_rows", "settle_seconds"):
        write(f"  {name:24} {document.get(name)}\n")
    write(f"  {'lost counted against':24} the {document.get('lost_basis')} layer\n")
    write("\nFaults injected (planned)\n")
    planned = document.get("faults_planned", {})
    for name, count in document.get("faults", {}).items():
        write(f"  {name:28} {count:4} ({planned.get(name, 0)})\n")
    for name, count in document.get("fault_details", {}).items():
        write(f"    {name:26} {count:4}\n")
    write(f"\nRepairs by the reconciler ({document.get('reconciler_runs')} runs)\n")
    for name, count in document.get("repairs", {}).items():
        write(f"  {name:28} {count:6}\n")
    if not document.get("repairs"):
        write("  (none)\n")
    write("\nClients\n")
    for name, value in document.get("clients", {}).items():
        write(f"  {name:28} {value}\n")
    for what in ("dlq_messages", "function_kills"):
        write(f"  {what:28} {document.get(what) or 'none'}\n")
    if document.get("lost_ids"):
        write("\nLost (first ids, where last seen)\n")
        for entry in document["lost_ids"]:
            write(f"  {entry['event_id']} ({entry['kind']}): {entry['last_seen']}\n")
    if document.get("duplicated_ids"):
        write("\nDuplicated in the compacted layer (first ids)\n")
        for entry in document["duplicated_ids"]:
            write(f"  {entry['event_id']}: {entry['copies']} copies\n")
    verdict = "ok: nothing accepted was lost, nothing doubled" if document.get("ok") else "FAILED"
    write(f"\n{verdict}\n")
    out.flush()
