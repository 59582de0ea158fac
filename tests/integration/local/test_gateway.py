"""The embedded AWS endpoint: interceptors answer before moto, everything else reaches moto unchanged."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from werkzeug.wrappers import Response

from signals.local.gateway import AwsGateway, AwsRequest, json_error


@pytest.fixture
def gateway() -> Iterator[AwsGateway]:
    running = AwsGateway("127.0.0.1", 0)
    running.start()
    yield running
    running.stop()


def client(gateway: AwsGateway, service: str) -> object:
    return boto3.client(service, endpoint_url=gateway.url, region_name="us-west-2")


def test_requests_without_an_interceptor_reach_moto(gateway: AwsGateway) -> None:
    sqs = client(gateway, "sqs")
    url = sqs.create_queue(QueueName="plain")["QueueUrl"]  # type: ignore[attr-defined]
    sqs.send_message(QueueUrl=url, MessageBody="hello")  # type: ignore[attr-defined]
    received = sqs.receive_message(QueueUrl=url)["Messages"]  # type: ignore[attr-defined]
    assert [m["Body"] for m in received] == ["hello"]


def test_an_interceptor_answers_its_operation_and_passes_the_rest_on(gateway: AwsGateway) -> None:
    seen: list[AwsRequest] = []

    def throttle(request: AwsRequest) -> Response | None:
        seen.append(request)
        return json_error(400, "ProvisionedThroughputExceededException", "injected")

    remove = gateway.intercept("dynamodb", throttle, operation="PutItem")
    dynamodb = client(gateway, "dynamodb")
    dynamodb.create_table(  # type: ignore[attr-defined]
        TableName="t", BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
    )
    retryless = boto3.client("dynamodb", endpoint_url=gateway.url, region_name="us-west-2",
                             config=Config(retries={"max_attempts": 1}))
    with pytest.raises(ClientError) as raised:
        retryless.put_item(TableName="t", Item={"pk": {"S": "a"}})
    assert raised.value.response["Error"]["Code"] == "ProvisionedThroughputExceededException"
    assert seen[0].service == "dynamodb"
    assert seen[0].operation == "PutItem"
    assert seen[0].json()["Item"] == {"pk": {"S": "a"}}

    remove()
    retryless.put_item(TableName="t", Item={"pk": {"S": "a"}})  # moto stores it now
    assert retryless.get_item(TableName="t", Key={"pk": {"S": "a"}})["Item"] == {"pk": {"S": "a"}}


def test_an_interceptor_returning_none_lets_moto_answer_with_the_same_body(gateway: AwsGateway) -> None:
    seen: list[str | None] = []
    gateway.intercept("sqs", lambda request: seen.append(request.operation) or None)
    sqs = client(gateway, "sqs")
    url = sqs.create_queue(QueueName="watched")["QueueUrl"]  # type: ignore[attr-defined]
    sqs.send_message(QueueUrl=url, MessageBody="body survives")  # type: ignore[attr-defined]
    assert sqs.receive_message(QueueUrl=url)["Messages"][0]["Body"] == "body survives"  # type: ignore[attr-defined]
    assert seen[:3] == ["CreateQueue", "SendMessage", "ReceiveMessage"]


def test_the_latest_interceptor_is_asked_first(gateway: AwsGateway) -> None:
    """A fault injected after start-up meets a request before the stand-in that answers it otherwise."""
    gateway.intercept("athena", lambda request: json_error(400, "InvalidRequestException", "stand-in"))
    remove = gateway.intercept("athena", lambda request: json_error(400, "TooManyRequestsException", "fault"))
    athena = boto3.client("athena", endpoint_url=gateway.url, region_name="us-west-2",
                          config=Config(retries={"max_attempts": 1}))
    with pytest.raises(ClientError, match="fault"):
        athena.list_query_executions()
    remove()
    with pytest.raises(ClientError, match="stand-in"):
        athena.list_query_executions()
