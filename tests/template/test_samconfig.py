"""samconfig.toml: one stack per environment, each override a valid template parameter."""

from __future__ import annotations

import tomllib
from typing import Any

import pytest

from signals.env import PROFILES, REGION, stack_name
from tests.template.conftest import ROOT

SAMCONFIG = tomllib.loads((ROOT / "samconfig.toml").read_text())


def _parameters(env: str, template: dict[str, Any]) -> dict[str, str]:
    """The template's parameter values for an environment: defaults, then samconfig's overrides."""
    values = {name: str(spec.get("Default", "")) for name, spec in template["Parameters"].items()}
    overrides = SAMCONFIG[env]["deploy"]["parameters"]["parameter_overrides"]
    for override in overrides:
        name, _, value = override.partition("=")
        assert name in template["Parameters"], f"{env}: {name} is not a template parameter"
        values[name] = value
    return values


@pytest.mark.parametrize("env", sorted(PROFILES))
def test_environment_targets_its_own_account_stack(env: str) -> None:
    settings = SAMCONFIG[env]["global"]["parameters"]
    assert settings == {"region": REGION, "profile": PROFILES[env], "stack_name": stack_name(env)}
    deploy = SAMCONFIG[env]["deploy"]["parameters"]
    assert deploy["capabilities"] == "CAPABILITY_IAM"
    assert f"Environment={env}" in deploy["parameter_overrides"]


@pytest.mark.parametrize("env", sorted(PROFILES))
def test_overrides_are_allowed_values(env: str, template: dict[str, Any]) -> None:
    for name, value in _parameters(env, template).items():
        spec = template["Parameters"][name]
        if "AllowedValues" in spec:
            assert value in [str(v) for v in spec["AllowedValues"]], f"{env}: {name}={value}"
        if spec["Type"] == "Number" and value:
            number = float(value)
            assert number >= spec.get("MinValue", number), f"{env}: {name}={value}"
            assert number <= spec.get("MaxValue", number), f"{env}: {name}={value}"


@pytest.mark.parametrize("env", sorted(PROFILES))
def test_reserved_concurrency_covers_the_event_sources(env: str, template: dict[str, Any]) -> None:
    """Throttled SQS receives count towards maxReceiveCount, so the reserve must cover every poller."""
    values = {name: int(value) for name, value in _parameters(env, template).items() if value.isdigit()}
    redrive = template["Resources"]["ParserFunction"]["Properties"]["Events"]["RedrivenObjects"]["Properties"]
    parser_pollers = 2 * values["ParserMaxConcurrency"] + redrive["ScalingConfig"]["MaximumConcurrency"]
    assert values["ParserReservedConcurrency"] >= parser_pollers
    assert values["RegistryReservedConcurrency"] >= values["RegistryMaxConcurrency"]


def test_builds_run_in_the_checkout() -> None:
    assert SAMCONFIG["default"]["build"]["parameters"]["build_in_source"] is True
