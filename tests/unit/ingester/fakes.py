"""Fakes shared by the ingester's unit and integration tests: API Gateway events, context, sinks."""

from __future__ import annotations

import base64
import copy
import gzip
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ingester.firehose import RecordSink, SinkUnavailable

EVENTS_DIR = Path(__file__).resolve().parents[3] / "events"
STREAMS = {"TELEMETRY_STREAM_NAME": "telemetry-stream", "OTLP_STREAM_NAME": "otlp-stream"}


def sample_event(name: str) -> dict[str, Any]:
    """One of the `sam local invoke` events in events/ (a fresh copy)."""
    return copy.deepcopy(json.loads((EVENTS_DIR / f"{name}.json").read_text()))


def api_event(
    path: str,
    body: bytes | str | None,
    content_type: str | None = "application/json",
    *,
    encoding: str | None = None,
    base64_body: bool | None = None,
    request_time_ms: int | None = None,
    method: str = "POST",
) -> dict[str, Any]:
    """A REST (v1) proxy event like API Gateway sends; bytes bodies travel base64 encoded."""
    event = sample_event("ingester_telemetry")
    headers = {k: v for k, v in event["headers"].items() if k.lower() not in ("content-type", "content-encoding")}
    if content_type is not None:
        headers["Content-Type"] = content_type
    if encoding is not None:
        headers["Content-Encoding"] = encoding
    if isinstance(body, bytes) and (base64_body is None or base64_body):
        body_text: str | None = base64.b64encode(body).decode()
        is_base64 = True
    else:
        body_text = body.decode() if isinstance(body, bytes) else body
        is_base64 = bool(base64_body)
    event.update(
        resource=path, path=path, httpMethod=method, headers=headers,
        multiValueHeaders={k: [v] for k, v in headers.items()}, body=body_text, isBase64Encoded=is_base64,
    )
    event["requestContext"].update(
        resourcePath=path, httpMethod=method, path=f"/dev{path}",
        requestTimeEpoch=request_time_ms if request_time_ms is not None else int(time.time() * 1000),
    )
    return event


def response_body(response: dict[str, Any]) -> bytes:
    body = response.get("body") or ""
    return base64.b64decode(body) if response.get("isBase64Encoded") else body.encode()


def response_json(response: dict[str, Any]) -> Any:
    return json.loads(response_body(response))


def header(response: dict[str, Any], name: str) -> str | None:
    for key, values in (response.get("multiValueHeaders") or {}).items():
        if key.lower() == name.lower():
            return str(values[0])
    for key, value in (response.get("headers") or {}).items():
        if key.lower() == name.lower():
            return str(value)
    return None


def gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def device_event(index: int, device_type: str = "lock", **extra: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event_id": f"evt-{index:06d}", "device_id": f"dev-{index % 50:03d}", "device_type": device_type,
        "event_name": "heartbeat", "event_time": "2026-11-25T19:30:00.000Z",
    }
    event.update(extra)
    return event


@dataclass
class FakeContext:
    function_name: str = "ingester"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-west-2:123456789012:function:ingester"
    aws_request_id: str = "0f4f6b1e-7c1d-4a8e-9b21-000000000001"
    remaining_ms: int = 29_000

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


@dataclass
class RecordingSink:
    """Accepts everything and keeps every call; `failures` decides per call which records fail."""

    calls: list[tuple[str, list[bytes]]] = field(default_factory=list)
    failures: Callable[[int, Sequence[bytes]], list[str | None]] | None = None
    unavailable_calls: set[int] = field(default_factory=set)  # call numbers (0-based) that raise
    downstream: RecordSink | None = None  # where written records go too (moto's Firehose)
    written: list[bytes] = field(default_factory=list)  # records reported as written, in order

    def put_record_batch(self, stream_name: str, records: Sequence[bytes]) -> list[str | None]:
        number = len(self.calls)
        self.calls.append((stream_name, list(records)))
        if number in self.unavailable_calls:
            raise SinkUnavailable("ServiceUnavailableException")
        outcome: list[str | None] = self.failures(number, records) if self.failures else [None] * len(records)
        written = [record for record, code in zip(records, outcome, strict=True) if code is None]
        self.written.extend(written)
        if self.downstream is not None and written:
            assert self.downstream.put_record_batch(stream_name, written) == [None] * len(written)
        return outcome


class ManualClock:
    """A monotonic clock the writer's sleeps advance."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
