"""Fixtures for the ingester's unit tests: a handler over a recording sink."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from ingester.app import build_handler
from tests.unit.ingester.fakes import STREAMS, FakeContext, RecordingSink

Invoke = Callable[[dict[str, Any]], dict[str, Any]]


@pytest.fixture
def sink() -> RecordingSink:
    return RecordingSink()


@pytest.fixture
def invoke(sink: RecordingSink) -> Invoke:
    handler = build_handler({**STREAMS, "MAX_BODY_BYTES": str(4 * 1024 * 1024)}, sink=sink)
    return lambda event: handler(event, FakeContext())
