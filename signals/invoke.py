"""`signals invoke FUNCTION -e events/FILE.json`: run one function on an event, like `sam local invoke`.

FUNCTION is the function's name (`telemetry-parser-service`), its template logical id
(`ParserFunction`) or its package (`parser`). The call is Lambda's `Invoke` with `LogType=Tail`,
so against `signals local` (the default `--env`) the function runs in the local stack's process
with its local environment, and against a deployed env it runs in Lambda. The function's log lines
go to stderr, its response to stdout; the exit status is 1 when the function raised
(`FunctionError`). Lambda returns only the last 4 KB of log with the response: a longer log is read
from the function's CloudWatch log group (the invocation's lines, START to REPORT).
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import time
from pathlib import Path
from typing import Any, Final

from signals.env import ENVIRONMENTS, Environment, EnvironmentNotFound, resolve

#: Lambda's LogType=Tail carries at most this much of the log.
TAIL_LIMIT: Final = 4096


class UnknownFunction(LookupError):
    pass


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "invoke",
        help="run a function on an event file (local stack or a deployed env), like `sam local invoke`",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("function", help="function name, template logical id or package (e.g. parser)")
    parser.add_argument("-e", "--event", type=Path, default=None,
                        help="JSON event file (e.g. events/ingester_telemetry.json); '-' reads stdin; default {}")
    parser.add_argument("--env", default="local", choices=ENVIRONMENTS, help="local (default) or a deployed env")
    parser.add_argument("--profile", help="AWS profile for a deployed env (default platform-{env})")
    parser.add_argument("--template", type=Path, default=None, help="template.yaml naming the functions")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        payload = _read_event(args.event)
        env = resolve(args.env, args.profile)
        name, log_group = function_of(args.function, args.env, args.template)
    except (EnvironmentNotFound, UnknownFunction, OSError, ValueError) as exc:
        print(f"signals invoke: {exc}", file=sys.stderr)
        return 1
    result = invoke(env, name, payload, log_group=log_group)
    if result.log:
        sys.stderr.write(result.log if result.log.endswith("\n") else result.log + "\n")
        sys.stderr.flush()
    sys.stdout.write(result.payload.decode("utf-8", "replace") + "\n")
    return 1 if result.function_error else 0


def _read_event(path: Path | None) -> bytes:
    if path is None:
        return b"{}"
    data = sys.stdin.buffer.read() if str(path) == "-" else path.read_bytes()
    try:
        json.loads(data)
    except ValueError as exc:
        raise ValueError(f"{path}: not JSON ({exc})") from None
    return data


def function_of(identifier: str, env_name: str, template_path: Path | None = None) -> tuple[str, str]:
    """(function name, log group) from the template for `env_name`, by name, logical id or package."""
    from signals.env import stack_name  # noqa: PLC0415
    from signals.local.template import ResolvedTemplate, find_template, load_template  # noqa: PLC0415

    document = load_template(template_path or find_template())
    template = ResolvedTemplate(document, parameters={"Environment": env_name}, stack_name=stack_name(env_name),
                                endpoint="http://127.0.0.1")
    known: list[str] = []
    for function in template.of_type("AWS::Serverless::Function"):
        name = template.physical_name(function.logical_id)
        package = str(function.properties.get("Handler", "")).split(".", 1)[0]
        known.append(name)
        if identifier in (name, function.logical_id, package):
            log_group = (function.properties.get("LoggingConfig") or {}).get("LogGroup") or f"/aws/lambda/{name}"
            return name, str(log_group)
    raise UnknownFunction(f"no function {identifier!r} in the template (functions: {', '.join(known)})")


class Invocation:
    def __init__(self, status: int, payload: bytes, function_error: str | None, log: str) -> None:
        self.status = status
        self.payload = payload
        self.function_error = function_error
        self.log = log


def invoke(env: Environment, name: str, payload: bytes, *, log_group: str, log_wait_s: float = 10.0) -> Invocation:
    """Lambda Invoke with the log tail; a tail cut at 4 KB is replaced by the invocation's CloudWatch lines."""
    started_ms = int(time.time() * 1000) - 1000
    response = env.client("lambda").invoke(FunctionName=name, Payload=payload, LogType="Tail")
    request_id = str(response["ResponseMetadata"].get("RequestId", ""))
    tail = base64.b64decode(response.get("LogResult") or "").decode("utf-8", "replace")
    log = tail
    if len(tail.encode("utf-8")) >= TAIL_LIMIT and request_id:
        full = invocation_log(env.client("logs"), log_group, request_id, started_ms, wait_s=log_wait_s)
        log = full if full is not None else tail + (
            f"\n(signals invoke: the log above is Lambda's last 4 KB; the full log is in {log_group})")
    return Invocation(int(response["StatusCode"]), response["Payload"].read(), response.get("FunctionError"), log)


def invocation_log(logs: Any, log_group: str, request_id: str, since_ms: int, *, wait_s: float) -> str | None:
    """The lines of one invocation (its START to its REPORT) from CloudWatch Logs, once they are all there."""
    deadline = time.monotonic() + wait_s
    while True:
        lines = _lines_between(_events(logs, log_group, since_ms), request_id)
        if lines is not None:
            return "\n".join(lines)
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.3)


def _events(logs: Any, log_group: str, since_ms: int) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    try:
        for page in logs.get_paginator("filter_log_events").paginate(logGroupName=log_group, startTime=since_ms):
            events.extend(page.get("events", []))
    except logs.exceptions.ResourceNotFoundException:
        return []
    return events


def _lines_between(events: list[dict[str, Any]], request_id: str) -> list[str] | None:
    """From the event naming `request_id` as started to the one reporting it; None until the report is in."""
    start = next((e for e in events if request_id in e["message"] and _is_start(e["message"])), None)
    if start is None:
        return None
    stream = start["logStreamName"]
    lines: list[str] = []
    collecting = False
    for event in sorted((e for e in events if e["logStreamName"] == stream),
                        key=lambda e: (e["timestamp"], e.get("ingestionTime", 0))):
        message = event["message"]
        if event is start:
            collecting = True
        if collecting:
            lines.append(message)
            if request_id in message and _is_report(message):
                return lines
    return None


def _is_start(message: str) -> bool:
    return message.startswith("START RequestId:") or '"platform.start"' in message


def _is_report(message: str) -> bool:
    return message.startswith("REPORT RequestId:") or '"platform.report"' in message
