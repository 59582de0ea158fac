"""Schema evolution end to end on one machine (issue 19, "Done when"): a field and a device type arrive
on a running pipeline, the suggested patches are applied to a copy of this checkout, the stack restarts
on the new code with the same data directory, and after `signals schema apply`, `signals backfill` and
the quarantine redrive every old row shows what it was sent with: nothing renumbered, nothing lost,
nothing counted twice.

Everything runs as a user runs it: `signals` commands as subprocesses, the first stack on this
checkout's code and the second on the patched copy's (PYTHONPATH), so the test never edits the
working tree. Slow (two stack starts, about twenty command runs).
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from signals.compact import compact
from signals.env import resolve
from signals.query import QueryFailed
from signals.query import query as run_query

ROOT = Path(__file__).resolve().parents[3]
LOCK_EVENTS = 100
WITH_DELAY = 30  # 30% carry the key the schema does not know yet
THERMOSTATS = 6
ALERTS = "telemetry_alerts_local"
AUDIT = "telemetry_alerts_local_dq_audit"

pytestmark = pytest.mark.slow


# --- a copy of this checkout, and `signals` run from a given copy ----------------------------------


def copy_checkout(target: Path) -> Path:
    """The tracked files as they are in the working tree (uncommitted edits included), committed in a
    fresh repository so `git apply` works on a clean checkout."""
    if shutil.which("git") is None:
        pytest.fail("needs git")
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for name in filter(None, listed.decode().split("\0")):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    git(target, "init", "--quiet")
    git(target, "add", "-A")
    git(target, "-c", "user.name=e2e", "-c", "user.email=e2e@example.invalid", "commit", "--quiet", "-m", "base")
    return target


def git(repo: Path, *arguments: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *arguments], cwd=repo, input=stdin, capture_output=True, text=True, check=True,
                          timeout=60)


class Signals:
    """`python -m signals.cli ...` from one copy of the code, against the stack in `home`."""

    def __init__(self, repo: Path, home: Path) -> None:
        self.repo = repo
        self.environ = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
        self.environ.update(PYTHONPATH=str(repo), SIGNALS_HOME=str(home), PYTHONDONTWRITEBYTECODE="1")

    def command(self, *arguments: str) -> list[str]:
        return [sys.executable, "-m", "signals.cli", *arguments]

    def run(self, *arguments: str, expect: int | None = 0, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        completed = subprocess.run(self.command(*arguments), cwd=self.repo, env=self.environ, capture_output=True,
                                   text=True, timeout=timeout, check=False)
        if expect is not None:
            assert completed.returncode == expect, (arguments, completed.stdout[-3000:], completed.stderr[-3000:])
        return completed

    def json(self, *arguments: str) -> Any:
        return json.loads(self.run(*arguments).stdout)

    def batch(self, *commands: Sequence[str], timeout: float = 300) -> list[dict[str, Any]]:
        """Several `signals` commands, in order, through the CLI's `main` in one interpreter of this copy
        (each new interpreter pays seconds of imports); each must exit 0. Their outputs, in order."""
        completed = subprocess.run([sys.executable, "-c", BATCH, json.dumps([list(c) for c in commands])],
                                   cwd=self.repo, env=self.environ, capture_output=True, text=True, timeout=timeout,
                                   check=False)
        assert completed.returncode == 0, (commands, completed.stdout[-3000:], completed.stderr[-3000:])
        results: list[dict[str, Any]] = json.loads(completed.stdout.splitlines()[-1])
        for result in results:
            assert result["code"] == 0, result
        return results


#: Runs each argv list through `signals.cli.main`, capturing its stdout and stderr; prints them as JSON.
BATCH = """
import contextlib, io, json, sys
from signals.cli import main
results = []
for argv in json.loads(sys.argv[1]):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    results.append({"argv": argv, "code": code, "stdout": out.getvalue(), "stderr": err.getvalue()})
    if code != 0:
        break
