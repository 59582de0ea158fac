from __future__ import annotations

import subprocess
import sys

from signals.cli import COMMAND_MODULES, build_parser


def test_help_lists_every_registered_command() -> None:
    result = subprocess.run([sys.executable, "-m", "signals.cli", "--help"], capture_output=True, text=True,
                            check=True)
    assert "usage: signals" in result.stdout
    commands = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    for name in commands:
        assert name in result.stdout
    assert len(commands) >= len(COMMAND_MODULES)
