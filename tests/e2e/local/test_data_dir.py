"""`signals local --data-dir`: the stack's state survives a stop, a kill -9 and a newer template.

Each test starts its own stacks (two or three starts of ~10-30 s each): slow tier.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from signals.env import Environment, Output, resolve
from signals.local.stack import LocalSettings, LocalStack, free_port
from signals.local.wiring import LocalTimings
from tests.e2e.local.conftest import API_KEY, post, sql, wait_for

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[3]
COMPACTED = "telemetry_alerts_local.int_lock_compacted_daily"


def settings(data: Path, **overrides: Any) -> LocalSettings:
    return LocalSettings(
        port=0, aws_port=0, api_key=API_KEY,
        timings=LocalTimings(buffer_seconds=0.5, visibility_seconds=1, reconcile_seconds=3600.0),
        drain_on_stop_seconds=5.0, run_schedules=False, data_dir=data,
        function_environment={"compactor.app": {"SETTLE_SECONDS": "0"}}, **overrides,
    )


def events(prefix: str, count: int, device_type: str = "lock") -> list[dict[str, Any]]:
    now = int(time.time() * 1000)
    return [{"event_id": f"{prefix}-{i}", "device_id": f"{prefix}-dev", "device_type": device_type,
             "event_name": "bolt_changed", "event_time": now - i, "battery_pct": 50 + i % 40}
            for i in range(count)]


def send(api_url: str, batch: list[dict[str, Any]]) -> dict[str, Any]:
    class _Url:  # post() takes anything with api_url
        pass

    target = _Url()
    target.api_url = api_url  # type: ignore[attr-defined]
    status, reply = post(target, "/v1/telemetry", json.dumps(batch).encode(),  # type: ignore[arg-type]
                         {"x-api-key": API_KEY, "content-type": "application/json"})
    assert status == 200, reply
    return reply


def catalog_state(stack: LocalStack) -> dict[str, tuple[Any, Any]]:
    """Every Glue table: (CreateTime, Iceberg metadata pointer): a re-created table would change both."""
    glue = stack.client("glue")
    state: dict[str, tuple[Any, Any]] = {}
    for database in glue.get_databases()["DatabaseList"]:
        for table in glue.get_tables(DatabaseName=database["Name"])["TableList"]:
            state[f"{database['Name']}.{table['Name']}"] = (
                table.get("CreateTime"), (table.get("Parameters") or {}).get("metadata_location"))
    return state


def lake_keys(stack: LocalStack) -> dict[str, list[str]]:
    s3 = stack.client("s3")
    keys: dict[str, list[str]] = {}
    for bucket in s3.list_buckets()["Buckets"]:
        name = bucket["Name"]
        keys[name] = sorted(item["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=name)
                            for item in page.get("Contents", []))
    return keys


def registry_items(stack: LocalStack) -> int:
    return int(stack.client("dynamodb").scan(TableName=stack.outputs[Output.REGISTRY_TABLE], Select="COUNT")["Count"])


def counts(env: Environment, prefix: str) -> tuple[Any, Any]:
    verified = sql(env, f"SELECT count(*), count(DISTINCT event_id) FROM telemetry_lock_flat "
                        f"WHERE device_id = '{prefix}-dev'").rows[0]
    compacted = sql(env, f"SELECT count(*) FROM {COMPACTED} WHERE device_id = '{prefix}-dev'").rows[0]
    return verified, compacted


def newer_template(tmp_path: Path) -> Path:
    """template.yaml with one more column in the lock table (what a schema release changes)."""
    text = (ROOT / "template.yaml").read_text()
    anchor = '        Name: telemetry_lock_flat\n'
    start = text.index(anchor)
    extra = text.index('            - {Name: "extra"', start)
    column = '            - {Name: "auto_lock_delay_s", Type: "bigint", Comment: "Auto-lock delay, seconds."}\n'
    path = tmp_path / "template.yaml"
    path.write_text(text[:extra] + column + text[extra:])
    return path


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "home"
    monkeypatch.setenv("SIGNALS_HOME", str(path))
    return path


def test_a_restart_keeps_rows_tables_and_registry_and_creates_nothing(tmp_path: Path, home: Path) -> None:
    data = tmp_path / "data"
    with LocalStack(settings(data)) as stack:
        assert not stack.restore_report.restored
        reply = send(stack.api_url, events("keep", 30) + events("keep-new", 2, "thermostat"))
        assert (reply["accepted"], len(reply["parked"])) == (32, 2)
        assert stack.wait_until_drained(60, flush_firehose=True)
        stack.run_schedule("compactor")
        env = resolve("local")
        before = counts(env, "keep")
        assert before == ((30, 30), (30,))
        # The lock table as an older release left it: without temperature_c (schema apply adds it).
        glue = stack.client("glue")
        live = glue.get_table(DatabaseName="telemetry-parser-db", Name="telemetry_lock_flat")["Table"]
        descriptor = dict(live["StorageDescriptor"])
        descriptor["Columns"] = [c for c in descriptor["Columns"] if c["Name"] != "temperature_c"]
        glue.update_table(DatabaseName="telemetry-parser-db", TableInput={
            "Name": live["Name"], "TableType": live["TableType"], "Parameters": live["Parameters"],
            "PartitionKeys": live["PartitionKeys"], "StorageDescriptor": descriptor})
        tables, keys, items = catalog_state(stack), lake_keys(stack), registry_items(stack)
    assert (data / "snapshot.pickle").exists()
    assert json.loads((data / "meta.json").read_text())["clean_stop"] is True

    with LocalStack(settings(data, template_path=newer_template(tmp_path))) as stack:
        report = stack.restore_report
        assert report.restored
        assert report.clean_stop
        assert not report.lost
        # Nothing re-created: same creation times and the same Iceberg metadata pointers.
        assert catalog_state(stack) == tables
        assert lake_keys(stack) == keys
        assert registry_items(stack) == items
        # Reported, not applied: the template's differences and what `signals schema apply` would do.
        assert stack.template_changes[0] == ("Glue telemetry-parser-db.telemetry_lock_flat: the template adds "
                                             "column(s) temperature_c double, auto_lock_delay_s bigint")
        assert ("signals schema apply would: telemetry_lock_flat: would add column temperature_c double"
                in stack.template_changes)
        assert all("lock" in line for line in stack.template_changes), stack.template_changes
        env = resolve("local")
        assert counts(env, "keep") == before
        # The restored pipeline goes on: new events land once, next to the old ones.
        send(stack.api_url, events("keep-after", 5))
        assert stack.wait_until_drained(60, flush_firehose=True)
        stack.run_schedule("compactor")
        assert counts(env, "keep-after") == ((5, 5), (5,))
        assert counts(env, "keep") == before


def test_fresh_starts_empty(tmp_path: Path, home: Path) -> None:
    data = tmp_path / "data"
    with LocalStack(settings(data)) as stack:
        send(stack.api_url, events("fresh", 3))
        assert stack.wait_until_drained(60, flush_firehose=True)
    with LocalStack(settings(data, fresh=True)) as stack:
        assert not stack.restore_report.restored
        keys = lake_keys(stack)
        assert keys[stack.outputs[Output.RAW_BUCKET]] == []
        assert keys[stack.outputs[Output.VERIFIED_BUCKET]] == []
        assert registry_items(stack) == 0


@pytest.fixture
def child_stacks(home: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for child in started:
        if child.poll() is None:
            child.kill()
            child.wait(30)


def start_child(data: Path, home: Path, log: Path, *, cwd: Path = ROOT, buffer_seconds: float = 0.5,
                started: list[subprocess.Popen[bytes]]) -> tuple[subprocess.Popen[bytes], str]:
    port, aws_port = free_port(), free_port()
    command = [sys.executable, "-c", "import sys; from signals.cli import main; sys.exit(main())", "local",
               "--data-dir", str(data), "--port", str(port), "--aws-port", str(aws_port), "--api-key", API_KEY,
               "--buffer-seconds", str(buffer_seconds), "--visibility-seconds", "1", "--reconcile-seconds", "3600"]
    with log.open("ab") as out:
        child = subprocess.Popen(command, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                 env={**os.environ, "SIGNALS_HOME": str(home), "PYTHONPATH": str(cwd)})
    started.append(child)
    state = home / "local-stack.json"

    def up() -> bool:
        assert child.poll() is None, log.read_text()[-3000:]
        try:
            return int(json.loads(state.read_text())["pid"]) == child.pid
        except (OSError, ValueError, KeyError):
            return False

    assert wait_for(up, timeout=180, interval=0.5), log.read_text()[-3000:]
    return child, f"http://127.0.0.1:{port}"


def test_kill_9_loses_no_accepted_event_and_the_next_start_says_what_it_lost(
        tmp_path: Path, home: Path, child_stacks: list[subprocess.Popen[bytes]]) -> None:
    data, log = tmp_path / "data", tmp_path / "child.log"
    # A long Firehose buffer: the events are still buffered (not in S3) when the process dies.
    child, api = start_child(data, home, log, buffer_seconds=60, started=child_stacks)
    assert send(api, events("kill-a", 20))["accepted"] == 20
    time.sleep(2.5)  # a snapshot holds batch a in the Firehose buffer
    assert send(api, events("kill-b", 15))["accepted"] == 15
    child.send_signal(signal.SIGKILL)  # batch b is in the journal only
    child.wait(30)

    with LocalStack(settings(data)) as stack:
        report = stack.restore_report
        assert report.restored
        assert not report.clean_stop
        assert report.previous_pid == child.pid
        # Batch a was buffered at the last snapshot; batch b came back from the journal (unless a
        # snapshot fell in the millisecond between its reply and the kill).
        assert report.lines_buffered + report.lines_replayed == 35
        assert report.lines_buffered >= 20
        assert any("did not stop cleanly" in line for line in report.lines())
        assert stack.wait_until_drained(60, flush_firehose=True)
        stack.run_schedule("compactor")
        env = resolve("local")
        assert counts(env, "kill-a") == ((20, 20), (20,))
        assert counts(env, "kill-b") == ((15, 15), (15,))
    # A clean stop after that: the next start has nothing to report lost, and no event twice.
    with LocalStack(settings(data)) as stack:
        assert stack.restore_report.clean_stop
        assert stack.restore_report.firehose_replayed == 0
        assert counts(resolve("local"), "kill-b") == ((15, 15), (15,))


def test_the_cli_reports_what_a_kill_lost_in_words(
        tmp_path: Path, home: Path, child_stacks: list[subprocess.Popen[bytes]]) -> None:
    data, log = tmp_path / "data", tmp_path / "child.log"
    child, api = start_child(data, home, log, buffer_seconds=0.2, started=child_stacks)
    send(api, events("words", 5))
    child.send_signal(signal.SIGKILL)
    child.wait(30)
    second, _api = start_child(data, home, log, started=child_stacks)
    second.send_signal(signal.SIGTERM)
    assert second.wait(120) == 0
    text = log.read_text()
    assert f"signals local: data directory {data}" in text
    assert "did not stop cleanly" in text
    assert "state saved in" in text


# --- park and replay across a code upgrade -------------------------------------------------------

THERMOSTAT_TYPE = '''    VIDEO_DOORBELL = "video_doorbell"
    THERMOSTAT = "thermostat"
'''
THERMOSTAT_FIELDS = '''        FieldSpec("night_mode", Kind.BOOL, "Infrared night mode on."),
    ),
    DeviceType.THERMOSTAT: (
        _BATTERY,
        FieldSpec("setpoint_c", Kind.FLOAT, "Target temperature, degrees Celsius."),
    ),
}'''


def upgraded_checkout(target: Path) -> Path:
    """This checkout with a `thermostat` device type added to shared/schema.py, the ledger and template.yaml."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, check=True, capture_output=True).stdout
    for name in files.decode().split("\0"):
        source = ROOT / name
        if name and source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            (target / name).write_bytes(source.read_bytes())
    schema = target / "shared" / "schema.py"
    text = schema.read_text()
    text = text.replace('    VIDEO_DOORBELL = "video_doorbell"\n', THERMOSTAT_TYPE, 1)
    text = text.replace('''        FieldSpec("night_mode", Kind.BOOL, "Infrared night mode on."),
    ),
}''', THERMOSTAT_FIELDS, 1)
    assert "THERMOSTAT" in text
    assert "DeviceType.THERMOSTAT" in text
    schema.write_text(text)
    environment = {**os.environ, "PYTHONPATH": str(target)}
    # A schema release: the field-id ledger records the new tables' ids, then the template is regenerated.
    subprocess.run([sys.executable, "-c", "import sys; from signals.cli import main; sys.exit(main())",
                    "schema", "check", "--write"], cwd=target, check=True, env=environment, capture_output=True)
    subprocess.run([sys.executable, "-m", "deploy.glue_columns", "--write"], cwd=target, check=True,
                   env=environment, capture_output=True)
    return target


