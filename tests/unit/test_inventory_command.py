"""`signals inventory` writes reports for the local stack only."""

from __future__ import annotations

import pytest

from signals.cli import main


def test_a_deployed_env_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inventory", "--env", "prod"]) == 2
    assert "S3 writes the inventory reports itself" in capsys.readouterr().err


def test_no_local_stack_is_a_clear_error(tmp_path: object, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SIGNALS_HOME", str(tmp_path))
    assert main(["inventory"]) == 1
    assert "no local stack is running" in capsys.readouterr().err
