"""Handler throughput: 1,000-event requests through `ingester.app` with a null sink.

Baseline, measured in the same run: the floor of any pass-through, `orjson.loads` of the body
plus `orjson.dumps` of the events it holds. The handler does that too, plus the routing, checks,
`received_at`, packing into records, the response, one log line and the EMF metrics.
Target: handler throughput >= 0.5 of the floor. Medians over rounds that alternate between the two,
timed in CPU time of this process (`time.process_time`), so other load on a shared machine does
not count against either side.

    .venv/bin/python bench/ingester_throughput.py [--rounds 15] [--requests 50]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import orjson

EVENTS_PER_REQUEST = 1000


class NullSink:
    def put_record_batch(self, stream_name: str, records: Sequence[bytes]) -> list[str | None]:
        return [None] * len(records)


class Context:
    function_name = "ingester"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-west-2:123456789012:function:ingester"
    aws_request_id = "bench"

    def get_remaining_time_in_millis(self) -> int:
        return 29_000


def typical_events(count: int) -> list[dict[str, Any]]:
    """~400 bytes each, the three device types in turn."""
    kinds = [
        {"device_type": "lock", "event_name": "bolt_changed", "battery_pct": 87, "bolt_state": "locked",
         "door_state": "closed", "operation_source": "keypad", "rssi_dbm": -61, "temperature_c": 21.5},
        {"device_type": "bridge", "event_name": "heartbeat", "wifi_rssi_dbm": -48, "uptime_s": 86400,
         "connected_devices": 3, "cpu_pct": 12.5, "mem_free_kb": 20480, "network_type": "wifi"},
        {"device_type": "video_doorbell", "event_name": "motion", "battery_pct": 64, "wifi_rssi_dbm": -55,
         "motion_detected": True, "button_pressed": False, "night_mode": True},
    ]
    return [
        {"event_id": f"0f8fad5b-d9cb-469f-a165-{index:012d}", "device_id": f"device-{index % 97:04d}-home-42",
         "event_time": "2026-11-25T19:30:00.123Z", "firmware_version": "4.2.1-release",
         "schema_version": 1, **kinds[index % 3],
         "attributes": {"home_id": "home-42", "room": "front-door", "app_version": "7.3.0"}}
        for index in range(count)
    ]


def api_event(body: str) -> dict[str, Any]:
    return {
        "resource": "/v1/telemetry", "path": "/v1/telemetry", "httpMethod": "POST",
        "headers": {"Content-Type": "application/json", "x-api-key": "bench"},
        "multiValueHeaders": {"Content-Type": ["application/json"], "x-api-key": ["bench"]},
        "requestContext": {"requestId": "bench", "requestTimeEpoch": int(time.time() * 1000), "stage": "bench",
                           "resourcePath": "/v1/telemetry", "httpMethod": "POST"},
        "body": body, "isBase64Encoded": False,
    }


def rates(cases: dict[str, Callable[[], object]], repeats: int, rounds: int) -> dict[str, float]:
    """Median requests per CPU second of each case; rounds alternate between the cases."""
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, work in cases.items():
            start = time.process_time()
            for _ in range(repeats):
                work()
            samples[name].append(repeats / (time.process_time() - start))
    return {name: statistics.median(values) for name, values in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--requests", type=int, default=50)
    args = parser.parse_args()

    out = sys.stdout
    # The handler's log lines and EMF go nowhere (its logger keeps the stdout it finds at import).
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115
    # Import as Lambda does: ingester.app freezes the GC's view of its import-time objects only
    # when it owns the process (AWS_LAMBDA_FUNCTION_NAME set), which this benchmark emulates.
    os.environ.setdefault("AWS_LAMBDA_FUNCTION_NAME", "telemetry-signals-ingester")
    from ingester.app import build_handler  # noqa: PLC0415

    events = typical_events(EVENTS_PER_REQUEST)
    body = orjson.dumps(events).decode()
    body_bytes = body.encode()
    handler = build_handler({"TELEMETRY_STREAM_NAME": "t", "OTLP_STREAM_NAME": "o"}, sink=NullSink())
    context = Context()
    event = api_event(body)
    response = handler(api_event(body), context)
    assert response["statusCode"] == 200, response

    def floor() -> None:
        orjson.dumps(orjson.loads(body_bytes))

    def through_handler() -> None:
        event["requestContext"]["requestTimeEpoch"] = int(time.time() * 1000)
        handler(event, context)

    measured = rates({"floor": floor, "handler": through_handler}, args.requests, args.rounds)
    floor_rate, handler_rate = measured["floor"], measured["handler"]
    print(f"{EVENTS_PER_REQUEST} events per request, {len(body_bytes) / EVENTS_PER_REQUEST:.0f} B per event, "
          f"median of {args.rounds} rounds x {args.requests} requests, per CPU second", file=out)
    print(f"  floor: orjson loads + dumps   {floor_rate:8.0f} req/s  "
          f"{floor_rate * EVENTS_PER_REQUEST:10.0f} events/s", file=out)
    print(f"  ingester handler (null sink)  {handler_rate:8.0f} req/s  "
          f"{handler_rate * EVENTS_PER_REQUEST:10.0f} events/s", file=out)
    print(f"  ratio handler / floor         {handler_rate / floor_rate:8.2f}   (target >= 0.5)", file=out)


if __name__ == "__main__":
    main()
