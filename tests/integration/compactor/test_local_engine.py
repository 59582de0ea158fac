"""Registry items -> plan -> local engine (DuckDB + pyiceberg) -> Iceberg tables in the embedded Glue."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from shared.schema import device_event_key
from tests.integration.compactor.support import BASE, World, day_of, lock_row, otlp_row

DAY, HOUR = day_of(BASE)


def run(world: World, event: dict[str, Any] | None = None, **overrides: str) -> dict[str, Any]:
    return world.handler(**overrides)(event or {}, None)


def by_day(result: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(d["table"], d["day"]): d for d in result["days"]}


def test_retried_posts_and_a_conflicting_copy_compact_to_one_row_per_event(world: World) -> None:
    first = [lock_row(f"e{i}", line=i) for i in range(1, 11)]
    retry = [lock_row(f"e{i}", line=i, received=BASE + timedelta(seconds=30), source_key="raw/json_telemetry/b")
             for i in range(1, 11)]
    conflicting = [lock_row("e3", line=1, received=BASE + timedelta(minutes=1), source_key="raw/json_telemetry/c",
                            bolt_state="jammed", attributes=[("reason", "firmware")])]
    world.write_verified("lock", DAY, HOUR, first)
    world.write_verified("lock", DAY, HOUR, retry)
    world.write_verified("lock", DAY, HOUR, conflicting)

    result = run(world)

    assert result["days_failed"] == 0
    day = by_day(result)[("int_lock_compacted_daily", DAY)]
    assert (day["verified_rows"], day["inserted"], day["natural_duplicates"], day["conflicting_duplicates"]) == (
        21, 10, 10, 1)
    rows = world.compacted("lock")
    assert [r["event_id"] for r in rows] == sorted(f"e{i}" for i in range(1, 11))
    assert {r["source_key"] for r in rows} == {"raw/json_telemetry/a"}  # the earliest copy of each
    assert all(r["bolt_state"] == "locked" for r in rows)
    (conflict,) = world.conflicts()
    assert conflict["event_key"] == device_event_key("lock-1", "e3")
    assert (conflict["kept_source_key"], conflict["kept_source_line"]) == ("raw/json_telemetry/a", 3)
    assert (conflict["conflicting_source_key"], conflict["conflicting_source_line"]) == ("raw/json_telemetry/c", 1)
    assert conflict["differing_columns"] == "attributes,bolt_state"
    assert '"bolt_state":"jammed"' in conflict["conflicting_row"]
    (audit,) = world.audit("compaction_runs")
    assert (audit["table_name"], audit["day"], audit["inserted"], audit["natural_duplicates"],
            audit["conflicting_duplicates"], audit["engine"], audit["outcome"]) == (
        "int_lock_compacted_daily", DAY, 10, 10, 1, "local", "succeeded")

    # A rerun and a third copy change nothing.
    world.write_verified("lock", DAY, HOUR, [lock_row("e5", line=9, received=BASE + timedelta(hours=1),
                                                      source_key="raw/json_telemetry/d")])
    again = run(world)
    day = by_day(again)[("int_lock_compacted_daily", DAY)]
    assert (day["inserted"], day["replaced"], day["conflicts_recorded"]) == (0, 0, 0)
    assert day["natural_duplicates"] == 11
    assert world.compacted("lock") == rows
    assert len(world.conflicts()) == 1
    assert run(world)["days"] == []  # nothing registered since: nothing to do


def test_otlp_records_sent_twice_appear_once(world: World) -> None:
    records = [otlp_row(f"door opened {i}", line=i, attributes=[("k", str(i)), ("a", None)]) for i in range(1, 6)]
    resent = [{**r, "received_at": BASE + timedelta(seconds=3), "source_key": "raw/otlp_logs/b"} for r in records]
    other = [otlp_row("door opened 1", line=9, attributes=[("k", "other")])]  # other content: another record
    world.write_verified("otlp_logs", DAY, HOUR, records + other)
    world.write_verified("otlp_logs", DAY, HOUR, resent)

    day = by_day(run(world))[("int_otlp_logs_compacted_daily", DAY)]

    assert (day["verified_rows"], day["inserted"], day["natural_duplicates"], day["conflicting_duplicates"]) == (
        11, 6, 5, 0)
    rows = world.compacted("otlp_logs")
    assert sorted(r["source_key"] for r in rows) == ["raw/otlp_logs/a"] * 6


def test_late_rows_land_in_their_own_day_and_are_counted(world: World) -> None:
    late_time = BASE - timedelta(days=3)
    late_day, late_hour = day_of(late_time)
    world.write_verified("lock", DAY, HOUR, [lock_row("now", line=1)])
    world.write_verified("lock", late_day, late_hour, [lock_row("late", line=2, event_time=late_time)])

    days = by_day(run(world))

    assert days[("int_lock_compacted_daily", late_day)]["late_rows"] == 1
    assert days[("int_lock_compacted_daily", DAY)]["late_rows"] == 0
    assert [r["event_id"] for r in world.compacted("lock", late_day)] == ["late"]
    assert [r["event_id"] for r in world.compacted("lock", DAY)] == ["now"]


def test_an_earlier_copy_arriving_after_a_later_one_was_compacted_replaces_it(world: World) -> None:
    world.write_verified("lock", DAY, HOUR, [lock_row("e1", received=BASE + timedelta(minutes=5),
                                                      source_key="raw/json_telemetry/late-retry")])
    run(world)
    assert world.compacted("lock")[0]["source_key"] == "raw/json_telemetry/late-retry"

    world.write_verified("lock", DAY, HOUR, [lock_row("e1", received=BASE, source_key="raw/json_telemetry/first")])
    day = by_day(run(world))[("int_lock_compacted_daily", DAY)]

    assert (day["inserted"], day["replaced"], day["natural_duplicates"]) == (0, 1, 1)
    (row,) = world.compacted("lock")
    assert row["source_key"] == "raw/json_telemetry/first"
    assert run(world, {"days": [DAY]})["days"][0]["replaced"] == 0  # a forced recompute keeps it


def test_a_day_that_piled_up_files_is_rewritten_and_old_snapshots_expire(world: World) -> None:
    tuning = {"MAX_FILES_PER_DAY": "2", "SNAPSHOT_RETENTION_HOURS": "0.00001", "MAINTENANCE_INTERVAL_HOURS": "0"}
    results = []
    for number in range(3):
        world.write_verified("lock", DAY, HOUR, [lock_row(f"e{number}", line=number)])
        results.append(by_day(run(world, **tuning))[("int_lock_compacted_daily", DAY)])

    assert [(r["data_files"], r["rewritten"]) for r in results] == [(1, False), (2, False), (1, True)]
    assert [r["event_id"] for r in world.compacted("lock")] == ["e0", "e1", "e2"]
    table = world.catalog.load_table(("telemetry_alerts_test", "int_lock_compacted_daily"))
    # 3 appends and a rewrite (delete + append) made 5 snapshots; each run expired the older ones, and
    # the last run's maintenance came after its rewrite.
    assert len(table.snapshots()) <= 2
    assert table.scan().to_arrow().num_rows == 3


def test_another_devices_event_with_the_same_id_is_compacted_not_a_conflict(world: World) -> None:
    """Issue 18: firmware numbering events from 1 on two devices (or a sender guessing an id first)
    must not keep the other device's event out of the compacted table as a conflict."""
    mine = lock_row("1", line=1)
    theirs = dict(lock_row("1", line=2, received=BASE + timedelta(minutes=1), bolt_state="unlocked"),
                  device_id="lock-2")
    world.write_verified("lock", DAY, HOUR, [mine, theirs])

    result = run(world)

    day = by_day(result)[("int_lock_compacted_daily", DAY)]
    assert (day["inserted"], day["conflicting_duplicates"]) == (2, 0)
    assert sorted((r["device_id"], r["event_id"], r["bolt_state"]) for r in world.compacted("lock")) == [
        ("lock-1", "1", "locked"), ("lock-2", "1", "unlocked")]
    assert world.conflicts() == []


