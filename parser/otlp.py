"""OTLP logs: one ExportLogsServiceRequest (OTLP/JSON) per line to one row per LogRecord.

OTLP/JSON as the specification writes it: lowerCamelCase keys (snake_case accepted too), trace and
span ids as hex, enums as integers, 64-bit integers as decimal strings or numbers. Per-line Python
is fine here: OTLP volumes are small next to device telemetry and each line carries many records.

A line that is not a request is one quarantine record; a log record that cannot become a row is
one quarantine record (with its path in the request); no record is ever rejected for its time: a
row is partitioned by `time`, else `observed_time`, else the arrival time, whichever first falls
inside the window.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import orjson

from parser.records import JsonLineError, Rejection, decode_line, json_line_rejection, rejection
from shared.schema import Reason

_HEX: Final = re.compile(r"[0-9a-fA-F]*")
_UINT64_MAX: Final = 2**64 - 1
_INT64_MAX: Final = 2**63 - 1
_UINT32_MAX: Final = 2**32 - 1


class _Invalid(ValueError):
    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field_name = field_name


@dataclass(frozen=True)
class OtlpContext:
    source_key: str
    arrival_ms: int
    past_ms: int
    future_ms: int


def _get(mapping: Mapping[str, Any], camel: str) -> Any:
    """A key in lowerCamelCase (OTLP/JSON) or its snake_case form."""
    value = mapping.get(camel)
    if value is None:
        snake = re.sub(r"(?<!^)(?=[A-Z])", "_", camel).lower()
        value = mapping.get(snake)
    return value


def _list(mapping: Mapping[str, Any], camel: str, where: str) -> list[Any]:
    value = _get(mapping, camel)
    if value is None:
        return []
    if not isinstance(value, list):
        raise _Invalid(where, f"{camel} must be a list")
    return value


def _object(value: Any, where: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _Invalid(where, "expected an object")
    return value


def _uint(value: Any, where: str, maximum: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise _Invalid(where, "expected an integer")
    if isinstance(value, str):
        if not value.isdigit():
            raise _Invalid(where, "expected an integer (or its decimal string)")
        value = int(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or not 0 <= value <= maximum:
        raise _Invalid(where, f"expected an integer between 0 and {maximum}")
    return value


def any_value(value: Any, where: str) -> Any:
    """An OTLP AnyValue to the plain JSON value it holds (None for an empty AnyValue)."""
    holder = _object(value, where)
    for camel in ("stringValue", "boolValue", "intValue", "doubleValue", "bytesValue"):
        item = _get(holder, camel)
        if item is None:
            continue
        if camel == "intValue":
            if isinstance(item, str):
                try:
                    return int(item)
                except ValueError:
                    raise _Invalid(where, "intValue is not an integer") from None
            if isinstance(item, bool) or not isinstance(item, int):
                raise _Invalid(where, "intValue is not an integer")
        if camel == "doubleValue" and (isinstance(item, bool) or not isinstance(item, int | float | str)):
            raise _Invalid(where, "doubleValue is not a number")
        if camel == "boolValue" and not isinstance(item, bool):
            raise _Invalid(where, "boolValue is not a boolean")
        return item
    array = _get(holder, "arrayValue")
    if array is not None:
        return [any_value(item, where) for item in _list(_object(array, where), "values", where)]
    kvlist = _get(holder, "kvlistValue")
    if kvlist is not None:
        return key_values(_list(_object(kvlist, where), "values", where), where)
    return None


def key_values(items: list[Any], where: str) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for item in items:
        pair = _object(item, where)
        key = pair.get("key")
        if not isinstance(key, str):
            raise _Invalid(where, "attribute without a string key")
        value = any_value(pair.get("value"), f"{where}.{key}")
        if value is not None:
            result[key] = value
    return result


def _text(value: Any) -> str:
    return value if isinstance(value, str) else orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def _string_map(items: list[Any], where: str) -> list[tuple[str, str]]:
    return [(key, _text(value)) for key, value in key_values(items, where).items()]


def _hex_id(value: Any, where: str, digits: int) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) != digits or not _HEX.fullmatch(value):
        raise _Invalid(where, f"expected {digits} hex digits")
    text = value.lower()
    return None if set(text) == {"0"} else text


def _micros(nanos: int | None) -> datetime | None:
    if not nanos:
        return None
    micros = nanos // 1000
    return datetime.fromtimestamp(micros // 1_000_000, tz=UTC).replace(microsecond=micros % 1_000_000)


def _partition_ms(ctx: OtlpContext, *candidates_ns: int | None) -> int:
    lower, upper = ctx.arrival_ms - ctx.past_ms, ctx.arrival_ms + ctx.future_ms
    for nanos in candidates_ns:
        if nanos:
            millis = nanos // 1_000_000
            if lower <= millis <= upper:
                return millis
    return ctx.arrival_ms


def _optional_text(value: Any, where: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise _Invalid(where, "expected a string")


def _record_row(record: Any, resource: dict[str, Any], scope: dict[str, Any], *, line_number: int, where: str,
                ctx: OtlpContext) -> tuple[int, dict[str, Any]]:
    log = _object(record, where)
    time_ns = _uint(_get(log, "timeUnixNano"), f"{where}.timeUnixNano", _UINT64_MAX)
    observed_ns = _uint(_get(log, "observedTimeUnixNano"), f"{where}.observedTimeUnixNano", _UINT64_MAX)
    if time_ns is not None and time_ns > _INT64_MAX:
        raise _Invalid(f"{where}.timeUnixNano", "time_unix_nano does not fit in 64 bits")
    if observed_ns is not None and observed_ns > _INT64_MAX:
        raise _Invalid(f"{where}.observedTimeUnixNano", "observed_time_unix_nano does not fit in 64 bits")
    body = _get(log, "body")
    if body is not None:
        _object(body, f"{where}.body")
        body_value = any_value(body, f"{where}.body")
        body_text = body_value if isinstance(body_value, str) or body_value is None else orjson.dumps(
            body, option=orjson.OPT_SORT_KEYS).decode()
    else:
        body_text = None
    row = {
        "time": _micros(time_ns),
        "observed_time": _micros(observed_ns),
        "time_unix_nano": time_ns,
        "severity_number": _uint(_get(log, "severityNumber"), f"{where}.severityNumber", 24),
        "severity_text": _optional_text(_get(log, "severityText"), f"{where}.severityText"),
        "body": body_text,
        "attributes": _string_map(_list(log, "attributes", f"{where}.attributes"), f"{where}.attributes"),
        "resource_attributes": [(key, _text(value)) for key, value in resource.items()],
        "scope_name": scope.get("name"),
        "scope_version": scope.get("version"),
        "trace_id": _hex_id(_get(log, "traceId"), f"{where}.traceId", 32),
        "span_id": _hex_id(_get(log, "spanId"), f"{where}.spanId", 16),
        "flags": _uint(_get(log, "flags"), f"{where}.flags", _UINT32_MAX),
        "dropped_attributes_count": _uint(_get(log, "droppedAttributesCount"), f"{where}.droppedAttributesCount",
                                          _UINT32_MAX),
        "event_name": _optional_text(_get(log, "eventName"), f"{where}.eventName"),
        "service_name": _text(resource["service.name"]) if "service.name" in resource else None,
        "device_id": _text(resource["device.id"]) if "device.id" in resource else None,
        "received_at": datetime.fromtimestamp(ctx.arrival_ms / 1000, tz=UTC),
        "source_key": ctx.source_key,
        "source_line": line_number,
    }
    return _partition_ms(ctx, time_ns, observed_ns), row


def parse_line(line: bytes, line_number: int, ctx: OtlpContext) -> Iterator[tuple[int, dict[str, Any]] | Rejection]:
    """Rows (with the epoch ms that picks their partition) and rejections for one OTLP line."""
    try:
        request = decode_line(line)
    except JsonLineError as exc:
        yield json_line_rejection(exc, line_number, line)
        return
    if not isinstance(request, dict):
        message = f"expected an ExportLogsServiceRequest object, got {type(request).__name__}"
        yield rejection(Reason.NOT_AN_OBJECT, line_number, line, ("$", "object_type", message))
        return
    try:
        resource_logs = _list(request, "resourceLogs", "resourceLogs")
        if not resource_logs and _get(request, "resourceLogs") is None:
            raise _Invalid("resourceLogs", "not an ExportLogsServiceRequest: resourceLogs is missing")
        groups: list[tuple[dict[str, Any], dict[str, Any], list[Any], str]] = []
        for r_index, resource_log in enumerate(resource_logs):
            r_where = f"resourceLogs[{r_index}]"
            resource_obj = _object(_get(_object(resource_log, r_where), "resource"), f"{r_where}.resource")
            resource = key_values(_list(resource_obj, "attributes", f"{r_where}.resource.attributes"),
                                  f"{r_where}.resource.attributes")
            for s_index, scope_log in enumerate(_list(_object(resource_log, r_where), "scopeLogs", r_where)):
                s_where = f"{r_where}.scopeLogs[{s_index}]"
                scope_obj = _object(_get(_object(scope_log, s_where), "scope"), f"{s_where}.scope")
                scope = {
                    "name": _optional_text(scope_obj.get("name"), f"{s_where}.scope.name"),
                    "version": _optional_text(scope_obj.get("version"), f"{s_where}.scope.version"),
                }
                groups.append((resource, scope, _list(scope_log, "logRecords", s_where), s_where))
    except _Invalid as exc:
        yield rejection(Reason.INVALID_VALUE, line_number, line, (exc.field_name, "otlp_shape", str(exc)))
        return
    for resource, scope, records, s_where in groups:
        for l_index, record in enumerate(records):
            where = f"{s_where}.logRecords[{l_index}]"
            try:
                yield _record_row(record, resource, scope, line_number=line_number, where=where, ctx=ctx)
            except _Invalid as exc:
                yield rejection(Reason.INVALID_VALUE, line_number, orjson.dumps(record),
                                (exc.field_name, "otlp_value", str(exc)), path=where)
