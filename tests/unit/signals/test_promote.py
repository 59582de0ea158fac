"""Lifting a promoted key out of `extra`: the column's own validation decides, `extra` is rewritten as the
parser now writes it, an unfit value stays where it was and is counted, nothing else in the row moves."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pyarrow as pa
import pytest

from shared.arrow import arrow_schema
from shared.models import extra_json
from shared.schema import TABLES_BY_TYPE, DeviceType
from signals.promote import CannotRewrite, lift

LOCK = TABLES_BY_TYPE["lock"]
T0 = datetime(2026, 3, 10, 12, tzinfo=UTC)


def rows(*extras: str | None, without: tuple[str, ...] = ("battery_pct", "bolt_state")) -> pa.Table:
    """Lock rows written before `without` were columns (the keys in extra)."""
    schema = arrow_schema(LOCK)
    for name in without:
        schema = schema.remove(schema.get_field_index(name))
    base: dict[str, Any] = {"event_id": "e", "device_id": "d", "device_type": "lock", "event_name": "n",
                            "event_time": T0, "received_at": T0, "source_key": "raw/a"}
    return pa.Table.from_pylist([{**base, "source_line": n + 1, "extra": e} for n, e in enumerate(extras)],
                                schema=schema)


def test_values_that_fit_move_to_their_column_and_the_rest_stay_in_extra_counted() -> None:
    result = lift(rows('{"battery_pct":87.0,"bolt_state":"locked","x":1}', '{"battery_pct":101}',
                       '{"bolt_state":"LOCKED"}', None), LOCK)
    assert result.table is not None
    out = result.table.to_pylist()
    assert [(r["battery_pct"], r["bolt_state"], r["extra"]) for r in out] == [
        (87, "locked", '{"x":1}'),  # a float with no fraction is an int (the lossless coercion)
        (None, None, '{"battery_pct":101}'),  # out of range
        (None, None, '{"bolt_state":"LOCKED"}'),  # enums are case-sensitive
        (None, None, None),
    ]
    assert (dict(result.lifted), dict(result.unfit)) == ({"battery_pct": 1, "bolt_state": 1},
                                                         {"battery_pct": 1, "bolt_state": 1})
    assert [r["source_line"] for r in out] == [1, 2, 3, 4]
    assert result.table.schema == arrow_schema(LOCK)


def test_extra_is_rewritten_exactly_as_the_parser_would_write_it_now() -> None:
    line = b'{"zeta":1.00000000000000011,"battery_pct":50,"alpha":[1,{"b":2}]}'
    old = '{"alpha":[1,{"b":2}],"battery_pct":50,"zeta":1.00000000000000011}'
    (row,) = lift(rows(old), LOCK).table.to_pylist()  # type: ignore[union-attr]
    assert row["extra"] == extra_json(orjson.loads(line), DeviceType.LOCK, line)
    assert "1.00000000000000011" in row["extra"]  # the text as sent, not a rounded double


def test_nothing_to_lift_rewrites_nothing() -> None:
    result = lift(rows('{"x":1}', None), LOCK)
    assert (result.table, result.rows, dict(result.unfit)) == (None, 2, {})


def test_a_file_with_a_column_the_schema_lacks_is_refused_rather_than_dropped() -> None:
    table = rows('{"battery_pct":50}').append_column("legacy", pa.array(["v"]))
    with pytest.raises(CannotRewrite, match="legacy"):
        lift(table, LOCK)
