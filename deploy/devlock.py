"""The development environment's lock (uv.lock): bootstrap uv from it, and report drift against it.

    python -m deploy.devlock bootstrap              # uv's own pin with every hash uv.lock holds for it
    python -m deploy.devlock drift --python PY      # what a venv holds that differs from uv.lock

`make test`, `make demo` and CI install from uv.lock with `uv sync --locked`; uv itself comes first,
pinned by the hashes recorded in that same lock, so nothing in the install floats. `make lock`
refreshes uv.lock (and the Lambda artifact locks) in one command; `make test-latest` (the canary)
installs the newest releases pyproject's ranges allow into .venv-latest and prints, with `drift`,
which packages moved. Standard library only: it runs before anything is installed.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Final

ROOT: Final = Path(__file__).resolve().parent.parent
LOCK: Final = ROOT / "uv.lock"
PROJECT: Final = "signals-pipeline"


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def locked_versions(lock: Path = LOCK) -> dict[str, set[str]]:
    """name (normalised) -> the versions uv.lock pins for it (the project itself left out).

    A universal lock may pin one package at two versions, split by Python version or platform
    (networkx 3.7 needs Python 3.12, so Python 3.11 gets 3.6.1)."""
    versions: dict[str, set[str]] = {}
    for package in tomllib.loads(lock.read_text())["package"]:
        name = _normalise(package["name"])
        if name != PROJECT and "version" in package:
            versions.setdefault(name, set()).add(package["version"])
    return versions


def bootstrap_requirement(lock: Path = LOCK) -> str:
    """uv's requirement line, `uv==V --hash=sha256:... ...`, for pip's --require-hashes mode."""
    for package in tomllib.loads(lock.read_text())["package"]:
        if package["name"] == "uv":
            hashes = [w["hash"] for w in package.get("wheels", [])]
            if "sdist" in package:
                hashes.append(package["sdist"]["hash"])
            return " ".join([f"uv=={package['version']}", *(f"--hash={h}" for h in hashes)])
    raise SystemExit("uv.lock pins no uv: add it to the dev extra and run `make lock`")


def installed_versions(python: str) -> dict[str, str]:
    script = (
        "import importlib.metadata as m, json;"
        "print(json.dumps({d.metadata['Name']: d.version for d in m.distributions()}))"
    )
    out = subprocess.run([python, "-c", script], check=True, capture_output=True, text=True).stdout
    return {_normalise(name): version for name, version in json.loads(out).items()}


def drift(locked: dict[str, set[str]], installed: dict[str, str]) -> list[tuple[str, str, str]]:
    """(package, locked version or '-', installed version or '-') for each package that differs."""
    moved = []
    for name in sorted(set(locked) | set(installed)):
        if name in (PROJECT, "pip", "setuptools"):
            continue
        old, new = locked.get(name, set()), installed.get(name)
        if new in old or (old and new is None):
            # A locked package absent from the venv is a platform-only pin (win32, macOS), not drift.
            continue
        moved.append((name, " or ".join(sorted(old)) or "-", new or "-"))
    return moved


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.devlock", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("bootstrap", help="print uv's hashed requirement line from uv.lock")
    drift_cmd = commands.add_parser("drift", help="packages a venv holds at versions other than uv.lock's")
    drift_cmd.add_argument("--python", required=True, help="the venv's python")
    args = parser.parse_args(argv)
    if args.command == "bootstrap":
        print(bootstrap_requirement())
        return 0
    moved = drift(locked_versions(), installed_versions(args.python))
    if not moved:
        print("canary: the newest releases the ranges allow are exactly uv.lock's; nothing moved")
        return 0
    print(f"canary: {len(moved)} package(s) moved since uv.lock (locked -> newest the ranges allow)")
    width = max(len(name) for name, _, _ in moved)
    for name, old, new in moved:
        print(f"  {name:<{width}}  {old} -> {new}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
