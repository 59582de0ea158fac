"""A WSGI app served over HTTP/1.1 on a background thread, by waitress.

waitress (a production WSGI server, pure Python) does the HTTP: request bodies by Content-Length or
`Transfer-Encoding: chunked` (read whole before the app runs, so the app never sees a half body),
keep-alive and pipelining, `Expect: 100-continue`, a body over `max_body_bytes` refused with 413 as
soon as its length is known, and a malformed request (a Content-Length that is not digits, a
transfer coding other than chunked, broken chunk framing) refused with 400/501 without reaching the
app. Those refusals are rendered by the owner's `render_error` (the ingest API answers in API
Gateway's JSON), never as waitress's text page.

    server = BackgroundWsgiServer(app, name="ingest-api", port=0, render_error=api_gateway_error)
    server.start(); server.url; server.stop()
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from waitress import wasyncore
from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.server import TcpWSGIServer
from waitress.task import ErrorTask, ThreadedTaskDispatcher

#: (status code, reason phrase, detail) -> (headers, body) of a refusal waitress makes itself.
ErrorRenderer = Callable[[int, str, str], tuple[list[tuple[str, str]], bytes]]


def plain_error(code: int, reason: str, detail: str) -> tuple[list[tuple[str, str]], bytes]:
    return [("Content-Type", "text/plain; charset=utf-8")], f"{reason}: {detail}\n".encode()


class _RenderedErrorTask(ErrorTask):  # type: ignore[misc]
    """waitress's refusal (400, 413, 431, 501, 500), with the body the server's owner renders."""

    def execute(self) -> None:
        error = self.request.error
        headers, body = self.channel.server.render_error(int(error.code), str(error.reason), str(error.body))
        self.status = f"{error.code} {error.reason}"
        self.response_headers.extend(headers)
        self.set_close_on_finish()
        self.content_length = len(body)
        if self.request.command != "HEAD":
            self.write(body)


class _Channel(HTTPChannel):  # type: ignore[misc]
    error_task_class = _RenderedErrorTask


class _Server(TcpWSGIServer):  # type: ignore[misc]
    channel_class = _Channel

    def __init__(self, app: Any, render_error: ErrorRenderer, **kwargs: Any) -> None:
        self.render_error = render_error
        super().__init__(app, **kwargs)


class BackgroundWsgiServer:
    def __init__(
        self,
        app: Callable[..., Any],
        *,
        name: str,
        host: str = "127.0.0.1",
        port: int = 0,
        threads: int = 8,
        max_body_bytes: int = 1 << 30,
        render_error: ErrorRenderer = plain_error,
        backlog: int = 128,
    ) -> None:
        self.name = name
        # "Task queue depth is N" whenever every thread is busy: normal here (one function runs at a time).
        logging.getLogger("waitress.queue").setLevel(logging.ERROR)
        adjustments = Adjustments(
            host=host, port=port, threads=threads, backlog=backlog, ident="",
            # waitress refuses a body whose length reaches this; +1 lets exactly max_body_bytes through
            max_request_body_size=max_body_bytes + 1,
            channel_timeout=120, expose_tracebacks=False, log_socket_errors=False,
        )
        self._dispatcher = ThreadedTaskDispatcher()
        self._dispatcher.set_thread_count(threads)
        self._map: dict[int, Any] = {}
        self._server = _Server(app, render_error, map=self._map, adj=adjustments, dispatcher=self._dispatcher)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.effective_port)

    @property
    def url(self) -> str:
        return f"http://{self._server.effective_host}:{self.port}"

    def start(self) -> None:
        self._thread = threading.Thread(target=self._serve, name=self.name, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            wasyncore.loop(timeout=0.1, map=self._map, use_poll=True, count=1)

    def stop(self, grace_seconds: float = 5.0) -> None:
        """Stop accepting, let requests in progress finish and their answers go out, then close."""
        if self._thread is not None:
            self._server.accepting = False  # the loop stops polling the listening socket
            deadline = time.monotonic() + grace_seconds
            while time.monotonic() < deadline and self._busy():
                time.sleep(0.02)
            self._stop.set()
            self._server.pull_trigger()
            self._thread.join()
            self._thread = None
        for channel in [c for c in list(self._map.values()) if isinstance(c, HTTPChannel)]:
            channel.close()
        self._server.close()  # the listening socket and the loop's trigger
        self._dispatcher.shutdown(timeout=1)

    def _busy(self) -> bool:
        try:
            channels = [c for c in list(self._map.values()) if isinstance(c, HTTPChannel)]
        except RuntimeError:  # the map changed while being read: look again
            return True
        return any(c.requests or c.total_outbufs_len for c in channels)
