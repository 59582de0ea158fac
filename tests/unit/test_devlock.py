"""The dev environment's lock: uv bootstraps from its own locked hashes; the canary names what moved."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from deploy import devlock

LOCK = """
version = 1
[[package]]
name = "signals-pipeline"
version = "0.1.0"
source = { editable = "." }

[[package]]
name = "uv"
version = "0.13.9"
sdist = { url = "https://example.invalid/uv.tar.gz", hash = "sha256:aaa" }
wheels = [
    { url = "https://example.invalid/uv-x86_64.whl", hash = "sha256:bbb" },
    { url = "https://example.invalid/uv-aarch64.whl", hash = "sha256:ccc" },
]

[[package]]
name = "networkx"
version = "3.6.1"

[[package]]
name = "networkx"
version = "3.7"

[[package]]
name = "Botocore"
version = "1.44.13"

[[package]]
name = "pywin32"
version = "311"
"""


def test_uv_is_bootstrapped_by_every_hash_the_lock_records(tmp_path: Path) -> None:
    lock = tmp_path / "uv.lock"
    lock.write_text(LOCK)
    assert devlock.bootstrap_requirement(lock) == "uv==0.13.9 --hash=sha256:bbb --hash=sha256:ccc --hash=sha256:aaa"


def test_the_committed_lock_pins_uv_with_hashes() -> None:
    line = devlock.bootstrap_requirement()
    assert line.startswith("uv==")
    assert "--hash=sha256:" in line


def test_drift_names_moved_and_new_packages_only(tmp_path: Path) -> None:
    lock = tmp_path / "uv.lock"
    lock.write_text(LOCK)
    locked = devlock.locked_versions(lock)
    assert "signals-pipeline" not in locked
    installed = {
        "botocore": "1.44.18",  # moved
        "networkx": "3.6.1",  # one of the two versions a universal lock pins: not drift
        "brand-new": "1.0",  # not in the lock at all
        "signals-pipeline": "0.1.0",
        "pip": "25.3",
    }
    # pywin32 (a platform-only pin) and uv absent from the venv are not drift either.
    assert devlock.drift(locked, installed) == [("botocore", "1.44.13", "1.44.18"), ("brand-new", "-", "1.0")]


def test_drift_reads_a_real_interpreter() -> None:
    installed = devlock.installed_versions(sys.executable)
    assert "pytest" in installed
    out = subprocess.run([sys.executable, "-m", "deploy.devlock", "drift", "--python", sys.executable],
                         check=True, capture_output=True, text=True, cwd=devlock.ROOT).stdout
    assert out.startswith("canary: ")
