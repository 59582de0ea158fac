"""`signals schema apply` on the embedded AWS: a field added by the ledger reaches the live Iceberg and
Glue tables by id, old rows keep their values, a second apply changes nothing, hand-made drift is
reported and kept; the compactor stops a table whose live schema is not the ledger's with one error."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from pyiceberg.types import StringType

from shared import ledger
from shared.iceberg import field_ids
from shared.schema import AUDIT_TABLES, COMPACTED_BY_TYPE, COMPACTED_TABLES, FieldSpec, Kind
from signals.schema.apply import apply_iceberg, apply_verified
from signals.schema.evolution import compare
from tests.integration.compactor import support
from tests.integration.compactor.support import BASE, World, lock_row

LOCK = COMPACTED_BY_TYPE["lock"]
DAY, HOUR = BASE.strftime("%Y-%m-%d"), BASE.strftime("%H")


def _grown() -> tuple[Any, ledger.Ledger]:
    fields = list(LOCK.source.fields)
    fields.insert(fields.index(LOCK.source.field("extra")), FieldSpec("auto_lock_delay_s", Kind.INT, "Delay, s."))
    grown = dataclasses.replace(LOCK, source=dataclasses.replace(LOCK.source, fields=tuple(fields)))
    result = compare(ledger.load(), [grown if t is LOCK else t for t in (*COMPACTED_TABLES, *AUDIT_TABLES)])
    assert result.ledger is not None
    assert not result.incompatible
    return grown, result.ledger


def _lock_table(world: World) -> Any:
    return world.catalog.load_table((support.ALERTS_DATABASE, LOCK.name))


def test_apply_adds_by_id_keeps_old_rows_and_is_idempotent(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    world.write_verified("lock", DAY, HOUR, [lock_row("e1"), lock_row("e2")])
    assert world.handler()({}, None)["days_compacted"] == 1
    grown, grown_ledger = _grown()
    glue = world.client("glue")

    report = apply_iceberg(_lock_table(world), grown_ledger.table(LOCK.name), grown, dry_run=False)
    assert report.applied == ["added auto_lock_delay_s long (id 23)"]
    assert not report.errors
    schema = _lock_table(world).schema()
    assert schema.find_field("auto_lock_delay_s").field_id == 23
    assert {f.name: f.field_id for f in schema.fields if f.name != "auto_lock_delay_s"} == field_ids(LOCK)
    rows = world.compacted("lock")
    assert [(r["event_id"], r["battery_pct"], r["auto_lock_delay_s"]) for r in rows] == [
        ("e1", 80, None), ("e2", 80, None)]

    verified = apply_verified(glue, support.GLUE_DATABASE, grown.source, dry_run=False)
    assert verified.applied == ["added column auto_lock_delay_s bigint", "updated the column list of 1 partition(s)"]
    table = glue.get_table(DatabaseName=support.GLUE_DATABASE, Name=LOCK.source.name)["Table"]
    names = [c["Name"] for c in table["StorageDescriptor"]["Columns"]]
    assert names == grown.source.column_names
    (partition,) = glue.get_partitions(DatabaseName=support.GLUE_DATABASE, TableName=LOCK.source.name)["Partitions"]
    assert [c["Name"] for c in partition["StorageDescriptor"]["Columns"]] == names
    assert partition["StorageDescriptor"]["Location"].endswith(f"day={DAY}/hour={HOUR}/")

    again = apply_iceberg(_lock_table(world), grown_ledger.table(LOCK.name), grown, dry_run=False)
    assert (again.applied, again.errors, again.drift) == ([], [], [])
    assert apply_verified(glue, support.GLUE_DATABASE, grown.source, dry_run=False).applied == []


def test_hand_made_drift_is_reported_and_blocks_an_addition_it_would_renumber(world: World) -> None:
    with _lock_table(world).update_schema() as update:
        update.add_column("added_by_hand", StringType())  # takes id 23, the ledger's next id
    grown, grown_ledger = _grown()
    report = apply_iceberg(_lock_table(world), grown_ledger.table(LOCK.name), grown, dry_run=False)
    assert report.applied == []
    assert any("added_by_hand" in d and "not in the ledger" in d for d in report.drift)
    assert report.errors == ["id 23 is 'added_by_hand' in the table, 'auto_lock_delay_s' in the ledger: "
                             "auto_lock_delay_s cannot be added with its id"]
    assert "added_by_hand" in _lock_table(world).schema().column_names
    assert "auto_lock_delay_s" not in _lock_table(world).schema().column_names

    # With the committed ledger (nothing to add) the drift is reported and nothing fails.
    plain = apply_iceberg(_lock_table(world), ledger.load().table(LOCK.name), LOCK, dry_run=False)
    assert (plain.applied, plain.errors, len(plain.drift)) == ([], [], 1)


def test_compactor_stops_a_table_whose_live_schema_is_not_the_ledgers(world: World) -> None:
    with _lock_table(world).update_schema() as update:
        update.rename_column("temperature_c", "temp_c")  # the MERGE would name a column the table lacks
    world.write_verified("lock", DAY, HOUR, [lock_row("e1")])
    world.write_verified("otlp_logs", DAY, HOUR, [support.otlp_row("o1")])
    result = world.handler()({}, None)
    (error,) = result["errors"]
    assert error.startswith("int_lock_compacted_daily: schema fingerprint")
    assert "temperature_c (id 15) is missing" in error
    assert "signals schema apply --env test" in error
    assert result["schema_blocked"] == ["int_lock_compacted_daily"]
    assert [d["table"] for d in result["days"] if d["table"] == LOCK.name] == []  # not tried, not retried
    assert result["watermark_after"] is None or result["watermark_after"] < result["started_at"]
    assert world.compacted("lock") == []
    assert [(d["table"], d["outcome"]) for d in result["days"]] == [("int_otlp_logs_compacted_daily", "succeeded")]
