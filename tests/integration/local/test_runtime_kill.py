"""A killed invocation, as Lambda kills one: it stops at its next AWS call, keeps what it wrote, has no response."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from botocore.config import Config

from shared.aws import DEFAULT_CONFIG
from signals.local.gateway import AwsGateway, AwsRequest
from signals.local.runtime import FunctionKilled, LocalFunction, function_of_user_agent, function_user_agent
from signals.local.stack import EndpointClients
from signals.local.wiring import FunctionSpec
from tests.integration.local import killable_function


@pytest.fixture
def gateway() -> Iterator[AwsGateway]:
    running = AwsGateway("127.0.0.1", 0)
    running.start()
    yield running
    running.stop()


def function(gateway: AwsGateway, name: str) -> LocalFunction:
    spec = FunctionSpec(logical_id=name, name=name, module="tests.integration.local.killable_function",
                        environment={}, timeout_seconds=30, memory_mb=128)
    session = boto3.Session(region_name="us-west-2")
    config = DEFAULT_CONFIG.merge(Config(user_agent_extra=function_user_agent(name)))
    return LocalFunction(spec, EndpointClients(session, {}, gateway.url, config), None)


def keys(gateway: AwsGateway) -> list[str]:
    s3 = boto3.client("s3", endpoint_url=gateway.url, region_name="us-west-2")
    return sorted(item["Key"] for item in s3.list_objects_v2(Bucket="out").get("Contents", []))


def test_a_killed_invocation_keeps_its_outputs_so_far_and_the_next_one_starts_cold(gateway: AwsGateway) -> None:
    boto3.client("s3", endpoint_url=gateway.url, region_name="us-west-2").create_bucket(
        Bucket="out", CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    victim, bystander = function(gateway, "victim"), function(gateway, "bystander")
    callers: list[str | None] = []

    def kill_after_second_output(request: AwsRequest) -> None:
        caller = function_of_user_agent(request.headers.get("User-Agent", ""))
        callers.append(caller)
        if caller == "victim" and request.path.endswith("/killed-1"):
            victim.kill("test: after two outputs")
        # the object is written; the invocation dies when the answer comes back

    gateway.intercept("s3", kill_after_second_output)
    killable_function.BUILDS.clear()
    with pytest.raises(FunctionKilled, match="after two outputs"):
        victim.invoke({"name": "killed", "outputs": 4})
    assert keys(gateway) == ["killed-0", "killed-1"]  # nothing after the kill: no more outputs, no pool, no record
    assert (victim.kills, victim.errors, victim.busy) == (1, 1, False)

    assert bystander.invoke({"name": "other", "outputs": 1}) == {"ok": True}  # another function is not touched
    assert victim.invoke({"name": "again", "outputs": 1}) == {"ok": True}
    assert len(killable_function.BUILDS) == 3  # victim built twice: the kill discarded its environment
    assert {"victim", "bystander"} <= set(callers)
    assert "again-record" in keys(gateway)
    assert "other-record" in keys(gateway)


def test_kill_is_refused_when_nothing_runs(gateway: AwsGateway) -> None:
    assert function(gateway, "idle").kill("nothing to kill") is False
