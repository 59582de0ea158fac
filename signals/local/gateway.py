"""The embedded AWS endpoint: moto's server, with the local stack answering where moto cannot.

moto answers most of the AWS API. Where the local stack must answer instead (the Firehose stand-in,
Athena queries that really run, Lambda `Invoke` running the in-process function, faults injected at
the API boundary), an interceptor claims the request before moto sees it; returning None passes the
request on to moto untouched. Requests are told apart the way AWS routes them: the service is the
signing name in the SigV4 credential scope (`.../us-west-2/firehose/aws4_request`), the operation
comes from `X-Amz-Target` (JSON protocols), the `/service/.../operation/Op` path (RPC v2 CBOR) or the
`Action` form field (query protocol). REST services (S3, Lambda) have no operation name: their
interceptors look at the method and path themselves.

    gateway = AwsGateway(port=0)
    remove = gateway.intercept("firehose", answer_firehose)            # every Firehose call
    gateway.intercept("dynamodb", throttle, operation="PutItem")       # one operation
    gateway.start(); ...; remove(); gateway.stop()
"""

from __future__ import annotations

import io
import re
import threading
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from werkzeug.datastructures import Headers
from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.wrappers import Response

_CREDENTIAL_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/[^/]+/(?P<service>[^/]+)/aws4_request")
_RPC_V2_PATH = re.compile(r"^/service/[^/]+/operation/(?P<operation>[^/?]+)")


@dataclass(frozen=True)
class AwsRequest:
    service: str  # SigV4 signing name: "firehose", "athena", "lambda", "s3", "dynamodb", "monitoring", ...
    operation: str | None  # "PutRecordBatch"; None for REST protocols (S3, Lambda, API Gateway)
    method: str
    path: str
    query: str
    headers: Headers
    body: bytes

    def json(self) -> Any:
        import orjson  # noqa: PLC0415 (only interceptors of JSON protocols need it)

        return orjson.loads(self.body or b"{}")


Interceptor = Callable[[AwsRequest], Response | None]


def service_of(headers: Headers) -> str | None:
    match = _CREDENTIAL_SCOPE.search(headers.get("Authorization", ""))
    return match["service"] if match else None


def operation_of(headers: Headers, path: str, body: bytes) -> str | None:
    target = headers.get("X-Amz-Target")
    if target:
        return target.rsplit(".", 1)[-1]
    rpc = _RPC_V2_PATH.match(path)
    if rpc:
        return rpc["operation"]
    if headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
        action = parse_qs(body.decode("utf-8", "replace")).get("Action")
        if action:
            return action[0]
    return None


class _Interceptors:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_service: dict[str, list[tuple[str | None, Interceptor]]] = {}

    def add(self, service: str, interceptor: Interceptor, operation: str | None) -> Callable[[], None]:
        entry = (operation, interceptor)
        with self._lock:
            # The latest first: a fault injected later (signals.chaos) meets a request before the
            # stand-in installed at start-up (the local Athena, Firehose) answers it.
            self._by_service.setdefault(service, []).insert(0, entry)

        def remove() -> None:
            with self._lock:
                entries = self._by_service.get(service, [])
                if entry in entries:
                    entries.remove(entry)

        return remove

    def for_service(self, service: str | None) -> list[tuple[str | None, Interceptor]]:
        if service is None:
            return []
        with self._lock:
            return list(self._by_service.get(service, ()))


class Recorder:
    """What a data directory needs from the gateway (signals.local.persist): a gate and a journal.

    Every request that may change one of `services` (as moto answers it) runs inside `gate.shared()`
    and is noted by `note(service, operation, method, path)` first.
    """

    def __init__(self, services: Iterable[str], gate: Any, note: Callable[[str, str | None, str, str], None],
                 mutating: Callable[[str, str | None, str], bool]) -> None:
        self.services = frozenset(services)
        self.gate = gate
        self.note = note
        self.mutating = mutating


