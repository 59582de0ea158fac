"""The ingest API on 127.0.0.1: HTTP turned into API Gateway REST proxy (v1) events, as API Gateway does.

HTTP/1.1 itself (chunked request bodies, keep-alive, `Expect: 100-continue`) is waitress's, through
`signals.local.http.BackgroundWsgiServer`. What API Gateway answers before the function runs, this
answers the same way, every refusal a JSON `{"message": ...}` with `x-amzn-RequestId` and
`x-amzn-ErrorType`:

- a Content-Length that is not a number (`-1`, `abc`, two different values): 400
  `{"message":"Content-Length is invalid"}`, the connection closed, nothing read or invoked (other
  malformed framing likewise: a broken chunk is 400, a transfer coding other than chunked 501);
- a POST/PUT/PATCH with neither Content-Length nor `Transfer-Encoding: chunked`: 411
  `{"message":"Length Required"}`;
- a body over API Gateway's 10 MiB payload limit: 413 `{"message":"Request Too Long"}`, sent as
  soon as the length is known (a declared Content-Length: before the body is read) and the
  connection closed;
- a proxy event over Lambda's 6 MiB synchronous invocation payload (the body base64-encoded, so a
  body of about 4.5 MiB): 413 `{"message":"Request Too Long"}`, as API Gateway answers it;
- a path or method the template does not route (OPTIONS and HEAD included: the API has no CORS
  preflight): 403 `{"message":"Missing Authentication Token"}`
  (`x-amzn-ErrorType: MissingAuthenticationTokenException`); a HEAD gets the headers, no body;
- no API key in `x-api-key`, or a wrong one: 403 `{"message":"Forbidden"}` (`ForbiddenException`);
- the function raising, or returning no `statusCode`: 502 `{"message":"Internal server error"}`;
- not API Gateway's, this machine's: a `Host` that is not a loopback name or address, or an `Origin`
  that is not a page on this machine (DNS rebinding, a web page elsewhere): 403 `{"message":
  "Forbidden: ..."}` naming what was refused, before anything is read or invoked
  (`signals.local.loopback`).

Routes are the template's `Api` events (`POST /v1/telemetry`, `POST /v1/logs`), also under the
stage prefix the deployed URL has (`/live/v1/logs`). A body is passed base64-encoded
(`isBase64Encoded`) when its Content-Type matches the API's BinaryMediaTypes, when it carries a
Content-Encoding, or when it is not UTF-8 text; otherwise as text. `headers` keep the last value of
each header and `multiValueHeaders` all of them (header names Title-Cased: WSGI does not keep the
client's spelling; a header sent twice arrives as one comma-joined value);
`requestContext.requestId` is a fresh id, also returned as `x-amzn-RequestId`.
"""

from __future__ import annotations

import base64
import fnmatch
import hmac
import json
import re
import secrets
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final, Protocol
from urllib.parse import parse_qs, urlsplit

from waitress.task import hop_by_hop

from signals.local.http import BackgroundWsgiServer
from signals.local.loopback import foreign_request, refusal_message
from signals.local.template import ACCOUNT_ID
from signals.local.wiring import ApiRoute

MAX_PAYLOAD_BYTES: Final = 10 * 1024 * 1024
LAMBDA_PAYLOAD_BYTES: Final = 6 * 1024 * 1024  # synchronous Invoke's request payload limit
API_ID: Final = "localapi01"
BODY_METHODS: Final = frozenset({"POST", "PUT", "PATCH"})

#: x-amzn-ErrorType per status, as API Gateway names its gateway responses' errors.
ERROR_TYPES: Final = {
    400: "BadRequestException",
    403: "ForbiddenException",
    411: "BadRequestException",
    413: "BadRequestException",
    431: "BadRequestException",
    501: "NotImplementedException",
    502: "InternalServerErrorException",
}
#: The message for refusals waitress makes itself (its reason phrase is HTTP's, the body API Gateway's).
WAITRESS_MESSAGES: Final = {
    400: "Bad Request",
    413: "Request Too Long",
    431: "Request Header Fields Too Large",
    500: "Internal server error",
    501: "Not Implemented",
}


_Answer = tuple[int, list[tuple[str, str]], bytes]  # status, headers, body


class Invocable(Protocol):
    def invoke(self, event: Mapping[str, Any]) -> Any: ...


