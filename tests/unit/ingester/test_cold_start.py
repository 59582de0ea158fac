"""What `import ingester.app` loads: nothing the first request or a protobuf request can load later."""

from __future__ import annotations

import subprocess
import sys

NEVER_AT_IMPORT = ("pyarrow", "boto3", "s3transfer", "aws_xray_sdk", "pydantic", "google.protobuf", "opentelemetry")


def test_import_leaves_heavy_modules_unloaded() -> None:
    code = (
        "import sys, ingester.app\n"
        f"print(','.join(name for name in {NEVER_AT_IMPORT!r} if name in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            env={"PATH": "/usr/bin:/bin"})
    assert result.stdout.strip() == ""


def test_json_requests_never_load_protobuf() -> None:
    code = """
import json, sys
from ingester.app import build_handler
from tests.unit.ingester.fakes import STREAMS, FakeContext, RecordingSink, sample_event
handler = build_handler(STREAMS, sink=RecordingSink())
for name in ("ingester_telemetry", "ingester_logs_json"):
    assert handler(sample_event(name), FakeContext())["statusCode"] == 200
print("google.protobuf" in sys.modules)
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip().splitlines()[-1] == "False"
