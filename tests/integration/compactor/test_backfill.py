"""`signals backfill` on the embedded AWS: old rows get a promoted column's value from their own `extra`,
the verified files are rewritten in place, the compacted day is refreshed (same count, no conflict),
unfit values stay in `extra`, one audit row per day, and a second run changes nothing.

A promotion is simulated faithfully without editing `shared.schema`: the verified files are written
as the parser wrote them before `rssi_dbm` was a lock column (no such column, the value in `extra`),
while the Glue and Iceberg tables already have it (as after `signals schema apply`).
"""

from __future__ import annotations

import io
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from shared.arrow import arrow_schema, parquet_input
from shared.layout import Partition, verified_key
from shared.schema import BACKFILL_RUNS, TABLES_BY_TYPE
from signals.cli import main
from signals.env import Output
from tests.integration.compactor import support
from tests.integration.compactor.support import BASE, World, day_of, lock_row

DAY, HOUR = day_of(BASE)
LOCK = TABLES_BY_TYPE["lock"]


@pytest.fixture
def local_stack(world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    outputs = {
        Output.REGISTRY_TABLE: support.REGISTRY_TABLE, Output.GLUE_DATABASE: support.GLUE_DATABASE,
        Output.VERIFIED_BUCKET: support.VERIFIED_BUCKET, Output.DBT_BUCKET: support.DBT_BUCKET,
        Output.ARTIFACTS_BUCKET: support.ARTIFACTS_BUCKET, Output.ALERTS_DATABASE: support.ALERTS_DATABASE,
        Output.AUDIT_DATABASE: support.AUDIT_DATABASE,
    }
    (tmp_path / "local-stack.json").write_text(json.dumps({"outputs": outputs, "aws_endpoint_url": world.url}))
    monkeypatch.setenv("SIGNALS_HOME", str(tmp_path))
    return world


def old_row(event_id: str, extra: dict[str, Any] | None, **overrides: Any) -> dict[str, Any]:
    """A lock row as parsed before `rssi_dbm` was known: the key sits in `extra`."""
    row = lock_row(event_id, **overrides)
    del row["rssi_dbm"]
    row["extra"] = json.dumps(extra, separators=(",", ":"), sort_keys=True) if extra else None
    return row


def write_old_file(world: World, name: str, rows: list[dict[str, Any]]) -> str:
    """A verified file in the old schema (no `rssi_dbm` column), with the parser's S3 metadata."""
    old_schema = arrow_schema(LOCK).remove(arrow_schema(LOCK).get_field_index("rssi_dbm"))
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows, schema=old_schema), buffer)
    key = world.write_verified("lock", DAY, HOUR, [], name=name)  # partition + registry item
    world.client("s3").put_object(Bucket=support.VERIFIED_BUCKET, Key=key, Body=buffer.getvalue(),
                                  Metadata={"rows": str(len(rows)), "source-key": f"raw/json_telemetry/{name}"})
    return key


def verified_rows(world: World, key: str) -> list[dict[str, Any]]:
    body = world.client("s3").get_object(Bucket=support.VERIFIED_BUCKET, Key=key)["Body"].read()
    return pq.read_table(parquet_input(body)).to_pylist()


