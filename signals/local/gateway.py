"""The embedded AWS endpoint: moto's server, with the local stack answering where moto cannot.

moto answers most of the AWS API. Where the local stack must answer instead (the Firehose stand-in,
Athena queries that really run, Lambda `Invoke` running the in-process function, faults injected at
the API boundary), an interceptor claims the request before moto sees it; returning None passes the
request on to moto untouched.

Every request an interceptor may see is identified the way AWS routes it, by the service's own model,
whatever wire protocol the client speaks (json, rest-json, rest-xml, query, smithy-rpc-v2-cbor):

- the service is the signing name in the SigV4 credential scope (`.../us-west-2/firehose/aws4_request`),
  resolved to a botocore service by moto's own dispatcher (`monitoring` is CloudWatch);
- the protocol, the operation and its parameters come from moto's request router and protocol parsers
  (`moto.core.routing`, `moto.core.parse.PROTOCOL_PARSERS`) run on the botocore model moto loads:
  `X-Amz-Target` for json, the `Action` field for query, `/service/S/operation/Op` for RPC v2 CBOR, the
  method and URI template (`requestUri`) for rest-json and rest-xml. `AwsRequest.params` merges what the
  model binds to the path, the query string, the headers and the body, so an interceptor reads
  `request.params["QueryExecutionId"]` the same way from `GET /query-executions/{id}` and from a json body;
- an interceptor answers in the protocol the request used, through moto's response serializers
  (`request.answer(output)`, `request.error(status, code, message)`).

Where moto cannot serve a protocol a current client sends, a small adaptation fills the gap until moto
ships the fix (see `docs/local-stack.md`, "Wire protocols"): today Athena, whose model moved from json to
rest-json in botocore 1.44.18 while moto 5.2.6 routes Athena only at `/`. `check_protocols` refuses, at
start, a served service whose model the gateway cannot parse or moto cannot route.

    gateway = AwsGateway(port=0)
    remove = gateway.intercept("firehose", answer_firehose)            # every Firehose call
    gateway.intercept("dynamodb", throttle, operation="PutItem")       # one operation
    gateway.start(); ...; remove(); gateway.stop()
"""

from __future__ import annotations

import functools
import io
import re
import threading
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from werkzeug.datastructures import Headers
from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.wrappers import Response

from signals.local.loopback import disable_moto_cors, loopback_only

_CREDENTIAL_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/[^/]+/(?P<service>[^/]+)/aws4_request")
_URI_LABEL = re.compile(r"\{[^}]+\}")

#: The services the local stack provisions, calls or answers (botocore names).
SERVED_SERVICES: Final = ("apigateway", "athena", "cloudwatch", "dynamodb", "events", "firehose", "glue",
                          "iam", "lambda", "logs", "s3", "sns", "sqs", "sts")
#: Protocols moto's parsers read (`moto.core.parse.PROTOCOL_PARSERS`), kept in step by `check_protocols`.
_REST_PROTOCOLS: Final = ("rest-json", "rest-xml")

# --- adaptations (drop each when moto ships the fix; docs/local-stack.md says what it is) -----------

#: Services whose botocore model dropped the awsJson1_1 protocol their service still accepts (old SDKs,
#: the JavaScript SDK v3 in 2026-12 still send it): (targetPrefix, jsonVersion) of the last model that
#: declared it. Athena: botocore 1.44.13 declared json with target prefix AmazonAthena, 1.44.18 only
#: rest-json. The gateway identifies both; moto is handed the protocol its own model declares.
LEGACY_JSON: Final[dict[str, tuple[str, str]]] = {"athena": ("AmazonAthena", "1.1")}
#: Services whose moto URL map (moto/<service>/urls.py) may route only `/` though the model binds
#: operations to paths: when moto routes none of the model's paths, the gateway sends every path of the
#: service to moto's dispatcher, whose model router (moto.core.routing) then finds the operation.
ROUTE_REST_PATHS: Final = frozenset({"athena"})


