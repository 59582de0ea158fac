"""`signals schema drift` on the local stack: unknown keys the parser kept in `extra` show up per
device type with their kind, share of rows, firmware and times (slow: a stack of its own)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from signals.cli import main
from signals.env import Environment
from signals.local.stack import LocalStack
from tests.e2e.local.conftest import API_KEY, post, sql, wait_for

pytestmark = pytest.mark.slow


def test_drift_shows_each_unknown_key_with_kind_share_and_firmware(
        stack: LocalStack, env: Environment, capsys: pytest.CaptureFixture[str]) -> None:
    moment = (datetime.now(UTC) - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    events: list[dict[str, Any]] = []
    for number in range(100):
        event: dict[str, Any] = {"event_id": f"drift-{number}", "device_id": "d1", "device_type": "lock",
                                 "event_name": "bolt_changed", "event_time": moment, "battery_pct": 50,
                                 "firmware_version": "4.2.0" if number % 2 else "4.1.0"}
        if number % 10 < 3:
            event["auto_lock_delay_s"] = number
        if number == 7:
            event["diagnostics"] = {"a": 1}
        events.append(event)
    status, answer = post(stack, "/v1/telemetry", json.dumps(events).encode(),
                          {"x-api-key": API_KEY, "content-type": "application/json"})
    assert (status, answer["accepted"]) == (200, 100), answer
    assert wait_for(lambda: sql(env, "SELECT count(*) FROM telemetry_lock_flat").rows[0][0] == 100, timeout=60)

    assert main(["schema", "drift", "--env", "local", "--json"]) == 0
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"device_type"')]
    rows = {row["key"]: row for row in printed}
    delay = rows["auto_lock_delay_s"]
    assert (delay["device_type"], delay["kind"], delay["rows"], delay["type_rows"]) == ("lock", "int", 30, 100)
    assert delay["share"] == 0.3
    assert delay["firmware_versions"] == ["4.1.0", "4.2.0"]
    assert delay["first_seen"] <= delay["last_seen"]
    assert (rows["diagnostics"]["kind"], rows["diagnostics"]["rows"]) == ("object", 1)

    assert main(["schema", "drift", "--env", "local"]) == 0
    table = capsys.readouterr().out
    assert "auto_lock_delay_s  int" in table
    assert "30.0%" in table
    assert "signals schema suggest lock.auto_lock_delay_s" in table
