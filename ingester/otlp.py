"""OTLP/HTTP logs: decode a request, normalize it to OTLP/JSON, encode responses.

Every raw line written for OTLP is an OTLP/JSON `ExportLogsServiceRequest` as the OTLP spec
writes it, so raw data can be replayed into any OTLP receiver: lowerCamelCase keys, trace/span ids
as lowercase hex, enums as integers, 64-bit integers as decimal strings, default values left out,
unknown fields dropped. Requests are read leniently: ids in any hex case, 64-bit integers as
strings or numbers, enums as integers or names, snake_case keys too.

protobuf's `json_format` writes ids as base64 and enums as names (proto3 JSON, not OTLP/JSON), so
the protobuf path turns the message into a dict and goes through the same normalizer with
`ids="base64"`. protobuf and opentelemetry-proto are imported only on that path.

A log record that cannot be represented (bad id, bad number, bad AnyValue, too large for a
Firehose record) is dropped and counted for `partial_success`; a body that cannot be decoded at
all is a `DecodeFailed` (400 with a `google.rpc.Status`).
"""

from __future__ import annotations

import base64
import binascii
import math
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import orjson

JSON_TYPE: Final = "application/json"
PROTOBUF_TYPES: Final = frozenset({"application/x-protobuf", "application/protobuf"})

_MAX_DEPTH: Final = 32
_MAX_ERRORS: Final = 5
_UINT64_MAX: Final = 2**64 - 1
_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1
_UINT32_MAX: Final = 2**32 - 1
_SEVERITY_NAMES: Final = {
    name: number
    for number, name in enumerate(
        ["UNSPECIFIED"]
        + [f"{level}{suffix}" for level in ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")
           for suffix in ("", "2", "3", "4")]
    )
}

IdEncoding = Literal["hex", "base64"]


class DecodeFailed(ValueError):
    """The request is not an OTLP logs request at all (HTTP 400)."""


class InvalidRecord(ValueError):
    """One log record (or the resource/scope it sits under) cannot be represented."""


@dataclass
class LogsBatch:
    """Normalized `ResourceLogs` split into raw lines, plus the partial-success bookkeeping."""

    lines: list[bytes] = field(default_factory=list)
    accepted: int = 0
    rejected: int = 0
    errors: list[str] = field(default_factory=list)

    def reject(self, count: int, message: str) -> None:
        if count <= 0:
            return
        self.rejected += count
        if len(self.errors) < _MAX_ERRORS and message not in self.errors:
            self.errors.append(message)

    @property
    def error_message(self) -> str:
        return "; ".join(self.errors)


# --- decoding ------------------------------------------------------------------------------------