def test_the_local_engine_bin_packs_an_audit_table_and_keeps_its_rows(world: World) -> None:
    """What OPTIMIZE ... BIN_PACK and VACUUM do to compaction_runs on Athena, done by pyiceberg."""
    from datetime import UTC, datetime  # noqa: PLC0415

    from compactor.app import build_engine  # noqa: PLC0415
    from shared.config import CompactorConfig, load  # noqa: PLC0415
    from shared.schema import COMPACTION_RUNS  # noqa: PLC0415
    from tests.integration.compactor.support import AUDIT_DATABASE, EndpointClients  # noqa: PLC0415

    for number in range(3):
        world.write_verified("lock", DAY, HOUR, [lock_row(f"r{number}")])
        run(world)
    runs = world.catalog.load_table((AUDIT_DATABASE, COMPACTION_RUNS.name))
    before = sorted(r["run_id"] for r in runs.scan().to_arrow().to_pylist())
    assert len(list(runs.scan().plan_files())) == 3  # one append per run, one partition
    engine = build_engine(load(CompactorConfig, world.environ), EndpointClients(world.session, world.url))

    cutoff = datetime.now(UTC)
    what = engine.maintain_audit(COMPACTION_RUNS, cutoff, lambda: 600_000)

    runs = world.catalog.load_table((AUDIT_DATABASE, COMPACTION_RUNS.name))
    assert len(list(runs.scan().plan_files())) == 1
    assert sorted(r["run_id"] for r in runs.scan().to_arrow().to_pylist()) == before
    assert what.startswith("compaction_runs: rewrote 3 file(s) into 1, expired")
    # The three runs' appends expired; the rewrite's own snapshots (newer than the cutoff) stay.
    assert all(s.timestamp_ms >= cutoff.timestamp() * 1000 for s in runs.snapshots())


def test_compacted_timestamps_are_what_athena_writes_and_time_unix_nano_stays_exact(world: World) -> None:
    """Athena engine v3 keeps microseconds in Iceberg timestamp columns, but reads the verified (Hive)
    tables at milliseconds, rounded: the MERGE writes the rounded value. The local engine does the same,
    and the exact time stays in time_unix_nano."""
    from datetime import UTC, datetime  # noqa: PLC0415

    nanos = [int(datetime(2026, 3, 10, 11, 59, 59, tzinfo=UTC).timestamp()) * 10**9 + fraction
             for fraction in (123_456_789, 999_500_000, 5)]
    rows = [otlp_row(f"m{i}", line=i + 1, time_unix_nano=n) for i, n in enumerate(nanos)]
    for row, n in zip(rows, nanos, strict=True):
        row["time"] = datetime.fromtimestamp(n // 1000 / 1e6, UTC)  # microseconds, as the parser writes it
    world.write_verified("otlp_logs", DAY, HOUR, rows)

    run(world)

    compacted = {r["body"]: r for r in world.compacted("otlp_logs")}
    assert [compacted[f"m{i}"]["time"].microsecond for i in range(3)] == [123_000, 0, 0]
    assert compacted["m1"]["time"].second == 0  # .9995 s rounds up into the next second
    assert [compacted[f"m{i}"]["time_unix_nano"] for i in range(3)] == nanos
