"""Cold start of the ingester: `import ingester.app` against `import boto3`, in the same run.

Each figure is the median over fresh interpreters (`python -c`), timing the import statement
itself in CPU time of that process (`time.process_time`: interpreter start-up excluded, byte code
already compiled, other load on a shared machine not counted). Runs alternate between the
statements. Target: <= 1.3x.
The first-request figures add what the first request loads (configuration via pydantic, the
Firehose client) against boto3 plus a Firehose client. The ingester imports botocore, not boto3.

    .venv/bin/python bench/ingester_import.py [--runs 15]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(ROOT), "AWS_DEFAULT_REGION": "us-west-2",
       "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "POWERTOOLS_TRACE_DISABLED": "true"}

TIMER = "import time; t0 = time.process_time(); {stmt}; print((time.process_time() - t0) * 1000)"
CASES = {
    "import boto3": "import boto3",
    "import ingester.app": "import ingester.app",
    "boto3 + firehose client": "import boto3; boto3.Session().client('firehose')",
    "ingester.app + first-request setup": (
        "import ingester.app, shared.config; from ingester.firehose import firehose_client; "
        "shared.config.load(shared.config.IngesterConfig, {'TELEMETRY_STREAM_NAME': 't', 'OTLP_STREAM_NAME': 'o'}); "
        "firehose_client(ingester.app.FIREHOSE_CLIENT_CONFIG)"
    ),
}


def time_once(stmt: str) -> float:
    result = subprocess.run([sys.executable, "-c", TIMER.format(stmt=stmt)], env=ENV, capture_output=True,
                            text=True, check=True, cwd=ROOT)
    return float(result.stdout.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    for stmt in CASES.values():  # warm the byte-code cache
        time_once(stmt)
    samples: dict[str, list[float]] = {name: [] for name in CASES}
    for _ in range(args.runs):
        for name, stmt in CASES.items():
            samples[name].append(time_once(stmt))
    medians = {name: statistics.median(values) for name, values in samples.items()}
    print(f"median of {args.runs} fresh interpreters each (CPU ms):")
    for name, value in medians.items():
        print(f"  {name:<38} {value:8.1f}")
    ratio = medians["import ingester.app"] / medians["import boto3"]
    print(f"import ratio  ingester.app / boto3            {ratio:.2f}x  (target <= 1.3x)")
    first = medians["ingester.app + first-request setup"] / medians["boto3 + firehose client"]
    print(f"first-request ratio (with config + client)    {first:.2f}x")


if __name__ == "__main__":
    main()
