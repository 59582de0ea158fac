"""A local stack killed with `kill -9` leaves its state file: the next commands say so (issue 12)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from signals.cli import main
from signals.env import EnvironmentNotFound, pid_alive, resolve
from signals.local.command import report_dead_stack


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.fixture
def stale_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setenv("SIGNALS_HOME", str(tmp_path))
    pid = dead_pid()
    (tmp_path / "local-stack.json").write_text(json.dumps({
        "aws_endpoint_url": "http://127.0.0.1:9", "outputs": {"RawBucket": "raw"}, "pid": pid, "api_key": "k"}))
    return pid


def test_resolve_says_the_stack_died(stale_state: int) -> None:
    with pytest.raises(EnvironmentNotFound, match=f"pid {stale_state} died without stopping"):
        resolve("local")


@pytest.mark.parametrize("argv", [["status"], ["query", "SELECT 1"]])
def test_status_and_query_say_so_in_one_line_and_exit_1(stale_state: int, argv: list[str],
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    [message] = captured.err.splitlines()
    assert "no local stack is running" in message
    assert str(stale_state) in message


def test_no_state_file_at_all_is_one_line_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SIGNALS_HOME", str(tmp_path))
    assert main(["status"]) == 1
    assert len(capsys.readouterr().err.splitlines()) == 1


def test_the_next_start_reports_the_dead_stack(stale_state: int, capsys: pytest.CaptureFixture[str]) -> None:
    assert report_dead_stack() == stale_state
    message = capsys.readouterr().err
    assert f"pid {stale_state}" in message
    assert "died without stopping" in message
    assert "data directory kept is restored" in message


def test_a_killed_but_unreaped_process_counts_as_dead() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert pid_alive(child.pid)
        child.kill()
        deadline = time.monotonic() + 10
        while pid_alive(child.pid) and time.monotonic() < deadline:  # a zombie until waited for
            time.sleep(0.05)
        assert not pid_alive(child.pid)
    finally:
        child.kill()
        child.wait()
