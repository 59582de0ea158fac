"""Generated raw telemetry for the parser benchmarks and slow tests (deterministic for a seed).

`write_raw(path, target_bytes, bad_fraction)` writes a gzip JSONL file of mixed device events as
Firehose lands them (one event per line, `received_at` stamped by the ingester). Bad lines are
spread evenly (every `1 / bad_fraction`-th line) and cycle through every quarantine reason.
"""

from __future__ import annotations

import gzip
import random
import time
from pathlib import Path
from typing import Any

import orjson

BASE_MS = 1_795_000_000_000  # 2026-11-17, a fixed moment so runs are comparable

_FIRMWARE = ("1.4.2", "1.5.0", "2.0.1-beta", "2.1.0")
_EVENTS = {
    "lock": ("bolt_changed", "door_changed", "battery_report", "tamper"),
    "bridge": ("heartbeat", "network_changed", "reboot"),
    "video_doorbell": ("motion", "ring", "stream_ended", "battery_report"),
}
_BAD_LINES: tuple[bytes, ...] = (
    b'{"event_id": "e-bad", "device_id": "d-1", "device_type": "lock", "event_name": "x", ',  # invalid_json
    b'["not", "an", "object"]',  # not_an_object
    b'{"event_id":"e-1","device_id":"d-1","device_type":"toaster","event_name":"x",'
    b'"event_time":"2026-11-17T08:00:00Z"}',  # unknown_device_type
    b'{"event_id":"e-2","device_type":"lock","event_name":"x","event_time":"2026-11-17T08:00:00Z"}',  # missing
    b'{"event_id":"e-3","device_id":"d-1","device_type":"lock","event_name":"x",'
    b'"event_time":"2026-11-17T08:00:00Z","battery_pct":187}',  # invalid_value (range)
    b'{"event_id":"e-4","device_id":"d-1","device_type":"bridge","event_name":"x",'
    b'"event_time":"2026-11-17T08:00:00Z","uptime_s":"12"}',  # invalid_value (type)
    b'{"event_id":"e-5","device_id":"d-1","device_type":"lock","event_name":"x",'
    b'"event_time":"2025-01-01T00:00:00Z","received_at":"2026-11-17T08:00:00.000Z"}',  # out of range
)


def _event(rng: random.Random, index: int) -> dict[str, Any]:
    device_type = rng.choice(("lock", "lock", "bridge", "video_doorbell"))
    received_ms = BASE_MS + index * 7
    event_ms = received_ms - rng.randint(0, 90_000)
    event: dict[str, Any] = {
        "event_id": f"evt-{index:010d}-{rng.getrandbits(32):08x}",
        "device_id": f"{device_type[:2]}-{rng.randint(1, 50_000):06d}",
        "device_type": device_type,
        "event_name": rng.choice(_EVENTS[device_type]),
        "event_time": _rfc3339(event_ms),
        "received_at": _rfc3339(received_ms),
        "firmware_version": rng.choice(_FIRMWARE),
        "schema_version": 1,
        "attributes": {"region": rng.choice(("us-west", "eu-central")), "retry": rng.randint(0, 3),
                       "home_id": f"h-{rng.randint(1, 9999)}", "beta": rng.random() < 0.1},
    }
    if device_type == "lock":
        event.update(battery_pct=rng.randint(0, 100), bolt_state=rng.choice(("locked", "unlocked")),
                     door_state=rng.choice(("open", "closed")), operation_source=rng.choice(("app", "keypad")),
                     rssi_dbm=rng.randint(-100, -30), temperature_c=round(rng.uniform(-10, 40), 2))
    elif device_type == "bridge":
        event.update(wifi_rssi_dbm=rng.randint(-90, -20), uptime_s=rng.randint(0, 10_000_000),
                     connected_devices=rng.randint(0, 40), cpu_pct=round(rng.uniform(0, 100), 1),
                     mem_free_kb=rng.randint(1000, 500_000), network_type=rng.choice(("wifi", "ethernet")))
    else:
        event.update(battery_pct=rng.randint(0, 100), wifi_rssi_dbm=rng.randint(-90, -20),
                     motion_detected=rng.random() < 0.5, button_pressed=rng.random() < 0.1,
                     stream_duration_s=round(rng.uniform(0, 600), 1), video_bitrate_kbps=rng.randint(200, 4000),
                     night_mode=rng.random() < 0.3)
    if rng.random() < 0.02:  # a newer firmware's field the schema does not know yet
        event["sensor_rev"] = rng.choice(("a", "b"))
    return event


def _rfc3339(epoch_ms: int) -> str:
    seconds, millis = divmod(epoch_ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


def lines(count: int, bad_fraction: float = 0.0, seed: int = 7) -> list[bytes]:
    rng = random.Random(seed)
    every = round(1 / bad_fraction) if bad_fraction else 0
    out: list[bytes] = []
    for index in range(count):
        if every and index % every == every - 1:
            out.append(_BAD_LINES[(index // every) % len(_BAD_LINES)])
        else:
            out.append(orjson.dumps(_event(rng, index)))
    return out


def write_raw(path: Path, target_bytes: int, bad_fraction: float = 0.0, seed: int = 7) -> int:
    """Write about `target_bytes` of uncompressed JSONL, gzipped; returns the uncompressed size."""
    sample = lines(2000, bad_fraction, seed)
    per_line = sum(len(line) + 1 for line in sample) / len(sample)
    count = int(target_bytes / per_line)
    written = 0
    with gzip.open(path, "wb", compresslevel=6) as out:
        chunk = 50_000
        for start in range(0, count, chunk):
            block = lines(min(chunk, count - start), bad_fraction, seed + start)
            data = b"\n".join(block) + b"\n"
            written += len(data)
            out.write(data)
    return written