def signals_in(checkout: Path, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "import sys; from signals.cli import main; sys.exit(main())", *args],
        check=False, cwd=checkout, capture_output=True, text=True, timeout=600,
        env={**os.environ, "SIGNALS_HOME": str(home), "PYTHONPATH": str(checkout)})


def test_parked_events_are_replayed_once_after_the_type_is_added(
        tmp_path: Path, home: Path, child_stacks: list[subprocess.Popen[bytes]]) -> None:
    data = tmp_path / "data"
    thermostats = [{**event, "device_type": "thermostat", "setpoint_c": 21.5}
                   for event in events("park-t", 12)]
    for event in thermostats:
        event.pop("battery_pct")
    with LocalStack(settings(data)) as stack:
        reply = send(stack.api_url, events("park-l", 8) + thermostats)
        assert reply["accepted"] == 20
        assert reply["rejected"] == []
        assert [entry["index"] for entry in reply["parked"]] == list(range(8, 20))
        assert stack.wait_until_drained(60, flush_firehose=True)
        env = resolve("local")
        assert counts(env, "park-l")[0] == (8, 8)
        # Before the schema knows the type, the redrive finds them, cures nothing and sends nothing.
        before = signals_in(ROOT, home, "redrive", "quarantine", "--reason", "unknown_device_type", "--env", "local")
        assert before.returncode == 0, before.stderr
        assert "12 quarantined record(s) with reason unknown_device_type in 1 file(s)" in before.stdout
        assert "device types the schema does not know yet: thermostat 12" in before.stdout
        assert "nothing the current schema cures: nothing sent" in before.stdout

    checkout = upgraded_checkout(tmp_path / "upgraded")
    log = tmp_path / "child.log"
    child, _api = start_child(data, home, log, cwd=checkout, started=child_stacks)
    env = resolve("local")

    replay = signals_in(checkout, home, "redrive", "quarantine", "--reason", "unknown_device_type", "--env", "local")
    assert replay.returncode == 0, replay.stderr
    assert "pass with the current schema: 12 (thermostat 12)" in replay.stdout
    assert "sent 1 of 1 raw object(s) to the redrive queue" in replay.stdout

    def replayed() -> bool:
        rows = sql(env, "SELECT count(*) FROM telemetry_thermostat_flat WHERE device_id = 'park-t-dev'").rows
        return bool(rows[0][0] == 12)

    assert wait_for(replayed, timeout=60, interval=1.0), log.read_text()[-3000:]
    assert wait_for(lambda: not any(k.startswith("quarantine/") for k in lake_keys_of(env)), timeout=30)
    compact = signals_in(checkout, home, "compact", "--env", "local")
    assert compact.returncode == 0, compact.stdout + compact.stderr

    def once() -> tuple[Any, ...]:
        verified = sql(env, "SELECT count(*), count(DISTINCT event_id), min(setpoint_c) FROM telemetry_thermostat_flat "
                            "WHERE device_id = 'park-t-dev'").rows[0]
        compacted = sql(env, "SELECT count(*) FROM telemetry_alerts_local.int_thermostat_compacted_daily "
                             "WHERE device_id = 'park-t-dev'").rows[0]
        locks = sql(env, "SELECT count(*), count(DISTINCT event_id) FROM telemetry_lock_flat "
                         "WHERE device_id = 'park-l-dev'").rows[0]
        lineage = sql(env, "SELECT count(DISTINCT source_key), min(source_line), max(source_line) "
                           "FROM telemetry_thermostat_flat WHERE device_id = 'park-t-dev'").rows[0]
        return verified, compacted, locks, lineage

    first = once()
    # Each thermostat event once, with its value and its lineage to its own raw line (9..20); the lock
    # rows of the re-parsed object were overwritten under the same names, not added again.
    assert first == ((12, 12, 21.5), (12,), (8, 8), (1, 9, 20))

    again = signals_in(checkout, home, "redrive", "quarantine", "--reason", "unknown_device_type", "--env", "local")
    assert again.returncode == 0, again.stderr
    assert "0 quarantined record(s) with reason unknown_device_type" in again.stdout
    assert "nothing to replay" in again.stdout
    assert signals_in(checkout, home, "compact", "--env", "local").returncode == 0
    assert once() == first
    child.send_signal(signal.SIGTERM)
    assert child.wait(120) == 0, log.read_text()[-3000:]


def lake_keys_of(env: Environment) -> list[str]:
    s3 = env.client("s3")
    bucket = env.output(Output.QUARANTINE_BUCKET)
    return [item["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
            for item in page.get("Contents", [])]
