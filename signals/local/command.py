"""`signals local`: the whole pipeline on this machine until Ctrl-C (see docs/local-stack.md)."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from signals.env import local_state_path, pid_alive, stale_local_pid

#: `signals local`'s Firehose buffering interval: the template's 300 s is for AWS (fewer, larger objects);
#: locally a first query should show what was just sent.
LOCAL_BUFFER_SECONDS = 2.0


def add_stack_options(
    parser: argparse.ArgumentParser, *, port: int, aws_port: int, buffer_seconds: float | None
) -> None:
    """Options `signals local` and `signals demo` share."""
    parser.add_argument("--port", type=int, default=port,
                        help=f"ingest API port on 127.0.0.1 (default {port or 'a free port'})")
    parser.add_argument("--aws-port", type=int, default=aws_port,
                        help=f"embedded AWS (moto) port on 127.0.0.1 (default {aws_port or 'a free port'})")
    parser.add_argument("--api-key", default=None, help="API key clients must send as x-api-key "
                        "(default $SIGNALS_API_KEY, else local-dev-key)")
    parser.add_argument("--buffer-seconds", type=float, default=buffer_seconds,
                        help="Firehose buffering interval, overriding the template's (its 300 s is for AWS; "
                        f"default {buffer_seconds if buffer_seconds is not None else 'the template value'})")
    parser.add_argument("--reconcile-seconds", type=float, default=60.0,
                        help="period of the reconciler's schedule (template: every 15 minutes; default 60)")
    parser.add_argument("--visibility-seconds", type=int, default=3,
                        help="every queue's visibility timeout, locally (default 3)")
    parser.add_argument("--template", type=Path, default=None, help="template.yaml to read (default: the checkout's)")
    parser.add_argument("--athena-engine", choices=("duckdb", "trino"), default="duckdb",
                        help="what answers the embedded Athena's queries: duckdb (default; fast, no Java) or trino "
                        "(a real Trino server the stack starts; fetch it first with `signals trino fetch`)")
    parser.add_argument("--trino-heap", default="2G", help="the Trino server's JVM heap (-Xmx; default 2G)")


def settings_from(args: argparse.Namespace, **overrides: Any) -> Any:
    from signals.local.stack import LocalSettings, default_api_key  # noqa: PLC0415 (moto loads with it)
    from signals.local.wiring import LocalTimings  # noqa: PLC0415

    timings = LocalTimings(
        visibility_seconds=args.visibility_seconds,
        buffer_seconds=args.buffer_seconds,
        reconcile_seconds=args.reconcile_seconds,
    )
    return LocalSettings(
        port=args.port,
        aws_port=args.aws_port,
        api_key=args.api_key or default_api_key(),
        timings=timings,
        template_path=args.template,
        athena_engine=getattr(args, "athena_engine", "duckdb"),
        trino_heap=getattr(args, "trino_heap", "2G"),
        **overrides,
    )


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "local",
        help="run the whole pipeline on this machine (embedded AWS, ingest API, functions) until Ctrl-C",
        description="Run the pipeline locally: moto's server as the AWS, every resource and wire from "
        "template.yaml (Environment=local), the ingest API with the API key enforced, a faithful "
        "Firehose stand-in, SQS pollers and the reconciler's schedule. Other `signals` commands find it "
        "through the state file in $SIGNALS_HOME (default ~/.signals).",
    )
    add_stack_options(parser, port=4318, aws_port=4566, buffer_seconds=LOCAL_BUFFER_SECONDS)
    parser.add_argument("--keep", type=Path, default=None, metavar="DIR",
                        help="on exit, copy the verified lake and the quarantine into DIR")
    parser.set_defaults(func=run)


def running_stack_pid() -> int | None:
    """The pid of a `signals local` that is still alive, from its state file."""
    try:
        pid = int(json.loads(local_state_path().read_text())["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return pid if pid_alive(pid) else None


def report_dead_stack() -> int | None:
    """Say so when the previous stack died without stopping (its state file is still there); its pid."""
    try:
        state = json.loads(local_state_path().read_text())
    except (OSError, ValueError):
        return None
    dead = stale_local_pid(state) if isinstance(state, dict) else None
    if dead is not None:
        print(f"signals local: the previous local stack (pid {dead}) died without stopping; the embedded AWS "
              "state it held (buckets, queues, registry) is gone, unless `--keep DIR` had copied the lake "
              "(that copy is made on a clean stop). Starting empty.", file=sys.stderr)
    return dead


def run(args: argparse.Namespace) -> int:
    from signals.local.stack import LocalStack  # noqa: PLC0415 (moto loads with it)
    from signals.sql.trino_server import TrinoUnavailable  # noqa: PLC0415

    other = running_stack_pid()
    if other is not None and other != os.getpid():
        print(f"signals local: a local stack is already running (pid {other}, {local_state_path()})", file=sys.stderr)
        return 1
    report_dead_stack()
    stop = threading.Event()

    def request_stop(signum: int, _frame: object) -> None:
        stop.set()

    previous = signal.signal(signal.SIGTERM, request_stop)
    try:
        with LocalStack(settings_from(args, keep_dir=args.keep)) as stack:
            print_banner(stack)
            try:
                while not stop.wait(0.5):
                    pass
            except KeyboardInterrupt:
                pass
            print("\nstopping: writing Firehose buffers and draining the queues ...", flush=True)
    except TrinoUnavailable as exc:
        print(f"signals local: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"signals local: {exc} (is another process using the port? try --port / --aws-port)", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)
    if args.keep is not None:
        print(f"kept the verified lake and quarantine in {args.keep}")
    print("stopped")
    return 0


#: Above this buffering interval the banner says how to get quick results.
QUICK_BUFFER_SECONDS = 5.0


def signals_command() -> str:
    """How to type `signals` in another shell: the bare name when PATH finds this one, else its path."""
    here = Path(sys.executable).parent / "signals"
    found = shutil.which("signals")
    if found is not None and (not here.exists() or Path(found).resolve() == here.resolve()):
        return "signals"
    return str(here) if here.exists() else "signals"


def beside(signals: str, command: str) -> str:
    """`command` as typed next to `signals` (from the same bin directory when that is not on PATH)."""
    if signals == "signals":
        return command
    path = Path(signals).parent / command
    return str(path) if path.exists() else command


def print_banner(stack: Any) -> None:
    from datetime import UTC, datetime  # noqa: PLC0415

    from signals.env import Output  # noqa: PLC0415

    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    wiring = stack.wiring
    signals = signals_command()
    lines = [
        "signals local: the pipeline is running (Ctrl-C stops it)",
        "",
        f"  ingest API    {stack.api_url}   (POST /v1/telemetry, /v1/logs; header x-api-key)",
        f"  API key       {stack.api_key}",
        f"  AWS endpoint  {stack.aws_endpoint_url}   (AWS_ENDPOINT_URL; any access key, region us-west-2;"
        " Firehose too)",
        f"  state file    {local_state_path()}",
        *([f"  Athena engine Trino at {stack.trino.url} (started in {stack.trino.startup_seconds or 0:.0f} s; "
           "the compactor runs its athena engine on it)"] if getattr(stack, "trino", None) is not None else []),
        f"  function logs {stack.log_dir}/",
        "",
        "  wiring from template.yaml (Environment=local):",
    ]
    for function in wiring.functions.values():
        sources = [f"{e.name} <- {wiring.queues[e.queue_arn].name} (batch {e.batch_size})" for e in function.sqs_events]
        sources += [f"{r.method} {r.path}" for r in function.routes]
        sources += [f"every {stack.settings.timings.reconcile_seconds:g} s ({s.expression} in AWS)"
                    for s in function.schedules]
        lines.append(f"    {function.name:32} {'; '.join(sources)}")
    for stream in wiring.streams.values():
        interval = stack.firehose.interval(stream)
        lines.append(f"    firehose {stream.name:23} -> s3://{stream.bucket}/{stream.prefix} (every {interval:g} s)")
    lines += [
        "",
        "  try (in another shell):",
        f"    curl -s -H 'x-api-key: {stack.api_key}' -H 'content-type: application/json' \\",
        f"      -d '[{{\"device_id\":\"d1\",\"device_type\":\"lock\",\"event_id\":\"e1\","
        f"\"event_name\":\"bolt_changed\","
        f"\"event_time\":\"{now}\",\"battery_pct\":80}}]' {stack.api_url}/v1/telemetry",
        f"    {signals} query \"SELECT device_id, event_name, battery_pct FROM telemetry_lock_flat\"",
        f"    {signals} status   # raw bucket {stack.outputs.get(Output.RAW_BUCKET, '?')}",
        f"    AWS_ENDPOINT_URL={stack.aws_endpoint_url} AWS_ACCESS_KEY_ID=x AWS_SECRET_ACCESS_KEY=x "
        f"AWS_DEFAULT_REGION=us-west-2 {beside(signals, 'aws')} firehose list-delivery-streams",
    ]
    if signals != "signals":
        bin_dir = Path(signals).parent
        lines += ["", f"  `signals` is not on PATH: `source {bin_dir}/activate` (or export PATH={bin_dir}:$PATH)",
                  "  lets you type `signals ...` as the README does."]
    slowest = max((stack.firehose.interval(stream) for stream in wiring.streams.values()), default=0.0)
    if slowest > QUICK_BUFFER_SECONDS:
        # The template's interval is the deployed one; a newcomer's first query would come back empty.
        lines += [
            "",
            f"  note: Firehose buffers up to {slowest:g} s, so a query shows new events only after that;",
            f"        restart with --buffer-seconds {LOCAL_BUFFER_SECONDS:g} (the default) to see them within seconds.",
        ]
    print("\n".join(lines), flush=True)
