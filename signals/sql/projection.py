"""Athena partition projection, for the tables that declare it (`projection.enabled` = true).

Athena computes such a table's partitions from the table's parameters instead of asking Glue
(moto ignores projection altogether). Locally the partitions are found the other way round, with the
same outcome: the S3 keys under the location template's fixed prefix are listed and matched against
`storage.location.template` (default `<location>/<col>=${col}/...`), and a matched partition is
read only if every value is one projection would generate:

- `enum`: one of `projection.<col>.values` (comma-separated);
- `integer`: inside `projection.<col>.range` ("lo,hi"), on the `interval` grid, zero-padded to
  `digits` when given;
- `date`: parses with `projection.<col>.format` (a Java date pattern), inside `range` (bounds in
  that format, or `NOW`, `NOW-3DAYS`, `NOW+1HOURS`), on the `interval` x `interval.unit` grid from
  the range's start (unit default DAYS, or HOURS/MINUTES/SECONDS when the format has them);
- `injected`: the value must be given in the query's WHERE as an equality (or IN) on a literal, as
  Athena demands (`CONSTRAINT_VIOLATION` otherwise); only those values are read.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

_JAVA_DATE_PARTS = {
    "yyyy": (r"\d{4}", "%Y"), "YYYY": (r"\d{4}", "%Y"), "MM": (r"\d{2}", "%m"), "dd": (r"\d{2}", "%d"),
    "HH": (r"\d{2}", "%H"), "mm": (r"\d{2}", "%M"), "ss": (r"\d{2}", "%S"), "yy": (r"\d{2}", "%y"),
}
_UNITS = ("YEARS", "MONTHS", "WEEKS", "DAYS", "HOURS", "MINUTES", "SECONDS")


class ProjectionError(ValueError):
    """The table's projection settings are invalid or unsupported (Athena fails the query too)."""


@dataclass(frozen=True)
class DateFormat:
    regex: str
    strftime: str
    smallest_unit: str

    @classmethod
    def parse(cls, pattern: str) -> DateFormat:
        regex, strf, smallest = "", "", "DAYS"
        index = 0
        while index < len(pattern):
            if pattern[index] == "'":
                end = pattern.index("'", index + 1)
                literal = pattern[index + 1:end] or "'"
                regex, strf = regex + re.escape(literal), strf + literal.replace("%", "%%")
                index = end + 1
                continue
            for token, (token_regex, token_strf) in _JAVA_DATE_PARTS.items():
                if pattern.startswith(token, index):
                    regex, strf = regex + token_regex, strf + token_strf
                    smallest = {"HH": "HOURS", "mm": "MINUTES", "ss": "SECONDS"}.get(token, smallest)
                    index += len(token)
                    break
            else:
                char = pattern[index]
                if char.isalpha():
                    raise ProjectionError(f"unsupported date pattern letter {char!r} in {pattern!r}")
                regex, strf = regex + re.escape(char), strf + char.replace("%", "%%")
                index += 1
        return cls(regex, strf, smallest)

    def parse_value(self, text: str) -> datetime | None:
        if not re.fullmatch(self.regex, text):
            return None
        try:
            return datetime.strptime(text, self.strftime).replace(tzinfo=UTC)
        except ValueError:
            return None


@dataclass
class Column:
    name: str
    kind: str
    settings: Mapping[str, str]
    now: datetime
    injected_values: frozenset[str] | None = None
    _date: DateFormat | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if self.kind not in ("enum", "integer", "date", "injected"):
            raise ProjectionError(f"projection type {self.kind!r} of column {self.name} is not supported locally")
        if self.kind == "date":
            self._date = DateFormat.parse(self._setting("format"))

    def _setting(self, key: str, default: str | None = None) -> str:
        value = self.settings.get(key, default)
        if value is None:
            raise ProjectionError(f"projection.{self.name}.{key} is missing")
        return value

    def regex(self) -> str:
        if self.kind == "enum":
            values = sorted((v.strip() for v in self._setting("values").split(",")), key=len, reverse=True)
            return "|".join(re.escape(v) for v in values)
        if self.kind == "integer":
            return r"-?\d+"
        if self.kind == "date":
            assert self._date is not None
            return self._date.regex
        return r"[^/]+"

    def accepts(self, value: str) -> bool:
        if self.kind == "enum":
            return value in {v.strip() for v in self._setting("values").split(",")}
        if self.kind == "injected":
            return self.injected_values is not None and value in self.injected_values
        if self.kind == "integer":
            return self._accepts_integer(value)
        return self._accepts_date(value)

    def _accepts_integer(self, value: str) -> bool:
        low, high = (int(part) for part in self._setting("range").split(","))
        interval = int(self.settings.get("interval", "1"))
        number = int(value)
        digits = self.settings.get("digits")
        if digits is not None and value != f"{number:0{int(digits)}d}":
            return False
        if digits is None and value != str(number):
            return False
        return low <= number <= high and (number - low) % interval == 0

    def _accepts_date(self, value: str) -> bool:
        assert self._date is not None
        moment = self._date.parse_value(value)
        if moment is None or (self._date.strftime and moment.strftime(self._date.strftime) != value):
            return False
        start_text, end_text = (part.strip() for part in self._setting("range").split(",", 1))
        # Projection formats each generated value, so a relative bound (NOW-3DAYS) counts from the
        # value it formats to: truncated to the format's precision.
        start, end = self._truncate(self._bound(start_text)), self._truncate(self._bound(end_text))
        if not start <= moment <= end:
            return False
        interval = int(self.settings.get("interval", "1"))
        unit = self.settings.get("interval.unit", self._date.smallest_unit).upper()
        if unit not in _UNITS:
            raise ProjectionError(f"projection.{self.name}.interval.unit {unit!r} is not one of {', '.join(_UNITS)}")
        if unit in ("YEARS", "MONTHS"):
            months = (moment.year - start.year) * 12 + moment.month - start.month
            step = interval * (12 if unit == "YEARS" else 1)
            return months % step == 0 and moment.replace(year=start.year, month=start.month) == start
        seconds = {"WEEKS": 604800, "DAYS": 86400, "HOURS": 3600, "MINUTES": 60, "SECONDS": 1}[unit] * interval
        return (moment - start).total_seconds() % seconds == 0

    def _truncate(self, moment: datetime) -> datetime:
        assert self._date is not None
        return self._date.parse_value(moment.strftime(self._date.strftime)) or moment

    def _bound(self, text: str) -> datetime:
        relative = re.fullmatch(r"NOW(?:\s*([+-])\s*(\d+)\s*([A-Z]+?)S?)?", text.upper())
        if relative:
            moment = self.now
            if relative[1]:
                amount = int(relative[2]) * (1 if relative[1] == "+" else -1)
                moment = _shift(moment, amount, relative[3] + "S")
            return moment
        assert self._date is not None
        parsed = self._date.parse_value(text)
        if parsed is None:
            raise ProjectionError(f"projection.{self.name}.range bound {text!r} does not match its format")
        return parsed