class UnsupportedProtocol(Exception):
    """A served service speaks a protocol the gateway cannot parse or moto cannot route (one line)."""


@dataclass(frozen=True)
class AwsRequest:
    service: str  # SigV4 signing name: "firehose", "athena", "lambda", "s3", "dynamodb", "monitoring", ...
    operation: str | None  # "PutRecordBatch"; None when the model names no operation for the request
    method: str
    path: str
    query: str
    headers: Headers
    body: bytes
    protocol: str | None = None  # the wire protocol the request uses: "json", "rest-json", "query", ...
    #: The operation's input as the model reads it from the path, the query string, the headers and
    #: the body (moto's protocol parsers): blobs are bytes, timestamps datetimes, numbers numbers.
    params: Mapping[str, Any] = field(default_factory=dict)
    operation_model: Any = None  # moto.core.model.OperationModel, when identified

    def json(self) -> Any:
        """The request's parameters (`params`); for a request no model identifies, its body as JSON."""
        if self.operation_model is not None:
            return dict(self.params)
        import orjson  # noqa: PLC0415

        return orjson.loads(self.body or b"{}")

    def answer(self, output: Mapping[str, Any]) -> Response:
        """A success carrying `output` (the operation's output shape), in the request's protocol."""
        if self.operation_model is None or self.protocol is None:
            import orjson  # noqa: PLC0415

            return _with_request_id(Response(orjson.dumps(dict(output)), status=200,
                                             content_type="application/x-amz-json-1.1"))
        return _serialized(self.operation_model, self.protocol, output)

    def error(self, status: int, code: str, message: str) -> Response:
        """An AWS error (`code`, `message`, HTTP `status`) in the request's protocol, as the SDKs parse it."""
        if self.operation_model is None or self.protocol is None:
            return _with_request_id(json_error(status, code, message))
        from moto.core.exceptions import ServiceException  # noqa: PLC0415

        response = _serialized(self.operation_model, self.protocol, ServiceException(code, message))
        response.status_code = status
        return response


Interceptor = Callable[[AwsRequest], Response | None]


def service_of(headers: Headers) -> str | None:
    match = _CREDENTIAL_SCOPE.search(headers.get("Authorization", ""))
    return match["service"] if match else None


def _with_request_id(response: Response) -> Response:
    if "x-amzn-RequestId" not in response.headers:
        response.headers["x-amzn-RequestId"] = str(uuid.uuid4())
    return response


def _serialized(operation_model: Any, protocol: str, result: Any) -> Response:
    from moto.core.serialize import SerializationContext, get_serializer_class  # noqa: PLC0415

    request_id = str(uuid.uuid4())
    serializer = get_serializer_class(operation_model.service_model.service_name, protocol)
    serialized = serializer(operation_model, SerializationContext(request_id)).serialize(result)
    headers = {str(k): str(v) for k, v in serialized["headers"].items()}
    headers["x-amzn-RequestId"] = request_id
    return Response(serialized["body"], status=int(serialized["status_code"]), headers=headers)


def json_error(status: int, code: str, message: str) -> Response:
    """An error in the AWS JSON protocols' shape (`__type` and `message`), as botocore parses it.

    For a request in hand, `request.error` answers in the request's own protocol."""
    import orjson  # noqa: PLC0415

    return Response(
        orjson.dumps({"__type": code, "message": message}),
        status=status,
        headers={"Content-Type": "application/x-amz-json-1.1", "x-amzn-ErrorType": code},
    )


# --- models: which request is which ----------------------------------------------------------------


@functools.cache
def _moto_description(name: str) -> dict[str, Any]:
    """The botocore service description moto serves `name` by (botocore's data plus moto's extras); read only."""
    from moto.core.utils import _load_service_model  # noqa: PLC0415

    description: dict[str, Any] = _load_service_model(name, "service-2")
    return description


