from __future__ import annotations

from typing import Any

import boto3
import pytest

# The same moto world as the registry's tests (buckets, table, Glue tables, queues).
from tests.integration.registry.conftest import aws, dynamodb, glue, s3
from tests.integration.registry.support import REDRIVE_QUEUE

__all__ = ["aws", "dynamodb", "glue", "redrive_url", "s3", "sqs"]


@pytest.fixture
def sqs(aws: boto3.Session) -> Any:
    return aws.client("sqs")


@pytest.fixture
def redrive_url(sqs: Any) -> str:
    url: str = sqs.get_queue_url(QueueName=REDRIVE_QUEUE)["QueueUrl"]
    return url
