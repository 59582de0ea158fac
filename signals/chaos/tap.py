"""A network tap in front of the ingest API: it sees every answer, and can lose one on its way back.

Clients talk to the tap; the tap forwards each request unchanged to the ingest API, reads the whole
answer, hands the exchange to the ledger, and then relays the answer, or, when `lose_next` armed it,
does what a broken network does after the request went through: closes the connection with no
answer (`dropped`), or holds it past the client's timeout first (`timed_out`). The API has done its
work either way; a real client cannot tell and sends again.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final
from urllib.parse import urlsplit

_HOP_BY_HOP: Final = frozenset({"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade",
                                "te", "trailer"})


@dataclass(frozen=True)
class Exchange:
    path: str
    request_headers: dict[str, str]  # lower-case names
    request_body: bytes
    status: int
    response_headers: dict[str, str]
    response_body: bytes
    at: float  # time.time() of the answer
    kept_from_client: bool


class IngestTap:
    def __init__(self, upstream_url: str, on_exchange: Callable[[Exchange], None], *,
                 stall_seconds: float = 6.0, port: int = 0) -> None:
        upstream = urlsplit(upstream_url)
        self.upstream_host = upstream.hostname or "127.0.0.1"
        self.upstream_port = upstream.port or 80
        self.on_exchange = on_exchange
        self.stall_seconds = stall_seconds
        self._lock = threading.Lock()
        self._to_lose: list[str] = []  # "dropped" | "timed_out", one per answer to keep from its client
        self.lost = {"dropped": 0, "timed_out": 0}
        self.ledger_errors = 0  # exchanges the ledger could not read
        self.client_gone = 0  # answers the client had stopped waiting for (its own timeout)
        self._local = threading.local()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _handler_class(self), bind_and_activate=False)
        self._server.daemon_threads = True
        self._server.request_queue_size = 128
        self._server.server_bind()
        self._server.server_activate()
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        self._thread = threading.Thread(target=self._server.serve_forever, name="ingest-tap", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()

    def lose_next(self, count: int, how: str = "dropped") -> None:
        """Keep the next `count` answers from their clients (the requests still reach the API)."""
        if how not in self.lost:
            raise ValueError(f"how must be one of {sorted(self.lost)}")
        with self._lock:
            self._to_lose.extend([how] * count)

    def clear(self) -> None:
        with self._lock:
            self._to_lose.clear()

    def _take_loss(self) -> str | None:
        with self._lock:
            if not self._to_lose:
                return None
            how = self._to_lose.pop(0)
            self.lost[how] += 1
            return how

    def upstream(self) -> http.client.HTTPConnection:
        connection: http.client.HTTPConnection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = http.client.HTTPConnection(self.upstream_host, self.upstream_port, timeout=120)
            self._local.connection = connection
        return connection

    def forward(self, method: str, path: str, headers: dict[str, str],
                body: bytes) -> tuple[int, dict[str, str], bytes]:
        for attempt in (1, 2):
            connection = self.upstream()
            try:
                connection.request(method, path, body=body, headers=headers)
                response = connection.getresponse()
                data = response.read()
                return response.status, {k.lower(): v for k, v in response.getheaders()}, data
            except (ConnectionError, http.client.HTTPException):
                connection.close()
                self._local.connection = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")


def _handler_class(tap: IngestTap) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self._relay("POST")

        def do_GET(self) -> None:
            self._relay("GET")

        def _relay(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
            try:
                status, response_headers, data = tap.forward(method, self.path, headers, body)
            except (OSError, http.client.HTTPException):
                self.send_error(502, "ingest API unreachable")
                return
            loss = tap._take_loss() if status < 500 or status == 503 else None
            try:
                tap.on_exchange(Exchange(self.path, {k.lower(): v for k, v in headers.items()}, body, status,
                                         response_headers, data, time.time(), loss is not None))
            except Exception:  # never break the traffic; the report shows the count (it must be 0)
                with tap._lock:
                    tap.ledger_errors += 1
            if loss is not None:
                if loss == "timed_out":
                    time.sleep(tap.stall_seconds)
                self.close_connection = True
                return
            try:
                self.send_response(status)
                for name, value in response_headers.items():
                    if name not in _HOP_BY_HOP and name not in ("content-length", "date", "server"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                # The client gave up waiting (its own timeout) before the answer came: it will resend.
                self.close_connection = True
                with tap._lock:
                    tap.client_gone += 1

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler
