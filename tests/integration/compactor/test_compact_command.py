"""`signals compact` on a local stack's state file: one run now, per table and day, exit status."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import boto3
import pytest
from werkzeug.wrappers import Response

from signals.cli import main
from signals.env import Environment, Output
from signals.local.gateway import AwsGateway, AwsRequest
from tests.integration.compactor import support
from tests.integration.compactor.support import BASE, World, day_of, lock_row

DAY, HOUR = day_of(BASE)


@pytest.fixture
def local_stack(world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    """The state file `signals local` writes, pointing at the test's embedded AWS."""
    outputs = {
        Output.REGISTRY_TABLE: support.REGISTRY_TABLE, Output.GLUE_DATABASE: support.GLUE_DATABASE,
        Output.VERIFIED_BUCKET: support.VERIFIED_BUCKET, Output.DBT_BUCKET: support.DBT_BUCKET,
        Output.ARTIFACTS_BUCKET: support.ARTIFACTS_BUCKET, Output.ALERTS_DATABASE: support.ALERTS_DATABASE,
        Output.AUDIT_DATABASE: support.AUDIT_DATABASE,
    }
    (tmp_path / "local-stack.json").write_text(json.dumps({"outputs": outputs, "aws_endpoint_url": world.url}))
    monkeypatch.setenv("SIGNALS_HOME", str(tmp_path))
    return world


def test_signals_compact_prints_each_table_day_and_a_rerun_inserts_nothing(
        local_stack: World, capsys: pytest.CaptureFixture[str]) -> None:
    local_stack.write_verified("lock", DAY, HOUR, [lock_row("e1"), lock_row("e2", line=2)])
    local_stack.write_verified("lock", DAY, HOUR, [lock_row("e1", received=BASE + timedelta(seconds=9)),
                                                   lock_row("e2", line=2, bolt_state="jammed")])

    assert main(["compact"]) == 0

    out = capsys.readouterr().out
    header = [cell.strip() for cell in out.splitlines()[0].split(" | ")]
    assert header == ["table", "day", "read", "inserted", "replaced", "refreshed", "natural dups", "conflicts", "late",
                      "outcome"]
    row = [cell.strip() for cell in out.splitlines()[2].split(" | ")]
    assert row == ["int_lock_compacted_daily", DAY, "4", "2", "0", "0", "1", "1", "0", "succeeded"]
    assert "2 rows inserted, 1 natural duplicates dropped, 1 conflicting (1 newly recorded" in out

    assert main(["compact", "--day", DAY, "--table", "lock", "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["forced"] is True
    assert [(d["table"], d["inserted"], d["natural_duplicates"]) for d in again["days"]] == [
        ("int_lock_compacted_daily", 0, 1)]


def test_signals_compact_exits_1_when_a_day_fails_or_the_table_is_unknown(
        local_stack: World, capsys: pytest.CaptureFixture[str]) -> None:
    local_stack.catalog.drop_table((support.ALERTS_DATABASE, "int_lock_compacted_daily"))
    local_stack.write_verified("lock", DAY, HOUR, [lock_row("e1")])

    assert main(["compact"]) == 1
    out = capsys.readouterr().out
    assert f"int_lock_compacted_daily/day={DAY} failed: IcebergTableMissing: Iceberg table" in out
    assert "int_lock_compacted_daily does not exist" in out

    assert main(["compact", "--table", "nope"]) == 1
    assert "unknown table 'nope'" in capsys.readouterr().err


def test_signals_compact_on_an_env_invokes_the_lambda_and_prints_its_result(
        gateway: AwsGateway, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    invocations: list[tuple[str, dict[str, object]]] = []
    answer = {"run_id": "r1", "engine": "athena", "days_compacted": 0, "days_failed": 1, "complete": True,
              "skipped": None, "errors": [], "totals": {"inserted": 0}, "lag_seconds": 7200.0,
              "days": [{"table": "int_lock_compacted_daily", "day": DAY, "verified_rows": 9, "inserted": 0,
                        "replaced": 0, "natural_duplicates": 0, "conflicting_duplicates": 0, "late_rows": 0,
                        "outcome": "failed", "error": "gave up after 3 attempt(s): query q FAILED: boom"}]}

    def invoke(request: AwsRequest) -> Response | None:
        if request.method == "POST" and request.path.endswith("/invocations"):
            invocations.append((request.path, json.loads(request.body)))
            return Response(json.dumps(answer), status=200, headers={"Content-Type": "application/json"})
        return None

    remove = gateway.intercept("lambda", invoke)
    monkeypatch.setenv("AWS_ENDPOINT_URL", gateway.url)  # a "deployed" env reached through the gateway
    monkeypatch.setattr("signals.compact.environment_from_args", lambda args: Environment(
        name="dev", session=boto3.Session(region_name="us-west-2"),
        outputs={Output.COMPACTOR_FUNCTION: "signals-pipeline-dev-CompactorFunction-abc"}))
    try:
        status = main(["compact", "--env", "dev", "--day", DAY])
    finally:
        remove()

    assert status == 1
    ((path, payload),) = invocations
    assert "signals-pipeline-dev-CompactorFunction-abc" in path
    assert payload == {"days": [DAY]}
    out = capsys.readouterr().out
    assert f"int_lock_compacted_daily/day={DAY} failed: gave up after 3 attempt(s)" in out
    assert "lag: 7200 s" in out
