"""One local stack for the operator-tool tests, found by the commands through its state file."""

from __future__ import annotations

import gzip
import json
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from signals.env import Environment, resolve
from signals.local.stack import LocalSettings, LocalStack
from signals.local.wiring import LocalTimings

API_KEY = "e2e-ops-key"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    home: Path = tmp_path_factory.mktemp("signals-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SIGNALS_HOME", str(home))
        settings = LocalSettings(
            port=0, aws_port=0, api_key=API_KEY,
            # Firehose writes within a second; the reconciler runs only when a test runs it.
            timings=LocalTimings(buffer_seconds=0.5), run_schedules=False, drain_on_stop_seconds=2.0,
        )
        with LocalStack(settings) as running:
            yield running


@pytest.fixture
def env(stack: LocalStack) -> Environment:
    return resolve("local")


def queue_name(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1]


@contextmanager
def consumer_stopped(stack: LocalStack, queue_url: str) -> Iterator[None]:
    """The queue's poller paused (its event source mapping disabled), and nothing of it still running."""
    pollers = stack.pollers_of(queue_name(queue_url))
    assert pollers, f"no poller consumes {queue_url}"
    for poller in pollers:
        poller.pause()
    time.sleep(1.5)  # a receive already waiting (1 s long poll) finishes its batch
    while any(p.holding or p.function.busy for p in pollers):
        time.sleep(0.1)
    try:
        yield
    finally:
        for poller in pollers:
            poller.resume()


def post_events(stack: LocalStack, events: list[dict[str, Any]]) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{stack.api_url}/v1/telemetry", data=json.dumps(events).encode(), method="POST",
        headers={"Content-Type": "application/json", "x-api-key": API_KEY})
    with urllib.request.urlopen(request, timeout=30) as response:
        answer: dict[str, Any] = json.loads(response.read())
    return answer


def device_events(count: int, now: datetime, *, bad: int = 0) -> list[dict[str, Any]]:
    types = ("lock", "bridge", "video_doorbell")
    events: list[dict[str, Any]] = [{
        "event_id": f"e2e-{uuid.uuid4().hex}", "device_id": f"dev-{index % 5}", "device_type": types[index % 3],
        "event_name": "heartbeat", "event_time": now.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        "battery_pct": 50 + index % 40,
    } for index in range(count)]
    # Structurally fine for the ingester, invalid for the parser: quarantined with a reason.
    events += [{"event_id": f"bad-{i}", "device_id": "dev-bad", "device_type": "lock", "event_name": "x",
                "event_time": "not a time"} for i in range(bad)]
    return events


def raw_lines(lines: list[dict[str, Any]]) -> bytes:
    return gzip.compress(b"".join(json.dumps(line).encode() + b"\n" for line in lines))


def utc_now() -> datetime:
    return datetime.now(UTC)


def clear_of_hour_end(margin_s: float = 20.0) -> None:
    """Wait out the last seconds of an hour, so a test's events, raw objects and checks share one hour."""
    now = utc_now()
    left = 3600 - (now.minute * 60 + now.second + now.microsecond / 1e6)
    if left < margin_s:
        time.sleep(left + 0.5)

