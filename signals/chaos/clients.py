"""Clients that behave like real ones, and the decoding the tap needs to tell the ledger what was sent.

`DeviceClients`: simulated devices (all three types) posting batches to `/v1/telemetry` the way a
careful device SDK does: on 503 it waits `Retry-After` and resends only the events the API lists in
`not_written`; on a lost or timed-out answer it resends the whole batch (the API may well have
written it: duplicates happen); on 429/502/504 it backs off and resends; it gives up after
MAX_ATTEMPTS. About 3% of events are bad (the parser quarantines some, the ingester rejects
unknown device types), and some batches arrive late (5% hours back, 1% days back, as a device that
was offline replays its buffer), so partitions other than the current hour keep appearing.

`OtelLogsApp`: an application logging through the real OpenTelemetry SDK (BatchLogRecordProcessor,
OTLP/HTTP protobuf, gzip), each record carrying a `chaos.id` attribute. The SDK retries 503 (with
Retry-After) and connection errors by itself.
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
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from urllib.parse import urlsplit

from shared.schema import DeviceType
from signals.chaos.ledger import QUARANTINE, REJECT, ROW, Ledger, event_key_of
from signals.local.simulate import device_event, encode_batch, rfc3339_ms

MAX_ATTEMPTS: Final = 8
CLIENT_TIMEOUT_S: Final = 5.0
BAD_SHARE: Final = 0.03
#: Batches sent late, whole (a device replaying what it buffered while offline): hours late, inside the
#: reconciler's 6 h look-back, or days late (the parser accepts 30 days back).
LATE_SHARE: Final = 0.05
LATE_HOURS: Final = (1, 5)
VERY_LATE_SHARE: Final = 0.01
VERY_LATE_DAYS: Final = (1, 20)
OTLP_SHARE: Final = 0.1  # of --rate, the rest are device events
CHAOS_ID_ATTRIBUTE: Final = "chaos.id"
OTLP_KIND: Final = "otlp_logs"


@dataclass
class ClientStats:
    batches: int = 0
    attempts: int = 0
    resends_after_503: int = 0
    resends_after_no_answer: int = 0
    resends_after_other: int = 0
    gave_up: int = 0
    statuses: Counter[int] = field(default_factory=Counter)


def make_event(device_type: DeviceType, device_id: str, rng: random.Random,
               now: datetime) -> tuple[dict[str, Any], str]:
    """One event and its predicted fate (ROW, QUARANTINE or REJECT); it always has an event_id."""
    event = device_event(device_type, device_id, rng, now)
    if rng.random() < BAD_SHARE:
        kind = rng.choice(("invalid_value", "missing_field", "event_time_out_of_range", "unknown_device_type"))
        if kind == "invalid_value":
            if "battery_pct" in event:
                event["battery_pct"] = 140
            else:
                event["cpu_pct"] = 180.5
        elif kind == "missing_field":
            event.pop(rng.choice(("event_name", "event_time")))
        elif kind == "event_time_out_of_range":
            event["event_time"] = rfc3339_ms(now - timedelta(days=rng.randint(45, 400)))
        elif rng.random() < 0.5:
            event["device_type"] = "thermostat"  # well formed, unknown: parked by the ingester, then quarantined
        else:
            event["device_type"] = "Thermostat"  # not a well-formed type name: rejected by the ingester
            return event, REJECT
        return event, QUARANTINE
    return event, ROW


def batch_time(rng: random.Random, now: datetime) -> datetime:
    """When a batch's events happened: now, or hours or days back for a device that was offline."""
    roll = rng.random()
    if roll < VERY_LATE_SHARE:
        return now - timedelta(days=rng.randint(*VERY_LATE_DAYS), hours=rng.randint(0, 23))
    if roll < VERY_LATE_SHARE + LATE_SHARE:
        return now - timedelta(hours=rng.randint(*LATE_HOURS), minutes=rng.randint(5, 55))
    return now


