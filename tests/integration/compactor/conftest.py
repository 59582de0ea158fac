from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import requests

from signals.local.gateway import AwsGateway
from tests.integration.compactor.support import World, create_world


@pytest.fixture(scope="session")
def gateway() -> Iterator[AwsGateway]:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    running = AwsGateway("127.0.0.1", 0)
    running.start()
    yield running
    running.stop()


@pytest.fixture
def world(gateway: AwsGateway) -> World:
    requests.post(f"{gateway.url}/moto-api/reset", timeout=10)  # a fresh account per test
    return create_world(gateway.url)
