"""Pydantic models derived from `shared.schema`, with the lossless coercion policy described there.

`validate_device_event` is the per-record validator: the ingester's API docs, `signals` tools and
the parser's per-line diagnostics all use it, so a record is judged the same way everywhere.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from functools import cache
from typing import Annotated, Any, Final, Literal, Union

import orjson
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    WithJsonSchema,
    create_model,
)

from shared.jsontext import SPACE, may_round, member_key, member_value, members, minified
from shared.schema import (
    DEVICE_FIELDS,
    ENVELOPE,
    OTLP_LOG_FIELDS,
    DeviceType,
    FieldSpec,
    Kind,
    known_field_names,
)
from shared.timeparse import TimestampError, ms_to_datetime, to_epoch_ms

# --- lossless coercions --------------------------------------------------------------------------


def _lossless_int(value: object) -> object:
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return value  # strict int validation rejects str, bool and fractional floats


def _timestamp(value: object) -> object:
    if value is None or isinstance(value, datetime):
        return value
    try:
        return ms_to_datetime(to_epoch_ms(value))
    except TimestampError as exc:
        raise ValueError(str(exc)) from None


def _string_map(value: object) -> object:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ValueError("expected an object of scalar values")
    result: dict[str, str] = {}
    for key, item in value.items():
        if item is None:
            continue
        if isinstance(item, str):
            result[str(key)] = item
        elif isinstance(item, bool | int | float):
            if isinstance(item, float) and not math.isfinite(item):
                raise ValueError(f"value of {key!r} is not a finite number")
            result[str(key)] = orjson.dumps(item).decode()
        else:
            raise ValueError(f"value of {key!r} is not a scalar")
    return result


_TIMESTAMP_JSON: Final = {
    "anyOf": [
        {"type": "string", "format": "date-time"},
        {"type": "integer", "description": "epoch milliseconds"},
    ]
}
_MAP_JSON: Final = {
    "type": "object",
    "additionalProperties": {"type": ["string", "number", "boolean", "null"]},
}


def python_type(spec: FieldSpec, *, narrow_choices: tuple[str, ...] | None = None) -> Any:
    """The annotated type one field validates with (constraints included)."""
    constraints: dict[str, Any] = {"description": spec.description}
    if spec.minimum is not None:
        constraints["ge"] = spec.minimum
    if spec.maximum is not None:
        constraints["le"] = spec.maximum
    if spec.min_length is not None:
        constraints["min_length"] = spec.min_length
    if spec.max_length is not None:
        constraints["max_length"] = spec.max_length
    choices = narrow_choices or spec.choices
    match spec.kind:
        case Kind.STRING if choices:
            return Annotated[Literal[choices], Field(description=spec.description)]
        case Kind.STRING:
            return Annotated[str, Field(strict=True, **constraints)]
        case Kind.INT | Kind.INT32:
            return Annotated[int, Field(strict=True, **constraints), BeforeValidator(_lossless_int)]
        case Kind.FLOAT:
            return Annotated[float, Field(strict=True, allow_inf_nan=False, **constraints)]
        case Kind.BOOL:
            return Annotated[bool, Field(strict=True, **constraints)]
        case Kind.TIMESTAMP_MS | Kind.TIMESTAMP_US:
            return Annotated[
                datetime, Field(**constraints), BeforeValidator(_timestamp), WithJsonSchema(_TIMESTAMP_JSON)
            ]
        case Kind.STRING_MAP:
            return Annotated[
                dict[str, str], Field(**constraints), BeforeValidator(_string_map), WithJsonSchema(_MAP_JSON)
            ]
    raise AssertionError(spec.kind)


def _model_fields(specs: tuple[FieldSpec, ...], narrow: Mapping[str, tuple[str, ...]]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for spec in specs:
        annotation = python_type(spec, narrow_choices=narrow.get(spec.name))
        if spec.required:
            fields[spec.name] = (annotation, ...)
        else:
            fields[spec.name] = (annotation | None, spec.default)
    return fields


class _DeviceEventBase(BaseModel):
    # Unknown fields are allowed in and reported by `extra_fields`; they end up in `extra`.
    model_config = ConfigDict(extra="allow", frozen=True)

    def extra_fields(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


def _device_model(device_type: DeviceType) -> type[_DeviceEventBase]:
    specs = tuple(s for s in (*ENVELOPE, *DEVICE_FIELDS[device_type]) if s.name != "received_at")
    fields = _model_fields(specs, {"device_type": (device_type.value,)})
    fields["received_at"] = (python_type(next(s for s in ENVELOPE if s.name == "received_at")) | None, None)
    model_name = "".join(part.title() for part in device_type.value.split("_")) + "Event"
    return create_model(model_name, __base__=_DeviceEventBase, __doc__=f"A {device_type.value} event.",
                        **fields)


DEVICE_MODELS: Final[Mapping[DeviceType, type[_DeviceEventBase]]] = {t: _device_model(t) for t in DeviceType}

OtlpLogRow: Final[type[BaseModel]] = create_model(
    "OtlpLogRow",
    __config__=ConfigDict(extra="forbid", frozen=True),
    **_model_fields(OTLP_LOG_FIELDS, {}),
)

# Built from DEVICE_MODELS at runtime, so it is typed as Any for mypy.
TelemetryEvent: Any = Annotated[Union[tuple(DEVICE_MODELS.values())], Field(discriminator="device_type")]  # noqa: UP007


@cache
def json_schema() -> dict[str, Any]:
    """JSON Schema of one device event (a `oneOf` on `device_type`), for the API docs."""
    schema: dict[str, Any] = TypeAdapter(TelemetryEvent).json_schema()
    schema["title"] = "TelemetryEvent"
    return schema


# --- per-record validation with reasons ----------------------------------------------------------


class FieldError(BaseModel):
    model_config = ConfigDict(frozen=True)
    field: str
    error: str
    message: str


class EventRejected(Exception):
    """A record that cannot become a row; `reason` is one of the quarantine reason codes."""

    def __init__(self, reason: str, message: str, errors: list[FieldError] | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.errors = errors or []


def field_errors(exc: ValidationError) -> list[FieldError]:
    return [
        FieldError(field=".".join(str(p) for p in err["loc"]) or "$", error=err["type"], message=err["msg"])
        for err in exc.errors(include_url=False)
    ]


def device_type_of(record: Mapping[str, Any]) -> DeviceType:
    value = record.get("device_type")
    if value is None:
        raise EventRejected("missing_field", "device_type is missing",
                            [FieldError(field="device_type", error="missing", message="Field required")])
    try:
        return DeviceType(value) if isinstance(value, str) else DeviceType("\0")
    except ValueError:
        raise EventRejected(
            "unknown_device_type", f"unknown device_type {str(value)[:64]!r}",
            [FieldError(field="device_type", error="enum", message="expected lock, bridge or video_doorbell")],
        ) from None


def _json_kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return type(value).__name__


def validate_device_event(record: object) -> _DeviceEventBase:
    """Validate one decoded JSON record; raises `EventRejected` with the quarantine reason."""
    if not isinstance(record, dict):
        message = f"expected a JSON object, got {_json_kind(record)}"
        raise EventRejected("not_an_object", message, [FieldError(field="$", error="object_type", message=message)])
    present = {key: value for key, value in record.items() if value is not None}  # null equals absent
    model = DEVICE_MODELS[device_type_of(present)]
    try:
        return model.model_validate(present)
    except ValidationError as exc:
        errors = field_errors(exc)
        reason = "missing_field" if any(e.error == "missing" for e in errors) else "invalid_value"
        raise EventRejected(reason, "; ".join(f"{e.field}: {e.message}" for e in errors), errors) from None


def extra_json(record: Mapping[str, Any], device_type: DeviceType, line: bytes | None = None) -> str | None:
    """Unknown top-level fields (those typed for other device types included) as one JSON object.

    Keys sorted, values as orjson writes them; but when `line` (the record's own text) may hold a
    number a double rounds (`shared.jsontext.may_round`), a value holding one keeps its text as sent.
    """
    known = known_field_names(device_type)
    if line is not None and may_round(line):
        exact = _exact_extra(line, known)
        if exact is not None:
            return exact or None
    unknown = {key: value for key, value in record.items() if key not in known and value is not None}
    return orjson.dumps(unknown, option=orjson.OPT_SORT_KEYS).decode() if unknown else None


def _exact_extra(line: bytes, known: frozenset[str]) -> str | None:
    """`extra` from the line's text ("" when empty); None when the text cannot be split (use the record)."""
    start = len(line) - len(line.lstrip(SPACE))
    found = members(line, start) if line[start:start + 1] == b"{" else None
    if found is None:
        return None
    values: dict[str, bytes] = {}
    for span in found[0]:
        key = member_key(line, span)
        if key is None:
            return None
        if key in known:
            continue
        values[key] = member_value(line, span)  # a repeated key: the last one, as in a parse
    parts = []
    for key in sorted(values):
        text = values[key]
        if text == b"null":
            continue  # null equals absent
        if not may_round(text):  # as orjson writes it, so the text matches the record-built extra
            text = orjson.dumps(orjson.loads(text), option=orjson.OPT_SORT_KEYS)
        parts.append(orjson.dumps(key) + b":" + minified(text))
    return (b"{" + b",".join(parts) + b"}").decode() if parts else ""


def extra_without(extra: str, keys: frozenset[str]) -> str | None:
    """`extra` with these keys taken out (lifted into their columns by `signals backfill`), written as
    `extra_json` writes it (keys sorted; a number a double would round keeps its text), None when empty."""
    line = extra.encode()
    if may_round(line):
        exact = _exact_extra(line, keys)
        if exact is not None:
            return exact or None
    record = orjson.loads(line)
    if not isinstance(record, dict):
        raise ValueError(f"extra is not a JSON object: {extra[:80]!r}")
    rest = {key: value for key, value in record.items() if key not in keys and value is not None}
    return orjson.dumps(rest, option=orjson.OPT_SORT_KEYS).decode() if rest else None


@cache
def field_adapter(spec: FieldSpec) -> TypeAdapter[Any]:
    """One field's validator (its type and constraints, the lossless coercions), for a single value."""
    return TypeAdapter(python_type(spec))