def versions() -> str:
    import botocore  # noqa: PLC0415
    import moto  # noqa: PLC0415

    return f"botocore {botocore.__version__}, moto {moto.__version__}"


def protocols_of(model: Any) -> list[str]:
    return [str(p) for p in (model.metadata.get("protocols") or [model.protocol])]


class WireModels:
    """The service models requests are read by: moto's, plus the json protocol of `LEGACY_JSON` services."""

    def __init__(self, describe: Callable[[str], dict[str, Any]] | None = None) -> None:
        self._describe = describe
        self._lock = threading.Lock()
        self._models: dict[str, Any] = {}
        self._routers: dict[str, Any] = {}

    def description(self, name: str) -> dict[str, Any]:
        return (self._describe or _moto_description)(name)

    def model(self, name: str) -> Any:
        """moto's `ServiceModel` of `name`, accepting the legacy json protocol where the service still does."""
        with self._lock:
            if name in self._models:
                return self._models[name]
        from moto.core.model import ServiceModel  # noqa: PLC0415
        from moto.core.utils import get_service_model  # noqa: PLC0415

        if self._describe is None and name not in LEGACY_JSON:
            shared = get_service_model(name)  # moto's own (cached): the model moto answers by
            with self._lock:
                return self._models.setdefault(name, shared)
        description = self.description(name)
        metadata = dict(description.get("metadata") or {})
        protocols = list(metadata.get("protocols") or [metadata.get("protocol")])
        legacy = LEGACY_JSON.get(name)
        if legacy is not None and "json" not in protocols:
            metadata.update(protocols=[*protocols, "json"], targetPrefix=legacy[0], jsonVersion=legacy[1])
            description = {**description, "metadata": metadata}
        model = ServiceModel(description, name)
        with self._lock:
            return self._models.setdefault(name, model)

    def router(self, name: str) -> Any:
        with self._lock:
            if name in self._routers:
                return self._routers[name]
        from moto.core.routing import ServiceOperationRouter  # noqa: PLC0415

        router = ServiceOperationRouter(self.model(name))
        with self._lock:
            return self._routers.setdefault(name, router)

    def identify(self, name: str | None, signing_name: str, environ: dict[str, Any], body: bytes) -> AwsRequest:
        """The request in `environ` (its body read into `body`): operation, protocol and parsed parameters."""
        headers = _headers_of(environ)
        base = AwsRequest(service=signing_name, operation=None, method=environ.get("REQUEST_METHOD", "GET"),
                          path=environ.get("PATH_INFO", "/"), query=environ.get("QUERY_STRING", ""),
                          headers=headers, body=body)
        if name is None:
            return base
        from moto.core.parse import PROTOCOL_PARSERS, RequestParserError  # noqa: PLC0415
        from moto.core.request import Request, determine_request_protocol  # noqa: PLC0415
        from werkzeug.exceptions import HTTPException  # noqa: PLC0415

        request = Request({**environ, "wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": str(len(body))})
        try:
            model = self.model(name)
            protocol = determine_request_protocol(model, request)
            operation, uri_params = self.router(name).match(request)
            params = PROTOCOL_PARSERS[protocol](operation).parse({
                "method": request.method, "values": request.values, "headers": request.headers,
                "body": request.data, "url_path": request.path, "url_params": uri_params,
            })
        except (HTTPException, NotImplementedError, RequestParserError, KeyError, ValueError, TypeError):
            return base  # no operation of the model: moto answers (404, UnknownOperation...)
        return AwsRequest(service=signing_name, operation=str(operation.name), method=base.method, path=base.path,
                          query=base.query, headers=headers, body=body, protocol=protocol,
                          params=dict(params), operation_model=operation)


