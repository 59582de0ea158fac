"""The compacted layer on a running local stack, as a user meets it: retried POSTs, a conflicting copy,
late events and a resent OTLP batch end as one compacted row each after `signals compact`; a rerun and a
third copy change nothing; `signals query` reads both layers and the audit database."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from signals.compact import compact
from signals.env import Environment, resolve
from signals.local.stack import LocalStack
from tests.e2e.local.conftest import API_KEY, post, sql

HEADERS = {"x-api-key": API_KEY, "content-type": "application/json"}
COMPACTED = "telemetry_alerts_local.int_lock_compacted_daily"
CONFLICTS = "telemetry_alerts_local_dq_audit.duplicate_conflicts"


def rfc3339(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def send(stack: LocalStack, path: str, body: Any) -> None:
    status, answer = post(stack, path, json.dumps(body).encode(), HEADERS)
    assert status == 200, answer
    assert not answer.get("rejected"), answer


def compact_now(stack: LocalStack, env: Environment) -> dict[str, Any]:
    assert stack.wait_until_drained(60, flush_firehose=True)
    deadline = time.monotonic() + 60
    result = compact(env, {})
    while result.get("skipped") and time.monotonic() < deadline:  # a scheduled run started before the pause
        time.sleep(0.5)
        result = compact(env, {})
    assert result["days_failed"] == 0, result
    assert not result.get("skipped"), result
    return result


def counts(env: Environment, device_id: str) -> tuple[int, int]:
    rows, ids = sql(env, f"SELECT count(*), count(DISTINCT event_id) FROM {COMPACTED} "
                         f"WHERE device_id = '{device_id}'").rows[0]
    return int(rows), int(ids)


@pytest.fixture(scope="module")
def sent(stack: LocalStack) -> dict[str, Any]:
    env = resolve("local")
    # The tests count what their own `signals compact` runs do: pause the stack's compactor schedule
    # (every 3 s here), which would otherwise take the lease and the data first under load.
    stack.client("events").disable_rule(Name="local-tps-telemetry-compactor")
    now = datetime.now(UTC)
    events = [{"event_id": f"cmp-{i}", "device_id": "cmp-lock", "device_type": "lock", "event_name": "bolt_changed",
               "event_time": rfc3339(now - timedelta(minutes=5)), "battery_pct": 50 + i} for i in range(10)]
    late = [{"event_id": f"cmp-late-{i}", "device_id": "cmp-lock", "device_type": "lock",
             "event_name": "bolt_changed", "event_time": rfc3339(now - timedelta(days=3)), "battery_pct": 20}
            for i in range(3)]
    otlp = {"resourceLogs": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "cmp-app"}}]},
        "scopeLogs": [{"scope": {"name": "cmp"}, "logRecords": [{
            "timeUnixNano": str(int((now.timestamp() - 60) * 1e9)), "severityNumber": 9, "severityText": "INFO",
            "body": {"stringValue": "sent twice"}, "attributes": [{"key": "n", "value": {"intValue": "3"}}],
        }]}],
    }]}
    send(stack, "/v1/telemetry", events + late)
    time.sleep(0.05)  # the retry arrives later: its received_at is later
    send(stack, "/v1/telemetry", events + late)  # a client retrying after a timeout: the same body again
    send(stack, "/v1/telemetry", [dict(events[0], battery_pct=1)])  # same event_id, other content
    send(stack, "/v1/logs", otlp)
    send(stack, "/v1/logs", otlp)  # an exporter resending after a 503
    first = compact_now(stack, env)  # each test may run alone (xdist): the fixture does the first run
    return {"events": events, "late": late, "today": (now - timedelta(minutes=5)).strftime("%Y-%m-%d"),
            "late_day": (now - timedelta(days=3)).strftime("%Y-%m-%d"), "first": first}


def test_each_event_once_in_compacted_the_earliest_copy(stack: LocalStack, env: Environment,
                                                       sent: dict[str, Any]) -> None:
    result = sent["first"]
    assert result["totals"]["inserted"] >= 14
    verified = sql(env, "SELECT count(*) FROM telemetry_lock_flat WHERE device_id = 'cmp-lock'").rows[0][0]
    assert verified == 27  # the verified layer holds every copy
    assert counts(env, "cmp-lock") == (13, 13)
    kept = sql(env, f"SELECT battery_pct FROM {COMPACTED} WHERE event_id = 'cmp-0'").rows
    assert kept == [(50,)]  # the earliest copy, not the conflicting one
    days = dict(sql(env, f"SELECT event_id, day FROM {COMPACTED} WHERE event_id LIKE 'cmp-late-%'").rows)
    assert set(days.values()) == {sent["late_day"]}  # late events land in their own day
    otlp = sql(env, "SELECT count(*) FROM telemetry_alerts_local.int_otlp_logs_compacted_daily "
                    "WHERE service_name = 'cmp-app'").rows[0][0]
    assert otlp == 1
    otlp_verified = sql(env, "SELECT count(*) FROM telemetry_otlp_logs_flat WHERE service_name = 'cmp-app'").rows
    assert otlp_verified == [(2,)]


def test_the_conflicting_copy_is_recorded_with_both_lineages(stack: LocalStack, env: Environment,
                                                             sent: dict[str, Any]) -> None:
    rows = sql(env, f"SELECT kept_source_key, conflicting_source_key, differing_columns, day FROM {CONFLICTS} "
                    "WHERE event_key = '8:cmp-lock:cmp-0'").rows  # (device_id, event_id) as text
    assert len(rows) == 1
    kept_key, conflicting_key, differing, day = rows[0]
    assert kept_key.startswith("raw/json_telemetry/")
    assert conflicting_key.startswith("raw/json_telemetry/")
    assert differing == "battery_pct"
    assert day == sent["today"]


def test_a_rerun_and_a_third_copy_change_nothing(stack: LocalStack, env: Environment, sent: dict[str, Any]) -> None:
    before_conflicts = sql(env, f"SELECT count(*) FROM {CONFLICTS}").rows[0][0]
    again = compact(env, {"days": [sent["today"], sent["late_day"]], "tables": ["lock"]})
    assert again["totals"]["inserted"] == 0
    send(stack, "/v1/telemetry", sent["events"])  # a third copy of each
    third = compact_now(stack, env)
    assert third["totals"]["inserted"] == 0
    assert third["totals"]["conflicts_recorded"] == 0
    assert counts(env, "cmp-lock") == (13, 13)
    assert sql(env, f"SELECT count(*) FROM {CONFLICTS}").rows[0][0] == before_conflicts
