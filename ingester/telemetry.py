"""Device telemetry bodies to raw lines: split, structural checks, `received_at` stamp.

The ingester rejects only what is structurally unusable: not a JSON object, `device_type` missing
or not a well-formed name (`shared.schema.DEVICE_TYPE_NAME`), or an event too large for one Firehose
record. Everything else goes to raw unchanged (plus `received_at`), and the parser judges it fully.

An event whose `device_type` is well formed but unknown to the schema is *parked*: written to raw like
any accepted event (and counted in `accepted`), and listed in `parked` with the reason
`unknown_device_type`. The parser quarantines it with that reason, and `signals redrive quarantine`
replays it once the schema knows the type: a new device type's first events are not lost.

Indices count events as sent: positions in a JSON array (or `{"events": [...]}`), or non-blank
lines in NDJSON, from 0. A malformed NDJSON line is a reject of that line, not of the body.

A bad event costs only itself (never a 5xx for data):
- an event nested more than `shared.jsondepth.MAX_DEPTH` levels is rejected as `too_deep`, whether
  orjson could still read it (it cannot write it back) or not even read it (over 1,024 levels: the
  body is then split into its events by `ingester.rawjson` and each is judged on its own);
- raw keeps every value as sent: a body with a number orjson might not give back exactly (16 or
  more significant digits: an integer beyond 64 bits, a decimal a double cannot hold) is split the
  same way, and each event's raw line is its own text (whitespace outside strings removed) with
  `received_at` spliced in, instead of a re-serialization (see `ingester.rawjson` for the limits).
"""

from __future__ import annotations

import operator
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any, Final

import orjson

from ingester import rawjson
from shared.jsondepth import too_deep
from shared.schema import DEVICE_TYPE_NAME, DeviceType, Reason

JSON_TYPES: Final = frozenset({"application/json", "text/json"})
NDJSON_TYPES: Final = frozenset(
    {"application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines"}
)
MEDIA_TYPES: Final = JSON_TYPES | NDJSON_TYPES

_DEVICE_TYPES: Final = frozenset(t.value for t in DeviceType)
_BOM: Final = b"\xef\xbb\xbf"
_JSON_SPACE: Final = b" \t\r"
_NOT_ONE_VALUE: Final = object()
_NOT_AN_OBJECT: Final = Reason.NOT_AN_OBJECT.value
_MISSING_FIELD: Final = Reason.MISSING_FIELD.value
_UNKNOWN_DEVICE_TYPE: Final = Reason.UNKNOWN_DEVICE_TYPE.value
_RECORD_TOO_LARGE: Final = Reason.RECORD_TOO_LARGE.value
_TOO_DEEP: Final = Reason.TOO_DEEP.value
_INVALID_JSON: Final = Reason.INVALID_JSON.value
_WELL_FORMED: Final = DEVICE_TYPE_NAME.fullmatch


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
    parked: list[int] = field(default_factory=list)  # event indices accepted with an unknown device type
    events_seen: int = 0
    json_values: int = 0  # events that were at least valid JSON
    readable: bool = False  # the body was one JSON document, or NDJSON with at least one JSON line

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
    exact = not rawjson.may_round(body)
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
            if exact:
                batch.events_seen = batch.json_values = len(events)
                batch.readable = True
                if not _all_usable(batch, events, received_at, max_line_bytes):
                    _check_all(batch, enumerate(events), received_at, max_line_bytes)
                return batch
        texts = rawjson.event_texts(body)
        if texts is not None:  # one JSON document after all: judge its events one by one, from their own text
            batch.readable = True
            _check_texts(batch, enumerate(texts), received_at, max_line_bytes)
            return batch
    parsed: list[tuple[int, Any]] = []
    raw_lines: list[tuple[int, bytes]] = []
    index = 0
    for raw_line in body.split(b"\n"):
        if not raw_line.strip(_JSON_SPACE):  # blank: JSON whitespace only (not \v or \f, as isspace() has it)
            continue
        if exact:
            try:
                parsed.append((index, orjson.loads(raw_line)))
            except orjson.JSONDecodeError:
                batch.rejected.append(Rejected(index, _TOO_DEEP if too_deep(raw_line) else _INVALID_JSON))
        else:
            raw_lines.append((index, raw_line))
        index += 1
    if exact:
        batch.events_seen = index
        batch.json_values = len(parsed)
        batch.readable = bool(parsed)
        _check_all(batch, parsed, received_at, max_line_bytes)
    else:
        _check_texts(batch, raw_lines, received_at, max_line_bytes)
        batch.readable = batch.json_values > 0
    batch.rejected.sort(key=lambda item: item.index)
    return batch


