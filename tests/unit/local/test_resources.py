"""The playbook's resources the local stack creates carry the settings SAM's transform gives them.

signals.local.resources reads the SAM template itself (no samtranslator at run time); here its
requests are checked against what SAM translates the same template into for Environment=local
(the CloudFormation resources a deploy creates), resolved by the same resolver.
"""

from __future__ import annotations

from typing import Any

import pytest

from signals.env import stack_name
from signals.local.resources import alarm_request, api_requests, function_requests, rule_requests
from signals.local.template import ResolvedTemplate, load_template
from signals.local.wiring import Wiring, read_wiring
from tests.template.conftest import TEMPLATE_PATH, decode, translate

ENDPOINT = "http://127.0.0.1:4566"


@pytest.fixture(scope="module")
def wiring() -> Wiring:
    template = ResolvedTemplate(load_template(TEMPLATE_PATH), parameters={"Environment": "local"},
                                stack_name=stack_name("local"), endpoint=ENDPOINT)
    return read_wiring(template)


@pytest.fixture(scope="module")
def deployed() -> ResolvedTemplate:
    """SAM's translation for Environment=local, resolved like the local stack resolves the template."""
    translated = translate(decode(TEMPLATE_PATH.read_text()), "local")
    return ResolvedTemplate(translated, parameters={"Environment": "local"}, stack_name=stack_name("local"),
                            endpoint=ENDPOINT)


def _of_type(template: ResolvedTemplate, resource_type: str) -> list[dict[str, Any]]:
    return [r.properties for r in template.of_type(resource_type)]


def test_functions_match_the_deployed_functions(wiring: Wiring, deployed: ResolvedTemplate) -> None:
    by_name = {p["FunctionName"]: p for p in _of_type(deployed, "AWS::Lambda::Function")}
    assert set(by_name) == {spec.name for spec in wiring.functions.values()}
    for spec in wiring.functions.values():
        created = function_requests(wiring.template, spec).create
        lambda_props = by_name[spec.name]
        for key in ("Handler", "Runtime", "MemorySize", "Timeout", "Description", "Architectures", "TracingConfig",
                    "Role"):
            assert created.get(key) == lambda_props.get(key), (spec.name, key)
        assert created["Environment"] == lambda_props["Environment"]
        assert created["Tags"] == {t["Key"]: t["Value"] for t in lambda_props["Tags"]}
        assert created["LoggingConfig"] == {k: str(v) for k, v in lambda_props["LoggingConfig"].items()}
        requests = function_requests(wiring.template, spec)
        assert requests.reserved_concurrency == lambda_props.get("ReservedConcurrentExecutions")


def test_event_source_mappings_match(wiring: Wiring, deployed: ResolvedTemplate) -> None:
    fields = ("FunctionName", "EventSourceArn", "BatchSize", "MaximumBatchingWindowInSeconds",
              "FunctionResponseTypes", "ScalingConfig")

    def key(mapping: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(repr(mapping.get(f)) for f in fields)

    expected = sorted(key(m) for m in _of_type(deployed, "AWS::Lambda::EventSourceMapping"))
    ours = sorted(key(m) for spec in wiring.functions.values()
                  for m in function_requests(wiring.template, spec).mappings)
    assert ours == expected
    assert expected  # the template has SQS events


def test_schedule_rules_match(wiring: Wiring, deployed: ResolvedTemplate) -> None:
    expected = sorted(_of_type(deployed, "AWS::Events::Rule"), key=lambda r: r["Name"])
    ours = sorted((r for spec in wiring.functions.values() for r in rule_requests(wiring.template, spec.logical_id)),
                  key=lambda r: r.rule["Name"])
    assert [r.rule for r in ours] == [{k: v for k, v in e.items() if k != "Targets"} for e in expected]
    assert [r.targets for r in ours] == [e["Targets"] for e in expected]
    assert any(r.rule["Name"] == "local-tps-telemetry-registry-reconciler" for r in ours)


def test_rest_api_stage_usage_plan_and_key_match(wiring: Wiring, deployed: ResolvedTemplate) -> None:
    (api,) = wiring.template.of_type("AWS::Serverless::Api")
    ours = api_requests(wiring.template, api, wiring.template.of_type("AWS::Serverless::Function"))
    (rest_api,) = _of_type(deployed, "AWS::ApiGateway::RestApi")
    assert ours.create["name"] == rest_api["Name"]
    assert ours.create["binaryMediaTypes"] == rest_api["Body"]["x-amazon-apigateway-binary-media-types"]
    assert ours.create["endpointConfiguration"] == {"types": rest_api["EndpointConfiguration"]["Types"]}
    secured = {(path, method.upper()): bool(spec.get("security")) for path, methods in rest_api["Body"]["paths"].items()
               for method, spec in methods.items()}
    assert {(path, method): required for path, method, required, _ in ours.routes} == secured
    uris = {path: spec["x-amazon-apigateway-integration"]["uri"] for path, methods in rest_api["Body"]["paths"].items()
            for spec in methods.values()}
    for path, _method, _required, function_arn in ours.routes:
        assert function_arn in uris[path]
    (stage,) = _of_type(deployed, "AWS::ApiGateway::Stage")
    assert ours.stage_name == stage["StageName"]
    (plan,) = _of_type(deployed, "AWS::ApiGateway::UsagePlan")
    assert ours.usage_plan == {
        "name": plan["UsagePlanName"], "description": plan["Description"],
        "throttle": {"rateLimit": float(plan["Throttle"]["RateLimit"]), "burstLimit": plan["Throttle"]["BurstLimit"]},
        "quota": {"limit": plan["Quota"]["Limit"], "period": plan["Quota"]["Period"]},
    }
    assert _of_type(deployed, "AWS::ApiGateway::ApiKey")
    assert ours.api_key_name


def test_alarms_keep_every_template_setting(wiring: Wiring) -> None:
    alarms = wiring.template.of_type("AWS::CloudWatch::Alarm")
    assert alarms
    for resource in alarms:
        request = alarm_request(resource)
        assert set(request) == set(resource.properties)  # nothing dropped
        assert all(str(a).startswith("arn:aws:sns:us-west-2:123456789012:") for a in request["AlarmActions"])
