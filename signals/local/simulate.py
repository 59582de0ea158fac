"""Traffic for the demo and the end-to-end tests: simulated devices over HTTP and an app logging via OTel.

Devices send batches the way the ingest API takes them (JSON array, `{"events": [...]}`, NDJSON,
some gzipped), with a realistic share of bad records: some the parser quarantines (out-of-range
values, missing fields, event times outside the accepted window), some of a device type the schema
does not know yet (`thermostat`: the ingester parks them, accepted into raw and listed in `parked`,
and the parser quarantines them as `unknown_device_type` until `signals redrive quarantine` replays
them), and some the ingester rejects outright (a malformed device type such as `Lock`, not an
object). Every event's fate is predicted, so a run can be checked: rows per table = accepted good
events, quarantine per reason = accepted bad ones (parked ones included).
"""

from __future__ import annotations

import gzip
import http.client
import json
import logging
import random
import threading
import time
import uuid
from collections import Counter
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from urllib.parse import urlsplit

from shared.schema import DeviceType, Reason

#: Share of events made bad on purpose, and which way.
BAD_SHARE: Final = 0.05
_BAD_KINDS: Final = (
    (Reason.INVALID_VALUE.value, 0.4),
    (Reason.MISSING_FIELD.value, 0.2),
    (Reason.EVENT_TIME_OUT_OF_RANGE.value, 0.15),
    ("parked:" + Reason.UNKNOWN_DEVICE_TYPE.value, 0.1),  # a new type: accepted, quarantined, replayable
    ("ingester:" + Reason.UNKNOWN_DEVICE_TYPE.value, 0.05),  # a malformed type: rejected
    ("ingester:" + Reason.NOT_AN_OBJECT.value, 0.1),
)
#: The device type the parked events carry (well formed, unknown to shared.schema).
NEW_DEVICE_TYPE: Final = "thermostat"
_EVENT_NAMES: Final = {
    DeviceType.LOCK: ("bolt_changed", "door_changed", "battery_report", "keypad_entry"),
    DeviceType.BRIDGE: ("heartbeat", "wifi_report", "device_paired"),
    DeviceType.VIDEO_DOORBELL: ("motion", "ring", "stream_ended", "battery_report"),
}


def rfc3339_ms(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def encode_batch(events: list[Any], style: int, gzipped: bool) -> tuple[bytes, dict[str, str]]:
    """A device batch in one of the body forms the API takes: 0 JSON array, 1 `{"events": [...]}`, 2 NDJSON."""
    if style == 0:
        body, content_type = json.dumps(events).encode(), "application/json"
    elif style == 1:
        body, content_type = json.dumps({"events": events}).encode(), "application/json"
    else:
        body, content_type = "".join(json.dumps(e) + "\n" for e in events).encode(), "application/x-ndjson"
    headers = {"content-type": content_type}
    if gzipped:
        body, headers["content-encoding"] = gzip.compress(body), "gzip"
    return body, headers


@dataclass
class Tally:
    """What was sent and what each accepted event should become."""

    requests: int = 0
    events_sent: int = 0
    accepted: int = 0
    rejected: Counter[str] = field(default_factory=Counter)  # by the ingester, per reason
    parked: Counter[str] = field(default_factory=Counter)  # accepted with an unknown device type, per reason
    expected_rows: Counter[str] = field(default_factory=Counter)  # per device type, every copy
    expected_distinct: Counter[str] = field(default_factory=Counter)  # per device type, each event once
    retried_requests: int = 0  # requests POSTed a second time on purpose (a client retrying)
    retried_rows: int = 0  # good events among them: a second verified copy each, one compacted row
    expected_quarantine: Counter[str] = field(default_factory=Counter)  # per reason
    http_errors: Counter[int] = field(default_factory=Counter)
    first_post: float | None = None
    last_post: float | None = None
    logs_emitted: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


def device_event(device_type: DeviceType, device_id: str, rng: random.Random, now: datetime) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event_id": str(uuid.UUID(int=rng.getrandbits(128))),
        "device_id": device_id,
        "device_type": device_type.value,
        "event_name": rng.choice(_EVENT_NAMES.get(device_type, ("reading",))),  # a type added since
        "event_time": rfc3339_ms(now - timedelta(milliseconds=rng.randint(0, 3000))),
        "firmware_version": rng.choice(("2.4.1", "2.5.0", "3.0.0-beta")),
        "schema_version": 1,
        "attributes": {
            "home_id": f"home-{rng.randint(1, 40):03d}", "app_version": "5.2.0", "zigbee": rng.random() < 0.5,
        },
    }
    if device_type is DeviceType.LOCK:
        event |= {
            "battery_pct": rng.randint(5, 100),
            "bolt_state": rng.choice(("locked", "unlocked", "locked", "jammed")),
            "door_state": rng.choice(("open", "closed", "closed", "ajar")),
            "operation_source": rng.choice(("manual", "app", "keypad", "auto_lock", "voice")),
            "rssi_dbm": rng.randint(-95, -40),
            "temperature_c": round(rng.uniform(12.0, 34.0), 1),
        }
    elif device_type is DeviceType.BRIDGE:
        event |= {
            "wifi_rssi_dbm": rng.randint(-85, -30),
            "uptime_s": rng.randint(60, 3_000_000),
            "connected_devices": rng.randint(1, 12),
            "cpu_pct": round(rng.uniform(1.0, 95.0), 1),
            "mem_free_kb": rng.randint(2_000, 60_000),
            "network_type": rng.choice(("wifi", "wifi", "ethernet")),
        }
    else:
        event |= {
            "battery_pct": rng.randint(5, 100),
            "wifi_rssi_dbm": rng.randint(-85, -30),
            "motion_detected": rng.random() < 0.4,
            "button_pressed": rng.random() < 0.1,
            "stream_duration_s": round(rng.uniform(0.0, 120.0), 2),
            "video_bitrate_kbps": rng.randint(300, 4000),
            "night_mode": rng.random() < 0.3,
        }
    if rng.random() < 0.05:
        event["beta_feature_flags"] = "fast-unlock"  # unknown field: kept in `extra`
    return event


