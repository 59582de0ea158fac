"""RFC 3339 timestamps parsed column-wise with Arrow compute (no per-row Python).

The result agrees with `shared.timeparse.to_epoch_ms` for every value it accepts; anything it cannot
decide (a shape it does not know, a date that does not exist) comes back null, and the caller sends
that row to the per-line validator, which has the last word.
"""

from __future__ import annotations

from typing import Final

import pyarrow as pa
import pyarrow.compute as pc

from shared.timeparse import MAX_EPOCH_MS, MIN_EPOCH_MS

_PATTERN: Final = (
    r"^(?P<year>\d{4})-(?P<month>\d{2})-(?P<day>\d{2})[Tt ](?P<hour>\d{2}):(?P<minute>\d{2}):(?P<second>\d{2})"
    r"(?:\.(?P<fraction>\d+))?(?P<zone>[Zz]|(?P<sign>[+-])(?P<zone_hour>\d{2}):(?P<zone_minute>\d{2}))$"
)
_MONTH_DAYS: Final = pa.array([0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], pa.int64())
_INT64: Final = pa.int64()


def _text(parts: pa.StructArray, name: str) -> pa.Array:
    """A named group; null where the row did not match (an optional group that did not match is "")."""
    return pc.struct_field(parts, name)


def _int(parts: pa.StructArray, name: str) -> pa.Array:
    text = _text(parts, name)
    return pc.cast(pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text), _INT64)


def _days_from_civil(year: pa.Array, month: pa.Array, day: pa.Array) -> pa.Array:
    """Days since 1970-01-01 for a proleptic Gregorian date (years >= 1 only)."""
    before_march = pc.less_equal(month, 2)
    year = pc.subtract(year, pc.cast(before_march, _INT64))
    era = pc.divide(year, 400)
    year_of_era = pc.subtract(year, pc.multiply(era, 400))
    shifted_month = pc.if_else(before_march, pc.add(month, 9), pc.subtract(month, 3))
    day_of_year = pc.add(pc.divide(pc.add(pc.multiply(shifted_month, 153), 2), 5), pc.subtract(day, 1))
    day_of_era = pc.add(
        pc.subtract(pc.add(pc.multiply(year_of_era, 365), pc.divide(year_of_era, 4)), pc.divide(year_of_era, 100)),
        day_of_year,
    )
    return pc.subtract(pc.add(pc.multiply(era, 146097), day_of_era), 719468)


def _is_leap(year: pa.Array) -> pa.Array:
    divisible_4 = pc.equal(pc.subtract(year, pc.multiply(pc.divide(year, 4), 4)), 0)
    divisible_100 = pc.equal(pc.subtract(year, pc.multiply(pc.divide(year, 100), 100)), 0)
    divisible_400 = pc.equal(pc.subtract(year, pc.multiply(pc.divide(year, 400), 400)), 0)
    return pc.and_(divisible_4, pc.or_(pc.invert(divisible_100), divisible_400))


# The shapes Arrow's own ISO 8601 cast reads exactly as RFC 3339 means them (Arrow also reads forms
# RFC 3339 does not allow, such as missing seconds or `+02` offsets, so the shape is checked first).
_COMMON_SHAPE: Final = r"^\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)$"
_NS_UTC: Final = pa.timestamp("ns", tz="UTC")


def rfc3339_to_epoch_ms(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """int64 epoch ms for each RFC 3339 string; null where absent or not decidable here.

    The common shapes go through Arrow's cast (fast); a column where that cast refuses some value
    (a leap second, a date that does not exist, a year outside the nanosecond range) is decided by
    the slower component-wise parser below. Other shapes (`t`, `z`, more than 9 fraction digits)
    come back null and are decided per line.
    """
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if len(values) == 0:
        return pa.array([], _INT64)
    common = pc.match_substring_regex(values, _COMMON_SHAPE)
    candidates = pc.if_else(common, values, pa.scalar(None, pa.string()))
    try:
        nanos = pc.cast(pc.cast(candidates, _NS_UTC), _INT64)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return _component_wise(values)
    nanos = pc.if_else(pc.greater_equal(nanos, 0), nanos, pa.scalar(None, _INT64))
    return pc.divide(nanos, 1_000_000)  # all >= 1970 here, so truncation is the floor


def _component_wise(values: pa.Array) -> pa.Array:
    parts = pc.extract_regex(values, _PATTERN)  # null where the shape does not match
    if parts.null_count == len(parts):
        return pa.nulls(len(values), _INT64)
    year, month, day = _int(parts, "year"), _int(parts, "month"), _int(parts, "day")
    hour, minute, second = _int(parts, "hour"), _int(parts, "minute"), _int(parts, "second")
    second = pc.min_element_wise(second, 59)  # a leap second folds onto :59, as the per-line parser does
    month_ok = pc.and_(pc.greater_equal(month, 1), pc.less_equal(month, 12))
    safe_month = pc.if_else(month_ok, month, 1)
    month_days = pc.take(_MONTH_DAYS, safe_month)
    february_29 = pc.and_(pc.equal(safe_month, 2), pc.equal(day, 29))
    day_ok = pc.and_(
        pc.and_(pc.greater_equal(day, 1), pc.less_equal(day, month_days)),
        pc.or_(pc.invert(february_29), _is_leap(year)),
    )
    time_ok = pc.and_(pc.less_equal(hour, 23), pc.less_equal(minute, 59))
    valid = pc.and_(pc.and_(month_ok, day_ok), pc.and_(time_ok, pc.greater_equal(year, 1)))

    fraction = pc.utf8_rpad(pc.utf8_slice_codeunits(_text(parts, "fraction"), 0, 3), width=3, padding="0")
    millis = pc.fill_null(pc.cast(fraction, _INT64), 0)
    sign = pc.if_else(pc.equal(_text(parts, "sign"), "-"), -1, 1)
    zone_hour = pc.fill_null(_int(parts, "zone_hour"), 0)
    zone_minute = pc.fill_null(_int(parts, "zone_minute"), 0)
    offset_s = pc.multiply(pc.fill_null(sign, 1), pc.add(pc.multiply(zone_hour, 3600), pc.multiply(zone_minute, 60)))

    days = _days_from_civil(year, safe_month, day)
    seconds = pc.add(
        pc.add(pc.multiply(days, 86400), pc.add(pc.multiply(hour, 3600), pc.multiply(minute, 60))), second
    )
    epoch_ms = pc.add(pc.multiply(pc.subtract(seconds, offset_s), 1000), millis)
    in_range = pc.and_(pc.greater_equal(epoch_ms, MIN_EPOCH_MS), pc.less(epoch_ms, MAX_EPOCH_MS))
    keep = pc.and_(valid, in_range)
    return pc.if_else(keep, epoch_ms, pa.scalar(None, _INT64))
