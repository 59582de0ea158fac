"""The column-wise RFC 3339 parser agrees with shared.timeparse wherever it decides."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from parser.vectorized_time import rfc3339_to_epoch_ms
from shared.timeparse import TimestampError, to_epoch_ms


def reference(text: str) -> int | None:
    try:
        return to_epoch_ms(text)
    except TimestampError:
        return None


@st.composite
def timestamps(draw: st.DrawFn) -> str:
    moment = draw(st.datetimes(min_value=datetime(1969, 12, 31), max_value=datetime(9999, 12, 30)))
    separator = draw(st.sampled_from("Tt "))
    fraction = draw(st.sampled_from(["", ".", ".1", ".12", ".123", ".123456", ".123456789", ".1234567891234"]))
    zone = draw(st.sampled_from(["Z", "z", "+00:00", "-05:30", "+14:00", "+0200", "+02", ""]))
    text = moment.strftime(f"%Y-%m-%d{separator}%H:%M:%S") + fraction + zone
    return draw(st.sampled_from([text, text.replace(":", "", 1), text[:-3] if len(text) > 3 else text]))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(timestamps(), st.text(max_size=30)), max_size=30))
def test_agrees_with_the_per_line_parser_or_leaves_the_row_undecided(values: list[str]) -> None:
    parsed = rfc3339_to_epoch_ms(pa.array(values, pa.string())).to_pylist()
    for text, value in zip(values, parsed, strict=True):
        if value is not None:
            assert value == reference(text), text
        elif reference(text) is not None:
            # Undecided is allowed only for shapes the column parser leaves to the per-line path.
            assert any(char in text for char in "tz") or len(text.split(".")[-1]) > 12, text


def test_edge_values() -> None:
    values = ["2024-02-29T23:59:60.5-05:30", "2023-02-29T00:00:00Z", "1970-01-01T00:00:00+01:00",
              "9999-12-31T23:59:59.999Z", "2026-11-25 19:00:00Z", None, "2262-04-12T00:00:00Z"]
    parsed = rfc3339_to_epoch_ms(pa.array(values, pa.string())).to_pylist()
    assert parsed == [None if text is None else reference(text) for text in values]
    assert parsed[4] == int((datetime(2026, 11, 25, 19, tzinfo=UTC) - datetime(1970, 1, 1, tzinfo=UTC))
                            / timedelta(milliseconds=1))