class IngestApi(BackgroundWsgiServer):
    def __init__(
        self,
        routes: Sequence[tuple[ApiRoute, Invocable]],
        *,
        api_key: str,
        binary_media_types: tuple[str, ...],
        stage: str,
        host: str = "127.0.0.1",
        port: int = 4318,
        threads: int = 16,
    ) -> None:
        self.routes = routes
        self.api_key = api_key
        self.binary_media_types = binary_media_types
        self.stage = stage
        self.requests = 0
        self.observers: list[Callable[[int, float], None]] = []  # (status, seconds) per answered request
        super().__init__(self._app, name="ingest-api", host=host, port=port, threads=threads,
                         max_body_bytes=MAX_PAYLOAD_BYTES, render_error=_waitress_error)

    def route(self, method: str, path: str) -> tuple[ApiRoute, Invocable] | None:
        for route, function in self.routes:
            if route.matches(method, path):
                return route, function
        return None

    def is_binary(self, content_type: str | None, content_encoding: str | None, body: bytes) -> bool:
        if content_encoding and content_encoding.strip().lower() not in ("", "identity"):
            return True
        media_type = (content_type or "").split(";", 1)[0].strip().lower()
        if any(fnmatch.fnmatch(media_type, pattern.lower()) for pattern in self.binary_media_types):
            return True
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            return True
        return False

    def key_ok(self, presented: str | None) -> bool:
        return presented is not None and hmac.compare_digest(presented.encode(), self.api_key.encode())

    # --- the WSGI app ------------------------------------------------------------------------------

    def _app(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        self.requests += 1
        started = time.monotonic()
        request_id = str(uuid.uuid4())
        method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        status, headers, data = self._answer(environ, method, request_id)
        for observe in self.observers:  # AWS/ApiGateway metrics (signals.local.cloudwatch)
            observe(status, time.monotonic() - started)
        headers.append(("x-amzn-RequestId", request_id))
        headers.append(("x-amz-apigw-id", _apigw_id()))
        headers.append(("Content-Length", str(len(data)) if method != "HEAD" else "0"))
        start_response(_status_line(status), headers)
        return [] if method == "HEAD" else [data]

    def _answer(self, environ: dict[str, Any], method: str, request_id: str) -> _Answer:
        foreign = foreign_request(environ)  # a browser page elsewhere, or a DNS-rebound name: nothing runs
        if foreign is not None:
            return _error(403, refusal_message(foreign))
        declared = environ.get("CONTENT_LENGTH")  # waitress sets it for a chunked body too, once read
        if declared is None and method in BODY_METHODS:
            return _error(411, "Length Required")
        body = environ["wsgi.input"].read(int(declared)) if declared else b""
        if len(body) > MAX_PAYLOAD_BYTES:
            return _error(413, "Request Too Long")
        path = str(environ.get("PATH_INFO") or "/")
        stage_prefix = f"/{self.stage}/"
        if path.startswith(stage_prefix):  # the deployed URL carries the stage (`.../live/v1/logs`)
            path = path[len(stage_prefix) - 1 :]
        found = self.route(method, path)
        if found is None:
            return _error(403, "Missing Authentication Token", error_type="MissingAuthenticationTokenException")
        header_items = _header_items(environ)
        if not self.key_ok(environ.get("HTTP_X_API_KEY")):
            return _error(403, "Forbidden")
        route, function = found
        query = str(environ.get("QUERY_STRING") or "")
        event = proxy_event(
            self, route, method=method, raw_path=path + (f"?{query}" if query else ""),
            header_items=header_items, body=body,
            source_ip=str(environ.get("REMOTE_ADDR") or "127.0.0.1"), request_id=request_id,
        )
        if len(json.dumps(event)) > LAMBDA_PAYLOAD_BYTES:
            return _error(413, "Request Too Long")
        try:
            response = function.invoke(event)
        except Exception:
            return _error(502, "Internal server error")
        return _proxy_response(response)


def _proxy_response(response: Any) -> _Answer:
    """The function's proxy response as HTTP, as API Gateway maps it (502 when malformed)."""
    if not isinstance(response, dict) or "statusCode" not in response:
        return _error(502, "Internal server error")
    try:
        status = int(response["statusCode"])
        raw_body = response.get("body") or ""
        data = base64.b64decode(raw_body) if response.get("isBase64Encoded") else str(raw_body).encode()
    except (TypeError, ValueError):
        return _error(502, "Internal server error")
    headers: list[tuple[str, str]] = []
    sent: set[str] = set()
    for name, values in (response.get("multiValueHeaders") or {}).items():
        if name.lower() in _HOP_BY_HOP:
            continue
        for value in values:
            headers.append((name, str(value)))
        sent.add(name.lower())
    for name, value in (response.get("headers") or {}).items():
        if name.lower() not in sent and name.lower() not in _HOP_BY_HOP:
            headers.append((name, str(value)))
    if not 100 <= status <= 599 or any(_NOT_IN_HEADER.search(f"{k}{v}") for k, v in headers):
        return _error(502, "Internal server error")  # API Gateway's answer to a malformed proxy response
    return status, headers, data


_NOT_IN_HEADER: Final = re.compile(r"[\r\n\x00]")
_HOP_BY_HOP: Final = frozenset({"content-length", *hop_by_hop})  # the server sets these; PEP 3333 forbids them


def _error(status: int, message: str, *, error_type: str | None = None) -> _Answer:
    fallback = "InternalServerErrorException" if status >= 500 else "BadRequestException"
    headers = [("Content-Type", "application/json"),
               ("x-amzn-ErrorType", error_type or ERROR_TYPES.get(status, fallback))]
    return status, headers, json.dumps({"message": message}).encode()


def _waitress_error(code: int, reason: str, detail: str) -> tuple[list[tuple[str, str]], bytes]:
    """A request waitress refused before the app ran (malformed framing, too large), in API Gateway's shape."""
    message = detail if code == 400 and detail else WAITRESS_MESSAGES.get(code, reason)
    _status, headers, data = _error(code, message)
    headers += [("x-amzn-RequestId", str(uuid.uuid4())), ("x-amz-apigw-id", _apigw_id())]
    return headers, data


def _apigw_id() -> str:
    return base64.b64encode(secrets.token_bytes(12)).decode()[:15] + "="


def _status_line(status: int) -> str:
    from http import HTTPStatus  # noqa: PLC0415

    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"{status} Unknown"


def _header_items(environ: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The request's headers as (name, value), names Title-Cased (WSGI keeps no original spelling)."""
    items: list[tuple[str, str]] = []
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            name = key[5:]
        elif key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            name = key
        else:
            continue
        items.append(("-".join(part.capitalize() for part in name.split("_")), str(value)))
    return items


def proxy_event(
    api: IngestApi,
    route: ApiRoute,
    *,
    method: str,
    raw_path: str,
    header_items: list[tuple[str, str]],
    body: bytes,
    source_ip: str,
    request_id: str,
) -> dict[str, Any]:
    """The REST API proxy integration event for one request."""
    split = urlsplit(raw_path)
    headers: dict[str, str] = {}
    multi_headers: dict[str, list[str]] = {}
    for name, value in header_items:
        headers[name] = value
        multi_headers.setdefault(name, []).append(value)
    lower = {k.lower(): v for k, v in headers.items()}
    query = parse_qs(split.query, keep_blank_values=True)
    binary = api.is_binary(lower.get("content-type"), lower.get("content-encoding"), body)
    now = time.time()
    return {
        "resource": route.path,
        "path": split.path,
        "httpMethod": method,
        "headers": headers or None,
        "multiValueHeaders": multi_headers or None,
        "queryStringParameters": {k: v[-1] for k, v in query.items()} or None,
        "multiValueQueryStringParameters": query or None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "resourceId": "local",
            "resourcePath": route.path,
            "httpMethod": method,
            "extendedRequestId": request_id,
            "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "path": f"/{api.stage}{split.path}",
            "accountId": ACCOUNT_ID,
            "protocol": "HTTP/1.1",
            "stage": api.stage,
            "domainPrefix": "127",
            "requestTimeEpoch": int(now * 1000),
            "requestId": request_id,
            "identity": {
                "sourceIp": source_ip,
                "userAgent": lower.get("user-agent"),
                "apiKey": lower.get("x-api-key"),
                "apiKeyId": "local",
            },
            "domainName": lower.get("host", ""),
            "apiId": API_ID,
        },
        "body": (base64.b64encode(body).decode() if binary else body.decode("utf-8")) if body else None,
        "isBase64Encoded": bool(body) and binary,
    }