def decode_json(body: bytes) -> dict[str, Any]:
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise DecodeFailed(f"body is not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise DecodeFailed("an ExportLogsServiceRequest must be a JSON object")
    return document


def decode_protobuf(body: bytes) -> dict[str, Any]:
    """A protobuf `ExportLogsServiceRequest` as proto3 JSON (base64 ids, integer enums)."""
    # Loaded on the first protobuf request only: the JSON path and cold start never pay for it.
    from google.protobuf.json_format import MessageToDict  # noqa: PLC0415
    from google.protobuf.message import DecodeError  # noqa: PLC0415
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest  # noqa: PLC0415

    try:
        message = ExportLogsServiceRequest.FromString(body)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise DecodeFailed(f"body is not a protobuf ExportLogsServiceRequest: {exc}") from None
    result: dict[str, Any] = MessageToDict(message, use_integers_for_enums=True)
    return result


# --- normalizing ---------------------------------------------------------------------------------


def split_request(document: dict[str, Any], *, ids: IdEncoding, max_line_bytes: int) -> LogsBatch:
    """Normalize a decoded request into raw lines of at most `max_line_bytes` each."""
    resource_logs = _get(document, "resourceLogs", "resource_logs")
    if resource_logs is None:
        resource_logs = []
    if not isinstance(resource_logs, list):
        raise DecodeFailed("resourceLogs must be an array")
    batch = LogsBatch()
    for entry in resource_logs:
        normalized = _resource_logs(entry, ids, batch)
        if normalized is not None:
            _emit(normalized, batch, max_line_bytes)
    return batch


def _get(obj: dict[str, Any], camel: str, snake: str) -> Any:
    value = obj.get(camel)
    return obj.get(snake) if value is None else value


def _count_records(entry: Any) -> int:
    """Log records under a ResourceLogs or ScopeLogs that is being rejected as a whole."""
    if not isinstance(entry, dict):
        return 0
    records = _get(entry, "logRecords", "log_records")
    if isinstance(records, list):
        return len(records)
    scopes = _get(entry, "scopeLogs", "scope_logs")
    return sum(_count_records(scope) for scope in scopes) if isinstance(scopes, list) else 0


def _resource_logs(entry: Any, ids: IdEncoding, batch: LogsBatch) -> dict[str, Any] | None:
    if not isinstance(entry, dict):
        batch.reject(0, "a resourceLogs entry is not an object")
        return None
    try:
        resource = _resource(entry.get("resource"))
        scope_logs = _get(entry, "scopeLogs", "scope_logs") or []
        if not isinstance(scope_logs, list):
            raise InvalidRecord("scopeLogs must be an array")
        schema_url = _string(_get(entry, "schemaUrl", "schema_url"), "schemaUrl")
    except InvalidRecord as exc:
        batch.reject(_count_records(entry), f"resource: {exc}")
        return None
    scopes = [scope for scope in (_scope_logs(item, ids, batch) for item in scope_logs) if scope is not None]
    if not scopes:
        return None
    result: dict[str, Any] = {}
    if resource:
        result["resource"] = resource
    result["scopeLogs"] = scopes
    if schema_url:
        result["schemaUrl"] = schema_url
    return result


def _scope_logs(entry: Any, ids: IdEncoding, batch: LogsBatch) -> dict[str, Any] | None:
    if not isinstance(entry, dict):
        batch.reject(0, "a scopeLogs entry is not an object")
        return None
    try:
        scope = _scope(entry.get("scope"))
        records = _get(entry, "logRecords", "log_records") or []
        if not isinstance(records, list):
            raise InvalidRecord("logRecords must be an array")
        schema_url = _string(_get(entry, "schemaUrl", "schema_url"), "schemaUrl")
    except InvalidRecord as exc:
        batch.reject(_count_records(entry), f"scope: {exc}")
        return None
    normalized: list[dict[str, Any]] = []
    for record in records:
        try:
            normalized.append(_log_record(record, ids))
        except InvalidRecord as exc:
            batch.reject(1, f"log record: {exc}")
    if not normalized:
        return None
    result: dict[str, Any] = {}
    if scope:
        result["scope"] = scope
    result["logRecords"] = normalized
    if schema_url:
        result["schemaUrl"] = schema_url
    return result


def _resource(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidRecord("resource must be an object")
    result: dict[str, Any] = {}
    attributes = _attributes(value.get("attributes"))
    if attributes:
        result["attributes"] = attributes
    dropped = _uint(_get(value, "droppedAttributesCount", "dropped_attributes_count"), _UINT32_MAX,
                    "droppedAttributesCount")
    if dropped:
        result["droppedAttributesCount"] = dropped
    return result


def _scope(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidRecord("scope must be an object")
    result: dict[str, Any] = {}
    for key in ("name", "version"):
        text = _string(value.get(key), key)
        if text:
            result[key] = text
    attributes = _attributes(value.get("attributes"))
    if attributes:
        result["attributes"] = attributes
    dropped = _uint(_get(value, "droppedAttributesCount", "dropped_attributes_count"), _UINT32_MAX,
                    "droppedAttributesCount")
    if dropped:
        result["droppedAttributesCount"] = dropped
    return result


def _log_record(value: Any, ids: IdEncoding) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidRecord("not an object")
    result: dict[str, Any] = {}
    for camel, snake in (("timeUnixNano", "time_unix_nano"), ("observedTimeUnixNano", "observed_time_unix_nano")):
        number = _uint(_get(value, camel, snake), _UINT64_MAX, camel)
        if number:
            result[camel] = str(number)
    severity = _severity(_get(value, "severityNumber", "severity_number"))
    if severity:
        result["severityNumber"] = severity
    severity_text = _string(_get(value, "severityText", "severity_text"), "severityText")
    if severity_text:
        result["severityText"] = severity_text
    if value.get("body") is not None:
        result["body"] = _any_value(value["body"], 0)
    attributes = _attributes(value.get("attributes"))
    if attributes:
        result["attributes"] = attributes
    dropped = _uint(_get(value, "droppedAttributesCount", "dropped_attributes_count"), _UINT32_MAX,
                    "droppedAttributesCount")
    if dropped:
        result["droppedAttributesCount"] = dropped
    flags = _uint(value.get("flags"), _UINT32_MAX, "flags")
    if flags:
        result["flags"] = flags
    trace_id = _id(_get(value, "traceId", "trace_id"), 16, ids, "traceId")
    if trace_id:
        result["traceId"] = trace_id
    span_id = _id(_get(value, "spanId", "span_id"), 8, ids, "spanId")
    if span_id:
        result["spanId"] = span_id
    event_name = _string(_get(value, "eventName", "event_name"), "eventName")
    if event_name:
        result["eventName"] = event_name
    return result


def _string(value: Any, name: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidRecord(f"{name} must be a string")
    return value


def _uint(value: Any, maximum: int, name: str) -> int:
    """An unsigned integer sent as a JSON number or a decimal string (int64/fixed64 in OTLP/JSON)."""
    number = _integer(value, name)
    if not 0 <= number <= maximum:
        raise InvalidRecord(f"{name} out of range")
    return number


def _integer(value: Any, name: str) -> int:
    if value is None:
        return 0
    if isinstance(value, bool):
        raise InvalidRecord(f"{name} must be an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if text.lstrip("-").isdigit() and text.isascii():
            return int(text)
    raise InvalidRecord(f"{name} must be an integer")


def _severity(value: Any) -> int:
    if isinstance(value, str) and not value.strip().lstrip("-").isdigit():
        name = value.removeprefix("SEVERITY_NUMBER_")
        if name not in _SEVERITY_NAMES:
            raise InvalidRecord("unknown severityNumber")
        return _SEVERITY_NAMES[name]
    number = _integer(value, "severityNumber")
    if not 0 <= number <= 24:
        raise InvalidRecord("severityNumber out of range 0..24")
    return number


def _id(value: Any, size: int, ids: IdEncoding, name: str) -> str:
    """Trace/span id to lowercase hex; empty (or all zero bytes) means absent."""
    if value is None or value == "":
        return ""
    if not isinstance(value, str):
        raise InvalidRecord(f"{name} must be a string")
    if ids == "base64":
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidRecord(f"{name} is not base64") from None
    else:
        if len(value) != size * 2:
            raise InvalidRecord(f"{name} must be {size * 2} hex digits")
        try:
            raw = bytes.fromhex(value)
        except ValueError:
            raise InvalidRecord(f"{name} is not hex") from None
    if len(raw) != size:
        raise InvalidRecord(f"{name} must be {size} bytes")
    return "" if raw == bytes(size) else raw.hex()


def _attributes(value: Any, depth: int = 0) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidRecord("attributes must be an array")
    result: list[dict[str, Any]] = []
    for item in value:
        if not isinstance(item, dict) or not isinstance(item.get("key"), str):
            raise InvalidRecord("an attribute needs a string key")
        result.append({"key": item["key"], "value": _any_value(item.get("value"), depth)})
    return result


def _any_value(value: Any, depth: int) -> dict[str, Any]:
    """An AnyValue in OTLP/JSON form; `{}` is the empty value."""
    if depth > _MAX_DEPTH:
        raise InvalidRecord("AnyValue nested too deeply")
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidRecord("an AnyValue must be an object")
    if (text := _get(value, "stringValue", "string_value")) is not None:
        return {"stringValue": _string(text, "stringValue")}
    if (flag := _get(value, "boolValue", "bool_value")) is not None:
        if not isinstance(flag, bool):
            raise InvalidRecord("boolValue must be true or false")
        return {"boolValue": flag}
    if (number := _get(value, "intValue", "int_value")) is not None:
        integer = _integer(number, "intValue")
        if not _INT64_MIN <= integer <= _INT64_MAX:
            raise InvalidRecord("intValue out of int64 range")
        return {"intValue": str(integer)}
    if (double := _get(value, "doubleValue", "double_value")) is not None:
        return {"doubleValue": _double(double)}
    if (array := _get(value, "arrayValue", "array_value")) is not None:
        values = array.get("values") if isinstance(array, dict) else None
        if values is not None and not isinstance(values, list):
            raise InvalidRecord("arrayValue.values must be an array")
        return {"arrayValue": {"values": [_any_value(item, depth + 1) for item in values or []]}}
    if (kvlist := _get(value, "kvlistValue", "kvlist_value")) is not None:
        pairs = kvlist.get("values") if isinstance(kvlist, dict) else None
        return {"kvlistValue": {"values": _attributes(pairs, depth + 1)}}
    if (blob := _get(value, "bytesValue", "bytes_value")) is not None:
        if not isinstance(blob, str):
            raise InvalidRecord("bytesValue must be base64 text")
        try:
            base64.b64decode(blob, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidRecord("bytesValue is not base64") from None
        return {"bytesValue": blob}
    return {}


def _double(value: Any) -> float | str:
    """A double as proto3 JSON has it: a number, or "NaN" / "Infinity" / "-Infinity"."""
    if isinstance(value, bool):
        raise InvalidRecord("doubleValue must be a number")
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            raise InvalidRecord("doubleValue must be a number") from None
    else:
        raise InvalidRecord("doubleValue must be a number")
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "Infinity" if number > 0 else "-Infinity"
    return number


# --- raw lines -----------------------------------------------------------------------------------


def _line(resource_logs: dict[str, Any]) -> bytes:
    return orjson.dumps({"resourceLogs": [resource_logs]})


def _emit(resource_logs: dict[str, Any], batch: LogsBatch, max_line_bytes: int) -> None:
    """One line per ResourceLogs; split by scope, then by log records, when a line would not fit."""
    line = _line(resource_logs)
    if len(line) <= max_line_bytes:
        batch.lines.append(line)
        batch.accepted += sum(len(scope["logRecords"]) for scope in resource_logs["scopeLogs"])
        return
    for scope in resource_logs["scopeLogs"]:
        shell = {**resource_logs, "scopeLogs": [{**scope, "logRecords": []}]}
        overhead = len(_line(shell))
        chunk: list[dict[str, Any]] = []
        size = overhead
        for record in scope["logRecords"]:
            record_size = len(orjson.dumps(record))
            if overhead + record_size > max_line_bytes:
                batch.reject(1, "log record larger than a Firehose record")
                continue
            added = record_size + (1 if chunk else 0)
            if size + added > max_line_bytes:
                _emit_chunk(shell, chunk, batch)
                chunk, size, added = [], overhead, record_size
            chunk.append(record)
            size += added
        if chunk:
            _emit_chunk(shell, chunk, batch)


def _emit_chunk(shell: dict[str, Any], records: list[dict[str, Any]], batch: LogsBatch) -> None:
    scope = {**shell["scopeLogs"][0], "logRecords": records}
    batch.lines.append(_line({**shell, "scopeLogs": [scope]}))
    batch.accepted += len(records)


# --- responses -----------------------------------------------------------------------------------

#: google.rpc.Code values used in `Status` bodies.
INVALID_ARGUMENT: Final = 3
RESOURCE_EXHAUSTED: Final = 8
UNAVAILABLE: Final = 14


def export_response(rejected: int, message: str, *, protobuf: bool) -> bytes:
    """`ExportLogsServiceResponse`; `partial_success` only when something was rejected."""
    if protobuf:
        if not rejected and not message:
            return b""
        partial = _varint_field(1, rejected) + _bytes_field(2, message.encode())
        return _bytes_field(1, partial)
    if not rejected and not message:
        return b"{}"
    return orjson.dumps({"partialSuccess": {"rejectedLogRecords": str(rejected), "errorMessage": message}})


def status_body(code: int, message: str, *, protobuf: bool) -> bytes:
    """`google.rpc.Status` (code, message; no details)."""
    if protobuf:
        return _varint_field(1, code) + _bytes_field(2, message.encode())
    return orjson.dumps({"code": code, "message": message})


# Hand-encoded protobuf for the two small responses: no protobuf import on the JSON path.
def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _varint_field(number: int, value: int) -> bytes:
    return _varint(number << 3) + _varint(value) if value else b""


def _bytes_field(number: int, data: bytes) -> bytes:
    return _varint((number << 3) | 2) + _varint(len(data)) + data if data else b""
