"""Environments of real clients, each its own (a Python venv, a node_modules), cached by their versions.

The newest releases are resolved first (`uv pip compile`, `npm view`: seconds; a resolution is reused
for six hours), and the environment is keyed by the exact versions that came out: a rerun with nothing
new released installs nothing, a release builds a fresh one beside the old. The cache is
`$SIGNALS_CLIENTS_CACHE`, default `~/.cache/signals-clients`; a lock file per environment lets
parallel test workers share it.

    python = python_env("pyathena", ["pyathena", "botocore"])      # its interpreter
    modules = node_env(["@aws-sdk/client-athena"])                  # the directory holding node_modules
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

PROJECT_VENV_BIN = Path(sys.executable).parent
UV = PROJECT_VENV_BIN / "uv"


def cache_root() -> Path:
    root = Path(os.environ.get("SIGNALS_CLIENTS_CACHE") or Path.home() / ".cache" / "signals-clients")
    root.mkdir(parents=True, exist_ok=True)
    return root


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run(command: Sequence[str], *, timeout: float = 600, cwd: Path | None = None) -> str:
    completed = subprocess.run(list(command), capture_output=True, text=True, timeout=timeout, check=False, cwd=cwd)
    if completed.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({completed.returncode}):\n"
                           f"{completed.stdout}\n{completed.stderr}")
    return completed.stdout


def _key(parts: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


#: How long a resolution of "the newest releases" is reused before the registries are asked again.
RESOLVED_FOR_SECONDS = 6 * 3600


def _resolved(name: str, resolve: Callable[[], str]) -> str:
    """`resolve()` (the newest versions, as text), remembered for RESOLVED_FOR_SECONDS."""
    path = cache_root() / f"{name}.resolved.json"
    with _locked(cache_root() / f"{name}.resolved.lock"):
        try:
            saved = json.loads(path.read_text())
            if time.time() - float(saved["at"]) < RESOLVED_FOR_SECONDS:
                return str(saved["text"])
        except (OSError, ValueError, KeyError):
            pass
        text = resolve()
        path.write_text(json.dumps({"at": time.time(), "text": text}))
        return text


def python_env(name: str, requirements: Sequence[str]) -> Path:
    """A venv with the newest releases `requirements` allow (on this interpreter's version); its python."""
    if not UV.exists():
        raise RuntimeError(f"uv is missing at {UV}: make install puts it in the project's venv")
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    pins = _resolved(f"py{version}-{name}", lambda: _compile(requirements, version))
    directory = cache_root() / f"py{version}-{name}-{_key([version, pins])}"
    python = directory / "bin" / "python"
    with _locked(cache_root() / f"{directory.name}.lock"):
        if not (directory / "ready.json").exists():
            shutil.rmtree(directory, ignore_errors=True)
            started = time.monotonic()
            _run([str(UV), "venv", "--quiet", "--python", sys.executable, str(directory)])
            (directory / "requirements.txt").write_text(pins)
            _run([str(UV), "pip", "install", "--quiet", "--python", str(python), "-r",
                  str(directory / "requirements.txt")])
            (directory / "ready.json").write_text(json.dumps(
                {"requirements": list(requirements), "install_seconds": round(time.monotonic() - started, 1)}))
    return python


def _compile(requirements: Sequence[str], version: str) -> str:
    completed = subprocess.run(
        [str(UV), "pip", "compile", "--quiet", "--no-header", "--no-annotate", "--python-version", version, "-"],
        input="\n".join(requirements) + "\n", capture_output=True, text=True, timeout=300, check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"uv pip compile {list(requirements)} failed:\n{completed.stderr}")
    return completed.stdout


def pinned(python: Path, package: str) -> str:
    """The version of `package` installed in the venv of `python`."""
    for line in (python.parent.parent / "requirements.txt").read_text().splitlines():
        name, _, version = line.partition("==")
        if name.strip().lower() == package.lower():
            return version.strip()
    raise KeyError(package)


def node_env(packages: Sequence[str]) -> Path:
    """A directory whose node_modules holds the newest release of each package (npm)."""
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        raise RuntimeError("node and npm are needed for the JavaScript SDK clients")
    def newest() -> str:
        with ThreadPoolExecutor(max_workers=len(packages)) as pool:  # one `npm view` each, at once
            found = list(pool.map(lambda package: _run([npm, "view", package, "version"], timeout=120).strip(),
                                  packages))
        return "\n".join(f"{package}@{version}" for package, version in zip(packages, found, strict=True))

    versions = _resolved(f"node-{_key(list(packages))}", newest).split("\n")
    directory = cache_root() / f"node-{_key(versions)}"
    with _locked(cache_root() / f"{directory.name}.lock"):
        if not (directory / "ready.json").exists():
            shutil.rmtree(directory, ignore_errors=True)
            directory.mkdir(parents=True)
            started = time.monotonic()
            _run([npm, "install", "--prefix", str(directory), "--no-audit", "--no-fund", "--loglevel=error",
                  *versions])
            (directory / "ready.json").write_text(json.dumps(
                {"packages": versions, "install_seconds": round(time.monotonic() - started, 1)}))
    return directory
