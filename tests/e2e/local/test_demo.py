"""`make demo` runs `signals demo`: it must exit 0 on a fresh SIGNALS_HOME."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# Twenty-five seconds of the default tier for what the slow tier's clean-clone `make demo` also proves.
pytestmark = pytest.mark.slow


def test_signals_demo_exits_zero_and_reports_what_landed(tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "signals.cli", "demo", "--devices", "3", "--minutes", "0.08",
         "--logs-per-second", "10"],
        env={**os.environ, "SIGNALS_HOME": str(tmp_path)}, capture_output=True, text=True, timeout=120, check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    out = completed.stdout
    for heading in ("Rows per table and partition", "Quarantine per reason", "Glue partitions", "Timings",
                    "Sample query", "Checks", "Exactly once: verified (every copy) beside compacted"):
        assert heading in out
    # The retries sent on purpose are removed by the compactor, each event once.
    assert "ok   int_lock_compacted_daily rows:" in out
    assert "ok   int_otlp_logs_compacted_daily rows:" in out
    assert "ok   resent OTLP batch: 10 verified rows, 5 records sent twice" in out
    assert '"_aws"' in (tmp_path / "logs" / "telemetry-compactor.log").read_text()
    assert "FAIL" not in out
    assert "everything accepted landed where it should" in out
    # Function logs and EMF metrics went to files under SIGNALS_HOME, not to the console.
    assert '"_aws"' not in out
    assert '"_aws"' in (tmp_path / "logs" / "telemetry-signals-ingester.log").read_text()
