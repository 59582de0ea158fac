"""Safety of runs: a crash between commit and watermark, the lease, stopping in time and resuming,
a missing Iceberg table, the run report."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from werkzeug.wrappers import Response

from shared import registry_keys as rk
from signals.local.gateway import AwsGateway, AwsRequest, json_error
from tests.integration.compactor.support import ARTIFACTS_BUCKET, BASE, REGISTRY_TABLE, World, day_of, lock_row

DAY, HOUR = day_of(BASE)


class Countdown:
    """A Lambda context whose remaining time drops by `step_ms` on every look."""

    def __init__(self, start_ms: int, step_ms: int) -> None:
        self.left = start_ms
        self.step = step_ms

    def get_remaining_time_in_millis(self) -> int:
        self.left -= self.step
        return self.left


def test_a_crash_between_commit_and_watermark_adds_nothing_on_rerun(world: World, gateway: AwsGateway) -> None:
    world.write_verified("lock", DAY, HOUR, [lock_row(f"e{i}", line=i) for i in range(5)] * 2)

    def fail_state_write(request: AwsRequest) -> Response | None:
        item = request.json().get("Item", {})
        if item.get(rk.PK) == {"S": "COMPACTOR"} and item.get(rk.SK) == {"S": "STATE"}:
            return json_error(500, "InternalServerError", "injected: the function died here")
        return None

    remove = gateway.intercept("dynamodb", fail_state_write, operation="PutItem")
    try:
        with pytest.raises(Exception, match="InternalServerError"):
            world.handler()({}, None)
    finally:
        remove()
    committed = world.compacted("lock")
    assert len(committed) == 5  # the commit happened; the watermark did not move
    assert "watermark" not in world.state()

    rerun = world.handler()({}, None)

    (day,) = rerun["days"]
    assert (day["inserted"], day["replaced"]) == (0, 0)
    assert world.compacted("lock") == committed
    assert world.state()["watermark"] == rerun["watermark_after"]


def test_a_held_lease_skips_the_run_and_an_expired_one_is_taken_over(world: World) -> None:
    world.write_verified("lock", DAY, HOUR, [lock_row("e1")])
    dynamodb = world.client("dynamodb")
    until = int((datetime.now(UTC) + timedelta(minutes=5)).timestamp())
    lease = {**{k: {"S": v} for k, v in rk.compactor_lease_key().items()}, "owner": {"S": "other-run"},
             "expires_at": {"N": str(until)}}
    dynamodb.put_item(TableName=REGISTRY_TABLE, Item=lease)

    skipped = world.handler()({}, None)

    assert "other-run" in skipped["skipped"]
    assert skipped["days"] == []
    assert world.compacted("lock") == []

    lease["expires_at"] = {"N": str(until - 3600)}
    dynamodb.put_item(TableName=REGISTRY_TABLE, Item=lease)
    taken = world.handler()({}, None)
    assert taken["skipped"] is None
    assert taken["days_compacted"] == 1
    assert "Item" not in dynamodb.get_item(TableName=REGISTRY_TABLE,
                                           Key={k: {"S": v} for k, v in rk.compactor_lease_key().items()})


def test_a_run_stops_before_its_time_is_up_and_the_next_resumes(world: World) -> None:
    old_day, old_hour = day_of(BASE - timedelta(days=1))
    world.write_verified("lock", old_day, old_hour, [lock_row("old", event_time=BASE - timedelta(days=1))],
                         updated_at=datetime.now(UTC) - timedelta(seconds=2))
    world.write_verified("lock", DAY, HOUR, [lock_row("new")])

    # 10 s reserve; the first look leaves 15 s, the second 5 s: one day, then stop.
    first = world.handler(TIME_RESERVE_MS="10000")({}, Countdown(20_000, 5_000))

    assert [d["day"] for d in first["days"]] == [old_day]
    assert first["complete"] is False
    assert [r["event_id"] for r in world.compacted("lock")] == ["old"]
    assert first["lag_seconds"] > 0  # the day not reached is still waiting

    second = world.handler()({}, None)

    assert [d["day"] for d in second["days"]] == [DAY]  # the compacted day is not redone
    assert second["complete"] is True
    assert sorted(r["event_id"] for r in world.compacted("lock")) == ["new", "old"]
    assert second["lag_seconds"] == 0


def test_a_missing_iceberg_table_fails_that_day_loudly_and_holds_the_watermark(world: World) -> None:
    world.catalog.drop_table(("telemetry_alerts_test", "int_bridge_compacted_daily"))
    world.write_verified("bridge", DAY, HOUR, [{**lock_row("b1"), "device_type": "bridge"}])

    result = world.handler()({}, None)

    (day,) = result["days"]
    assert day["outcome"] == "failed"
    assert "telemetry_alerts_test.int_bridge_compacted_daily does not exist" in day["error"]
    assert result["watermark_after"] is None
    assert world.audit("compaction_runs")[0]["outcome"] == "failed"


def test_each_run_leaves_a_run_report_like_dbts_run_results(world: World) -> None:
    world.write_verified("lock", DAY, HOUR, [lock_row("e1"), lock_row("e1", line=2)])

    result = world.handler()({}, None)

    s3 = world.client("s3")
    latest: dict[str, Any] = json.loads(s3.get_object(Bucket=ARTIFACTS_BUCKET,
                                                      Key="compactor/latest/run_results.json")["Body"].read())
    key = result["report"].removeprefix(f"s3://{ARTIFACTS_BUCKET}/")
    assert key.startswith("compactor/run_results/")
    assert key.endswith(f"/{result['run_id']}.json")
    assert json.loads(s3.get_object(Bucket=ARTIFACTS_BUCKET, Key=key)["Body"].read()) == latest
    assert latest["metadata"]["invocation_id"] == result["run_id"]
    (entry,) = latest["results"]
    assert entry["status"] == "success"
    assert entry["relation_name"] == "int_lock_compacted_daily"
    assert entry["adapter_response"]["natural_duplicates"] == 1
    assert entry["adapter_response"]["engine"] == "local"
    assert "row_number() OVER" in entry["compiled_code"]
