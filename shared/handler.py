"""What every function's `build_handler` shares: the handler type and build-on-first-call."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

#: A Lambda handler: (event, context) -> response.
Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


def on_first_call(build: Callable[[], T]) -> Callable[[], T]:
    """`build()` once, on the first call, then the same value (thread-safe).

    Handlers validate their configuration and create clients this way: on the first invocation,
    never at import, so importing a handler needs no environment and touches no AWS.
    """
    lock = threading.Lock()
    built: list[T] = []

    def get() -> T:
        with lock:
            if not built:
                built.append(build())
            return built[0]

    return get


#: Milliseconds left in the invocation (Lambda's `context.get_remaining_time_in_millis`).
RemainingMs = Callable[[], int]


def remaining_time(context: Any, default_budget_ms: int) -> RemainingMs:
    """The invocation's time left: from the Lambda context, or `default_budget_ms` from now without one
    (`signals compact` runs a handler with no context)."""
    get_remaining = getattr(context, "get_remaining_time_in_millis", None)
    if callable(get_remaining):
        return lambda: int(get_remaining())
    deadline = time.monotonic() + default_budget_ms / 1000
    return lambda: int((deadline - time.monotonic()) * 1000)
