from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from tests.integration.registry.support import REDRIVE_QUEUE, REGION, create_world


@pytest.fixture
def aws() -> Iterator[boto3.Session]:
    with mock_aws():
        session = boto3.Session(region_name=REGION)
        create_world(session)
        yield session


@pytest.fixture
def s3(aws: boto3.Session) -> Any:
    return aws.client("s3")


@pytest.fixture
def dynamodb(aws: boto3.Session) -> Any:
    return aws.client("dynamodb")


@pytest.fixture
def glue(aws: boto3.Session) -> Any:
    return aws.client("glue")


@pytest.fixture
def sqs(aws: boto3.Session) -> Any:
    return aws.client("sqs")


@pytest.fixture
def redrive_url(sqs: Any) -> str:
    url: str = sqs.get_queue_url(QueueName=REDRIVE_QUEUE)["QueueUrl"]
    return url
