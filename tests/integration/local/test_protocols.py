"""The gateway reads and answers every wire protocol a service's model declares, old clients and new at once.

botocore 1.44.18 moved Athena from the json protocol (`POST /`, `X-Amz-Target: AmazonAthena.Op`) to
rest-json (`POST /query-executions`, `GET /query-executions/{id}/results`); clients built on older
botocore, and the JavaScript SDK v3, still send json. One running gateway (moto behind it, the local
Athena in front) must give both the same rows. Requests are sent as real HTTP: hand-built and SigV4-signed,
or from botocore clients whose model speaks the protocol under test.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import botocore.session
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from werkzeug.wrappers import Response

from signals.local.athena import LocalAthena
from signals.local.gateway import AwsGateway, AwsRequest

REGION = "us-west-2"
WORKGROUP = "protocols-wg"
RESULTS = "s3://protocol-results/athena/"
SQL = "SELECT x, CAST(x * 10 AS varchar) AS label FROM UNNEST(sequence(1, 3)) AS t(x)"
EXPECTED_ROWS = [["x", "label"], ["1", "10"], ["2", "20"], ["3", "30"]]
NO_RETRIES = Config(retries={"max_attempts": 1})


@pytest.fixture(scope="module")
def gateway() -> Iterator[AwsGateway]:
    running = AwsGateway("127.0.0.1", 0)
    running.start()
    running.reset()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def athena_stack(gateway: AwsGateway) -> Iterator[AwsGateway]:
    """The gateway with the local Athena in front of moto, a results bucket and a workgroup."""
    session = boto3.Session(region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing")
    session.client("s3", endpoint_url=gateway.url).create_bucket(
        Bucket="protocol-results", CreateBucketConfiguration={"LocationConstraint": REGION})
    session.client("athena", endpoint_url=gateway.url).create_work_group(
        Name=WORKGROUP, Configuration={"ResultConfiguration": {"OutputLocation": RESULTS}})
    athena = LocalAthena(session, gateway.url)
    athena.install(gateway)
    try:
        yield gateway
    finally:
        athena.close()


def client_speaking(gateway: AwsGateway, service: str, protocol: str, tmp: Path, **legacy: str) -> Any:
    """A botocore client whose model of `service` speaks `protocol` only (the model otherwise botocore's own).

    `legacy` adds metadata the protocol needs that today's model lacks (Athena's json: the target prefix and
    JSON version botocore 1.44.13 had). RPC protocols send every operation as `POST /`, as their models do."""
    session = botocore.session.get_session()
    loader = session.get_component("data_loader")
    description = loader.load_service_model(service, "service-2")
    description["metadata"].update(protocol=protocol, protocols=[protocol], **legacy)
    if protocol in ("json", "query", "smithy-rpc-v2-cbor"):
        for name, operation in description["operations"].items():
            operation["http"] = {"method": "POST", "requestUri": "/"}
            if protocol == "query" and "output" in operation:  # query models wrap each output: <OpResult>
                operation["output"]["resultWrapper"] = f"{name}Result"
    folder = tmp / f"{service}-{protocol}" / service / description["metadata"]["apiVersion"]
    folder.mkdir(parents=True)
    (folder / "service-2.json").write_text(json.dumps(description))
    loader.search_paths.insert(0, str(folder.parent.parent))
    return boto3.Session(botocore_session=session, region_name=REGION).client(
        service, endpoint_url=gateway.url, config=NO_RETRIES)


def json_athena(gateway: AwsGateway, tmp: Path) -> Any:
    """Athena as botocore 1.44.13 and older (and the JavaScript SDK v3) speak it."""
    return client_speaking(gateway, "athena", "json", tmp, targetPrefix="AmazonAthena", jsonVersion="1.1")


# --- hand-built requests ---------------------------------------------------------------------------


def send(gateway: AwsGateway, method: str, path: str, *, body: bytes = b"", headers: dict[str, str] | None = None,
         service: str = "athena") -> tuple[int, dict[str, str], bytes]:
    """One SigV4-signed HTTP request, built by hand (the signature names the service, as AWS routes it)."""
    request = AWSRequest(method=method, url=f"{gateway.url}{path}", data=body, headers=headers or {})
    SigV4Auth(Credentials("testing", "testing"), service, REGION).add_auth(request)
    prepared = urllib.request.Request(request.url, data=body or None, method=method, headers=dict(request.headers))
    try:
        with urllib.request.urlopen(prepared, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def rest_json(gateway: AwsGateway, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else b""
    headers = {"Content-Type": "application/json"} if body is not None else {}
    status, _, raw = send(gateway, method, path, body=data, headers=headers)
    return status, json.loads(raw or b"{}")


def aws_json(gateway: AwsGateway, operation: str, body: dict[str, Any]) -> tuple[int, Any]:
    status, _, raw = send(gateway, "POST", "/", body=json.dumps(body).encode(), headers={
        "Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": f"AmazonAthena.{operation}"})
    return status, json.loads(raw or b"{}")


def rows_of(results: dict[str, Any]) -> list[list[str | None]]:
    return [[cell.get("VarCharValue") for cell in row["Data"]] for row in results["ResultSet"]["Rows"]]


def test_hand_built_rest_json_and_json_sequences_return_the_same_rows(athena_stack: AwsGateway) -> None:
    gateway = athena_stack
    start = {"QueryString": SQL, "WorkGroup": WORKGROUP}

    status, started = rest_json(gateway, "POST", "/query-executions", start)
    assert status == 200, started
    rest_id = started["QueryExecutionId"]
    status, started = aws_json(gateway, "StartQueryExecution", start)
    assert status == 200, started
    json_id = started["QueryExecutionId"]
    assert rest_id != json_id

    deadline = time.monotonic() + 60
    states: dict[str, str] = {}
    while time.monotonic() < deadline and set(states.values()) != {"SUCCEEDED"}:
        _, described = rest_json(gateway, "GET", f"/query-executions/{rest_id}")
        states["rest-json"] = described["QueryExecution"]["Status"]["State"]
        _, described = aws_json(gateway, "GetQueryExecution", {"QueryExecutionId": json_id})
        states["json"] = described["QueryExecution"]["Status"]["State"]
        assert "FAILED" not in states.values(), described
        time.sleep(0.1)
    assert states == {"rest-json": "SUCCEEDED", "json": "SUCCEEDED"}

    status, rest_results = rest_json(gateway, "GET", f"/query-executions/{rest_id}/results?MaxResults=2")
    assert status == 200, rest_results
    status, json_results = aws_json(gateway, "GetQueryResults", {"QueryExecutionId": json_id, "MaxResults": 2})
    assert status == 200, json_results
    assert rows_of(rest_results) == rows_of(json_results) == EXPECTED_ROWS[:2]  # MaxResults from the query string
    token = rest_results["NextToken"]
    _, rest_rest = rest_json(gateway, "GET", f"/query-executions/{rest_id}/results?NextToken={token}")
    _, json_rest = aws_json(gateway, "GetQueryResults", {"QueryExecutionId": json_id,
                                                         "NextToken": json_results["NextToken"]})
    assert rows_of(rest_rest) == rows_of(json_rest) == EXPECTED_ROWS[2:]


def test_errors_come_back_in_the_protocol_of_the_request(athena_stack: AwsGateway) -> None:
    status, headers, raw = send(athena_stack, "GET", "/query-executions/no-such-id")
    assert status == 400
    assert headers.get("x-amzn-ErrorType", headers.get("X-Amzn-Errortype")) == "InvalidRequestException"
    assert json.loads(raw)["Message"] == "QueryExecution no-such-id was not found"

    status, body = aws_json(athena_stack, "GetQueryExecution", {"QueryExecutionId": "no-such-id"})
    assert status == 400
    assert body["__type"] == "InvalidRequestException"


def test_boto3_on_the_locked_botocore_and_a_json_client_share_one_stack(athena_stack: AwsGateway,
                                                                         tmp_path: Path) -> None:
    current = boto3.client("athena", endpoint_url=athena_stack.url, region_name=REGION, config=NO_RETRIES)
    legacy = json_athena(athena_stack, tmp_path)

    answers = []
    for client in (current, legacy):
        execution_id = client.start_query_execution(QueryString=SQL, WorkGroup=WORKGROUP)["QueryExecutionId"]
        for _ in range(600):
            state = client.get_query_execution(QueryExecutionId=execution_id)["QueryExecution"]["Status"]["State"]
            if state not in ("QUEUED", "RUNNING"):
                break
            time.sleep(0.1)
        assert state == "SUCCEEDED"
        pages = client.get_paginator("get_query_results").paginate(QueryExecutionId=execution_id,
                                                                    PaginationConfig={"PageSize": 2})
        answers.append([row for page in pages for row in rows_of(page)])
        # the other client sees this client's execution: one stack, one set of executions
        other = legacy if client is current else current
        assert other.get_query_execution(QueryExecutionId=execution_id)["QueryExecution"]["Query"] == SQL
    assert answers == [EXPECTED_ROWS, EXPECTED_ROWS]

    # What moto answers (workgroups), both protocols: created by one client, read by the other.
    legacy.create_work_group(Name="made-by-json", Configuration={"ResultConfiguration": {"OutputLocation": RESULTS}})
    current.create_work_group(Name="made-by-rest-json")
    assert current.get_work_group(WorkGroup="made-by-json")["WorkGroup"]["Configuration"]["ResultConfiguration"] == {
        "OutputLocation": RESULTS}
    assert legacy.get_work_group(WorkGroup="made-by-rest-json")["WorkGroup"]["Name"] == "made-by-rest-json"
    names = {w["Name"] for w in legacy.list_work_groups()["WorkGroups"]}
    assert {"made-by-json", "made-by-rest-json", WORKGROUP} <= names
    for client in (current, legacy):
        with pytest.raises(ClientError) as raised:
            client.create_work_group(Name="made-by-json")
        assert raised.value.response["Error"]["Code"] == "InvalidRequestException"
        assert "already exists" in raised.value.response["Error"]["Message"]


# --- parameters identified in every protocol -----------------------------------------------------


class Recorder:
    """An interceptor that only watches: what the gateway identified."""

    def __init__(self) -> None:
        self.seen: list[AwsRequest] = []

    def __call__(self, request: AwsRequest) -> Response | None:
        self.seen.append(request)
        return None

    def one(self, operation: str) -> AwsRequest:
        matching = [r for r in self.seen if r.operation == operation]
        assert matching, [r.operation for r in self.seen]
        return matching[-1]


@pytest.fixture
def recorder(gateway: AwsGateway) -> Iterator[Recorder]:
    watching = Recorder()
    removers = [gateway.intercept(service, watching) for service in ("sqs", "monitoring", "s3", "lambda")]
    yield watching
    for remove in removers:
        remove()


def sqs_query(gateway: AwsGateway, form: dict[str, str]) -> bytes:
    """A query-protocol SQS call as the query-era SDKs sent it (flattened `Attribute.N.Name`)."""
    status, _, raw = send(gateway, "POST", "/", service="sqs", body=urllib.parse.urlencode(
        {**form, "Version": "2012-11-05"}).encode(), headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 200, raw
    return raw


@pytest.mark.parametrize("protocol", ["json", "query"])
def test_sqs_parameters_are_the_same_in_json_and_query(gateway: AwsGateway, recorder: Recorder,
                                                       protocol: str) -> None:
    sqs = boto3.client("sqs", endpoint_url=gateway.url, region_name=REGION)  # json
    name = f"q-{protocol}"
    if protocol == "json":
        url = sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "7"})["QueueUrl"]
        sqs.send_message(QueueUrl=url, MessageBody="héllo", MessageAttributes={
            "kind": {"DataType": "String", "StringValue": "k"}})
    else:
        answer = sqs_query(gateway, {"Action": "CreateQueue", "QueueName": name,
                                     "Attribute.1.Name": "VisibilityTimeout", "Attribute.1.Value": "7"})
        assert b"<QueueUrl>" in answer  # moto answers in XML, as SQS does to the query protocol
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        sqs_query(gateway, {"Action": "SendMessage", "QueueUrl": url, "MessageBody": "héllo",
                            "MessageAttribute.1.Name": "kind", "MessageAttribute.1.Value.DataType": "String",
                            "MessageAttribute.1.Value.StringValue": "k"})
    received = sqs.receive_message(QueueUrl=url)
    assert [m["Body"] for m in received["Messages"]] == ["héllo"]  # moto got it, whichever protocol sent it
    assert sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["VisibilityTimeout"])["Attributes"] == {
        "VisibilityTimeout": "7"}

    created = recorder.one("CreateQueue")
    assert created.protocol == protocol
    assert created.params == {"QueueName": name, "Attributes": {"VisibilityTimeout": "7"}}
    sent = recorder.one("SendMessage")
    assert sent.params["QueueUrl"] == url
    assert sent.params["MessageBody"] == "héllo"
    assert sent.params["MessageAttributes"] == {"kind": {"DataType": "String", "StringValue": "k"}}


@pytest.mark.parametrize("protocol", ["smithy-rpc-v2-cbor", "json", "query"])
def test_cloudwatch_parameters_are_the_same_in_cbor_json_and_query(gateway: AwsGateway, recorder: Recorder,
                                                                   protocol: str, tmp_path: Path) -> None:
    legacy = {"targetPrefix": "GraniteServiceVersion20100801", "jsonVersion": "1.0"} if protocol != "query" else {}
    cloudwatch = client_speaking(gateway, "cloudwatch", protocol, tmp_path, **legacy)
    cloudwatch.put_metric_data(Namespace=f"ns-{protocol}", MetricData=[
        {"MetricName": "Errors", "Value": 2.5, "Unit": "Count", "Dimensions": [{"Name": "fn", "Value": "parser"}]}])
    listed = cloudwatch.list_metrics(Namespace=f"ns-{protocol}")["Metrics"]  # moto answers
    assert [m["MetricName"] for m in listed] == ["Errors"]

    put = recorder.one("PutMetricData")
    assert put.service == "monitoring"
    assert put.protocol == protocol
    assert put.params == {"Namespace": f"ns-{protocol}", "MetricData": [
        {"MetricName": "Errors", "Value": 2.5, "Unit": "Count", "Dimensions": [{"Name": "fn", "Value": "parser"}]}]}


def test_s3_rest_xml_parameters_come_from_path_headers_and_body(gateway: AwsGateway, recorder: Recorder) -> None:
    s3 = boto3.client("s3", endpoint_url=gateway.url, region_name=REGION)
    s3.create_bucket(Bucket="params", CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_object(Bucket="params", Key="a/b c.txt", Body=b"payload", ContentType="text/plain",
                  Metadata={"origin": "test"})
    assert s3.get_object(Bucket="params", Key="a/b c.txt")["Body"].read() == b"payload"

    put = recorder.one("PutObject")
    assert put.protocol == "rest-xml"
    assert (put.params["Bucket"], put.params["Key"], put.params["Body"]) == ("params", "a/b c.txt", b"payload")
    assert put.params["ContentType"] == "text/plain"
    assert {k.lower(): v for k, v in put.params["Metadata"].items()} == {"origin": "test"}  # headers: any case
    got = recorder.one("GetObject").params
    assert (got["Bucket"], got["Key"]) == ("params", "a/b c.txt")


def test_lambda_rest_json_parameters_come_from_path_query_and_body(gateway: AwsGateway, recorder: Recorder) -> None:
    awslambda = boto3.client("lambda", endpoint_url=gateway.url, region_name=REGION, config=NO_RETRIES)
    with pytest.raises(ClientError):
        awslambda.get_function(FunctionName="no-such-fn", Qualifier="live")  # moto answers: not found
    with pytest.raises(ClientError):
        awslambda.create_event_source_mapping(FunctionName="no-such-fn", BatchSize=7,
                                              EventSourceArn="arn:aws:sqs:us-west-2:123456789012:q")

    got = recorder.one("GetFunction")
    assert got.protocol == "rest-json"
    assert got.params == {"FunctionName": "no-such-fn", "Qualifier": "live"}
    created = recorder.one("CreateEventSourceMapping")
    assert created.params["BatchSize"] == 7
    assert created.params["FunctionName"] == "no-such-fn"


@pytest.mark.parametrize("protocol", ["json", "query"])
def test_an_interceptor_answers_and_fails_in_the_protocol_of_the_request(gateway: AwsGateway, protocol: str,
                                                                         tmp_path: Path) -> None:
    def answer(request: AwsRequest) -> Response | None:
        if request.params.get("QueueName") == "refused":
            return request.error(400, "QueueDeletedRecently", "injected: recently deleted")
        return request.answer({"QueueUrl": f"http://local/123456789012/{request.params['QueueName']}-answered"})

    remove = gateway.intercept("sqs", answer, operation="CreateQueue")
    try:
        sqs = client_speaking(gateway, "sqs", protocol, tmp_path)
        assert sqs.create_queue(QueueName="q")["QueueUrl"] == "http://local/123456789012/q-answered"
        with pytest.raises(ClientError) as raised:
            sqs.create_queue(QueueName="refused")
    finally:
        remove()
    if protocol == "json":  # the modeled error: botocore maps SQS's query-compatible code back to the shape
        assert isinstance(raised.value, sqs.exceptions.QueueDeletedRecently)
    else:  # SQS's query protocol sends the legacy code (the shape's awsQueryError code)
        assert raised.value.response["Error"]["Code"] == "AWS.SimpleQueueService.QueueDeletedRecently"
    assert raised.value.response["Error"]["Message"] == "injected: recently deleted"
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
