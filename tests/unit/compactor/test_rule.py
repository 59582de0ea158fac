"""The dedup rule on the DuckDB rendering: natural and conflicting duplicates, ties, OTLP, late rows."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from compactor.dedup import DUCKDB, column_text, fingerprint_sql
from shared.schema import COMPACTED_BY_TYPE
from tests.unit.compactor.rows import DAY, T0, connect, local_query, lock, otlp, select

LOCK = COMPACTED_BY_TYPE["lock"]
OTLP = COMPACTED_BY_TYPE["otlp_logs"]


def stats(table: Any, verified: list[dict[str, Any]], compacted: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    connection = connect(table, verified, compacted or [])
    (row,) = select(connection, local_query(table).stats_select("run"))
    return row


def kept(table: Any, verified: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(select(connect(table, verified), local_query(table).dedup_select()), key=lambda r: r["event_key"])


def test_natural_duplicates_are_dropped_and_counted_keeping_the_earliest_copy() -> None:
    copies = [lock("e1", received=T0 + timedelta(seconds=s), source_key=f"raw/{s}") for s in (30, 0, 10)]
    (row,) = kept(LOCK, copies)
    assert row["source_key"] == "raw/0"
    assert stats(LOCK, copies) == {"verified_rows": 3, "inserted": 1, "replaced": 0, "refreshed": 0,
                                   "natural_duplicates": 2,
                                   "conflicting_duplicates": 0, "conflicts_recorded": 0, "late_rows": 0}


def test_a_conflicting_copy_is_kept_out_and_recorded_with_both_lineages() -> None:
    first = lock("e1", source_key="raw/first", line=4)
    other = lock("e1", received=T0 + timedelta(minutes=1), source_key="raw/other", line=7, bolt_state="jammed",
                 temperature_c=None, attributes=[("note", "reused id")])
    (row,) = kept(LOCK, [other, first])
    assert (row["source_key"], row["bolt_state"]) == ("raw/first", "locked")
    counts = stats(LOCK, [first, other])
    assert (counts["natural_duplicates"], counts["conflicting_duplicates"], counts["conflicts_recorded"]) == (0, 1, 1)
    conflicts_sql = local_query(LOCK).conflicts_select("run", "2026-03-10T13:00:00Z")
    (conflict,) = select(connect(LOCK, [first, other]), conflicts_sql)
    assert (conflict["kept_source_key"], conflict["kept_source_line"]) == ("raw/first", 4)
    assert (conflict["conflicting_source_key"], conflict["conflicting_source_line"]) == ("raw/other", 7)
    assert conflict["differing_columns"] == "attributes,bolt_state,temperature_c"  # a null differs from a value
    assert conflict["event_key"] == "6:lock-1:e1"  # (device_id, event_id)
    assert '"bolt_state":"jammed"' in conflict["conflicting_row"]


def test_ties_on_received_at_go_to_source_key_then_source_line_so_a_recompute_keeps_the_same_row() -> None:
    copies = [lock("e1", source_key="raw/b", line=1), lock("e1", source_key="raw/a", line=9),
              lock("e1", source_key="raw/a", line=2)]
    for order in (copies, copies[::-1], [copies[1], copies[2], copies[0]]):
        (row,) = kept(LOCK, order)
        assert (row["source_key"], row["source_line"]) == ("raw/a", 2)


def test_otlp_copies_key_on_content_so_a_resend_is_one_record_and_other_content_another() -> None:
    sent = otlp("door opened", attributes=[("b", "2"), ("a", None)])
    resent = {**sent, "received_at": T0 + timedelta(seconds=5), "source_key": "raw/resend",
              "attributes": [("a", None), ("b", "2")]}  # map order is not content
    different = {**sent, "attributes": [("b", "3")], "source_line": 2}
    rows = kept(OTLP, [resent, sent, different])
    assert len(rows) == 2
    assert {r["source_key"] for r in rows} == {"raw/o"}
    assert stats(OTLP, [resent, sent, different])["natural_duplicates"] == 1


@pytest.mark.parametrize(("left", "right"), [
    ({"attributes": None}, {"attributes": []}),  # null map vs empty map
    ({"attributes": [("a", None)]}, {"attributes": []}),  # a null value is an entry
    ({"attributes": [("a", "")]}, {"attributes": [("a", None)]}),  # empty string vs null value
    ({"body": None}, {"body": "n"}),  # null vs the null marker's text
    ({"body": "a,b", "severity_text": "c"}, {"body": "a", "severity_text": "b,c"}),  # no separator games
    ({"observed_time": None}, {"observed_time": T0}),
])
def test_the_fingerprint_tells_apart_what_differs(left: dict[str, Any], right: dict[str, Any]) -> None:
    rows = kept(OTLP, [otlp("x") | left, otlp("x", line=2) | right])
    assert len(rows) == 2


def test_late_rows_are_counted_and_stay_in_their_event_day() -> None:
    late = lock("late", received=T0 + timedelta(days=2))  # event day 2026-03-10, received two days later
    on_time = lock("on-time")
    counts = stats(LOCK, [late, on_time])
    assert (counts["inserted"], counts["late_rows"]) == (2, 1)
    assert {r["day"] for r in kept(LOCK, [late, on_time])} == {DAY}


def test_the_merge_plan_inserts_what_is_absent_replaces_a_later_copy_and_keeps_the_rest() -> None:
    early = lock("e1", source_key="raw/early")
    late_copy = lock("e1", received=T0 + timedelta(minutes=5), source_key="raw/late")
    present = lock("e2", source_key="raw/e2")
    new = lock("e3", source_key="raw/e3")
    compacted = [late_copy, present]
    connection = connect(LOCK, [early, late_copy, present, new], compacted)
    plan = {r["event_id"]: r["action"] for r in select(connection, local_query(LOCK).plan_select())}
    assert plan == {"e1": "replace", "e3": "insert"}
    # A rerun against the merged result changes nothing.
    merged = [early, present, new]
    assert select(connect(LOCK, [early, late_copy, present, new], merged), local_query(LOCK).plan_select()) == []


def test_a_fingerprint_over_a_float_column_is_refused() -> None:
    with pytest.raises(ValueError, match="temperature_c"):
        column_text(DUCKDB, LOCK.source.field("temperature_c"), '"temperature_c"')
    with pytest.raises(ValueError, match="not on a fingerprint"):
        fingerprint_sql(DUCKDB, LOCK)
