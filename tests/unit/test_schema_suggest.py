"""`signals schema suggest`: its patches apply with `git apply` on a clean checkout, and the patched
checkout passes `signals schema check` and the template check with the new ids after the last ones."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from signals.schema.suggest import SuggestError, infer_fields, suggest_key, suggest_type

ROOT = Path(__file__).resolve().parents[2]


def _git(repo: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=repo, input=stdin, capture_output=True, text=True, check=True,
                          timeout=60)


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    """This checkout's tracked files as they are now, committed in a fresh repository."""
    # `git apply` is the patch's contract: without git the test fails rather than passing unchecked.
    assert shutil.which("git") is not None, "git is needed to check that the suggested patches apply"
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for name in filter(None, listed.decode().split("\0")):
        if name.startswith(("shared/", "signals/", "deploy/", "parser/", "compactor/", "registry/", "ingester/",
                            "reconciler/")) or name == "template.yaml":
            target = tmp_path / "repo" / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, target)
    repo = tmp_path / "repo"
    _git(repo, "init", "--quiet")
    _git(repo, "add", "-A")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "--quiet", "-m", "base")
    return repo


def _run(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "PYTHONPATH": str(repo), "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run([sys.executable, *args], cwd=repo, env=environ, capture_output=True, text=True,
                          timeout=120, check=False)


def _ledger(repo: Path) -> dict[str, Any]:
    return dict(json.loads((repo / "shared" / "iceberg_ids.json").read_text())["tables"])


def test_a_key_and_a_type_patch_apply_and_pass_the_checks(clone: Path) -> None:
    before = _ledger(clone)
    key_patch = suggest_key(clone, "lock", "auto_lock_delay_s", "int", "Was in extra: 30% of rows.")
    assert key_patch.patch.startswith("diff --git a/shared/schema.py b/shared/schema.py\n")
    _git(clone, "apply", "--check", stdin=key_patch.patch)
    _git(clone, "apply", stdin=key_patch.patch)
    assert any("auto_lock_delay_s (id 23)" in line for line in key_patch.summary)

    events = [{"event_id": f"t{n}", "device_id": "d", "device_type": "thermostat", "event_name": "setpoint",
               "event_time": "2026-12-01T00:00:00Z", "firmware_version": "1.0.3", "target_temp_c": 19 + n * 0.5,
               "hvac_mode": "heat", "fan_on": n % 2 == 0, "schedule": {"a": 1}} for n in range(4)]
    # a new interpreter reads the patched schema: suggest the type from the clone's own code
    script = ("import json,sys; from pathlib import Path; from signals.schema.suggest import suggest_type; "
              "s = suggest_type(Path('.'), 'thermostat', json.loads(sys.argv[1])); "
              "sys.stdout.write(s.patch); sys.stderr.write('\\n'.join(s.summary))")
    made = _run(clone, "-c", script, json.dumps(events))
    assert made.returncode == 0, made.stderr
    assert "target_temp_c: float" in made.stderr
    assert "schedule: left in extra" in made.stderr
    _git(clone, "apply", "--check", stdin=made.stdout)
    _git(clone, "apply", stdin=made.stdout)

    check = _run(clone, "-m", "signals.cli", "schema", "check")
    assert check.returncode == 0, check.stdout + check.stderr
    template = _run(clone, "-m", "deploy.glue_columns", "--check")
    assert template.returncode == 0, template.stdout + template.stderr
    after = _ledger(clone)
    lock_before = {f["name"]: f["id"] for f in before["int_lock_compacted_daily"]["fields"]}
    lock_after = {f["name"]: f["id"] for f in after["int_lock_compacted_daily"]["fields"]}
    assert {name: lock_after[name] for name in lock_before} == lock_before
    assert lock_after["auto_lock_delay_s"] == before["int_lock_compacted_daily"]["last-column-id"] + 1
    thermostat = {f["name"]: f["type"] for f in after["int_thermostat_compacted_daily"]["fields"]}
    assert [thermostat[k] for k in ("target_temp_c", "hvac_mode", "fan_on")] == ["double", "string", "boolean"]
    assert "schedule" not in thermostat
    schema_py = (clone / "shared" / "schema.py").read_text()
    assert 'THERMOSTAT = "thermostat"' in schema_py
    assert "telemetry_thermostat_flat" in (clone / "template.yaml").read_text()


def test_refusals_say_why(clone: Path) -> None:
    with pytest.raises(SuggestError, match="stays in extra"):
        suggest_key(clone, "lock", "nested", "object", "x")
    with pytest.raises(SuggestError, match="column already"):
        suggest_key(clone, "lock", "battery_pct", "int", "x")
    with pytest.raises(SuggestError, match="known device type"):
        suggest_type(clone, "lock", [{}])
    with pytest.raises(SuggestError, match="no parked events"):
        suggest_type(clone, "thermostat", [])


def test_kinds_are_inferred_from_every_event() -> None:
    fields, skipped = infer_fields([{"a": 1, "b": "x", "c": [1], "d": 1, "device_id": "x"},
                                    {"a": 2.5, "b": "y", "d": "one", "e": None}])
    assert fields == [("a", "float", 2), ("b", "string", 2)]
    assert skipped == ["c", "d"]
