"""`sam validate --lint` and checkov, each from its own virtualenv (they pin their own boto3).

Slow: the first run creates `.venv-tools/` like `make template-check` does (a few minutes of pip).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.template.conftest import REGION, ROOT, TEMPLATE_PATH

TOOLS = ROOT / ".venv-tools"
REQUIREMENTS = {"sam": "aws-sam-cli>=1.140,<2", "checkov": "checkov>=3.2,<4"}  # as the Makefile installs them

pytestmark = pytest.mark.slow


def _tool(name: str) -> Path:
    executable = TOOLS / name / "bin" / name
    if not executable.exists():
        subprocess.run([sys.executable, "-m", "venv", str(TOOLS / name)], check=True)
        subprocess.run([str(TOOLS / name / "bin" / "python"), "-m", "pip", "install", "--quiet", REQUIREMENTS[name]],
                       check=True)
    return executable


def _run(command: list[str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SAM_CLI_TELEMETRY": "0", "AWS_DEFAULT_REGION": REGION}
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, timeout=600, check=False)


def test_sam_validate_lint_is_clean() -> None:
    result = _run([str(_tool("sam")), "validate", "--lint", "--region", REGION, "--template", str(TEMPLATE_PATH)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is a valid SAM Template" in result.stdout + result.stderr


def test_checkov_has_no_unexplained_failure() -> None:
    result = _run([str(_tool("checkov")), "--file", str(TEMPLATE_PATH), "--framework", "cloudformation",
                   "--compact", "--quiet", "--skip-download"])
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "Failed checks: 0" in result.stdout

