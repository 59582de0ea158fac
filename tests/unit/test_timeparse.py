from __future__ import annotations

import pytest

from shared.timeparse import TimestampError, format_rfc3339_ms, parse_rfc3339_ms, to_epoch_ms

BASE = 1764099000000  # 2025-11-25T19:30:00Z


@pytest.mark.parametrize(("text", "expected"), [
    ("2025-11-25T19:30:00Z", BASE),
    ("2025-11-25t19:30:00z", BASE),
    ("2025-11-25 19:30:00Z", BASE),
    ("2025-11-25T19:30:00.1Z", BASE + 100),
    ("2025-11-25T19:30:00.123456789Z", BASE + 123),  # truncated, not rounded
    ("2025-11-25T19:30:00.999999Z", BASE + 999),
    ("2025-11-25T21:30:00+02:00", BASE),
    ("2025-11-25T14:00:00-05:30", BASE),
    ("2025-11-26T01:00:00.5+05:30", BASE + 500),
])
def test_rfc3339_forms(text: str, expected: int) -> None:
    assert parse_rfc3339_ms(text) == expected


@pytest.mark.parametrize("text", [
    "2025-11-25", "2025-11-25T19:30:00", "2025-13-01T00:00:00Z", "2025-02-30T00:00:00Z",
    "2025-11-25T24:00:00Z", "2025-11-25T19:30Z", " 2025-11-25T19:30:00Z", "2025-11-25T19:30:00+0200",
])
def test_rejects_what_the_rfc_does_not_allow(text: str) -> None:
    with pytest.raises(TimestampError):
        parse_rfc3339_ms(text)


def test_epoch_ms_and_integral_floats() -> None:
    assert to_epoch_ms(BASE) == BASE
    assert to_epoch_ms(float(BASE)) == BASE
    for bad in (True, 1.5, -1, float("nan"), None, [BASE]):
        with pytest.raises(TimestampError):
            to_epoch_ms(bad)


def test_received_at_format_round_trips() -> None:
    assert format_rfc3339_ms(BASE + 7) == "2025-11-25T19:30:00.007Z"
    assert parse_rfc3339_ms(format_rfc3339_ms(BASE + 7)) == BASE + 7
