"""The tap in front of the ingest API: every answer reaches the ledger; a lost one never reaches the client."""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from signals.chaos.tap import Exchange, IngestTap

SEEN: list[bytes] = []


class Api(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        SEEN.append(body)
        data = json.dumps({"accepted": 1, "rejected": []}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def tap() -> Iterator[tuple[IngestTap, list[Exchange]]]:
    api = ThreadingHTTPServer(("127.0.0.1", 0), Api)
    threading.Thread(target=api.serve_forever, daemon=True).start()
    exchanges: list[Exchange] = []
    running = IngestTap(f"http://127.0.0.1:{api.server_address[1]}", exchanges.append, stall_seconds=1.5)
    running.start()
    yield running, exchanges
    running.stop()
    api.shutdown()
    api.server_close()


def post(tap: IngestTap, body: bytes, timeout: float = 5.0) -> tuple[int, bytes]:
    host, port = tap.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        connection.request("POST", "/v1/telemetry", body=body, headers={"content-type": "application/json"})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_answers_pass_through_and_each_exchange_reaches_the_ledger(tap: tuple[IngestTap, list[Exchange]]) -> None:
    running, exchanges = tap
    SEEN.clear()
    assert post(running, b'[{"event_id": "a"}]') == (200, b'{"accepted": 1, "rejected": []}')
    assert SEEN == [b'[{"event_id": "a"}]']
    assert (exchanges[0].status, exchanges[0].request_body, exchanges[0].kept_from_client) == (
        200, b'[{"event_id": "a"}]', False)


@pytest.mark.parametrize("how", ["dropped", "timed_out"])
def test_a_lost_answer_went_through_to_the_api_but_never_reached_the_client(
    tap: tuple[IngestTap, list[Exchange]], how: str
) -> None:
    running, exchanges = tap
    SEEN.clear()
    running.lose_next(1, how)
    with pytest.raises((http.client.RemoteDisconnected, TimeoutError, ConnectionError)):
        post(running, b'[{"event_id": "b"}]', timeout=1.0 if how == "timed_out" else 5.0)
    assert SEEN == [b'[{"event_id": "b"}]']  # the API did the work
    assert exchanges[-1].kept_from_client
    assert running.lost[how] == 1
    assert post(running, b'[{"event_id": "b"}]')[0] == 200  # the resend is answered
    assert len(SEEN) == 2