class DeviceClients:
    def __init__(self, api_url: str, api_key: str, ledger: Ledger, *, rate: float, seed: int,
                 workers: int | None = None, devices: int = 60) -> None:
        self.api = urlsplit(api_url)
        self.api_key = api_key
        self.ledger = ledger
        self.rate = rate
        self.seed = seed
        # One connection per 25 events/s asked for (at least 6): a connection waits for each answer.
        self.workers = workers or max(6, round(rate / 25))
        types = list(DeviceType)
        self.devices = [(types[i % len(types)], f"chaos-{types[i % len(types)].value}-{i:04d}") for i in range(devices)]
        self.stats = ClientStats()
        self._stats_lock = threading.Lock()
        self._stop = threading.Event()

    def run(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        threads = [threading.Thread(target=self._worker, args=(n, deadline), name=f"chaos-device-{n}", daemon=True)
                   for n in range(self.workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def stop(self) -> None:
        self._stop.set()

    def _count(self, **changes: int) -> None:
        with self._stats_lock:
            for name, value in changes.items():
                setattr(self.stats, name, getattr(self.stats, name) + value)

    def _worker(self, number: int, deadline: float) -> None:
        rng = random.Random(self.seed * 1000 + number)
        mine = self.devices[number :: self.workers]
        per_worker = max(0.1, self.rate * (1 - OTLP_SHARE) / self.workers)  # events per second
        connection = self._connect()
        sent_events = 0
        started = time.monotonic()
        try:
            while time.monotonic() < deadline and not self._stop.is_set():
                device_type, device_id = rng.choice(mine)
                now = batch_time(rng, datetime.now(UTC))
                made = [make_event(device_type, device_id, rng, now) for _ in range(rng.randint(5, 15))]
                for event, fate in made:
                    self.ledger.predicted(event_key_of(event), device_type.value, fate)
                connection = self.deliver(connection, [e for e, _ in made], rng)
                sent_events += len(made)
                ahead = sent_events / per_worker - (time.monotonic() - started)
                if ahead > 0:
                    self._stop.wait(min(ahead, 2.0))
        finally:
            connection.close()

    def _connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.api.hostname or "127.0.0.1", self.api.port, timeout=CLIENT_TIMEOUT_S)

    def deliver(self, connection: http.client.HTTPConnection, events: list[dict[str, Any]],
                rng: random.Random) -> http.client.HTTPConnection:
        """Post one batch until the API has answered for every event (or MAX_ATTEMPTS); returns the connection."""
        self._count(batches=1)
        pending = list(range(len(events)))
        style, gzipped = rng.randrange(3), rng.random() < 0.3
        for attempt in range(1, MAX_ATTEMPTS + 1):
            body, headers = encode_batch([events[i] for i in pending], style, gzipped)
            headers["x-api-key"] = self.api_key
            self._count(attempts=1)
            try:
                connection.request("POST", "/v1/telemetry", body=body, headers=headers)
                response = connection.getresponse()
                data = response.read()
            except (OSError, http.client.HTTPException):
                # No answer (dropped or timed out): the API may have written the batch; send it all again.
                connection.close()
                connection = self._connect()
                self._count(resends_after_no_answer=1)
                time.sleep(min(2.0, 0.1 * 2**attempt) * rng.random())
                continue
            with self._stats_lock:
                self.stats.statuses[response.status] += 1
            if response.status == 503:
                reply = _json_or_empty(data)
                not_written = reply.get("not_written")
                if isinstance(not_written, list) and not_written:
                    pending = [pending[i] for i in not_written if isinstance(i, int) and 0 <= i < len(pending)]
                self._count(resends_after_503=1)
                time.sleep(_retry_after(response.getheader("Retry-After"), attempt))
                continue
            if response.status in (429, 502, 504):
                self._count(resends_after_other=1)
                time.sleep(_retry_after(response.getheader("Retry-After"), attempt))
                continue
            return connection  # 200, or a definite 4xx about the data
        self._count(gave_up=1)
        return connection


def _retry_after(header: str | None, attempt: int) -> float:
    backoff: float = min(4.0, 0.2 * 2.0**attempt)
    if header is None:
        return backoff
    try:
        return min(10.0, max(0.0, float(header)))
    except ValueError:
        return backoff


def _json_or_empty(data: bytes) -> dict[str, Any]:
    try:
        parsed = json.loads(data) if data else {}
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


class OtelLogsApp:
    SERVICE: Final = "chaos-checkout"

    def __init__(self, api_url: str, api_key: str, ledger: Ledger, *, rate: float, seed: int) -> None:
        from opentelemetry.exporter.otlp.proto.http import Compression  # noqa: PLC0415 (the SDK loads late)
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter  # noqa: PLC0415
        from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler  # noqa: PLC0415
        from opentelemetry.sdk._logs.export import BatchLogRecordProcessor  # noqa: PLC0415
        from opentelemetry.sdk.resources import Resource  # noqa: PLC0415

        resource = Resource.create({"service.name": self.SERVICE, "service.version": "2.0.0"})
        self.provider = LoggerProvider(resource=resource)
        # 20 s per export (the SDK's default is 10 s): room for a few Retry-After waits through an outage.
        exporter = OTLPLogExporter(endpoint=f"{api_url}/v1/logs", headers={"x-api-key": api_key},
                                   compression=Compression.Gzip, timeout=20)
        self.provider.add_log_record_processor(
            BatchLogRecordProcessor(exporter, schedule_delay_millis=500, max_queue_size=20_000)
        )
        self.logger = logging.getLogger(f"chaos.checkout.{uuid.uuid4().hex[:6]}")
        self.logger.setLevel(logging.INFO)
        self.logger.propagate = False
        self.logger.addHandler(LoggingHandler(level=logging.INFO, logger_provider=self.provider))
        self.ledger = ledger
        self.rate = max(0.5, rate * OTLP_SHARE)
        self.rng = random.Random(seed)
        self.emitted = 0
        self._stop = threading.Event()

    def run(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        started = time.monotonic()
        while time.monotonic() < deadline and not self._stop.is_set():
            chaos_id = str(uuid.UUID(int=self.rng.getrandbits(128)))
            self.ledger.predicted(chaos_id, OTLP_KIND, ROW)
            self.logger.info("order placed", extra={CHAOS_ID_ATTRIBUTE: chaos_id,
                                                     "order.id": f"ord-{self.rng.randint(10000, 99999)}"})
            self.emitted += 1
            ahead = self.emitted / self.rate - (time.monotonic() - started)
            if ahead > 0:
                self._stop.wait(ahead)

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        self.provider.force_flush(60_000)
        self.provider.shutdown()


# --- what the tap reads out of each exchange ------------------------------------------------------


def _inflate(body: bytes, encoding: str | None) -> bytes:
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        return zlib.decompress(body)
    return body


def telemetry_ids(body: bytes, headers: dict[str, str]) -> list[str | None]:
    """The ledger id, (device_id, event_id), of each event of a /v1/telemetry body, by position (None:
    no event_id, not an object)."""
    data = _inflate(body, headers.get("content-encoding"))
    if headers.get("content-type", "").startswith("application/x-ndjson"):
        items: list[Any] = [json.loads(line) for line in data.splitlines() if line.strip()]
    else:
        parsed = json.loads(data)
        items = parsed["events"] if isinstance(parsed, dict) else parsed
    return [event_key_of(item) if isinstance(item, dict) and "event_id" in item else None for item in items]


def otlp_ids(body: bytes, headers: dict[str, str]) -> list[str]:
    """The chaos.id attribute of each log record of an OTLP/HTTP protobuf request."""
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest  # noqa: PLC0415

    request = ExportLogsServiceRequest()
    request.ParseFromString(_inflate(body, headers.get("content-encoding")))
    found: list[str] = []
    for resource_logs in request.resource_logs:
        for scope_logs in resource_logs.scope_logs:
            for record in scope_logs.log_records:
                for attribute in record.attributes:
                    if attribute.key == CHAOS_ID_ATTRIBUTE:
                        found.append(attribute.value.string_value)
    return found


def answered(path: str, request_body: bytes, request_headers: dict[str, str], status: int,
             response_body: bytes) -> tuple[str, list[str], list[str], dict[str, str]]:
    """(route, ids sent, ids the API wrote, ids it rejected -> reason) for one exchange."""
    route = "logs" if path.rstrip("/").endswith("/v1/logs") else "telemetry"
    if route == "logs":
        ids = otlp_ids(request_body, request_headers)
        return route, ids, (ids if status == 200 else []), {}
    positions = telemetry_ids(request_body, request_headers)
    ids = [i for i in positions if i is not None]
    reply = _json_or_empty(response_body)
    rejected_positions = {int(r["index"]): str(r["reason"]) for r in reply.get("rejected", []) if isinstance(r, dict)}
    rejected = {positions[p]: reason for p, reason in rejected_positions.items()
                if 0 <= p < len(positions) and positions[p] is not None}
    written: set[int] = set()
    if status == 200:
        written = set(range(len(positions))) - set(rejected_positions)
    elif status == 503 and isinstance(reply.get("not_written"), list):
        written = set(range(len(positions))) - set(rejected_positions) - set(reply["not_written"])
    accepted = [p_id for p, p_id in enumerate(positions) if p in written and p_id is not None]
    return route, ids, accepted, {k: v for k, v in rejected.items() if k is not None}


def iter_chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
