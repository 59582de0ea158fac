"""The ingest API's HTTP/1.1, over real sockets, against a recording function (no moto, under a second).

What a client sees from API Gateway: chunked bodies, keep-alive, a bad or missing length refused
with nothing invoked, 413 before the body is sent, OPTIONS/HEAD as unrouted methods, and every
refusal a JSON `{"message": ...}`.
"""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from signals.local.api import MAX_PAYLOAD_BYTES, IngestApi
from signals.local.wiring import ApiRoute

KEY = "front-door-key"


class Recorder:
    """A function that records each event and answers with the size of the body it got."""

    def __init__(self) -> None:
        self.events: list[Mapping[str, Any]] = []
        self.fail = False
        self.answer: Any = None

    def invoke(self, event: Mapping[str, Any]) -> Any:
        if self.fail:
            raise RuntimeError("the function failed")
        if self.answer is not None:
            return self.answer
        self.events.append(event)
        body = event.get("body") or ""
        return {"statusCode": 200, "headers": {"Content-Type": "application/json"},
                "body": json.dumps({"received": len(body), "text": body})}


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def api(recorder: Recorder) -> Iterator[IngestApi]:
    server = IngestApi([(ApiRoute("POST", "/v1/logs"), recorder)], api_key=KEY,
                       binary_media_types=("application/x-protobuf",), stage="live", port=0)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def exchange(api: IngestApi, data: bytes, *, timeout: float = 5.0) -> bytes:
    """Send raw bytes, read until the server closes the connection."""
    with socket.create_connection(("127.0.0.1", api.port), timeout=timeout) as sock:
        sock.sendall(data)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
        return received


def responses(raw: bytes) -> list[tuple[int, dict[str, str], bytes]]:
    """Split a byte stream of HTTP responses (Content-Length framed) into (status, headers, body)."""
    found = []
    while raw:
        head, _, rest = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        length = int(headers.get("content-length", "0"))
        found.append((int(lines[0].split()[1]), headers, rest[:length]))
        raw = rest[length:]
    return found


def request(method: str, body: bytes | None, *headers: str, path: str = "/v1/logs") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")


def assert_api_gateway_error(status_headers_body: tuple[int, dict[str, str], bytes], status: int, message: str,
                             error_type: str) -> None:
    got_status, headers, body = status_headers_body
    assert got_status == status
    assert headers["content-type"] == "application/json"
    assert headers["x-amzn-errortype"] == error_type
    assert headers["x-amzn-requestid"]
    assert json.loads(body) == {"message": message}


def test_a_chunked_body_arrives_whole_and_the_connection_stays_open(api: IngestApi, recorder: Recorder) -> None:
    chunked = b"5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n"
    raw = exchange(api, request("POST", chunked, f"x-api-key: {KEY}", "Content-Type: text/plain",
                                "Transfer-Encoding: chunked")
                   + request("POST", b"second", f"x-api-key: {KEY}", "Content-Length: 6", "Connection: close"))
    (first, second) = responses(raw)  # two requests, one connection: keep-alive (and pipelining)
    assert first[0] == 200
    assert "connection" not in first[1]
    assert json.loads(first[2]) == {"received": 12, "text": "hello, world"}
    assert json.loads(second[2])["text"] == "second"
    assert [e["body"] for e in recorder.events] == ["hello, world", "second"]


def test_http_client_chunked_encoding_and_keep_alive(api: IngestApi, recorder: Recorder) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", api.port, timeout=5)
    try:
        parts = iter([b"\x00\x01", b"\x02" * 70000, b"\x03"])  # binary, so base64 in the event
        connection.request("POST", "/v1/logs", body=parts, encode_chunked=True,
                           headers={"x-api-key": KEY, "Content-Type": "application/x-protobuf"})
        response = connection.getresponse()
        assert response.status == 200
        assert json.loads(response.read())["received"] > 0
        assert recorder.events[0]["isBase64Encoded"] is True
        sock = connection.sock
        connection.request("POST", "/live/v1/logs", body=b"again", headers={"x-api-key": KEY})
        again = connection.getresponse()
        assert (again.status, json.loads(again.read())["text"]) == (200, "again")
        assert connection.sock is sock  # the same connection served both
    finally:
        connection.close()
    import base64  # noqa: PLC0415

    assert base64.b64decode(str(recorder.events[0]["body"])) == b"\x00\x01" + b"\x02" * 70000 + b"\x03"


@pytest.mark.parametrize("length", ["-1", "abc", "5, 6", "0x10"])
def test_a_bad_length_is_400_and_nothing_is_invoked(api: IngestApi, recorder: Recorder, length: str) -> None:
    raw = exchange(api, request("POST", b'{"a":1}', f"x-api-key: {KEY}", f"Content-Length: {length}"))
    (answer,) = responses(raw)  # and then the server closed the connection: the body is not read as a request
    assert_api_gateway_error(answer, 400, "Content-Length is invalid", "BadRequestException")
    assert answer[1]["connection"] == "close"
    assert recorder.events == []


def test_a_body_method_without_a_length_is_411(api: IngestApi, recorder: Recorder) -> None:
    raw = exchange(api, request("POST", None, f"x-api-key: {KEY}", "Connection: close"))
    (answer,) = responses(raw)
    assert_api_gateway_error(answer, 411, "Length Required", "BadRequestException")
    assert recorder.events == []


