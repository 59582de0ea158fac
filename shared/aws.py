"""Lazily created boto3 clients with the retry and timeout settings every function uses.

Endpoints come from boto3's own `AWS_ENDPOINT_URL` (the local stack sets it); there is no custom
endpoint plumbing. Clients are built on first use, so importing a handler touches no AWS and tests
can pass their own session.
"""

from __future__ import annotations

import threading
from typing import Any

import boto3
from botocore.config import Config

DEFAULT_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 4},
    connect_timeout=5,
    read_timeout=30,
    max_pool_connections=16,
)


class Clients:
    """`clients.client("s3")`: one client per service, created on first use (thread-safe)."""

    def __init__(self, session: boto3.Session | None = None, config: Config | None = None) -> None:
        self._session = session
        self._config = config or DEFAULT_CONFIG
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()

    @property
    def session(self) -> boto3.Session:
        if self._session is None:
            self._session = boto3.Session()
        return self._session

    def client(self, service: str) -> Any:
        found = self._clients.get(service)
        if found is None:
            with self._lock:
                found = self._clients.get(service)
                if found is None:
                    found = self.session.client(service, config=self._config)  # type: ignore[call-overload]
                    self._clients[service] = found
        return found
