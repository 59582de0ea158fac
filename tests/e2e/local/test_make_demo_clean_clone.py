"""`make demo` from a clean clone: creates .venv, installs the project from the package index, exits 0.

Slow (a full dependency install from the network), so `make test` skips it; `make test-all` runs it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.slow
def test_make_demo_from_a_clean_clone_exits_zero(tmp_path: Path) -> None:
    if shutil.which("git") is None or shutil.which("make") is None or not (ROOT / ".git").exists():
        pytest.fail("needs git, make and this checkout's history")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", "--no-local", str(ROOT), str(clone)], check=True, timeout=120)
    environ = {key: value for key, value in os.environ.items() if not key.startswith(("VIRTUAL_ENV", "AWS_"))}
    environ["SIGNALS_HOME"] = str(tmp_path / "home")
    completed = subprocess.run(["make", "demo"], cwd=clone, env=environ, capture_output=True, text=True,
                               timeout=1800, check=False)
    assert completed.returncode == 0, completed.stdout[-4000:] + completed.stderr[-4000:]
    assert "everything accepted landed where it should" in completed.stdout
