"""Cold-start hygiene: handlers import with no environment and the ingester never loads pyarrow."""

from __future__ import annotations

import subprocess
import sys

import pytest

HANDLERS = ["ingester.app", "parser.app", "registry.app", "reconciler.app", "compactor.app"]
CLEAN_ENV = {"PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1"}


@pytest.mark.parametrize("module", HANDLERS)
def test_handler_imports_with_no_environment(module: str) -> None:
    code = f"import {module}; assert callable({module}.handler)"
    result = subprocess.run([sys.executable, "-c", code], env=CLEAN_ENV, capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stderr


def test_ingester_does_not_import_pyarrow() -> None:
    result = subprocess.run([sys.executable, "-X", "importtime", "-c", "import ingester.app"],
                            env=CLEAN_ENV, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if "|" in line}
    assert "ingester.app" in imported
    assert not {name for name in imported if name.split(".")[0] == "pyarrow"}


def test_the_compactor_lambda_imports_only_core_dependencies() -> None:
    # The Lambda runs the athena engine; DuckDB, pyiceberg, pyarrow and sqlglot stay with the local engine.
    code = "import compactor.app; assert callable(compactor.app.handler)"
    result = subprocess.run([sys.executable, "-X", "importtime", "-c", code],
                            env=CLEAN_ENV, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if "|" in line}
    assert "compactor.athena_engine" in imported
    heavy = {name for name in imported if name.split(".")[0] in {"pyarrow", "duckdb", "pyiceberg", "sqlglot"}}
    assert not heavy
