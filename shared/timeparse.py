"""Timestamps as the contract reads them: RFC 3339 strings (as the RFC allows) or epoch milliseconds.

Everything is returned as integer epoch milliseconds (UTC), the unit the device tables store.
"""

from __future__ import annotations

import calendar
import math
import re
from datetime import UTC, datetime
from typing import Final

_RFC3339: Final = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})"
)
# Epoch ms outside [1970, 10000) is not a timestamp a device could mean.
MIN_EPOCH_MS: Final = 0
MAX_EPOCH_MS: Final = 253_402_300_800_000


class TimestampError(ValueError):
    pass


def parse_rfc3339_ms(text: str) -> int:
    """Parse an RFC 3339 timestamp to epoch ms, truncating sub-millisecond digits."""
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise TimestampError("not an RFC 3339 timestamp")
    year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
    if not (1 <= month <= 12 and 1 <= day <= 31 and hour <= 23 and minute <= 59 and second <= 60):
        raise TimestampError("RFC 3339 timestamp out of range")
    second = min(second, 59)  # a leap second folds onto :59, as most systems do
    try:
        datetime(year, month, day)  # rejects 2026-02-30
    except ValueError as exc:
        raise TimestampError("RFC 3339 timestamp out of range") from exc
    fraction = match.group(7) or ""
    millis = int((fraction + "000")[:3])
    offset = match.group(8)
    offset_s = 0
    if offset not in ("Z", "z"):
        sign = -1 if offset[0] == "-" else 1
        offset_s = sign * (int(offset[1:3]) * 3600 + int(offset[4:6]) * 60)
    epoch_s = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0)) - offset_s
    return epoch_s * 1000 + millis


def to_epoch_ms(value: object) -> int:
    """An event_time as sent (RFC 3339 string or integer epoch ms) to epoch ms."""
    if isinstance(value, bool):
        raise TimestampError("a boolean is not a timestamp")
    if isinstance(value, int):
        epoch_ms = value
    elif isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            raise TimestampError("epoch milliseconds must be a whole number")
        epoch_ms = int(value)
    elif isinstance(value, str):
        epoch_ms = parse_rfc3339_ms(value)
    elif isinstance(value, datetime):
        if value.tzinfo is None:
            raise TimestampError("timestamp has no UTC offset")
        return int(value.timestamp() * 1000)
    else:
        raise TimestampError("expected an RFC 3339 string or epoch milliseconds")
    if not MIN_EPOCH_MS <= epoch_ms < MAX_EPOCH_MS:
        raise TimestampError("timestamp outside 1970..9999")
    return epoch_ms


def ms_to_datetime(epoch_ms: int) -> datetime:
    return datetime.fromtimestamp(epoch_ms / 1000, tz=UTC).replace(microsecond=(epoch_ms % 1000) * 1000)


def format_rfc3339_ms(epoch_ms: int) -> str:
    """`2026-11-25T19:30:00.123Z`: the form the ingester stamps as `received_at`."""
    seconds, millis = divmod(epoch_ms, 1000)
    return time_struct_text(seconds) + f".{millis:03d}Z"


def time_struct_text(epoch_s: int) -> str:
    return datetime.fromtimestamp(epoch_s, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