def _one_value(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return _NOT_ONE_VALUE


def _all_usable(batch: TelemetryBatch, events: list[Any], stamp: str, max_line_bytes: int) -> bool:
    """The common case, all events usable, checked with C-level iteration; False leaves `batch` untouched."""
    if set(map(type, events)) != {dict}:
        return False
    try:
        if not set(map(dict.get, events, repeat("device_type"))) <= _DEVICE_TYPES:
            return False
    except TypeError:  # an unhashable device_type
        return False
    deque(map(operator.setitem, events, repeat("received_at"), repeat(stamp)), maxlen=0)
    try:
        lines = list(map(orjson.dumps, events))
    except orjson.JSONEncodeError:  # one nested too deeply to write back: the slow path rejects it
        return False
    if max(map(len, lines)) > max_line_bytes:
        return False  # the slow path stamps and serializes again, rejecting the oversized ones
    batch.lines = lines
    batch.indices = list(range(len(lines)))
    return True


def _check_all(batch: TelemetryBatch, events: Iterable[tuple[int, Any]], stamp: str, max_line_bytes: int) -> None:
    """The structural checks, stamp and serialization; the hot loop of the ingester (kept flat on purpose)."""
    lines, indices, rejected = batch.lines, batch.indices, batch.rejected
    dumps, device_types = orjson.dumps, _DEVICE_TYPES
    for index, event in events:
        if event.__class__ is not dict:
            rejected.append(Rejected(index, _NOT_AN_OBJECT))
            continue
        device_type = event.get("device_type")
        parked = False
        if device_type.__class__ is not str or device_type not in device_types:
            if device_type.__class__ is not str or not _WELL_FORMED(device_type):
                reason = _MISSING_FIELD if device_type is None else _UNKNOWN_DEVICE_TYPE  # null equals absent
                rejected.append(Rejected(index, reason))
                continue
            parked = True
        event["received_at"] = stamp
        try:
            line = dumps(event)
        except orjson.JSONEncodeError:  # orjson reads 1,024 levels but writes only 254
            rejected.append(Rejected(index, _TOO_DEEP))
            continue
        if len(line) > max_line_bytes:
            rejected.append(Rejected(index, _RECORD_TOO_LARGE))
            continue
        lines.append(line)
        indices.append(index)
        if parked:
            batch.parked.append(index)


def _check_texts(batch: TelemetryBatch, texts: Iterable[tuple[int, bytes]], stamp: str, max_line_bytes: int) -> None:
    """The same checks for events given as their own text; the raw line keeps that text (lossless)."""
    seen = 0
    for index, text in texts:
        seen += 1
        if too_deep(text):
            batch.rejected.append(Rejected(index, _TOO_DEEP))
            continue
        try:
            event = orjson.loads(text)  # for the structural checks only; numbers may have rounded here
        except orjson.JSONDecodeError:
            batch.rejected.append(Rejected(index, _INVALID_JSON))
            continue
        batch.json_values += 1
        if event.__class__ is not dict:
            batch.rejected.append(Rejected(index, _NOT_AN_OBJECT))
            continue
        device_type = event.get("device_type")
        known = device_type.__class__ is str and device_type in _DEVICE_TYPES
        if not known and (device_type.__class__ is not str or not _WELL_FORMED(device_type)):
            batch.rejected.append(Rejected(index, _MISSING_FIELD if device_type is None else _UNKNOWN_DEVICE_TYPE))
            continue
        line = rawjson.stamped(text, "received_at", stamp, replace="received_at" in event)
        if len(line) > max_line_bytes:
            batch.rejected.append(Rejected(index, _RECORD_TOO_LARGE))
            continue
        batch.lines.append(line)
        batch.indices.append(index)
        if not known:
            batch.parked.append(index)
    batch.events_seen += seen