def test_413_is_answered_before_the_body_is_sent(api: IngestApi, recorder: Recorder) -> None:
    with socket.create_connection(("127.0.0.1", api.port), timeout=5) as sock:
        sock.sendall(request("POST", None, f"x-api-key: {KEY}", f"Content-Length: {MAX_PAYLOAD_BYTES + 1}"))
        received = b""
        while chunk := sock.recv(65536):  # the answer comes, then the close, without one body byte sent
            received += chunk
    (answer,) = responses(received)
    assert_api_gateway_error(answer, 413, "Request Too Long", "BadRequestException")
    assert recorder.events == []


def test_a_chunked_body_over_the_limit_is_413(api: IngestApi, recorder: Recorder) -> None:
    piece = b"x" * (1024 * 1024)
    chunk = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    with socket.create_connection(("127.0.0.1", api.port), timeout=10) as sock:
        sock.sendall(request("POST", None, f"x-api-key: {KEY}", "Transfer-Encoding: chunked"))
        try:
            for _ in range(12):
                sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server stopped reading once it had refused the body
        received = b""
        try:
            while data := sock.recv(65536):
                received += data
        except ConnectionResetError:
            pass
    assert received.startswith(b"HTTP/1.1 413 ")
    assert json.loads(responses(received)[0][2]) == {"message": "Request Too Long"}
    assert recorder.events == []


def test_exactly_the_limit_is_accepted(api: IngestApi, recorder: Recorder) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", api.port, timeout=30)
    try:
        connection.request("POST", "/v1/logs", body=b"y" * MAX_PAYLOAD_BYTES, headers={"x-api-key": KEY})
        answer = connection.getresponse()
        # 10 MiB passes API Gateway, but as a proxy event it exceeds Lambda's 6 MiB invoke payload.
        assert (answer.status, json.loads(answer.read())) == (413, {"message": "Request Too Long"})
        connection.request("POST", "/v1/logs", body=b"y" * (4 * 1024 * 1024), headers={"x-api-key": KEY})
        assert connection.getresponse().status == 200
    finally:
        connection.close()
    assert len(recorder.events) == 1


@pytest.mark.parametrize("method", ["OPTIONS", "GET", "PUT", "DELETE"])
def test_unrouted_methods_are_missing_authentication_token(api: IngestApi, recorder: Recorder, method: str) -> None:
    raw = exchange(api, request(method, None, "Origin: http://localhost:3000", "Access-Control-Request-Method: POST",
                                "Content-Length: 0", "Connection: close"))
    (answer,) = responses(raw)
    assert_api_gateway_error(answer, 403, "Missing Authentication Token", "MissingAuthenticationTokenException")
    assert recorder.events == []


def test_head_gets_the_headers_and_no_body(api: IngestApi) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", api.port, timeout=5)
    try:
        connection.request("HEAD", "/v1/logs", headers={"x-api-key": KEY})
        answer = connection.getresponse()
        assert answer.status == 403
        assert answer.getheader("x-amzn-ErrorType") == "MissingAuthenticationTokenException"
        assert answer.read() == b""
        connection.request("POST", "/v1/logs", body=b"after head", headers={"x-api-key": KEY})
        assert connection.getresponse().status == 200  # the HEAD left the connection usable
    finally:
        connection.close()


def test_unknown_path_wrong_key_and_failed_function(api: IngestApi, recorder: Recorder) -> None:
    def post(path: str, key: str) -> tuple[int, dict[str, str], bytes]:
        (answer,) = responses(exchange(api, request("POST", b"{}", f"x-api-key: {key}", "Content-Length: 2",
                                                    "Connection: close", path=path)))
        return answer

    assert_api_gateway_error(post("/v1/nothing", KEY), 403, "Missing Authentication Token",
                             "MissingAuthenticationTokenException")
    assert_api_gateway_error(post("/v1/logs", "wrong"), 403, "Forbidden", "ForbiddenException")
    recorder.fail = True
    assert_api_gateway_error(post("/v1/logs", KEY), 502, "Internal server error", "InternalServerErrorException")
    recorder.fail = False
    for malformed in ({"body": "no status"}, {"statusCode": "abc"}, {"statusCode": 700},
                      {"statusCode": 200, "headers": {"X-Split": "a\r\nSet-Cookie: x"}}):
        recorder.answer = malformed
        assert_api_gateway_error(post("/v1/logs", KEY), 502, "Internal server error", "InternalServerErrorException")


@pytest.mark.parametrize(("framing", "status", "message"), [
    ("Transfer-Encoding: gzip", 501, "Not Implemented"),
    ("Transfer-Encoding: chunked\r\n\r\nzz\r\n", 400, "Invalid chunk size"),
])
def test_framing_waitress_refuses_is_json_too(api: IngestApi, recorder: Recorder, framing: str, status: int,
                                              message: str) -> None:
    raw = exchange(api, f"POST /v1/logs HTTP/1.1\r\nHost: 127.0.0.1\r\nx-api-key: {KEY}\r\n{framing}\r\n\r\n".encode())
    (answer,) = responses(raw)
    assert answer[0] == status
    assert answer[1]["content-type"] == "application/json"
    assert json.loads(answer[2]) == {"message": message}
    assert recorder.events == []


def test_expect_100_continue_is_answered_before_the_body(api: IngestApi, recorder: Recorder) -> None:
    with socket.create_connection(("127.0.0.1", api.port), timeout=5) as sock:
        sock.sendall(request("POST", None, f"x-api-key: {KEY}", "Content-Length: 4", "Expect: 100-continue",
                             "Connection: close"))
        assert sock.recv(1024).startswith(b"HTTP/1.1 100 Continue\r\n")  # as curl waits for before a big body
        sock.sendall(b"body")
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    (answer,) = responses(received)
    assert (answer[0], json.loads(answer[2])["text"]) == (200, "body")