def _shift(moment: datetime, amount: int, unit: str) -> datetime:
    if unit not in _UNITS:
        raise ProjectionError(f"unknown unit {unit!r} in a projection range")
    if unit in ("YEARS", "MONTHS"):
        months = moment.month - 1 + amount * (12 if unit == "YEARS" else 1)
        return moment.replace(year=moment.year + months // 12, month=months % 12 + 1)
    return moment + timedelta(**{unit.lower(): amount})


@dataclass(frozen=True)
class ProjectedPartition:
    values: tuple[str, ...]
    location: str  # s3://bucket/prefix/ of the partition


def is_projected(parameters: Mapping[str, str]) -> bool:
    return str(parameters.get("projection.enabled", "")).lower() == "true"


def location_template(parameters: Mapping[str, str], location: str, partition_keys: list[str]) -> str:
    template = parameters.get("storage.location.template")
    if template:
        return template
    base = location if location.endswith("/") else location + "/"
    return base + "".join(f"{key}=${{{key}}}/" for key in partition_keys)


def columns(parameters: Mapping[str, str], partition_keys: list[str], *, now: datetime,
            injected: Mapping[str, frozenset[str]]) -> list[Column]:
    result = []
    for key in partition_keys:
        kind = parameters.get(f"projection.{key}.type")
        if kind is None:
            raise ProjectionError(f"partition column {key} has no projection.{key}.type")
        prefix = f"projection.{key}."
        settings = {name[len(prefix):]: value for name, value in parameters.items() if name.startswith(prefix)}
        result.append(Column(key, kind.lower(), settings, now, injected.get(key)))
    return result


def enumerate_partitions(parameters: Mapping[str, str], location: str, partition_keys: list[str],
                         list_keys: Any, *, now: datetime | None = None,
                         injected: Mapping[str, frozenset[str]] | None = None) -> list[ProjectedPartition]:
    """The partitions projection yields that exist in S3; `list_keys(bucket, prefix)` lists object keys."""
    template = location_template(parameters, location, partition_keys)
    projected = columns(parameters, partition_keys, now=now or datetime.now(UTC), injected=injected or {})
    by_name = {column.name: column for column in projected}
    match = re.match(r"s3a?://([^/]+)/(.*)$", template)
    if not match:
        raise ProjectionError(f"storage.location.template {template!r} is not an s3:// URL")
    bucket, key_template = match[1], match[2]
    placeholders = re.findall(r"\$\{([^}]+)\}", key_template)
    unknown = [name for name in placeholders if name not in by_name]
    if unknown:
        raise ProjectionError(f"storage.location.template names {unknown}, which are not partition columns")
    missing = [name for name in partition_keys if name not in placeholders]
    if missing:
        raise ProjectionError(f"storage.location.template lacks partition columns {missing}")
    fixed_prefix = key_template.split("${", 1)[0]
    pattern = ""
    for index, part in enumerate(re.split(r"(\$\{[^}]+\})", key_template)):
        if index % 2:
            name = part[2:-1]
            pattern += f"(?P<{_group(name)}>{by_name[name].regex()})"
        else:
            pattern += re.escape(part)
    if not pattern.endswith("/"):
        pattern += "/"
    compiled = re.compile(pattern)
    found: dict[str, tuple[str, ...]] = {}
    for key in list_keys(bucket, fixed_prefix):
        matched = compiled.match(key)
        if matched is None or matched.end() == len(key):
            continue
        values = tuple(matched[_group(name)] for name in partition_keys)
        if all(by_name[name].accepts(value) for name, value in zip(partition_keys, values, strict=True)):
            found.setdefault(matched[0], values)
    return [ProjectedPartition(values, f"s3://{bucket}/{prefix}") for prefix, values in sorted(found.items())]


def _group(name: str) -> str:
    return "p_" + re.sub(r"\W", "_", name)