def _headers_of(environ: dict[str, Any]) -> Headers:
    headers = Headers([(k[5:].replace("_", "-").title(), str(v)) for k, v in environ.items()
                       if k.startswith("HTTP_")])
    if environ.get("CONTENT_TYPE"):
        headers["Content-Type"] = environ["CONTENT_TYPE"]
    return headers


def identify_request(service: str, method: str, path: str, *, query: str = "", headers: Mapping[str, str] | None = None,
                     body: bytes = b"", models: WireModels | None = None) -> AwsRequest:
    """The request as the gateway identifies it, built from its parts (botocore name `service`)."""
    from werkzeug.test import EnvironBuilder  # noqa: PLC0415

    environ = EnvironBuilder(path=path, method=method, query_string=query, headers=list((headers or {}).items()),
                             data=body).get_environ()
    return (models or WireModels()).identify(service, service, environ, body)


# --- moto: routing paths, translating protocols ------------------------------------------------------


def _sample_path(uri: str) -> str:
    return _URI_LABEL.sub("label", uri.split("?", 1)[0])


def moto_routes_paths(app: Any, model: Any) -> bool:
    """Whether moto's URL map for the service routes any of the paths the model binds operations to."""
    from werkzeug.exceptions import HTTPException  # noqa: PLC0415

    adapter = app.url_map.bind("localhost")
    paths = {(_sample_path(model.operation_model(op).http.get("requestUri", "/")),
              model.operation_model(op).http.get("method", "POST")) for op in model.operation_names}
    paths = {(path, method) for path, method in paths if path.rstrip("/")}
    if not paths:
        return True
    for path, method in paths:
        try:
            adapter.match(path, method=method)
        except HTTPException:
            continue
        return True
    return False


def route_every_path(app: Any) -> None:
    """Send every path of the service to the dispatcher moto routes `/` to (`ROUTE_REST_PATHS`)."""
    endpoint, _ = app.url_map.bind("localhost").match("/", method="POST")
    methods = ["GET", "PUT", "POST", "DELETE", "PATCH", "HEAD"]
    app.add_url_rule("/<path:every_path>", endpoint=f"{endpoint}.every-path",
                     view_func=functools.partial(_drop_path, app.view_functions[endpoint]), methods=methods)


def _drop_path(view: Callable[..., Any], every_path: str, **kwargs: Any) -> Any:
    return view(**kwargs)


def _backend_of(name: str) -> Any:
    """moto's backend name of a botocore service (`lambda` is moto's `awslambda`)."""
    from moto.core.responses import boto3_service_name  # noqa: PLC0415

    return {botocore: backend for backend, botocore in boto3_service_name.items()}.get(name, name)


def _botocore_name_of_backend(backend: str) -> str:
    from moto.core.responses import boto3_service_name  # noqa: PLC0415

    return boto3_service_name.get(backend, backend)


def check_protocols(services: Iterable[str], models: WireModels,
                    app_of: Callable[[Any], Any] | None = None) -> None:
    """Raise `UnsupportedProtocol` (one line) if a service's model is one the gateway cannot serve.

    Served means: moto's parsers read every protocol the model declares, and moto routes the model's
    request paths (rest protocols) or an adaptation of this gateway does (`ROUTE_REST_PATHS`). `app_of`
    gives moto's Flask app of a backend (default: a new one; a running gateway passes the one it serves)."""
    from botocore.exceptions import DataNotFoundError, UnknownServiceError  # noqa: PLC0415
    from moto.core.parse import PROTOCOL_PARSERS  # noqa: PLC0415
    from moto.moto_server.werkzeug_app import create_backend_app  # noqa: PLC0415

    for name in services:
        try:
            model = models.model(name)
        except (DataNotFoundError, UnknownServiceError):
            raise UnsupportedProtocol(f"cannot serve {name}: no service model for it ({versions()})") from None
        for protocol in protocols_of(model):
            if protocol not in PROTOCOL_PARSERS:
                raise UnsupportedProtocol(
                    f"cannot serve {name}: its model declares the {protocol} protocol, which moto's request "
                    f"parsers do not read ({versions()})")
        if (model.protocol in _REST_PROTOCOLS and name not in ROUTE_REST_PATHS
                and not moto_routes_paths((app_of or create_backend_app)(_backend_of(name)), model)):
            raise UnsupportedProtocol(
                f"cannot serve {name}: its model binds operations to {model.protocol} paths that moto routes "
                f"none of, and the gateway has no adaptation for it ({versions()})")


