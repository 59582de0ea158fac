"""Values and types as Athena writes them (GetQueryResults, the result CSV)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pyarrow as pa
import pytest

from signals.sql.types import athena_text, csv_line, hive_to_arrow, java_double


@pytest.mark.parametrize(("value", "text"), [
    (0.5, "0.5"), (2.0, "2.0"), (1e7, "1.0E7"), (1.5e7, "1.5E7"), (1e-4, "1.0E-4"), (-3.25e10, "-3.25E10"),
    (123456.789, "123456.789"), (0.001, "0.001"), (float("nan"), "NaN"), (float("-inf"), "-Infinity"),
])
def test_doubles_print_like_java(value: float, text: str) -> None:
    assert java_double(value) == text


def test_values_as_athena_text() -> None:
    assert athena_text(None) is None
    assert athena_text(True) == "true"
    assert athena_text(Decimal("1.50")) == "1.50"
    assert athena_text(datetime(2026, 11, 25, 19, 0, 0, 123000)) == "2026-11-25 19:00:00.123"
    assert athena_text(datetime(2026, 11, 25, 19, 0, 0, 123456)) == "2026-11-25 19:00:00.123456"
    assert athena_text(datetime(2026, 11, 25, 19, tzinfo=UTC)) == "2026-11-25 19:00:00.000 UTC"
    assert athena_text(date(2026, 11, 25)) == "2026-11-25"
    assert athena_text({"home": "h1", "n": None}) == "{home=h1, n=null}"
    assert athena_text([1, 2.5, "x"]) == "[1, 2.5, x]"


def test_csv_quotes_every_field_and_leaves_null_empty() -> None:
    assert csv_line(["a", None, 'say "hi", twice', ""]) == '"a",,"say ""hi"", twice",""\n'


def test_hive_types_as_arrow() -> None:
    assert hive_to_arrow("map<string,string>") == pa.map_(pa.string(), pa.string())
    assert hive_to_arrow("array<struct<field:string,error:string>>") == pa.list_(
        pa.struct([pa.field("field", pa.string()), pa.field("error", pa.string())]))
    assert hive_to_arrow("decimal(10,2)") == pa.decimal128(10, 2)
    assert hive_to_arrow("timestamp") == pa.timestamp("us")
    assert hive_to_arrow("varchar(20)") == pa.string()


def test_a_zoned_timestamp_keeps_its_zone_as_trino_prints_it() -> None:
    from datetime import timedelta, timezone  # noqa: PLC0415
    from zoneinfo import ZoneInfo  # noqa: PLC0415

    moment = datetime(2026, 12, 6, 21, 35, 50, 459000)
    new_york = moment.replace(tzinfo=ZoneInfo("America/New_York"))
    assert athena_text(new_york) == "2026-12-06 21:35:50.459 America/New_York"
    assert athena_text(moment.replace(tzinfo=ZoneInfo("Etc/UTC"))) == "2026-12-06 21:35:50.459 UTC"
    assert athena_text(moment.replace(tzinfo=timezone(timedelta(hours=-3)))) == "2026-12-06 21:35:50.459 -03:00"