def spoil(event: dict[str, Any], kind: str, rng: random.Random, now: datetime) -> Any:
    """Make a good event bad in the given way."""
    if kind == Reason.INVALID_VALUE.value:
        if "battery_pct" in event:
            event["battery_pct"] = rng.choice((140, -3))
        else:
            event["cpu_pct"] = 180.5
        return event
    if kind == Reason.MISSING_FIELD.value:
        event.pop(rng.choice(("event_id", "event_name", "event_time")))
        return event
    if kind == Reason.EVENT_TIME_OUT_OF_RANGE.value:
        event["event_time"] = rfc3339_ms(now - timedelta(days=rng.randint(45, 400)))
        return event
    if kind == "parked:" + Reason.UNKNOWN_DEVICE_TYPE.value:
        event["device_type"] = NEW_DEVICE_TYPE
        return event
    if kind.endswith(Reason.UNKNOWN_DEVICE_TYPE.value):
        event["device_type"] = event["device_type"].capitalize()  # `Lock`: not a well-formed type name
        return event
    return rng.choice((42, "not an event", [1, 2]))  # not a JSON object


class DeviceFleet:
    """N devices of all three types, sending a batch each second over HTTP for `seconds`."""

    def __init__(self, api_url: str, api_key: str, devices: int, tally: Tally, *, seed: int = 7,
                 batch: tuple[int, int] = (5, 15), period: float = 1.0, bad_share: float = BAD_SHARE,
                 id_prefix: str = "", retry_share: float = 0.0) -> None:
        types = list(DeviceType)
        self.devices = [(types[i % len(types)], f"{id_prefix}{types[i % len(types)].value}-{i:04d}")
                        for i in range(devices)]
        self.api = urlsplit(api_url)
        self.api_key = api_key
        self.tally = tally
        self.seed = seed
        self.batch = batch
        self.period = period
        self.bad_share = bad_share
        self.retry_share = retry_share  # share of requests sent twice, as a client retrying after a timeout

    def run(self, seconds: float, workers: int = 4) -> None:
        deadline = time.monotonic() + seconds
        groups = [self.devices[i::workers] for i in range(min(workers, len(self.devices)))]
        threads = [threading.Thread(target=self._worker, args=(group, deadline, self.seed + i), daemon=True)
                   for i, group in enumerate(groups)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def _worker(self, devices: list[tuple[DeviceType, str]], deadline: float, seed: int) -> None:
        rng = random.Random(seed)
        connection = http.client.HTTPConnection(self.api.hostname or "127.0.0.1", self.api.port, timeout=60)
        round_number = 0
        try:
            while time.monotonic() < deadline:
                started = time.monotonic()
                for device_type, device_id in devices:
                    self.send_batch(connection, device_type, device_id, rng, round_number)
                round_number += 1
                time.sleep(max(0.0, self.period - (time.monotonic() - started)))
        finally:
            connection.close()

    def send_batch(self, connection: http.client.HTTPConnection, device_type: DeviceType, device_id: str,
                   rng: random.Random, round_number: int) -> None:
        now = datetime.now(UTC)
        events: list[Any] = []
        # ("row", type) | ("quarantine", reason) | ("park", reason) | ("reject", reason)
        fates: list[tuple[str, str]] = []
        for _ in range(rng.randint(*self.batch)):
            event = device_event(device_type, device_id, rng, now)
            if rng.random() < self.bad_share:
                kind = rng.choices([k for k, _ in _BAD_KINDS], weights=[w for _, w in _BAD_KINDS])[0]
                events.append(spoil(event, kind, rng, now))
                if kind.startswith(("ingester:", "parked:")):
                    where, reason = kind.split(":", 1)
                    fates.append(("reject" if where == "ingester" else "park", reason))
                else:
                    fates.append(("quarantine", kind))
            else:
                events.append(event)
                fates.append(("row", device_type.value))
        body, headers = encode_batch(events, round_number % 3, gzipped=rng.random() < 0.3)
        headers.update({"x-api-key": self.api_key, "user-agent": f"demo-device/{device_id}"})
        retry = rng.random() < self.retry_share
        for copy in (1, 2) if retry else (1,):
            status, reply = post(connection, "/v1/telemetry", body, headers)
            if not self._count(status, reply, events, fates, retried=copy == 2) and copy == 1:
                return  # the first copy failed: nothing to retry on purpose

    def _count(self, status: int, reply: dict[str, Any], events: list[Any], fates: list[tuple[str, str]], *,
               retried: bool) -> bool:
        with self.tally.lock:
            self.tally.requests += 1
            self.tally.events_sent += len(events)
            self.tally.first_post = self.tally.first_post or time.monotonic()
            self.tally.last_post = time.monotonic()
            if status != 200:
                self.tally.http_errors[status] += 1
                return False
            rejected = {int(r["index"]): str(r["reason"]) for r in reply.get("rejected", [])}
            parked = {int(r["index"]): str(r["reason"]) for r in reply.get("parked", [])}
            self.tally.accepted += int(reply.get("accepted", 0))
            self.tally.retried_requests += retried
            for index, (fate, what) in enumerate(fates):
                if index in rejected:
                    self.tally.rejected[rejected[index]] += 1
                elif index in parked:  # in raw: the parser quarantines it until the schema knows its type
                    self.tally.parked[parked[index]] += 1
                    self.tally.expected_quarantine[parked[index]] += 1
                elif fate == "row":
                    self.tally.expected_rows[what] += 1
                    if retried:
                        self.tally.retried_rows += 1
                    else:
                        self.tally.expected_distinct[what] += 1
                elif fate == "quarantine":
                    self.tally.expected_quarantine[what] += 1
                else:  # predicted a reject or a park that did not happen: the parser must judge it
                    self.tally.expected_quarantine[what] += 1
            return True


def post(connection: http.client.HTTPConnection, path: str, body: bytes,
         headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    for attempt in range(3):
        try:
            connection.request("POST", path, body=body, headers=headers)
            response = connection.getresponse()
            data = response.read()
            try:
                parsed = json.loads(data) if data else {}
            except ValueError:
                parsed = {}
            return response.status, parsed if isinstance(parsed, dict) else {}
        except (ConnectionError, http.client.HTTPException):
            connection.close()
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


class OtelApp:
    """An application logging through the real OpenTelemetry SDK: OTLP/HTTP, gzip, batch processor."""

    SERVICE: Final = "demo-checkout"

    def __init__(self, api_url: str, api_key: str, tally: Tally, *, seed: int = 11) -> None:
        from opentelemetry.exporter.otlp.proto.http import Compression  # noqa: PLC0415 (SDK only for the demo)
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter  # noqa: PLC0415
        from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler  # noqa: PLC0415
        from opentelemetry.sdk._logs.export import BatchLogRecordProcessor  # noqa: PLC0415
        from opentelemetry.sdk.resources import Resource  # noqa: PLC0415
        from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415

        resource = Resource.create({"service.name": self.SERVICE, "service.version": "1.8.2",
                                    "deployment.environment": "local"})
        self.provider = LoggerProvider(resource=resource)
        exporter = OTLPLogExporter(endpoint=f"{api_url}/v1/logs", headers={"x-api-key": api_key},
                                   compression=Compression.Gzip)
        self.provider.add_log_record_processor(BatchLogRecordProcessor(exporter, schedule_delay_millis=500))
        self.tracer = TracerProvider(resource=resource).get_tracer("demo.checkout")
        self.logger = logging.getLogger(f"demo.checkout.{uuid.uuid4().hex[:6]}")
        self.logger.setLevel(logging.DEBUG)
        self.logger.propagate = False
        self.logger.addHandler(LoggingHandler(level=logging.DEBUG, logger_provider=self.provider))
        self.tally = tally
        self.rng = random.Random(seed)

    def emit_one(self) -> None:
        rng = self.rng
        order = f"ord-{rng.randint(10000, 99999)}"
        with self.tracer.start_as_current_span("checkout") if rng.random() < 0.6 else nullcontext():
            roll = rng.random()
            if roll < 0.55:
                self.logger.info("order placed", extra={"order.id": order, "amount": round(rng.uniform(5, 300), 2)})
            elif roll < 0.75:
                self.logger.debug("cart recalculated", extra={"order.id": order, "items": rng.randint(1, 9)})
            elif roll < 0.9:
                self.logger.warning("payment retry", extra={"order.id": order, "attempt": rng.randint(2, 4)})
            else:
                try:
                    raise TimeoutError("card processor timed out")
                except TimeoutError:
                    self.logger.exception("payment failed", extra={"order.id": order})
        with self.tally.lock:
            self.tally.logs_emitted += 1

    def run(self, seconds: float, per_second: float = 20.0) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.emit_one()
            time.sleep(1.0 / per_second)

    def close(self) -> None:
        self.provider.force_flush()
        self.provider.shutdown()
