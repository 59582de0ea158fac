"""A threaded HTTP server on a background thread: the ingest API front and the Firehose endpoint."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class BackgroundHttpServer:
    def __init__(
        self, handler: type[BaseHTTPRequestHandler], *, name: str, host: str = "127.0.0.1", port: int = 0,
        request_queue_size: int | None = None,
    ) -> None:
        self.name = name
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        if request_queue_size is not None:
            self._server.request_queue_size = request_queue_size
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        self._thread = threading.Thread(target=self._server.serve_forever, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:  # shutdown() waits for serve_forever, which only a started server runs
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()
