"""The ingest API answers only this machine's own clients (a recording function, no moto, about a second).

A page elsewhere (`Origin`) or a DNS-rebound name (`Host: attacker.com`) gets 403 with a message
naming what was refused, in API Gateway's JSON shape, and the function never runs.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from signals.local.api import IngestApi
from signals.local.wiring import ApiRoute

KEY = "loopback-key"
BODY = json.dumps([{"event_id": "e1", "device_id": "d1", "device_type": "lock", "event_name": "x",
                    "event_time": 1}]).encode()


class Recorder:
    def __init__(self) -> None:
        self.events: list[Mapping[str, Any]] = []

    def invoke(self, event: Mapping[str, Any]) -> Any:
        self.events.append(event)
        return {"statusCode": 200, "body": json.dumps({"accepted": 1, "secret": "lake-data"})}


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def api(recorder: Recorder) -> Iterator[IngestApi]:
    server = IngestApi([(ApiRoute("POST", "/v1/telemetry"), recorder)], api_key=KEY,
                       binary_media_types=(), stage="live", port=0)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def send(api: IngestApi, method: str, headers: dict[str, str], body: bytes = b"") -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", api.port, timeout=10)
    try:
        connection.putrequest(method, "/v1/telemetry", skip_host=True, skip_accept_encoding=True)
        for name, value in {**headers, "Content-Length": str(len(body))}.items():
            connection.putheader(name, value)
        connection.endheaders(body)
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


@pytest.mark.parametrize("headers", [
    {"Host": "evil.example:{port}"},
    {"Host": "attacker.com"},  # DNS rebinding: the page's own name, now resolving to 127.0.0.1
    {"Host": "attacker.com:{port}", "Origin": "http://attacker.com:{port}"},
    {"Host": "127.0.0.1:{port}", "Origin": "https://evil.example"},  # fetch() from a page elsewhere
    {"Host": "127.0.0.1:{port}", "Origin": "null"},  # a sandboxed frame or a file:// page
])
def test_requests_from_elsewhere_are_refused_and_invoke_nothing(
    api: IngestApi, recorder: Recorder, headers: dict[str, str]
) -> None:
    sent = {k: v.format(port=api.port) for k, v in headers.items()}
    for content_type in ("application/json", "text/plain"):
        status, answer, body = send(api, "POST", {**sent, "x-api-key": KEY, "Content-Type": content_type}, BODY)
        assert status == 403
        assert answer["x-amzn-errortype"] == "ForbiddenException"
        message = json.loads(body)["message"]
        assert message.startswith("Forbidden: ")
        assert "loopback" in message or "not a page on this machine" in message
        assert b"lake-data" not in body
    status, answer, body = send(api, "OPTIONS", {**sent, "Access-Control-Request-Method": "POST"})
    assert status == 403
    assert not [h for h in answer if h.startswith("access-control-")]
    assert recorder.events == []


def test_this_machines_clients_are_answered(api: IngestApi, recorder: Recorder) -> None:
    for host in (f"127.0.0.1:{api.port}", f"localhost:{api.port}", "127.0.0.2"):
        status, _, body = send(api, "POST", {"Host": host, "x-api-key": KEY, "Content-Type": "application/json"}, BODY)
        assert (status, json.loads(body)["accepted"]) == (200, 1), host
    status, _, _ = send(api, "POST", {"Host": "localhost", "Origin": "http://localhost:3000", "x-api-key": KEY,
                                      "Content-Type": "application/json"}, BODY)
    assert status == 200
    assert len(recorder.events) == 4
