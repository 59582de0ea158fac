"""Functions run in-process with their own environment, a Lambda context, and output in their log file."""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path
from typing import Any, cast

import pytest

from shared.aws import Clients
from signals.local.runtime import LocalFunction, RoutedStdout
from signals.local.wiring import FunctionSpec
from tests.unit.local import fake_function


def spec(timeout: int = 30) -> FunctionSpec:
    return FunctionSpec(logical_id="Fake", name="fake-fn", module="tests.unit.local.fake_function",
                        environment={"ONLY_MINE": "1"}, timeout_seconds=timeout, memory_mb=512)


def test_each_invocation_gets_its_own_environment_and_a_context() -> None:
    fake_function.SEEN.clear()
    function = LocalFunction(spec(), Clients(), None)
    function.load()
    assert function.invoke({"n": 1}) == {"ok": 1}
    assert function.invoke({"n": 2}) == {"ok": 2}
    first, second = fake_function.SEEN
    assert first["environ"] == {"ONLY_MINE": "1"}
    assert "ONLY_MINE" not in os.environ
    assert first["request_id"] != second["request_id"]
    assert 29_000 < first["remaining_ms"] <= 30_000
    assert (first["name"], first["memory"]) == ("fake-fn", 512)
    assert (function.invocations, function.errors, function.overruns) == (2, 0, 0)


def test_output_and_errors_go_to_the_function_log(tmp_path: Path) -> None:
    console = io.StringIO()
    routed = RoutedStdout(console, tmp_path)
    routed.stderr = RoutedStdout(io.StringIO(), tmp_path, share_with=routed)
    function = LocalFunction(spec(timeout=0), Clients(), routed)
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = cast(Any, routed), cast(Any, routed.stderr)
    try:
        function.invoke({"n": 3})
        with pytest.raises(ValueError, match="asked to fail"):
            function.invoke({"n": 4, "fail": True})
        print("the stack's own line")
    finally:
        sys.stdout, sys.stderr = saved
        routed.close_files()
    log = (tmp_path / "fake-fn.log").read_text()
    assert "handling 3" in log
    assert "ValueError: asked to fail" in log
    assert "over its 0 s timeout" in log
    assert console.getvalue() == "the stack's own line\n"
    assert (function.errors, function.overruns) == (1, 2)