class GatewayApp:
    """A WSGI app: the interceptors first, then moto's own dispatcher."""

    def __init__(self, moto_app: Any, interceptors: _Interceptors) -> None:
        self._moto = moto_app
        self._interceptors = interceptors
        self.recorder: Recorder | None = None

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        headers = Headers([(k[5:].replace("_", "-").title(), str(v)) for k, v in environ.items()
                           if k.startswith("HTTP_")])
        if environ.get("CONTENT_TYPE"):
            headers["Content-Type"] = environ["CONTENT_TYPE"]
        candidates = self._interceptors.for_service(service_of(headers))
        if candidates:
            body = _read_body(environ)
            environ["wsgi.input"] = io.BytesIO(body)  # moto reads it again
            environ["CONTENT_LENGTH"] = str(len(body))
            path = environ.get("PATH_INFO", "/")
            request = AwsRequest(
                service=service_of(headers) or "",
                operation=operation_of(headers, path, body),
                method=environ.get("REQUEST_METHOD", "GET"),
                path=path,
                query=environ.get("QUERY_STRING", ""),
                headers=headers,
                body=body,
            )
            for operation, interceptor in candidates:
                if operation is not None and operation != request.operation:
                    continue
                response = interceptor(request)
                if response is not None:
                    result: Iterable[bytes] = response(environ, start_response)
                    return result
        recorder = self.recorder
        if recorder is not None:
            service = service_of(headers)
            if service in recorder.services:
                assert service is not None
                path = environ.get("PATH_INFO", "/")
                method = environ.get("REQUEST_METHOD", "GET")
                operation = headers.get("X-Amz-Target", "").rsplit(".", 1)[-1] or None
                if operation is None and method == "POST" and service != "s3":
                    body = _read_body(environ)
                    environ["wsgi.input"] = io.BytesIO(body)
                    environ["CONTENT_LENGTH"] = str(len(body))
                    operation = operation_of(headers, path, body)
                if recorder.mutating(service, operation, method):
                    with recorder.gate.shared():
                        recorder.note(service, operation, method, path)
                        recorded: Iterable[bytes] = self._moto(environ, start_response)
                        return recorded
        moto_result: Iterable[bytes] = self._moto(environ, start_response)
        return moto_result


def _read_body(environ: dict[str, Any]) -> bytes:
    stream = environ.get("wsgi.input")
    if stream is None:
        return b""
    length = environ.get("CONTENT_LENGTH")
    if length:
        return bytes(stream.read(int(length)))
    if environ.get("wsgi.input_terminated"):  # chunked request body, already de-chunked by werkzeug
        return bytes(stream.read())
    return b""


class AwsGateway:
    """moto's server on a background thread, behind `intercept`ed handlers."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        from moto.moto_server.werkzeug_app import (  # noqa: PLC0415 (moto is heavy; loaded by the stack only)
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )

        self._interceptors = _Interceptors()
        self._app = GatewayApp(DomainDispatcherApplication(create_backend_app), self._interceptors)
        self._server: BaseWSGIServer = make_server(
            host, port, self._app, threaded=True, request_handler=MotoRequestHandler
        )
        self._thread: threading.Thread | None = None
        from signals.local.persist import Gate  # noqa: PLC0415

        #: Changing requests share it while recording; a data-directory snapshot takes it alone.
        self.gate = Gate()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self._server.server_address[0]!s}:{self.port}"

    def record(self, recorder: Recorder | None) -> None:
        """Gate and journal the requests that change the recorder's services (None: stop)."""
        self._app.recorder = recorder

    def intercept(self, service: str, interceptor: Interceptor, *, operation: str | None = None) -> Callable[[], None]:
        """Let `interceptor` answer `service` requests (only `operation`, when given); returns its remover.

        Interceptors of one service are asked latest first; the first that answers (not None) wins."""
        return self._interceptors.add(service, interceptor, operation)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._server.serve_forever, name="embedded-aws", daemon=True)
        self._thread.start()

    def reset(self) -> None:
        """Empty moto's in-memory backends: they are per process, so an earlier stack's state would leak in."""
        request = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()


def json_error(status: int, code: str, message: str) -> Response:
    """An error in the AWS JSON protocols' shape (`__type` and `message`), as botocore parses it."""
    import orjson  # noqa: PLC0415

    return Response(
        orjson.dumps({"__type": code, "message": message}),
        status=status,
        headers={"Content-Type": "application/x-amz-json-1.1", "x-amzn-ErrorType": code},
    )
