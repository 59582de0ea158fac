"""The embedded AWS endpoint answers only this machine's own clients: no CORS, no foreign Host or Origin.

A web page the developer has open must not be able to read the local lake (CORS), reach it under a
name of its own (DNS rebinding: `Host: attacker.com`), or wipe it with a `text/plain` POST that a
browser sends without a preflight (`POST /moto-api/reset`).
"""

from __future__ import annotations

import http.client
from collections.abc import Iterator

import boto3
import pytest

from signals.local.gateway import AwsGateway

BUCKET = "loopback-lake"


@pytest.fixture
def gateway() -> Iterator[AwsGateway]:
    running = AwsGateway("127.0.0.1", 0)
    running.start()
    running.reset()  # moto's backends are per process: an earlier test's buckets would be here
    s3 = boto3.client("s3", endpoint_url=running.url, region_name="us-west-2",
                      aws_access_key_id="x", aws_secret_access_key="x")
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    s3.put_object(Bucket=BUCKET, Key="verified/a.parquet", Body=b"rows")
    yield running
    running.stop()


def send(gateway: AwsGateway, method: str, path: str, headers: dict[str, str],
         body: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=10)
    try:
        connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        for name, value in headers.items():
            connection.putheader(name, value)
        if body is not None:
            connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def keys(gateway: AwsGateway) -> list[str]:
    s3 = boto3.client("s3", endpoint_url=gateway.url, region_name="us-west-2",
                      aws_access_key_id="x", aws_secret_access_key="x")
    return [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])]


def test_a_cross_origin_preflight_gets_no_cors_grant_and_no_data(gateway: AwsGateway) -> None:
    local = f"127.0.0.1:{gateway.port}"
    for origin in ("https://evil.example", "http://localhost:3000"):
        status, headers, body = send(gateway, "OPTIONS", f"/{BUCKET}?list-type=2", {
            "Host": local, "Origin": origin, "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization,x-amz-date",
        })
        assert not [h for h in headers if h.startswith("access-control-")], (origin, headers)
        assert b"verified/a.parquet" not in body
        assert BUCKET.encode() not in body
    # the page's actual GET, with the browser's Origin: refused, nothing listed
    status, headers, body = send(gateway, "GET", f"/{BUCKET}?list-type=2",
                                 {"Host": local, "Origin": "https://evil.example"})
    assert status == 403
    assert "access-control-allow-origin" not in headers
    assert b"Origin 'https://evil.example' is not a page on this machine" in body
    assert b"verified/a.parquet" not in body


@pytest.mark.parametrize("host", ["evil.example:{port}", "attacker.com", "attacker.com:{port}"])
def test_a_foreign_host_is_refused_before_anything_runs(gateway: AwsGateway, host: str) -> None:
    host = host.format(port=gateway.port)
    status, headers, body = send(gateway, "GET", f"/{BUCKET}?list-type=2", {"Host": host})
    assert status == 403
    assert headers["content-type"] == "application/json"
    assert f"Host '{host}' is not a loopback name or address".encode() in body
    assert b"verified/a.parquet" not in body
    status, _, body = send(gateway, "GET", "/moto-api/data.json", {"Host": host})
    assert status == 403
    assert BUCKET.encode() not in body


@pytest.mark.parametrize("headers", [
    {"Host": "{local}", "Origin": "https://evil.example"},  # a page elsewhere, fetch() without preflight
    {"Host": "attacker.com:{port}", "Origin": "http://attacker.com:{port}"},  # DNS rebinding
    {"Host": "attacker.com"},
])
def test_a_text_plain_reset_from_elsewhere_wipes_nothing(gateway: AwsGateway, headers: dict[str, str]) -> None:
    sent = {k: v.format(local=f"127.0.0.1:{gateway.port}", port=gateway.port) for k, v in headers.items()}
    status, _, _ = send(gateway, "POST", "/moto-api/reset", {**sent, "Content-Type": "text/plain"}, b"x")
    assert status == 403
    assert keys(gateway) == ["verified/a.parquet"]


def test_this_machines_clients_still_get_answers(gateway: AwsGateway) -> None:
    for host in (f"127.0.0.1:{gateway.port}", f"localhost:{gateway.port}", f"[::1]:{gateway.port}"):
        status, _, body = send(gateway, "GET", "/moto-api/data.json", {"Host": host})
        assert (status, BUCKET.encode() in body) == (200, True), host
    assert keys(gateway) == ["verified/a.parquet"]
    # and the reset this machine's stack sends still works
    gateway.reset()
    s3 = boto3.client("s3", endpoint_url=gateway.url, region_name="us-west-2",
                      aws_access_key_id="x", aws_secret_access_key="x")
    assert s3.list_buckets()["Buckets"] == []
