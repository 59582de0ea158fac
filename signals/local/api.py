"""The ingest API on 127.0.0.1: HTTP turned into API Gateway REST proxy (v1) events, as API Gateway does.

- Routes are the template's `Api` events (`POST /v1/telemetry`, `POST /v1/logs`), also under the
  stage prefix the deployed URL has (`/live/v1/logs`); any other path is 403
  `{"message":"Missing Authentication Token"}`, API Gateway's answer for an unknown resource.
- Every route needs the API key in `x-api-key`; without it (or with a wrong one) 403
  `{"message":"Forbidden"}`, before the function runs.
- Bodies over API Gateway's 10 MB payload limit are refused with 413.
- A body is passed base64-encoded (`isBase64Encoded`) when its Content-Type matches the API's
  BinaryMediaTypes, when it carries a Content-Encoding, or when it is not UTF-8 text; otherwise as text.
- `headers` keep the last value of each header and `multiValueHeaders` all of them;
  `requestContext.requestId` is a fresh id, also returned as `x-amzn-RequestId`.
"""

from __future__ import annotations

import base64
import fnmatch
import hmac
import json
import time
import uuid
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

from signals.local.http import BackgroundHttpServer
from signals.local.runtime import LocalFunction
from signals.local.template import ACCOUNT_ID
from signals.local.wiring import ApiRoute

MAX_PAYLOAD_BYTES: Final = 10 * 1024 * 1024
API_ID: Final = "localapi01"


class IngestApi(BackgroundHttpServer):
    def __init__(
        self,
        routes: list[tuple[ApiRoute, LocalFunction]],
        *,
        api_key: str,
        binary_media_types: tuple[str, ...],
        stage: str,
        host: str = "127.0.0.1",
        port: int = 4318,
    ) -> None:
        self.routes = routes
        self.api_key = api_key
        self.binary_media_types = binary_media_types
        self.stage = stage
        self.requests = 0
        super().__init__(_handler_class(self), name="ingest-api", host=host, port=port, request_queue_size=128)

    def route(self, method: str, path: str) -> tuple[ApiRoute, LocalFunction] | None:
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


def _handler_class(api: IngestApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "signals-local"

        def _handle(self) -> None:
            api.requests += 1
            request_id = str(uuid.uuid4())
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_PAYLOAD_BYTES:
                self.close_connection = True
                self._send(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, request_id, {"message": "Request Too Long"})
                return
            body = self.rfile.read(length) if length else b""
            path = urlsplit(self.path).path
            stage_prefix = f"/{api.stage}/"
            if path.startswith(stage_prefix):  # the deployed URL carries the stage (`.../live/v1/logs`)
                path = path[len(stage_prefix) - 1 :]
            found = api.route(self.command, path)
            if found is None:
                self._send(HTTPStatus.FORBIDDEN, request_id, {"message": "Missing Authentication Token"})
                return
            if not api.key_ok(self.headers.get("x-api-key")):
                self._send(HTTPStatus.FORBIDDEN, request_id, {"message": "Forbidden"})
                return
            route, function = found
            query = urlsplit(self.path).query
            event = proxy_event(
                api, route, method=self.command, raw_path=path + (f"?{query}" if query else ""),
                header_items=list(self.headers.items()),
                body=body, source_ip=self.client_address[0], request_id=request_id,
            )
            try:
                response = function.invoke(event)
            except Exception:
                self._send(HTTPStatus.BAD_GATEWAY, request_id, {"message": "Internal server error"})
                return
            self._reply(response, request_id)

        do_POST = do_GET = do_PUT = do_DELETE = do_PATCH = _handle

        def _reply(self, response: Any, request_id: str) -> None:
            if not isinstance(response, dict) or "statusCode" not in response:
                self._send(HTTPStatus.BAD_GATEWAY, request_id, {"message": "Internal server error"})
                return
            raw_body = response.get("body") or ""
            data = base64.b64decode(raw_body) if response.get("isBase64Encoded") else str(raw_body).encode()
            self.send_response(int(response["statusCode"]))
            sent: set[str] = set()
            for name, values in (response.get("multiValueHeaders") or {}).items():
                for value in values:
                    self.send_header(name, str(value))
                sent.add(name.lower())
            for name, value in (response.get("headers") or {}).items():
                if name.lower() not in sent and name.lower() != "content-length":
                    self.send_header(name, str(value))
            self.send_header("x-amzn-RequestId", request_id)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _send(self, status: int, request_id: str, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("x-amzn-RequestId", request_id)
            self.send_header("x-amzn-ErrorType", "ForbiddenException" if status == 403 else "Error")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler
