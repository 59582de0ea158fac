"""events/ (inputs for `sam local invoke`) match what the template wires to each function."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from shared import layout
from shared.s3events import parse_s3_notification
from tests.template.conftest import ROOT, of_type, target

EVENTS = ROOT / "events"
FUNCTIONS = {"ingester": "IngesterFunction", "parser": "ParserFunction", "registry": "RegistryFunction",
             "reconciler": "ReconcilerFunction", "compactor": "CompactorFunction"}
SCHEDULED = ("reconciler", "compactor")
# Key prefix each queue's messages name: the bucket notification filters, raw/ for the redrive queue.
# (Suffixes are not checked: a sample may show how a function treats an object it must ignore.)
QUEUE_PREFIX = {
    "telemetry-processing-queue": layout.raw_prefix("json_telemetry"),
    "otlp-logs-processing-queue": layout.raw_prefix("otlp_logs"),
    "telemetry-processing-redrive-queue": layout.RAW_ROOT,
    "telemetry-registry-queue": layout.VERIFIED_ROOT,
}


def _event_files() -> list[Path]:
    return sorted(EVENTS.glob("*.json"))


def _function_of(path: Path) -> str:
    return path.name.split("_")[0]


def _queues_of(resources: dict[str, dict[str, Any]], function_id: str) -> set[str]:
    return {
        resources[target(m["Properties"]["EventSourceArn"])]["Properties"]["QueueName"]
        for _, m in of_type(resources, "AWS::Lambda::EventSourceMapping")
        if target(m["Properties"]["FunctionName"]) == function_id
    }


@pytest.mark.parametrize("package", list(FUNCTIONS))
def test_every_function_has_a_sample_event(package: str) -> None:
    assert [p for p in _event_files() if _function_of(p) == package], f"no events/{package}_*.json"


@pytest.mark.parametrize("path", _event_files(), ids=lambda p: p.name)
def test_event_matches_the_template(path: Path, resources: dict[str, dict[str, Any]]) -> None:
    package = _function_of(path)
    assert package in FUNCTIONS, f"{path.name}: name it after its function ({', '.join(FUNCTIONS)})"
    event = json.loads(path.read_text())
    if package == "ingester":
        ((_, api),) = of_type(resources, "AWS::ApiGateway::RestApi")
        routes = {(p, m.upper()) for p, methods in api["Properties"]["Body"]["paths"].items() for m in methods}
        assert (event["path"], event["httpMethod"]) in routes
        assert {name.lower() for name in event["headers"]} >= {"x-api-key", "content-type"}
    elif package in SCHEDULED:
        ((_, rule),) = [(i, r) for i, r in of_type(resources, "AWS::Events::Rule")
                        if [target(t["Arn"]) for t in r["Properties"]["Targets"]] == [FUNCTIONS[package]]]
        assert event["source"] == "aws.events"
        assert event["detail-type"] == "Scheduled Event"
        suffix = rule["Properties"]["Name"]["Fn::Sub"].removeprefix("${Environment}")
        assert all(arn.endswith(suffix) for arn in event["resources"])
    else:
        queues = _queues_of(resources, FUNCTIONS[package])
        assert event["Records"]
        for record in event["Records"]:
            assert record["eventSource"] == "aws:sqs"
            queue = record["eventSourceARN"].rsplit(":", 1)[1]
            assert queue in queues, f"{path.name}: {queue} is not wired to {package}"
            for ref in parse_s3_notification(record["body"]):
                assert ref.key.startswith(QUEUE_PREFIX[queue]), ref.key