def test_backfill_lifts_extra_into_the_column_refreshes_the_compacted_day_and_a_rerun_changes_nothing(
        local_stack: World, capsys: pytest.CaptureFixture[str]) -> None:
    world = local_stack
    first = write_old_file(world, "a", [
        old_row("e1", {"rssi_dbm": -61, "beta_flag": "on"}, line=1),
        old_row("e2", {"rssi_dbm": -70.0}, line=2),  # an integral float: lossless, lifted as -70
        old_row("e3", {"rssi_dbm": "strong"}, line=3),  # a string: does not fit, stays in extra
        old_row("e4", {"rssi_dbm": -200}, line=4),  # out of range: does not fit
        old_row("e5", None, line=5),
    ])
    second = write_old_file(world, "b", [  # a retry's copy of e1, later: a natural duplicate
        old_row("e1", {"rssi_dbm": -61, "beta_flag": "on"}, received=BASE + timedelta(seconds=30), line=1,
                source_key="raw/json_telemetry/b"),
    ])
    assert main(["compact"]) == 0
    capsys.readouterr()
    before = world.compacted("lock", DAY)
    assert [r["rssi_dbm"] for r in before] == [None] * 5

    assert main(["backfill", "--table", "lock", "--from", DAY, "--to", DAY, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    (day,) = result["days"]
    assert (day["files_read"], day["files_rewritten"], day["rows_read"]) == (2, 2, 6)
    assert (day["values_lifted"], day["values_unfit"], day["unfit"]) == (3, 2, {"rssi_dbm": 2})
    assert (day["compacted_refreshed"], day["compacted_inserted"], day["outcome"]) == (2, 0, "succeeded")

    # The verified files: same keys, same rows and lineage, the value in its column, extra without it.
    rewritten = {r["event_id"]: r for r in verified_rows(world, first)}
    assert [r["source_line"] for r in verified_rows(world, first)] == [1, 2, 3, 4, 5]
    assert (rewritten["e1"]["rssi_dbm"], rewritten["e1"]["extra"]) == (-61, '{"beta_flag":"on"}')
    assert (rewritten["e2"]["rssi_dbm"], rewritten["e2"]["extra"]) == (-70, None)
    assert (rewritten["e3"]["rssi_dbm"], rewritten["e3"]["extra"]) == (None, '{"rssi_dbm":"strong"}')
    assert (rewritten["e4"]["rssi_dbm"], rewritten["e4"]["extra"]) == (None, '{"rssi_dbm":-200}')
    head = world.client("s3").head_object(Bucket=support.VERIFIED_BUCKET, Key=second)
    assert head["Metadata"]["source-key"] == "raw/json_telemetry/b"

    # The compacted day: every row shows the value it was sent with; same count, same kept copies.
    after = world.compacted("lock", DAY)
    assert len(after) == len(before) == 5
    assert {r["event_id"]: r["rssi_dbm"] for r in after} == {"e1": -61, "e2": -70, "e3": None, "e4": None,
                                                           "e5": None}
    assert [(r["source_key"], r["source_line"]) for r in after] == [(r["source_key"], r["source_line"])
                                                                    for r in before]
    assert world.conflicts() == []
    (audit,) = world.audit(BACKFILL_RUNS.name)
    assert (audit["day"], audit["columns"], audit["values_lifted"], audit["values_unfit"]) == (DAY, "rssi_dbm", 3, 2)
    assert (audit["compacted_refreshed"], audit["outcome"]) == (2, "succeeded")

    # A second run: nothing left to lift, nothing rewritten, the compacted table's snapshot unchanged.
    snapshot = world.catalog.load_table((support.ALERTS_DATABASE, "int_lock_compacted_daily")).current_snapshot()
    etag = world.client("s3").head_object(Bucket=support.VERIFIED_BUCKET, Key=first)["ETag"]
    assert main(["backfill", "--table", "lock", "--from", DAY, "--to", DAY, "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert [(d["files_rewritten"], d["values_lifted"], d["values_unfit"], d["outcome"]) for d in again["days"]] == [
        (0, 0, 2, "unchanged")]
    assert world.client("s3").head_object(Bucket=support.VERIFIED_BUCKET, Key=first)["ETag"] == etag
    table = world.catalog.load_table((support.ALERTS_DATABASE, "int_lock_compacted_daily"))
    assert table.current_snapshot().snapshot_id == snapshot.snapshot_id
    assert main(["compact", "--day", DAY, "--table", "lock", "--json"]) == 0
    recompute = json.loads(capsys.readouterr().out)
    assert [(d["inserted"], d["replaced"], d["refreshed"]) for d in recompute["days"]] == [(0, 0, 0)]


def test_backfill_refuses_before_schema_apply_and_refuses_otlp(
        local_stack: World, capsys: pytest.CaptureFixture[str]) -> None:
    glue = local_stack.client("glue")
    found = glue.get_table(DatabaseName=support.GLUE_DATABASE, Name=LOCK.name)["Table"]
    descriptor = found["StorageDescriptor"]
    descriptor["Columns"] = [c for c in descriptor["Columns"] if c["Name"] != "rssi_dbm"]
    glue.update_table(DatabaseName=support.GLUE_DATABASE, TableInput={
        "Name": LOCK.name, "StorageDescriptor": descriptor, "PartitionKeys": found["PartitionKeys"],
        "TableType": found.get("TableType", "EXTERNAL_TABLE")})
    assert main(["backfill", "--table", "lock", "--from", DAY, "--to", DAY]) == 1
    assert "lacks rssi_dbm: deploy the schema and run `signals schema apply --env local`" in capsys.readouterr().err
    assert main(["backfill", "--table", "otlp_logs", "--from", DAY, "--to", DAY]) == 2
    assert "signals redrive raw" in capsys.readouterr().err
    assert main(["backfill", "--table", "lock", "--from", DAY, "--to", "2026-01-01"]) == 2
    assert "is before --from" in capsys.readouterr().err


def test_a_file_with_a_column_the_schema_lacks_is_left_alone_and_the_day_fails(
        local_stack: World, capsys: pytest.CaptureFixture[str]) -> None:
    rows = [{**old_row("e1", {"rssi_dbm": -61}), "legacy_col": "kept"}]
    schema = arrow_schema(LOCK).remove(arrow_schema(LOCK).get_field_index("rssi_dbm")).append(
        pa.field("legacy_col", pa.string()))
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), buffer)
    key = verified_key("lock", Partition(DAY, HOUR), "legacy")
    local_stack.client("s3").put_object(Bucket=support.VERIFIED_BUCKET, Key=key, Body=buffer.getvalue())
    assert main(["backfill", "--table", "lock", "--from", DAY, "--to", DAY]) == 1
    out = capsys.readouterr().out
    assert "legacy_col are not in the current telemetry_lock_flat schema" in out
    assert verified_rows(local_stack, key)[0]["legacy_col"] == "kept"
