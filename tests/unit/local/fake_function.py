"""A stand-in function module for the runtime tests: records what each invocation saw."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

SEEN: list[dict[str, Any]] = []


def build_handler(environ: Mapping[str, str], clients: object = None) -> Callable[[dict[str, Any], Any], Any]:
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        print(f"handling {event['n']}")
        SEEN.append({"environ": dict(environ), "request_id": context.aws_request_id,
                     "remaining_ms": context.get_remaining_time_in_millis(), "name": context.function_name,
                     "memory": context.memory_limit_in_mb})
        if event.get("fail"):
            raise ValueError("asked to fail")
        return {"ok": event["n"]}

    return handler
