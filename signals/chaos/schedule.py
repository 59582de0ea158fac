"""The fault schedule: which fault, when, and how hard, drawn from the seed alone.

`draw(seed, seconds, faults)` is a pure function: the same seed, duration and fault list give the
same schedule, on any machine (it uses `random.Random(seed)` and nothing else). Every named fault
is injected at least once, and about once a minute after that, at times spread over the sending
phase (never in its first or last few seconds, so the fault meets traffic and the clients have time
to resend before the settle phase).
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

#: Every fault `--faults` takes, in the order the report lists them.
FAULTS: Final = (
    "firehose_partial",
    "firehose_outage",
    "firehose_duplicate_object",
    "notification_lost",
    "sqs_duplicate",
    "crash_parser",
    "crash_registry",
    "crash_compactor",
    "glue_error",
    "dynamodb_throttling",
    "athena_error",
    "response_lost",
)

#: Injections per fault beyond the first, per minute of sending.
EXTRA_PER_MINUTE: Final = 1.0
#: Share of the sending phase kept free of new faults at its start and its end.
MARGIN: Final = 0.08

PROCESSING_QUEUES: Final = (
    "telemetry-processing-queue",
    "otlp-logs-processing-queue",
    "telemetry-registry-queue",
)


@dataclass(frozen=True)
class Injection:
    at_s: float  # seconds after sending starts
    fault: str
    params: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        details = ", ".join(f"{k}={v}" for k, v in sorted(self.params.items()))
        return f"{self.at_s:7.1f} s  {self.fault}" + (f" ({details})" if details else "")


class UnknownFault(ValueError):
    pass


def parse_faults(text: str | None) -> tuple[str, ...]:
    """`--faults a,b` as a tuple in FAULTS order; None or "all" means every fault."""
    if text is None or text.strip() in ("", "all"):
        return FAULTS
    wanted = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in wanted if name not in FAULTS]
    if unknown:
        raise UnknownFault(f"unknown fault(s): {', '.join(unknown)}; known: {', '.join(FAULTS)}")
    return tuple(name for name in FAULTS if name in wanted)


def _params(fault: str, rng: random.Random) -> dict[str, Any]:
    if fault == "firehose_partial":
        return {"records": rng.randint(1, 12)}
    if fault == "firehose_outage":
        return {"seconds": round(rng.uniform(3.5, 7.0), 1)}  # the local retry budget is 3 s
    if fault == "firehose_duplicate_object":
        return {"objects": rng.randint(1, 2)}
    if fault == "notification_lost":
        return {"bucket": rng.choice(("raw", "verified")), "notifications": rng.randint(1, 3)}
    if fault == "sqs_duplicate":
        return {"queue": rng.choice(PROCESSING_QUEUES), "messages": rng.randint(1, 3)}
    if fault == "crash_parser":
        return {"after_outputs": rng.randint(1, 2)}
    if fault == "crash_registry":
        return {}  # killed at its first crash point: after a Glue partition, or after a file item
    if fault == "crash_compactor":
        return {}
    if fault == "glue_error":
        return {"errors": rng.randint(1, 4), "outage_seconds": round(rng.uniform(1.0, 4.0), 1)}
    if fault == "dynamodb_throttling":
        return {"seconds": round(rng.uniform(2.0, 5.0), 1), "share": round(rng.uniform(0.2, 0.6), 2)}
    if fault == "athena_error":
        return {"errors": rng.randint(1, 3)}
    if fault == "response_lost":
        return {"responses": rng.randint(1, 4), "how": rng.choice(("dropped", "timed_out"))}
    raise UnknownFault(fault)


def draw(seed: int, seconds: float, faults: Iterable[str] = FAULTS) -> list[Injection]:
    """The schedule for a run of `seconds` of sending; sorted by time."""
    names = parse_faults(",".join(faults))
    rng = random.Random(seed)
    start, end = seconds * MARGIN, seconds * (1 - MARGIN)
    minutes = seconds / 60
    injections: list[Injection] = []
    for name in names:
        extra = int(EXTRA_PER_MINUTE * minutes)
        for _ in range(1 + extra):
            injections.append(Injection(round(rng.uniform(start, end), 2), name, _params(name, rng)))
    return sorted(injections, key=lambda item: (item.at_s, FAULTS.index(item.fault)))


def counts(schedule: Sequence[Injection]) -> dict[str, int]:
    found: dict[str, int] = {}
    for injection in schedule:
        found[injection.fault] = found.get(injection.fault, 0) + 1
    return found
