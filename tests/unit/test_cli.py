from __future__ import annotations

import os
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


def test_a_closed_pipe_ends_quietly() -> None:
    # `signals --help | head -0`: the reader is gone before we write; no BrokenPipe traceback.
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        result = subprocess.run([sys.executable, "-m", "signals.cli", "--help"], stdout=write_end,
                                stderr=subprocess.PIPE, text=True, check=False)
    finally:
        os.close(write_end)
    assert "Traceback" not in result.stderr
    assert "BrokenPipeError" not in result.stderr
