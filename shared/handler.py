"""What every function's `build_handler` shares: the handler type and build-on-first-call."""

from __future__ import annotations

import threading
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
