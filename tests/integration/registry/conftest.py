from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from tests.integration.registry.support import REGION, create_world


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