# --- the server ----------------------------------------------------------------------------------------


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

    def __init__(self, moto_app: Any, interceptors: _Interceptors, models: WireModels | None = None) -> None:
        self._moto = moto_app
        self._interceptors = interceptors
        self._models = models or WireModels()
        self.recorder: Recorder | None = None

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        signing_name = service_of(_headers_of(environ))
        candidates = self._interceptors.for_service(signing_name)
        recorder = self.recorder
        # A data directory journals changing requests of the services it keeps; reads (GET, HEAD: no
        # S3 read changes state) need no identification.
        recording = (recorder is not None and signing_name in recorder.services
                     and environ.get("REQUEST_METHOD", "GET") not in ("GET", "HEAD", "OPTIONS"))
        if signing_name is None or not (candidates or signing_name in LEGACY_JSON or recording):
            moto_result: Iterable[bytes] = self._moto(environ, start_response)
            return moto_result
        body = _read_body(environ)
        environ["wsgi.input"] = io.BytesIO(body)  # moto reads it again
        environ["CONTENT_LENGTH"] = str(len(body))
        request = self._models.identify(self._botocore_name(environ), signing_name, environ, body)
        environ["wsgi.input"] = io.BytesIO(body)
        for operation, interceptor in candidates:
            if operation is not None and operation != request.operation:
                continue
            response = interceptor(request)
            if response is not None:
                result: Iterable[bytes] = response(environ, start_response)
                return result
        if recording and recorder is not None and recorder.mutating(signing_name, request.operation, request.method):
            with recorder.gate.shared():
                recorder.note(signing_name, request.operation, request.method, request.path)
                recorded: Iterable[bytes] = self._forward(request, environ, start_response)
                return recorded
        return self._forward(request, environ, start_response)

    def _forward(self, request: AwsRequest, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        """moto answers: in the request's protocol, or through the LEGACY_JSON translation where moto lacks it."""
        if request.operation_model is not None and request.protocol not in self._moto_protocols(request):
            translated: Iterable[bytes] = self._in_motos_protocol(request)(environ, start_response)
            return translated
        moto_result: Iterable[bytes] = self._moto(environ, start_response)
        return moto_result

    def _botocore_name(self, environ: dict[str, Any]) -> str | None:
        """The botocore service of the request, as moto's dispatcher tells (signing name, target, path)."""
        try:
            host = self._moto.infer_service_region_host(environ, environ.get("PATH_INFO", ""))
            backend = self._backend_for_host(host)
        except (KeyError, ValueError, IndexError, AttributeError):
            return None
        return _botocore_name_of_backend(backend) if isinstance(backend, str) else None

    @functools.lru_cache(maxsize=256)  # noqa: B019 (one app per gateway; moto's match walks ~200 regexes)
    def _backend_for_host(self, host: str | None) -> Any:
        return self._moto.get_backend_for_host(host)

    @staticmethod
    def _moto_protocols(request: AwsRequest) -> list[str]:
        from moto.core.utils import get_service_model  # noqa: PLC0415

        return protocols_of(get_service_model(request.operation_model.service_model.service_name))

    def _in_motos_protocol(self, request: AwsRequest) -> Response:
        """Hand moto the request in the protocol moto's model declares; answer in the request's (LEGACY_JSON).

        botocore's serializer writes the parsed parameters in moto's protocol, botocore's parser reads
        moto's answer back, and moto's serializer writes it in the protocol the client spoke."""
        import botocore.parsers  # noqa: PLC0415
        import botocore.serialize  # noqa: PLC0415
        from botocore.awsrequest import HeadersDict  # noqa: PLC0415
        from moto.core.utils import get_service_model  # noqa: PLC0415
        from werkzeug.test import EnvironBuilder, run_wsgi_app  # noqa: PLC0415

        moto_model = get_service_model(request.operation_model.service_model.service_name)
        protocol = str(moto_model.protocol)
        operation = moto_model.operation_model(request.operation)
        serialized = botocore.serialize.create_serializer(protocol, include_validation=False).serialize_to_request(
            dict(request.params), operation)
        headers = {str(k): str(v) for k, v in serialized["headers"].items()}
        for name in ("Authorization", "User-Agent", "X-Amz-Date", "X-Amz-Security-Token"):
            if name in request.headers:
                headers.setdefault(name, request.headers[name])
        body = serialized["body"]
        environ = EnvironBuilder(path=serialized["url_path"], method=serialized["method"],
                                 query_string=serialized["query_string"] or None, headers=list(headers.items()),
                                 data=body.encode() if isinstance(body, str) else body).get_environ()
        app_iter, status, moto_headers = run_wsgi_app(self._moto, environ, buffered=True)
        try:
            raw = b"".join(app_iter)
        finally:
            close = getattr(app_iter, "close", None)
            if close is not None:
                close()
        status_code = int(status.split(None, 1)[0])
        parsed = botocore.parsers.create_parser(protocol).parse(
            {"status_code": status_code, "headers": HeadersDict(moto_headers.items()), "body": raw},
            operation.output_shape)
        if status_code >= 300:
            error = parsed.get("Error") or {}
            return request.error(status_code, str(error.get("Code") or "InternalFailure"),
                                 str(error.get("Message") or ""))
        parsed.pop("ResponseMetadata", None)
        return request.answer(parsed)


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

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, models: WireModels | None = None) -> None:
        disable_moto_cors()  # before moto's server module is imported (signals.local.loopback)
        from moto.moto_server.werkzeug_app import (  # noqa: PLC0415 (moto is heavy; loaded by the stack only)
            DomainDispatcherApplication,
            MotoRequestHandler,
        )

        self._interceptors = _Interceptors()
        self._models = models or WireModels()
        self._dispatcher = DomainDispatcherApplication(_create_app)
        self._app = GatewayApp(self._dispatcher, self._interceptors, self._models)
        self._server: BaseWSGIServer = make_server(
            host, port, loopback_only(self._app), threaded=True, request_handler=MotoRequestHandler
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

    def check_protocols(self, services: Iterable[str] = SERVED_SERVICES) -> None:
        """Raise `UnsupportedProtocol` (one line) unless every service in `services` can be served."""
        check_protocols(services, self._models, self._moto_app)

    def _moto_app(self, backend: Any) -> Any:
        """moto's Flask app of `backend`, made once: the one the dispatcher then serves requests with."""
        dispatcher = self._dispatcher
        with dispatcher.lock:
            if backend not in dispatcher.app_instances:
                dispatcher.app_instances[backend] = dispatcher.create_app(backend)
            return dispatcher.app_instances[backend]

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


def _create_app(backend: Any) -> Any:
    """moto's Flask app for a backend, with `ROUTE_REST_PATHS` applied where moto's URL map needs it."""
    from moto.core.utils import get_service_model  # noqa: PLC0415
    from moto.moto_server.werkzeug_app import create_backend_app  # noqa: PLC0415

    app = create_backend_app(backend)
    name = _botocore_name_of_backend(str(backend))
    if name in ROUTE_REST_PATHS:
        model = get_service_model(name)
        if model.protocol in _REST_PROTOCOLS and not moto_routes_paths(app, model):
            route_every_path(app)
    return app
