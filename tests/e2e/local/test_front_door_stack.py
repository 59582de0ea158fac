"""The front door against the whole stack: chunked bodies land as rows, a bad length stores nothing,
and Firehose answers `list`/`describe` on the embedded AWS endpoint, to boto3 and to the stock aws CLI.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from signals.env import Environment, Output
from signals.local.command import print_banner
from signals.local.stack import LocalStack
from tests.e2e.local.conftest import API_KEY, post, sql


def event(event_id: str, device_id: str) -> dict[str, Any]:
    return {"event_id": event_id, "device_id": device_id, "device_type": "lock", "event_name": "bolt_changed",
            "event_time": int(time.time() * 1000) - 1000, "battery_pct": 55}


def records_in(stack: LocalStack) -> int:
    return sum(stats.records_in for stats in stack.firehose.stats.values())


def test_chunked_posts_land_every_event(stack: LocalStack, env: Environment) -> None:
    port = int(stack.api_url.rsplit(":", 1)[1])
    events = [event(f"chunk-{i}", "chunk-lock") for i in range(30)]
    body = json.dumps(events).encode()
    # http.client, chunked, three pieces; then a raw socket, chunked, on the same stack
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        third = len(body) // 3
        pieces = iter([body[:third], body[third : 2 * third], body[2 * third :]])
        connection.request("POST", "/v1/telemetry", body=pieces, encode_chunked=True,
                           headers={"x-api-key": API_KEY, "Content-Type": "application/json"})
        first = connection.getresponse()
        assert (first.status, json.loads(first.read())["accepted"]) == (200, 30)
    finally:
        connection.close()
    rest = [event(f"chunk-raw-{i}", "chunk-lock") for i in range(5)]
    raw_body = json.dumps(rest).encode()
    chunks = b"".join(f"{len(part):x}\r\n".encode() + part + b"\r\n" for part in (raw_body[:10], raw_body[10:]))
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(b"POST /v1/telemetry HTTP/1.1\r\nHost: 127.0.0.1\r\nx-api-key: " + API_KEY.encode()
                     + b"\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                     + chunks + b"0\r\n\r\n")
        received = b""
        while data := sock.recv(65536):
            received += data
    assert received.startswith(b"HTTP/1.1 200 ")
    assert json.loads(received.split(b"\r\n\r\n", 1)[1])["accepted"] == 5
    assert stack.wait_until_drained(60)
    assert sql(env, "SELECT count(DISTINCT event_id) FROM telemetry_lock_flat WHERE device_id = 'chunk-lock'"
               ).rows == [(35,)]


def test_content_length_minus_one_is_refused_and_stores_nothing(stack: LocalStack, env: Environment) -> None:
    port = int(stack.api_url.rsplit(":", 1)[1])
    ingester = stack.function("ingester")
    invocations, stored = ingester.invocations, records_in(stack)
    body = json.dumps([event("minus-one", "minus-one-lock")]).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(b"POST /v1/telemetry HTTP/1.1\r\nHost: 127.0.0.1\r\nx-api-key: " + API_KEY.encode()
                     + b"\r\nContent-Type: application/json\r\nContent-Length: -1\r\n\r\n" + body)
        sock.settimeout(10)
        received = b""
        while data := sock.recv(65536):  # answered and closed: not left waiting
            received += data
    head, _, reply = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 ")
    assert json.loads(reply) == {"message": "Content-Length is invalid"}
    assert (ingester.invocations, records_in(stack)) == (invocations, stored)
    assert stack.wait_until_drained(60, flush_firehose=True)
    assert sql(env, "SELECT count(*) FROM telemetry_lock_flat WHERE device_id = 'minus-one-lock'").rows == [(0,)]


def test_firehose_lists_and_describes_the_template_streams_on_the_main_endpoint(
        stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", stack.aws_endpoint_url)  # and nothing Firehose-specific
    monkeypatch.delenv("AWS_ENDPOINT_URL_FIREHOSE", raising=False)
    firehose = boto3.client("firehose", region_name="us-west-2", aws_access_key_id="x", aws_secret_access_key="x")
    names = {stack.outputs[Output.TELEMETRY_FIREHOSE], stack.outputs[Output.OTLP_FIREHOSE]}
    assert set(firehose.list_delivery_streams()["DeliveryStreamNames"]) == names
    paged = firehose.list_delivery_streams(Limit=1)
    assert (len(paged["DeliveryStreamNames"]), paged["HasMoreDeliveryStreams"]) == (1, True)
    rest = firehose.list_delivery_streams(ExclusiveStartDeliveryStreamName=paged["DeliveryStreamNames"][0])
    assert set(paged["DeliveryStreamNames"] + rest["DeliveryStreamNames"]) == names

    assert stack.template is not None
    resource = stack.template.resources["TelemetryFirehose"].properties
    configured = resource["ExtendedS3DestinationConfiguration"]
    described = firehose.describe_delivery_stream(DeliveryStreamName=resource["DeliveryStreamName"])
    description = described["DeliveryStreamDescription"]
    assert description["DeliveryStreamStatus"] == "ACTIVE"
    assert description["DeliveryStreamType"] == "DirectPut"
    assert description["DeliveryStreamEncryptionConfiguration"]["KeyType"] == "AWS_OWNED_CMK"
    destination = description["Destinations"][0]["ExtendedS3DestinationDescription"]
    for key in ("BucketARN", "RoleARN", "Prefix", "ErrorOutputPrefix", "CompressionFormat"):
        assert destination[key] == configured[key], key
    assert destination["CloudWatchLoggingOptions"]["LogGroupName"] == configured["CloudWatchLoggingOptions"][
        "LogGroupName"]
    # the interval the stand-in applies (the fixture's 0.5 s) in the model's whole seconds, the template's size
    assert destination["BufferingHints"] == {"IntervalInSeconds": 1,
                                             "SizeInMBs": configured["BufferingHints"]["SizeInMBs"]}
    with pytest.raises(ClientError) as missing:
        firehose.describe_delivery_stream(DeliveryStreamName="no-such-stream")
    assert missing.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_injected_faults_reach_clients_of_the_main_endpoint(stack: LocalStack) -> None:
    firehose = boto3.client("firehose", endpoint_url=stack.aws_endpoint_url, region_name="us-west-2",
                            aws_access_key_id="x", aws_secret_access_key="x",
                            config=Config(retries={"mode": "standard", "total_max_attempts": 1}))
    stream = stack.outputs[Output.OTLP_FIREHOSE]
    stack.firehose.fail_next_calls(1)
    with pytest.raises(ClientError) as failed:
        firehose.put_record_batch(DeliveryStreamName=stream, Records=[{"Data": b"{}\n"}])
    assert failed.value.response["Error"]["Code"] == "ServiceUnavailableException"
    stack.firehose.fail_next_records(1)
    result = firehose.put_record_batch(DeliveryStreamName=stream, Records=[{"Data": b"{}\n"}] * 2)
    assert result["FailedPutCount"] == 1
    assert result["RequestResponses"][0]["ErrorCode"] == "ServiceUnavailableException"


def aws_cli() -> list[str]:
    beside = Path(sys.executable).parent / "aws"
    found = str(beside) if beside.exists() else shutil.which("aws")
    if found is None:
        pytest.fail("the aws CLI is missing: awscli is in the dev extra (make install)")
    return [found]


def test_the_stock_aws_cli_describes_a_stream_with_only_the_endpoint_set(stack: LocalStack, tmp_path: Path) -> None:
    environ = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    environ.update(AWS_ENDPOINT_URL=stack.aws_endpoint_url, AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="x",
                   AWS_DEFAULT_REGION="us-west-2", AWS_CONFIG_FILE=str(tmp_path / "none"),
                   AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"))
    stream = stack.outputs[Output.TELEMETRY_FIREHOSE]

    def aws(*arguments: str) -> Any:
        completed = subprocess.run([*aws_cli(), *arguments, "--output", "json"], env=environ, capture_output=True,
                                   text=True, timeout=120, check=False)
        assert completed.returncode == 0, completed.stderr
        return json.loads(completed.stdout)

    assert stream in aws("firehose", "list-delivery-streams")["DeliveryStreamNames"]
    described = aws("firehose", "describe-delivery-stream", "--delivery-stream-name", stream)
    destination = described["DeliveryStreamDescription"]["Destinations"][0]["ExtendedS3DestinationDescription"]
    assert destination["Prefix"] == "raw/json_telemetry/!{timestamp:yyyy/MM/dd/HH}/"
    assert destination["CompressionFormat"] == "GZIP"


def test_the_banners_curl_then_query_shows_the_row(stack: LocalStack, signals_home: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    print_banner(stack)
    banner = capsys.readouterr().out
    sent = re.search(r"-H 'x-api-key: (\S+)' -H 'content-type: (\S+)' \\\n\s+-d '(\[.*\])' (\S+)", banner)
    assert sent is not None, banner
    key, content_type, body, url = sent.groups()
    status, reply = post(stack, url.removeprefix(stack.api_url), body.encode(),
                         {"x-api-key": key, "content-type": content_type})
    assert (status, reply["accepted"]) == (200, 1)
    query = next(line.strip() for line in banner.splitlines() if " query " in line)
    assert stack.wait_until_drained(30)
    completed = subprocess.run(shlex.split(query), env={**os.environ, "SIGNALS_HOME": str(signals_home)},
                               capture_output=True, text=True, timeout=60, check=False)
    assert completed.returncode == 0, completed.stderr
    assert re.search(r"^d1\s+\|\s+bolt_changed\s+\|\s+80\s*$", completed.stdout, re.MULTILINE), completed.stdout


def test_the_stack_answers_only_this_machine_and_its_state_file_is_owner_only(
    stack: LocalStack, signals_home: Path
) -> None:
    import stat  # noqa: PLC0415 (this test only)

    state = signals_home / "local-stack.json"
    assert stat.S_IMODE(state.stat().st_mode) == 0o600  # it holds the API key and the endpoints
    for url in (stack.api_url, stack.aws_endpoint_url):
        port = int(url.rsplit(":", 1)[1])
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            connection.putrequest("POST", "/moto-api/reset" if url == stack.aws_endpoint_url else "/v1/telemetry",
                                  skip_host=True)
            for name, value in (("Host", f"attacker.com:{port}"), ("Content-Type", "text/plain"),
                                ("x-api-key", API_KEY), ("Content-Length", "2")):
                connection.putheader(name, value)
            connection.endheaders(b"[]")
            answer = connection.getresponse()
            assert answer.status == 403, url
            assert "is not a loopback name or address" in json.loads(answer.read())["message"]
        finally:
            connection.close()
    assert stack.client("s3").list_buckets()["Buckets"]  # the refused reset wiped nothing
