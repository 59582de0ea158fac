"""Parking: a well-formed but unknown device type is written to raw and listed in `parked`, not rejected."""

from __future__ import annotations

import json
from collections.abc import Sequence

import orjson
import pytest

from ingester.app import build_handler
from ingester.firehose import MAX_LINE_BYTES, FirehoseWriter
from ingester.telemetry import Rejected, split_events
from shared.schema import is_device_type_name
from tests.unit.ingester.conftest import Invoke
from tests.unit.ingester.fakes import (
    STREAMS,
    FakeContext,
    ManualClock,
    RecordingSink,
    api_event,
    device_event,
    response_json,
)

STAMP = "2026-11-25T19:30:00.123Z"


def written(sink: RecordingSink) -> list[dict[str, object]]:
    return [orjson.loads(line) for record in sink.written for line in record[:-1].split(b"\n")]


@pytest.mark.parametrize(("value", "well_formed"), [
    ("thermostat", True), ("smoke_alarm_v2", True), ("a" * 48, True),
    ("Thermostat", False), ("2fa_pad", False), ("thermo-stat", False), ("", False), ("a" * 49, False),
    ("thermostat\n", False), (7, False), (None, False),
])
def test_what_counts_as_a_device_type_name(value: object, well_formed: bool) -> None:
    assert is_device_type_name(value) is well_formed


@pytest.mark.parametrize("exact", [True, False])
@pytest.mark.parametrize("media", ["application/json", "application/x-ndjson"])
def test_unknown_well_formed_type_is_written_and_parked_on_every_path(media: str, exact: bool) -> None:
    # A 17-digit number sends the body down the exact (own-text) path.
    big = {"counter": 12345678901234567} if not exact else {}
    events = [device_event(0, **big), device_event(1, "thermostat", **big), {"device_type": "Thermostat"},
              device_event(3, "bridge")]
    body = (json.dumps(events) if media == "application/json" else "\n".join(map(json.dumps, events))).encode()
    batch = split_events(body, media, STAMP, MAX_LINE_BYTES)
    assert batch.indices == [0, 1, 3]
    assert batch.parked == [1]
    assert batch.rejected == [Rejected(2, "unknown_device_type")]
    assert orjson.loads(batch.lines[1])["device_type"] == "thermostat"
    assert orjson.loads(batch.lines[1])["received_at"] == STAMP


def test_reply_lists_parked_events_inside_accepted(invoke: Invoke, sink: RecordingSink) -> None:
    body = json.dumps([device_event(0), device_event(1, "thermostat"), {"device_type": "Oven"},
                       device_event(3, "thermostat")])
    response = invoke(api_event("/v1/telemetry", body))
    assert response["statusCode"] == 200
    reply = response_json(response)
    assert reply == {"accepted": 3, "rejected": [{"index": 2, "reason": "unknown_device_type"}],
                     "parked": [{"index": 1, "reason": "unknown_device_type"},
                                {"index": 3, "reason": "unknown_device_type"}]}
    # An old client that adds accepted and rejected still counts every event it sent, once.
    assert reply["accepted"] + len(reply["rejected"]) == 4
    assert [event["device_type"] for event in written(sink)] == ["lock", "thermostat", "thermostat"]


def test_a_batch_of_only_parked_events_is_accepted(invoke: Invoke, sink: RecordingSink) -> None:
    response = invoke(api_event("/v1/telemetry", json.dumps([device_event(0, "thermostat")])))
    assert response["statusCode"] == 200
    assert response_json(response)["parked"] == [{"index": 0, "reason": "unknown_device_type"}]
    assert len(written(sink)) == 1


def test_a_503_lists_as_parked_only_the_parked_events_that_were_written() -> None:
    clock = ManualClock()

    def fail_thermostat_0(number: int, records: Sequence[bytes]) -> list[str | None]:
        return ["ServiceUnavailableException" if b'"evt-000000"' in record else None for record in records]

    sink = RecordingSink(failures=fail_thermostat_0)
    handler = build_handler(
        {**STREAMS, "FIREHOSE_RETRY_BUDGET_S": "3"}, sink=sink,
        writer_factory=lambda s: FirehoseWriter(s, clock=clock, sleep=clock.sleep, jitter=lambda: 1.0),
    )
    events = [device_event(i, "thermostat", note="n" * 3000) for i in range(700)]  # three records
    response = handler(api_event("/v1/telemetry", json.dumps(events)), FakeContext())
    assert response["statusCode"] == 503
    reply = response_json(response)
    not_written = set(reply["not_written"])
    assert 0 in not_written
    parked = {entry["index"] for entry in reply["parked"]}
    assert parked == set(range(700)) - not_written
    assert reply["accepted"] == len(parked)
