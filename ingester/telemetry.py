"""Device telemetry bodies to raw lines: split, structural checks, `received_at` stamp.

The ingester rejects only what is structurally unusable: not a JSON object, `device_type` missing
or unknown, or an event too large for one Firehose record. Everything else goes to raw unchanged
(plus `received_at`), and the parser judges it fully.

Indices count events as sent: positions in a JSON array (or `{"events": [...]}`), or non-blank
lines in NDJSON, from 0. A malformed NDJSON line is a reject of that line, not of the body.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from shared.schema import DeviceType, Reason

JSON_TYPES: Final = frozenset({"application/json", "text/json"})
NDJSON_TYPES: Final = frozenset(
    {"application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines"}
)
MEDIA_TYPES: Final = JSON_TYPES | NDJSON_TYPES

_DEVICE_TYPES: Final = frozenset(t.value for t in DeviceType)
_BOM: Final = b"\xef\xbb\xbf"
_NOT_ONE_VALUE: Final = object()


@dataclass(frozen=True)
class Rejected:
    index: int
    reason: str


@dataclass
class TelemetryBatch:
    """Raw lines ready for Firehose (no trailing newline) and what became of every event sent."""

    lines: list[bytes] = field(default_factory=list)
    indices: list[int] = field(default_factory=list)  # event index of each line
    rejected: list[Rejected] = field(default_factory=list)
    events_seen: int = 0
    json_values: int = 0  # events that were at least valid JSON

    @property
    def accepted(self) -> int:
        return len(self.lines)

    def rejected_by_reason(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for item in self.rejected:
            counts[item.reason] = counts.get(item.reason, 0) + 1
        return counts


def split_events(body: bytes, media: str, received_at: str, max_line_bytes: int) -> TelemetryBatch:
    """Parse a JSON or NDJSON body; `max_line_bytes` is the largest serialized event a record holds."""
    if body.startswith(_BOM):
        body = body[len(_BOM):]
    batch = TelemetryBatch()
    stamp = received_at
    if media in JSON_TYPES:
        document = _one_value(body)
        if document is not _NOT_ONE_VALUE:
            if isinstance(document, list):
                events: list[Any] = document
            elif isinstance(document, dict) and isinstance(document.get("events"), list) \
                    and "device_type" not in document:
                events = document["events"]
            else:
                events = [document]  # a single event: the one-line NDJSON body
            batch.events_seen = batch.json_values = len(events)
            for index, event in enumerate(events):
                _check(batch, index, event, stamp, max_line_bytes)
            return batch
    index = 0
    for raw_line in body.split(b"\n"):
        if not raw_line.strip():
            continue
        try:
            event = orjson.loads(raw_line)
        except orjson.JSONDecodeError:
            batch.rejected.append(Rejected(index, Reason.INVALID_JSON.value))
        else:
            batch.json_values += 1
            _check(batch, index, event, stamp, max_line_bytes)
        index += 1
    batch.events_seen = index
    return batch


def _one_value(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return _NOT_ONE_VALUE


def _check(batch: TelemetryBatch, index: int, event: Any, stamp: str, max_line_bytes: int) -> None:
    if type(event) is not dict:
        batch.rejected.append(Rejected(index, Reason.NOT_AN_OBJECT.value))
        return
    device_type = event.get("device_type")
    if device_type is None:  # null equals absent
        batch.rejected.append(Rejected(index, Reason.MISSING_FIELD.value))
        return
    if not isinstance(device_type, str) or device_type not in _DEVICE_TYPES:
        batch.rejected.append(Rejected(index, Reason.UNKNOWN_DEVICE_TYPE.value))
        return
    event["received_at"] = stamp
    line = orjson.dumps(event)
    if len(line) > max_line_bytes:
        batch.rejected.append(Rejected(index, Reason.RECORD_TOO_LARGE.value))
        return
    batch.lines.append(line)
    batch.indices.append(index)
