"""What a line becomes: a row for a table, or a quarantine record with its reason.

Shared by the device and OTLP paths and by the writers; nothing here imports pyarrow.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from shared.jsondepth import depth_message, too_deep
from shared.models import FieldError
from shared.schema import Reason

#: A line longer than this is quarantined as record_too_large (Firehose's own record limit is
#: 1,000 KiB, so a longer line cannot be one event).
MAX_LINE_BYTES: Final = 1024 * 1024
#: What JSON counts as whitespace (Python's `bytes.strip()` also strips \v and \f, which JSON does not):
#: a line of nothing else is blank.
JSON_SPACE: Final = b" \t\r\n"
#: How much of an oversized or undecodable line the quarantine record keeps.
QUARANTINE_PREVIEW_BYTES: Final = 64 * 1024


@dataclass(frozen=True)
class Rejection:
    """One quarantine record: the reason code, field errors, where it came from, the original text."""

    reason: str
    errors: tuple[FieldError, ...]
    line: int
    original: bytes
    #: For an OTLP log record: where in the request it sits (`resourceLogs[0].scopeLogs[1].logRecords[5]`).
    path: str | None = None

    def to_json(self, source_key: str) -> bytes:
        record: dict[str, Any] = {
            "reason": self.reason,
            "errors": [error.model_dump() for error in self.errors],
            "source_key": source_key,
            "line": self.line,
        }
        if self.path is not None:
            record["path"] = self.path
        record["original"] = self.original.decode("utf-8", errors="replace")
        return orjson.dumps(record)


def rejection(reason: Reason | str, line: int, original: bytes, problem: tuple[str, str, str],
              path: str | None = None) -> Rejection:
    """A rejection with one field error, `problem` = (field, error code, message)."""
    field_name, error, message = problem
    return Rejection(str(reason), (FieldError(field=field_name, error=error, message=message),), line, original,
                     path)


@dataclass
class LineCounts:
    """Per raw object: blank lines skipped, and how many lines/records ended where."""

    blank_lines: int = 0
    rows_out: dict[str, int] = field(default_factory=dict)
    quarantined: dict[str, int] = field(default_factory=dict)

    def add_rows(self, type_value: str, count: int) -> None:
        if count:
            self.rows_out[type_value] = self.rows_out.get(type_value, 0) + count

    def add_rejection(self, reason: str) -> None:
        self.quarantined[reason] = self.quarantined.get(reason, 0) + 1

    def withdraw(self, rows: dict[str, int], rejections: dict[str, int]) -> None:
        for counts, removed in ((self.rows_out, rows), (self.quarantined, rejections)):
            for key, count in removed.items():
                counts[key] -= count
                if not counts[key]:
                    del counts[key]


class JsonLineError(ValueError):
    """A line that is not JSON (`invalid_json`), is JSON with NaN/Infinity (`invalid_value`), or nests
    deeper than any reader should follow (`too_deep`)."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def decode_line(line: bytes) -> object:
    """Decode one JSON line strictly. NaN and Infinity are not JSON: they are an invalid value.

    The depth is checked first, on the bytes, so no recursive decoder (or encoder, later) meets a
    line nested deeper than `shared.jsondepth.MAX_DEPTH`.
    """
    if too_deep(line):
        raise JsonLineError(Reason.TOO_DEEP, f"the line is {depth_message()}")
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        message = str(exc)
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise JsonLineError(Reason.INVALID_JSON, utf8_problem(line, exc)) from None
    try:
        lenient = json.loads(text)  # accepts NaN / Infinity, which orjson refuses
    except (ValueError, RecursionError):
        raise JsonLineError(Reason.INVALID_JSON, message) from None
    if _has_non_finite(lenient):
        raise JsonLineError(Reason.INVALID_VALUE, "NaN and Infinity are not valid JSON numbers")
    raise JsonLineError(Reason.INVALID_JSON, message)


def utf8_problem(line: bytes, exc: UnicodeDecodeError) -> str:
    """What is wrong with a line that is not UTF-8, in plain words."""
    bad = line[exc.start:exc.end]
    position = f"at byte {exc.start + 1} of the line"
    if bad[:1] == b"\xed" and len(line) > exc.start + 1 and 0xA0 <= line[exc.start + 1] <= 0xBF:
        what = ("an encoded UTF-16 surrogate (U+D800 to U+DFFF, such as a lone half of an emoji), "
                "which UTF-8 does not allow")
    elif exc.reason == "unexpected end of data":
        what = "a character cut off at the end of the line"
    else:
        what = f"byte 0x{bad[0]:02x}, which cannot start or continue a UTF-8 character there" if bad else "a bad byte"
    return f"the line is not valid UTF-8: {what}, {position}"


def _has_non_finite(value: object) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_has_non_finite(item) for item in value.values())
    if isinstance(value, list):
        return any(_has_non_finite(item) for item in value)
    return False


def json_line_rejection(exc: JsonLineError, line_number: int, line: bytes) -> Rejection:
    error = {Reason.INVALID_JSON: "json_invalid", Reason.TOO_DEEP: "too_deep"}.get(exc.reason, "finite_number")
    return rejection(exc.reason, line_number, line, ("$", error, str(exc)))
