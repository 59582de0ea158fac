"""First steps: `signals local` shows new events within seconds, and says how to type `signals`."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from signals.cli import build_parser
from signals.local.command import LOCAL_BUFFER_SECONDS, beside, signals_command


def test_signals_local_buffers_seconds_not_the_templates_five_minutes() -> None:
    args = build_parser().parse_args(["local"])
    assert args.buffer_seconds == LOCAL_BUFFER_SECONDS <= 5
    assert build_parser().parse_args(["local", "--buffer-seconds", "300"]).buffer_seconds == 300
    assert build_parser().parse_args(["demo"]).buffer_seconds == 1.0


def test_the_banner_names_signals_by_a_path_that_works(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    installed = Path(sys.executable).parent / "signals"
    if not installed.exists():
        pytest.fail(f"{installed} missing: the project is not installed in this interpreter's environment")
    monkeypatch.setenv("PATH", str(tmp_path))  # .venv/bin not on PATH, as right after `make demo`
    assert signals_command() == str(installed)
    assert beside(str(installed), "aws") == str(installed.parent / "aws")
    monkeypatch.setenv("PATH", str(installed.parent))
    assert signals_command() == "signals"
    assert beside("signals", "aws") == "aws"