sys.__stdout__.write("\\n" + json.dumps(results) + "\\n")
"""


def query(sql: str) -> list[dict[str, Any]]:
    """`signals query` in this process (the local Athena engine reads the tables from Glue and Iceberg,
    not from this checkout's schema, so it reads the patched stack's new columns too)."""
    result = run_query(resolve("local"), sql)
    return [dict(zip(result.columns, row, strict=True)) for row in result.rows]


def count(sql: str) -> int:
    (row,) = query(sql)
    return int(next(iter(row.values())))


def count_or_none(sql: str) -> int | None:
    """The count, or None while the table does not exist yet."""
    try:
        return count(sql)
    except QueryFailed:
        return None


class Stack:
    """`signals local --data-dir DIR` as a subprocess of one copy of the code."""

    def __init__(self, signals: Signals, data_dir: Path, log: Path) -> None:
        self.signals = signals
        self.state_path = Path(signals.environ["SIGNALS_HOME"]) / "local-stack.json"
        self.state_path.unlink(missing_ok=True)
        self.log = log.open("ab")
        self.process = subprocess.Popen(
            signals.command("local", "--data-dir", str(data_dir), "--port", "0", "--aws-port", "0",
                            "--buffer-seconds", "0.5", "--visibility-seconds", "1"),
            cwd=signals.repo, env=signals.environ, stdout=self.log, stderr=subprocess.STDOUT)
        self.state = self._wait_for_state()

    def _wait_for_state(self, timeout: float = 90) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"signals local exited with {self.process.returncode}; see {self.log.name}")
            try:
                state = json.loads(self.state_path.read_text())
            except (OSError, ValueError):
                state = None
            if isinstance(state, dict) and state.get("pid") == self.process.pid:
                return state
            time.sleep(0.3)
        pytest.fail(f"signals local did not start in {timeout:.0f} s; see {self.log.name}")

    def post(self, path: str, body: Any) -> dict[str, Any]:
        request = urllib.request.Request(f"{self.state['api_endpoint']}{path}", data=json.dumps(body).encode(),
                                         method="POST", headers={"x-api-key": self.state["api_key"],
                                                                 "content-type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                answer: dict[str, Any] = json.loads(response.read())
        except urllib.error.HTTPError as error:
            pytest.fail(f"POST {path}: {error.code} {error.read()[:500]!r}")
        return answer

    def client(self, service: str) -> Any:
        return boto3.client(service, endpoint_url=self.state["aws_endpoint_url"], region_name=self.state["region"],
                            aws_access_key_id=self.state["aws_access_key_id"],
                            aws_secret_access_key=self.state["aws_secret_access_key"])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # as Ctrl-C: drain, persist, exit
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


@pytest.fixture
def stacks() -> Iterator[list[Stack]]:
    started: list[Stack] = []
    yield started
    for stack in started:
        stack.stop()


def wait_until(predicate: Any, what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(1)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


# --- what is sent ----------------------------------------------------------------------------------


def rfc3339(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def events(event_time: datetime) -> tuple[list[dict[str, Any]], dict[str, int], list[dict[str, Any]]]:
    rng = random.Random(19)
    locks, delays = [], {}
    for number in range(LOCK_EVENTS):
        event = {"event_id": f"evo-lock-{number:03d}", "device_id": f"evo-lock-{number % 7}", "device_type": "lock",
                 "event_name": "bolt_changed", "event_time": rfc3339(event_time), "battery_pct": rng.randint(5, 100),
                 "bolt_state": rng.choice(["locked", "unlocked"]), "firmware_version": "4.2.0"}
        if number % 10 < WITH_DELAY // 10:
            delays[event["event_id"]] = event["auto_lock_delay_s"] = rng.randint(0, 600)
        locks.append(event)
    thermostats = [{"event_id": f"evo-th-{number}", "device_id": f"evo-th-{number % 2}", "device_type": "thermostat",
                    "event_name": "setpoint_changed", "event_time": rfc3339(event_time),
                    "target_temp_c": 19.5 + number, "hvac_mode": rng.choice(["heat", "cool"]),
                    "firmware_version": "1.0.3"} for number in range(THERMOSTATS)]
    return locks, delays, thermostats


# --- ledger helpers --------------------------------------------------------------------------------


def ledger_ids(repo: Path) -> dict[str, dict[str, int]]:
    data = json.loads((repo / "shared" / "iceberg_ids.json").read_text())
    tables = data.get("tables", data)
    return {name: {str(f["name"]): int(f["id"]) for f in table["fields"]}
            for name, table in tables.items() if isinstance(table, dict) and "fields" in table}


def last_column_ids(repo: Path) -> dict[str, int]:
    data = json.loads((repo / "shared" / "iceberg_ids.json").read_text())
    tables = data.get("tables", data)
    return {name: int(table["last-column-id"]) for name, table in tables.items()
            if isinstance(table, dict) and "last-column-id" in table}


def drift_row(output: str, device_type: str, key: str) -> dict[str, Any]:
    for line in output.splitlines():
        if not line.strip().startswith("{"):
            continue
        row = json.loads(line)
        if row.get("device_type", row.get("type")) == device_type and row.get("key") == key:
            return dict(row)
    pytest.fail(f"signals schema drift shows no {device_type}.{key}:\n{output}")


def metadata_locations(stack: Stack, names: Sequence[tuple[str, str]]) -> dict[str, str]:
    glue = stack.client("glue")
    return {f"{database}.{name}": glue.get_table(DatabaseName=database, Name=name)["Table"]["Parameters"].get(
        "metadata_location", "") for database, name in names}


# --- the test --------------------------------------------------------------------------------------


def test_a_field_and_a_device_type_arrive_and_nothing_is_renumbered_lost_or_counted_twice(
        tmp_path: Path, stacks: list[Stack], monkeypatch: pytest.MonkeyPatch) -> None:
    clone = copy_checkout(tmp_path / "checkout")
    home, data_dir = tmp_path / "home", tmp_path / "data"
    monkeypatch.setenv("SIGNALS_HOME", str(home))  # this process's queries find the running stack
    old = Signals(clone, home)

    # 1) A stack on the committed schema; locks (30% with an unknown key) and thermostats; compact.
    stack = Stack(old, data_dir, tmp_path / "stack-1.log")
    stacks.append(stack)
    event_time = datetime.now(UTC) - timedelta(minutes=5)
    day = event_time.strftime("%Y-%m-%d")
    locks, delays, thermostats = events(event_time)
    answer = stack.post("/v1/telemetry", locks + thermostats)
    assert not answer.get("rejected"), answer
    parked = answer.get("parked")
    assert parked == THERMOSTATS or (isinstance(parked, list) and len(parked) == THERMOSTATS), answer
    wait_until(lambda: count(f"SELECT count(*) FROM telemetry_lock_flat WHERE day = '{day}'") == LOCK_EVENTS,
               "the lock events in the verified table")
    compacted = compact(resolve("local"), {})  # this process runs the same code as the first stack
    assert compacted["days_failed"] == 0, compacted
    compacted_sql = f"SELECT count(*) FROM {ALERTS}.int_lock_compacted_daily WHERE day = '{day}'"
    conflicts_sql = f"SELECT count(*) FROM {AUDIT}.duplicate_conflicts"
    assert count(compacted_sql) == LOCK_EVENTS
    conflicts_before = count(conflicts_sql)

    # 2) Drift shows the key at about 30%; the two suggested patches apply with `git apply`.
    drift = old.run("schema", "drift", "--env", "local", "--json").stdout
    row = drift_row(drift, "lock", "auto_lock_delay_s")
    assert row.get("kind") == "int", row
    share = float(row.get("share", row.get("share_of_rows", 0)))
    assert 0.25 <= share <= 0.35, row
    ids_before, last_before = ledger_ids(clone), last_column_ids(clone)
    for target in ("lock.auto_lock_delay_s", "thermostat"):
        patch = old.run("schema", "suggest", target, "--env", "local", "--repo", str(clone)).stdout
        assert patch.startswith(("diff --git", "From ", "---")), patch[:500]
        git(clone, "apply", "--check", stdin=patch)
        git(clone, "apply", stdin=patch)

    # 3) `signals schema check` passes; existing ids unchanged, the new ones after the last.
    new = Signals(clone, home)  # same copy, now patched: a new interpreter imports the new schema
    new.run("schema", "check")
    ids_after, last_after = ledger_ids(clone), last_column_ids(clone)
    for table, fields in ids_before.items():
        assert {name: ids_after[table][name] for name in fields} == fields, table
    for table in ("telemetry_lock_flat", "int_lock_compacted_daily"):
        if table in ids_after:
            assert ids_after[table]["auto_lock_delay_s"] == last_before[table] + 1, table
            assert last_after[table] == last_before[table] + 1, table
    assert any("thermostat" in table for table in ids_after if table not in ids_before), sorted(ids_after)

    # 4) Restart on the new code with the same data dir; apply, backfill, redrive the parked events.
    stack.stop()
    stack = Stack(new, data_dir, tmp_path / "stack-2.log")
    stacks.append(stack)
    assert count(compacted_sql) == LOCK_EVENTS  # the data survived the restart
    backfill_lock = ("backfill", "--env", "local", "--table", "lock", "--from", day, "--to", day, "--json")
    _, backfilled, _ = new.batch(("schema", "apply", "--env", "local"), backfill_lock,
                                 ("redrive", "quarantine", "--reason", "unknown_device_type", "--env", "local"))
    backfill = json.loads(backfilled["stdout"])
    assert backfill["totals"]["values_lifted"] == WITH_DELAY, backfill
    assert backfill["totals"]["values_unfit"] == 0, backfill
    assert backfill["totals"]["compacted_inserted"] == 0, backfill
    wait_until(lambda: count_or_none(f"SELECT count(*) FROM telemetry_thermostat_flat WHERE day = '{day}'")
               == THERMOSTATS, "the redriven thermostat events in the verified table")
    assert new.json("compact", "--json")["days_failed"] == 0

    # 5) Every lock row shows the value it was sent with; counts unchanged, no new conflicts; each
    #    thermostat event once; a second apply and a second backfill change nothing.
    rows = query(f"SELECT event_id, auto_lock_delay_s, extra FROM {ALERTS}.int_lock_compacted_daily "
                     f"WHERE day = '{day}'")
    assert len(rows) == LOCK_EVENTS
    assert {r["event_id"]: r["auto_lock_delay_s"] for r in rows} == {
        e["event_id"]: delays.get(e["event_id"]) for e in locks}
    assert not [r for r in rows if r["extra"] and "auto_lock_delay_s" in r["extra"]]
    assert count(conflicts_sql) == conflicts_before
    thermostat_rows = query(f"SELECT event_id, count(*) AS n FROM {ALERTS}.int_thermostat_compacted_daily "
                                "GROUP BY event_id")
    assert {r["event_id"]: r["n"] for r in thermostat_rows} == {e["event_id"]: 1 for e in thermostats}
    assert count(f"SELECT count(*) FROM telemetry_thermostat_flat WHERE day = '{day}'") == THERMOSTATS

    tables = [("telemetry-parser-db", "telemetry_lock_flat"), (ALERTS, "int_lock_compacted_daily"),
              (ALERTS, "int_thermostat_compacted_daily")]
    before = metadata_locations(stack, tables[1:])
    columns_before = stack.client("glue").get_table(DatabaseName=tables[0][0], Name=tables[0][1])["Table"]
    _, second = new.batch(("schema", "apply", "--env", "local"), backfill_lock)
    again = json.loads(second["stdout"])
    assert again["totals"]["files_rewritten"] == 0, again
    assert [d["outcome"] for d in again["days"]] == ["unchanged"]
    assert metadata_locations(stack, tables[1:]) == before
    columns_after = stack.client("glue").get_table(DatabaseName=tables[0][0], Name=tables[0][1])["Table"]
    assert columns_after["StorageDescriptor"]["Columns"] == columns_before["StorageDescriptor"]["Columns"]
    assert count(compacted_sql) == LOCK_EVENTS
    audit = query(f"SELECT day, values_lifted, outcome FROM {AUDIT}.backfill_runs ORDER BY started_at")
    assert [(r["values_lifted"], r["outcome"]) for r in audit] == [(WITH_DELAY, "succeeded"), (0, "unchanged")]

    # 6) battery_pct turned into a string: `signals schema check` exits 1 and says why.
    schema_py = clone / "shared" / "schema.py"
    text = schema_py.read_text()
    changed = re.sub(r'FieldSpec\("battery_pct", Kind\.INT\b', 'FieldSpec("battery_pct", Kind.STRING', text, count=1)
    assert changed != text
    schema_py.write_text(changed)
    refused = new.run("schema", "check", expect=1)
    reason = refused.stdout + refused.stderr
    assert re.search(r"incompatible\s+int_lock_compacted_daily\.battery_pct .*type change long -> string", reason), \
        reason
    assert "safe alternatives" in reason
