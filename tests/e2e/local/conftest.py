"""One local stack per test module, on free ports, with SIGNALS_HOME in a temporary directory."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from signals.env import Environment, resolve
from signals.local.stack import LocalSettings, LocalStack
from signals.local.wiring import LocalTimings
from signals.query import QueryResult, query

API_KEY = "e2e-local-key"


@pytest.fixture(scope="module")
def signals_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("signals-home")


@pytest.fixture(scope="module")
def stack(signals_home: Path) -> Iterator[LocalStack]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SIGNALS_HOME", str(signals_home))
        settings = LocalSettings(
            port=0, aws_port=0, api_key=API_KEY,
            # Firehose writes within half a second; a failed message is back after 1 s, so a poison
            # message reaches its DLQ after maxReceiveCount (5) receives in about 6 s.
            timings=LocalTimings(buffer_seconds=0.5, visibility_seconds=1, reconcile_seconds=3.0),
            drain_on_stop_seconds=2.0,
        )
        with LocalStack(settings) as running:
            yield running


@pytest.fixture
def env(stack: LocalStack) -> Environment:
    """The running stack as `signals` commands see it (through its state file)."""
    return resolve("local")


def post(stack: LocalStack, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(f"{stack.api_url}{path}", data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def wait_for(predicate: Callable[[], bool], timeout: float = 30.0, interval: float = 0.3) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def sql(env: Environment, text: str) -> QueryResult:
    return query(env, text)
