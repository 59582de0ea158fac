"""The template as written (decoded with CloudFormation tags) and as SAM translates it."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from cfnlint.decode import decode_str
from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = ROOT / "template.yaml"
REGION = "us-west-2"


def decode(text: str) -> dict[str, Any]:
    document, errors = decode_str(text)
    assert not errors, errors
    return json.loads(json.dumps(document))  # plain dicts, intrinsics in their long form


def translate(document: dict[str, Any], environment: str = "dev") -> dict[str, Any]:
    """What CloudFormation deploys: the SAM transform applied, code already packaged (as sam package does)."""
    packaged = copy.deepcopy(document)
    for resource in packaged["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":
            resource["Properties"]["CodeUri"] = "s3://artifacts/function.zip"
    # The template names no AWS managed policy for SAM to look up, so the policy map stays empty
    # and no IAM call is made; the session only supplies the region for pseudo parameters.
    translator = Translator(None, Parser(), boto_session=boto3.Session(region_name=REGION))
    translated: dict[str, Any] = translator.translate(
        packaged, parameter_values={"Environment": environment}, get_managed_policy_map=dict
    )
    return translated


@pytest.fixture(scope="session")
def template_text() -> str:
    return TEMPLATE_PATH.read_text()


@pytest.fixture(scope="session")
def template(template_text: str) -> dict[str, Any]:
    return decode(template_text)


@pytest.fixture(scope="session")
def translated(template: dict[str, Any]) -> dict[str, Any]:
    return translate(template)


@pytest.fixture(scope="session")
def resources(translated: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return dict(translated["Resources"])


def of_type(resources: dict[str, dict[str, Any]], resource_type: str) -> Iterator[tuple[str, dict[str, Any]]]:
    for logical_id, resource in resources.items():
        if resource["Type"] == resource_type:
            yield logical_id, resource


def target(value: Any) -> str:
    """Logical id a `Ref` or `Fn::GetAtt` points at."""
    if isinstance(value, dict) and "Ref" in value:
        return str(value["Ref"])
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        attribute = value["Fn::GetAtt"]
        return str(attribute[0] if isinstance(attribute, list) else attribute.split(".")[0])
    raise AssertionError(f"not a Ref/GetAtt: {value!r}")
