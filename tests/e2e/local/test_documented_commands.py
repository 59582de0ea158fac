"""Every command README.md and docs/*.md show runs, with tiny inputs, from the project's environment.

A documented command is a line of a shell code block (```sh, or an unlabelled block whose line starts
with a program; in a transcript only the `$ ` lines) or an inline code span that starts with a
program and has an argument. Each is either in RUN (run here, with `bash -c` from the checkout, the
project's .venv/bin first on PATH, against one `signals local` started as the README says) or in
NOT_RUN with the reason it cannot run here; a documented command in neither fails
`test_every_documented_command_is_run_or_listed` (not slow: it only reads the docs), so a new
command in the docs must be given a way to run or a reason. The ports of the docs' examples (4566,
4318) become the running stack's.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
VENV_BIN = ROOT / ".venv" / "bin"
PROGRAMS = frozenset({"signals", ".venv/bin/signals", "make", "aws", "sam", "python", ".venv/bin/python",
                      "source", "export", "curl", "uv", "pytest", "npm", "node", "git"})
SHELL_LANGUAGES = frozenset({"sh", "bash", "shell", "console"})
_FENCE = re.compile(r"^(?P<indent> *)```(?P<lang>[\w-]*)[^\n]*\n(?P<body>.*?)^(?P=indent)```", re.S | re.M)


def documented_commands(root: Path = ROOT) -> dict[str, str]:
    """Every documented command (whitespace folded, comments dropped) -> the first doc showing it."""
    found: dict[str, str] = {}
    for doc in [root / "README.md", *sorted((root / "docs").glob("*.md"))]:
        text = doc.read_text()
        for block in _FENCE.finditer(text):
            language = block["lang"]
            if language and language not in SHELL_LANGUAGES:
                continue
            lines = block["body"].replace("\\\n", " ").splitlines()
            transcript = any(line.lstrip().startswith("$ ") for line in lines)
            for raw in lines:
                line = raw.strip()
                if transcript:
                    if not line.startswith("$ "):
                        continue
                    line = line[2:]
                if line.startswith("#"):
                    continue
                line = " ".join(re.sub(r"\s+#(\s.*)?$", "", line).split())
                if line and (language in SHELL_LANGUAGES or _program(line)):
                    found.setdefault(line, doc.name)
        for span in re.finditer(r"`([^`\n]+)`", _FENCE.sub("", text)):
            words = span[1].split()
            if len(words) >= 2 and words[0] in PROGRAMS and not words[1].endswith(":"):  # not a message
                found.setdefault(" ".join(words), doc.name)
    return found


def _program(line: str) -> str | None:
    words = line.split()
    while words and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=\S*", words[0]):
        words = words[1:]
    if len(words) >= 2 and words[1].endswith(":"):  # a message the program prints, not a command
        return None
    return words[0] if words and words[0] in PROGRAMS else None


@dataclass(frozen=True)
class Run:
    command: str | None = None  # what runs; None: the documented text itself
    expect: str | None = None  # a text its output must contain
    alone: bool = False  # its own stack or files (its own SIGNALS_HOME), runs beside the others
    cwd_root: bool = False  # make: from the checkout itself


# Stack commands run in this order (an inventory before its query, the data before compaction).
RUN: dict[str, Run] = {
    "source .venv/bin/activate": Run("source .venv/bin/activate && command -v signals", expect="/.venv/bin/signals"),
    "signals local": Run("true  # the fixture started it as documented: signals local --port P --aws-port A"),
    "signals --help": Run(expect="query"),
    'signals query "SELECT bolt_state, count(*) AS events, round(avg(battery_pct), 1) AS avg_battery, '
    'max(event_time) AS latest FROM telemetry_lock_flat GROUP BY bolt_state ORDER BY events DESC"':
        Run(expect="locked"),
    'signals query "SELECT device_type, count(*) FROM telemetry_lock_flat GROUP BY 1"': Run(expect="lock"),
    'signals query "SQL" [--env E] [--format table|csv|json]':
        Run('signals query "SELECT count(*) AS n FROM telemetry_lock_flat" --format json', expect='"n"'),
    "signals status": Run(),
    "signals status [--env E] [--hour YYYY-MM-DDTHH] [--json]": Run("signals status --hour {hour} --json"),
    "signals status [--env E] [--profile P] [--hour YYYY-MM-DDTHH] [--json]": Run("signals status --json"),
    "signals invoke FUNCTION [-e events/FILE.json] [--env E]":
        Run("signals invoke parser -e events/parser_sqs_s3.json"),
    ".venv/bin/signals invoke parser -e events/parser_sqs_s3.json": Run(),
    "signals invoke FUNCTION [-e FILE|-] [--env E]":
        Run("signals invoke reconciler -e - < events/reconciler_scheduled.json"),
    "export AWS_ENDPOINT_URL=http://127.0.0.1:4566 AWS_ACCESS_KEY_ID=x AWS_SECRET_ACCESS_KEY=x "
    "AWS_DEFAULT_REGION=us-west-2": Run("export AWS_ENDPOINT_URL=http://127.0.0.1:4566 AWS_ACCESS_KEY_ID=x "
                                        "AWS_SECRET_ACCESS_KEY=x AWS_DEFAULT_REGION=us-west-2 && aws sts "
                                        "get-caller-identity", expect="123456789012"),
    "aws lambda invoke --function-name telemetry-signals-ingester --payload fileb://events/ingester_telemetry.json "
    "out.json": Run("aws lambda invoke --function-name telemetry-signals-ingester --payload "
                    "fileb://events/ingester_telemetry.json out.json && cat out.json", expect="statusCode"),
    "aws lambda invoke": Run("aws lambda invoke --function-name telemetry-signals-ingester --payload "
                             "fileb://events/ingester_telemetry.json out2.json"),
    "aws firehose list-delivery-streams": Run(expect="DeliveryStreamNames"),
    "AWS_ENDPOINT_URL=http://127.0.0.1:4566 aws athena start-query-execution --work-group "
    "local-tps-telemetry-human-wg --query-execution-context Database=telemetry-parser-db --query-string "
    '"SELECT count(*) FROM telemetry_lock_flat"': Run(expect="QueryExecutionId"),
    "signals inventory": Run(),
    ".venv/bin/signals inventory": Run(),
    '.venv/bin/signals query "SELECT count(*), sum(size) FROM \\"local-tps_s3_inventory\\".raw_inventory"': Run(),
    # before verify: its compactor run may still hold the lease (finishing its maintenance) when it returns
    "signals compact": Run(),
    "signals compact [--env E] [--table T] [--day YYYY-MM-DD] [--json]":
        Run("signals compact --table lock --day {day} --json"),
    "signals verify": Run("signals verify --timeout 60 --compact-timeout 90"),
    "signals verify [--env E] [--timeout S] [--no-compacted] [--compact-timeout S]":
        Run("signals verify --timeout 60 --api-key {api_key} --no-compacted"),
    "signals verify [--env E] [--profile P] [--timeout S] [--api-key KEY] [--no-compacted] [--compact-timeout S]":
        Run("signals verify --timeout 60 --api-key {api_key} --no-compacted"),
    "signals redrive dlq QUEUE [--max N] [--dry-run]":
        Run("signals redrive dlq telemetry-registry-queue_dlq --max 5 --dry-run"),
    "signals redrive dlq QUEUE [--env E] [--max N] [--dry-run]":
        Run("signals redrive dlq telemetry-processing-queue --dry-run"),
    "signals redrive raw --source S --from T [--to T] [--dry-run]":
        Run("signals redrive raw --source json_telemetry --from {hour} --dry-run"),
    "signals redrive raw --source json_telemetry|otlp_logs --from TIME [--to TIME] [--env E] [--dry-run]":
        Run("signals redrive raw --source otlp_logs --from {hour} --to {hour} --dry-run"),
    # the schema commands, against the seeded events (one with an unknown key, one of an unknown device type)
    "signals schema check": Run(expect="agrees with"),
    "signals schema check [--write]": Run("cp shared/iceberg_ids.json ledger.json && signals schema check --write "
                                          "--ledger ledger.json", expect="agrees with ledger.json"),
    "signals schema check --write": Run("cp shared/iceberg_ids.json ledger.json && signals schema check --write "
                                        "--ledger ledger.json", expect="agrees with ledger.json"),
    "signals schema apply --env E [--dry-run]": Run("signals schema apply --env local --dry-run",
                                                    expect="would change 0"),
    "signals schema apply --env E": Run("signals schema apply --env local", expect="changed 0"),
    "signals schema drift": Run(expect="doc_note_s"),
    "signals schema drift --env E [--json]": Run("signals schema drift --env local --json", expect='"doorbell"'),
    "signals schema drift --env E [--type T] [--days N] [--json]":
        Run("signals schema drift --env local --type lock --days 1 --json", expect='"key": "doc_note_s"'),
    "signals schema suggest TYPE.KEY|TYPE": Run("signals schema suggest lock.doc_note_s",
                                                expect="int_lock_compacted_daily.doc_note_s"),
    "signals schema suggest TYPE.KEY | TYPE [--env E] [--repo DIR]":
        Run("signals schema suggest doorbell --env local --repo .", expect="int_doorbell_compacted_daily"),
    "signals schema suggest TYPE": Run("signals schema suggest doorbell", expect="new device type 'doorbell'"),
    # the patch suggest prints applies to this checkout (--check: nothing written)
    "git apply": Run('signals schema suggest lock.doc_note_s > suggest.diff && cd "$(dirname "$(readlink -f '
                     'shared)")" && git apply --check "$OLDPWD/suggest.diff"'),
    # the seeding's hour may be the one before {hour}: the forms without --from judge the parked doorbell event
    "signals redrive quarantine --reason R [--from T [--to T]] [--dry-run]":
        Run("signals redrive quarantine --reason unknown_device_type --from {hour} --dry-run"),
    "signals redrive quarantine --reason REASON [--from TIME [--to TIME]] [--env E] [--dry-run]":
        Run("signals redrive quarantine --reason invalid_value --from {hour} --to {hour} --env local --dry-run"),
    "signals redrive quarantine --reason unknown_device_type":
        Run("signals redrive quarantine --reason unknown_device_type --dry-run",
            expect="device types the schema does not know yet: doorbell 1"),
    "signals redrive quarantine --reason unknown_device_type --env E":
        Run("signals redrive quarantine --reason unknown_device_type --env local",
            expect="nothing the current schema cures"),
    "signals backfill --table T --from DAY --to DAY [--env E] [--dry-run] [--json]":
        Run("signals backfill --table lock --from {day} --to {day} --dry-run --json", expect='"errors": []'),
    "signals backfill --table TYPE --from DAY --to DAY [--env E] [--dry-run] [--json]":
        Run("signals backfill --table lock --from {day} --to {day} --env local --json", expect='"errors": []'),
    "signals backfill --env E --table T --from DAY --to DAY":
        Run("signals backfill --env local --table lock --from {day} --to {day}", expect="backfill_runs"),
    "signals verify --first-deploy": Run("signals verify --first-deploy", expect="0 fail"),
    "signals verify --env E --first-deploy": Run("signals verify --env local --first-deploy", expect="0 fail"),
    # Trino: cached by `make trino` before the slow tier (`make test-slow` depends on it), so fetch finds it
    "signals trino fetch": Run(),
    "signals trino where": Run(expect="trino"),
    ".venv/bin/signals chaos --plan --seed 7": Run(expect="crash_parser"),
    # files, or a stack of their own: each with its own SIGNALS_HOME, beside the commands above
    "signals parse-file RAW [RAW...] --out DIR [--source json_telemetry|otlp_logs] [--json]":
        Run("signals parse-file {raw} --out parsed --source json_telemetry --json", expect='"rows":3', alone=True),
    ".venv/bin/python bench/ingester_throughput.py": Run(".venv/bin/python bench/ingester_throughput.py --rounds 1 "
                                                         "--requests 2", alone=True),
    ".venv/bin/python bench/ingester_import.py": Run(".venv/bin/python bench/ingester_import.py --runs 1", alone=True),
    ".venv/bin/python bench/ingester_firehose_billing.py":
        Run(".venv/bin/python bench/ingester_firehose_billing.py --events 20", alone=True),
    ".venv/bin/python bench/local_e2e.py":
        Run(".venv/bin/python bench/local_e2e.py --events 40 --runs 1 --latency-seconds 1", alone=True),
    ".venv/bin/python bench/local_athena.py":
        Run(".venv/bin/python bench/local_athena.py --files 1 --rows 10 --runs 1", alone=True),
    ".venv/bin/python bench/ops_status.py":
        Run(".venv/bin/python bench/ops_status.py --batches 2 --runs 1 --rtt-ms 0", alone=True),
    ".venv/bin/python bench/parser_throughput.py --runs 5 --memory-check":
        Run(".venv/bin/python bench/parser_throughput.py --runs 1 --size-mb 1 --memory-check", alone=True),
    ".venv/bin/python bench/registry_throughput.py":
        Run(".venv/bin/python bench/registry_throughput.py --files 20 --partitions 2 --runs 1", alone=True),
    ".venv/bin/python bench/reconciler_cost.py":
        Run(".venv/bin/python bench/reconciler_cost.py --sizes 10,20 --runs 1", alone=True),
    ".venv/bin/python bench/compactor_bench.py":
        Run(".venv/bin/python bench/compactor_bench.py --files 2 --rows 20 --runs 1 --history 2,3", alone=True),
    ".venv/bin/python bench/gateway_protocols.py":
        Run(".venv/bin/python bench/gateway_protocols.py --records 20 --runs 2", alone=True),
    "make install": Run(alone=True, cwd_root=True),
    "make trino": Run(alone=True, cwd_root=True),
    "make fuzz": Run("make fuzz FUZZ_EXAMPLES=2", alone=True, cwd_root=True),
    "make fuzz [FUZZ_EXAMPLES=N]": Run("make fuzz FUZZ_EXAMPLES=2", alone=True, cwd_root=True),
    "make fuzz FUZZ_EXAMPLES=2000": Run("make fuzz FUZZ_EXAMPLES=2", alone=True, cwd_root=True),
}

AWS = "needs a deployed AWS environment and an AWS profile (this test has no AWS account)"
MENTION = "names a command in prose, without its arguments; its runnable forms are in RUN"
SUITE = "the test suite itself, which holds this test (CI runs it: .ci/run)"
NOT_RUN: dict[str, str] = {
    "make test": SUITE,
    "make test-slow": SUITE,
    "make demo": "tests/e2e/local/test_make_demo_clean_clone.py runs `make demo` from a clean clone in the same "
                 "tier",
    "signals demo": "tests/e2e/local/test_demo.py runs it (--devices 3 --minutes 0.08) in make test",
    "signals demo [--devices N] [--minutes M]": "tests/e2e/local/test_demo.py runs it (--devices 3 --minutes 0.08) "
                                                "in make test",
    "python -m ingester.api_schema": "rewrites docs/ingest-api.md in place; tests/unit/ingester/test_docs.py "
                                     "checks the doc holds what it would write",
    "make template-check": "installs aws-sam-cli and checkov in .venv-tools (minutes); tests/template/test_tools.py "
                           "runs sam validate --lint and checkov in the same tier",
    "sam validate --lint": "tests/template/test_tools.py runs it in the same tier",
    "make artifacts": "builds the five arm64 Lambda zips from PyPI wheels (minutes); tests/template/test_build.py "
                      "builds them in the same tier",
    "make lock": "rewrites uv.lock and deploy/locks from PyPI: a maintainer's step, not a check",
    "python -m deploy.build lock": "rewrites deploy/locks from PyPI: a maintainer's step, not a check",
    "python -m deploy.glue_columns --write": "rewrites template.yaml; tests/template/test_glue_schema.py checks it "
                                             "is current",
    "sam build": AWS, "sam deploy": AWS, "sam deploy --config-env dev": AWS, "sam delete": AWS,
    "sam delete --config-env dev": AWS, "sam build && sam deploy --config-env prod": AWS,
    "sam local invoke": "needs Docker (the Lambda image); `signals invoke` is its local equivalent (in RUN)",
    "sam local invoke IngesterFunction --event events/ingester_telemetry.json":
        "needs Docker (the Lambda image); `signals invoke` is its local equivalent (in RUN)",
    "git archive main parser shared signals ingester registry reconciler":
        "exports another commit's code, the baseline of a past measurement; bench/parser_throughput.py is in RUN",
    "git checkout <last good commit>": "a placeholder commit in the rollback playbook; it would move this checkout",
    "signals status --env dev": AWS, "signals verify --env dev": AWS, "signals compact --env dev": AWS,
    "signals status --env prod": AWS, "signals verify --env prod": AWS,
    "signals redrive raw --env prod --source json_telemetry --from 2026-11-25T19 --to 2026-11-25T21": AWS,
    "aws sso login --profile platform-dev": AWS, "aws apigateway get-account --profile P": AWS,
    "aws apigateway update-account --patch-operations op=replace,path=/cloudwatchRoleArn,value=ROLE_ARN": AWS,
    "aws apigateway get-api-keys --include-values --profile platform-dev": AWS,
    "aws cloudformation describe-stack-events --stack-name signals-pipeline-dev --profile platform-dev": AWS,
    "aws cloudformation continue-update-rollback --stack-name signals-pipeline-prod": AWS,
    "P=--profile=platform-dev; A=$(aws sts get-caller-identity $P --query Account --output text)": AWS,
    "for b in dev-signal-data-lake-raw dev-verified-parquet-v2-$A dev-parquet-output-simple-quarantine-$A "
    "dev-signal-data-lake-dbt; do": AWS,
    "aws s3api delete-bucket-policy --bucket $b $P": AWS, "aws s3 rm s3://$b --recursive $P": AWS,
    "aws s3api delete-bucket --bucket $b $P": AWS, "done": AWS,
    "aws dynamodb delete-table --table-name dev-tps-telemetry-file-registry-v2 $P": AWS,
    "signals status --env prod --hour <the incident hour>": AWS,
    "signals redrive raw --source <source> --from <hour>": "placeholders of the incident playbook; run in RUN as "
                                                           "signals redrive raw --source ... --from ... --dry-run",
    "signals redrive dlq <queue>": "a placeholder queue; run in RUN as signals redrive dlq QUEUE --dry-run",
    "signals redrive dlq <dlq name>": "a placeholder queue; run in RUN as signals redrive dlq QUEUE --dry-run",
    "signals chaos": "a campaign of minutes on its own stack; tests/e2e/chaos/test_campaign.py runs one (slow tier); "
                     "`signals chaos --plan --seed 7` is in RUN",
    "signals chaos [--minutes M] [--seed S] [--faults NAME,...] [--rate R] [--json] [--keep DIR]":
        "a campaign of minutes; tests/e2e/chaos/test_campaign.py runs one in the same tier",
    ".venv/bin/signals chaos [--minutes 2] [--seed 7] [--faults NAME,...] [--rate 150] [--json] [--keep DIR]":
        "a campaign of minutes; tests/e2e/chaos/test_campaign.py runs one in the same tier",
    "signals chaos --minutes 2 --seed 7 --json": "a two-minute campaign; tests/e2e/chaos/test_campaign.py runs one "
                                                 "in the same tier",
    "make test-latest": "the canary: a fresh .venv-latest from the newest PyPI releases and the unit, integration "
                        "and local e2e tests on it (minutes); CI runs it after the slow tier (.ci/run)",
    "make clean": "deletes the .venv this test runs from",
    "uv sync --locked": "what `make install` (in RUN) runs, as `uv sync --locked --extra dev`; bare, it would "
                        "uninstall the dev extras from the .venv this test runs from",
    "signals local|demo|chaos --athena-engine trino": "a Trino-backed stack (a JVM, about a minute to start); "
                                                      "tests/e2e/local/test_trino.py runs one in the same tier",
    "signals trino functions [--write]": "starts a Trino server (half a minute), and --write rewrites a tracked file; "
                                         "tests/e2e/local/test_trino_start.py makes the same comparison in the "
                                         "same tier",
    "signals local --athena-engine trino": "a Trino-backed stack (a JVM, about a minute to start); "
                                           "tests/e2e/local/test_trino.py runs one in the same tier",
    "signals chaos --minutes 2 --seed 7 --athena-engine trino --json":
        "a two-minute campaign on a Trino-backed stack; tests/e2e/chaos/test_campaign.py runs one in the same tier",
    ".venv/bin/python bench/corpus_engines.py [--rounds N]":
        "a Trino-backed stack and 115 queries on each engine per round (minutes); tests/e2e/corpus/test_corpus.py "
        "runs the same corpus through both engines in the same tier",
    "signals local --data-dir ~/rehearsal": "a second long-running stack; tests/e2e/local/test_data_dir.py starts "
                                            "one on a --data-dir, stops it and starts it again, in the same tier",
    "signals local --fresh": "a second long-running stack; tests/e2e/local/test_data_dir.py starts one with --fresh "
                             "on a kept directory, in the same tier",
    "signals verify --env dev --first-deploy": AWS,
    "signals query --env dev 'SELECT count(*) FROM \"telemetry-parser-db\".telemetry_lock_flat'": AWS,
    "signals query --env dev 'SHOW CREATE TABLE `telemetry-parser-db`.telemetry_lock_flat'": AWS,
    "sam build && sam deploy --config-env E": AWS,
    "aws glue get-table --database-name telemetry-parser-db --name telemetry_lock_flat": AWS,
    "aws lakeformation get-data-lake-settings --profile platform-dev --region us-west-2 --query "
    "'DataLakeSettings.[CreateDatabaseDefaultPermissions,CreateTableDefaultPermissions]'": AWS,
    "aws lakeformation list-resources --profile platform-dev --region us-west-2": AWS,
    # the playbook that registers an Iceberg table's last metadata file again (docs/deploy.md); on the local
    # stack tests/e2e/local/test_athena.py does the same recovery through boto3
    'P="--profile platform-dev --region us-west-2"; DB=telemetry_alerts_dev; T=int_lock_compacted_daily': AWS,
    "BUCKET=dev-signal-data-lake-dbt; PREFIX=dbt/data/$T/metadata/": AWS,
    "LAST=$(aws s3api list-objects-v2 --bucket $BUCKET --prefix $PREFIX $P --query \"Contents[?ends_with(Key, "
    "'.metadata.json')].Key\" --output text | tr '\\t' '\\n' | sort | tail -1)": AWS,
    'aws glue create-table --database-name $DB $P --table-input "{\\"Name\\": \\"$T\\", \\"TableType\\": '
    '\\"EXTERNAL_TABLE\\",': AWS,
    '\\"Parameters\\": {\\"table_type\\": \\"ICEBERG\\", \\"metadata_location\\": '
    '\\"s3://$BUCKET/$LAST\\"}}"': AWS,
    "signals schema apply": MENTION,
    "signals redrive quarantine": MENTION, "signals backfill": MENTION, "signals query --env local": MENTION,
    "signals redrive quarantine --reason R": MENTION,
    "signals query": MENTION, "signals invoke": MENTION, "signals parse-file": MENTION,
    "signals parse-file --out": MENTION, "signals redrive": MENTION, "signals redrive dlq": MENTION,
    "signals redrive raw": MENTION, "signals compact --day": MENTION,
    ".venv/bin/signals ...": MENTION, "python -c": MENTION,
}


def test_every_documented_command_is_run_or_listed() -> None:
    documented = documented_commands()
    assert len(documented) > 50, "the extractor found too few commands: the docs' layout changed?"
    both = set(RUN) & set(NOT_RUN)
    assert not both, f"in RUN and NOT_RUN at once: {both}"
    missing = {line: doc for line, doc in documented.items() if line not in RUN and line not in NOT_RUN}
    assert not missing, (
        "documented commands neither run by this test nor listed with a reason (add each to RUN, with tiny "
        f"inputs, or to NOT_RUN): {json.dumps(missing, indent=2)}")
    stale = sorted((set(RUN) | set(NOT_RUN)) - set(documented))
    assert not stale, f"no longer in the docs, drop them here: {stale}"
    for reason in NOT_RUN.values():
        for named in re.findall(r"tests/\S+\.py", reason):
            assert (ROOT / named).exists(), f"{named}, named as running a command, does not exist"


# --- running them ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Local:
    api_url: str
    aws_port: int
    api_key: str
    home: Path
    workdir: Path


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Local]:
    """`signals local` as the README starts it (in its own process), with a few lock events landed."""
    base = tmp_path_factory.mktemp("documented")
    home, workdir = base / "home", base / "work"
    workdir.mkdir()
    for entry in ROOT.iterdir():  # the checkout, seen from a directory whose files the commands may write
        if entry.name != ".git":
            (workdir / entry.name).symlink_to(entry)
    api_port, aws_port = free_port(), free_port()
    environ = command_environ(home)
    log = (base / "signals-local.log").open("w")
    process = subprocess.Popen(
        [str(VENV_BIN / "signals"), "local", "--port", str(api_port), "--aws-port", str(aws_port),
         # schedules hourly: a scheduled compactor run holding the lease would make `signals compact` skip
         "--buffer-seconds", "0.5", "--reconcile-seconds", "3600", "--api-key", "documented-key"],
        cwd=workdir, env=environ, stdout=log, stderr=subprocess.STDOUT, text=True,
    )
    try:
        state = home / "local-stack.json"
        deadline = time.monotonic() + 120
        while not state.exists():
            assert process.poll() is None, (base / "signals-local.log").read_text()
            assert time.monotonic() < deadline, "signals local did not start in 120 s"
            time.sleep(0.2)
        api_url = json.loads(state.read_text())["api_endpoint"]
        now = int(time.time() * 1000)
        events: list[dict[str, object]] = [
            {"event_id": f"doc-{i}", "device_id": "doc-lock", "device_type": "lock", "event_name": "bolt_changed",
             "event_time": now - 1000 - i, "battery_pct": 40 + i, "bolt_state": "locked" if i % 2 else "unlocked"}
            for i in range(6)]
        events[0]["doc_note_s"] = 5  # a key the schema does not know: `signals schema drift` and `suggest` see it
        # a device type the schema does not know, parked as unknown_device_type: `suggest TYPE`, `redrive quarantine`
        events.append({"event_id": "doc-door", "device_id": "doc-door", "device_type": "doorbell",
                       "event_name": "ring", "event_time": now - 500, "ring_count": 2})
        request = urllib.request.Request(f"{api_url}/v1/telemetry", data=json.dumps(events).encode(), method="POST",
                                         headers={"x-api-key": "documented-key", "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as answer:
            accepted = json.loads(answer.read())
        assert accepted["accepted"] == 7, accepted
        assert accepted["parked"] == [{"index": 6, "reason": "unknown_device_type"}], accepted
        deadline = time.monotonic() + 60
        while run_shell('signals query "SELECT count(*) AS n FROM telemetry_lock_flat" --format csv', workdir,
                        environ).stdout.split()[-1:] != ["6"]:
            assert time.monotonic() < deadline, "the seeded events never became queryable"
            time.sleep(0.5)
        yield Local(api_url, aws_port, "documented-key", home, workdir)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def command_environ(home: Path) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SIGNALS_", "VIRTUAL_ENV"))}
    environ.update(PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}", SIGNALS_HOME=str(home),
                   AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull, AWS_ACCESS_KEY_ID="x",
                   AWS_SECRET_ACCESS_KEY="x", AWS_DEFAULT_REGION="us-west-2", AWS_PAGER="")
    return environ


def run_shell(command: str, cwd: Path, environ: dict[str, str],
              timeout: float = 400) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", command], cwd=cwd, env=environ, capture_output=True, text=True,
                          timeout=timeout, check=False)


@pytest.mark.slow
def test_every_documented_command_runs(local: Local, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    raw = tmp_path / "raw.jsonl"
    raw.write_text("".join(json.dumps({"event_id": f"pf-{i}", "device_id": "pf", "device_type": "lock",
                                       "event_name": "x", "event_time": now.isoformat(), "battery_pct": 5,
                                       "received_at": now.isoformat()}) + "\n" for i in range(3)))
    values = {"hour": now.strftime("%Y-%m-%dT%H"), "day": now.strftime("%Y-%m-%d"), "api_key": local.api_key,
              "raw": str(raw)}

    def prepare(command: str, spec: Run) -> tuple[Path, dict[str, str]]:
        if spec.alone:  # two run at once (the pool below): each gets its own directories, made atomically
            workdir = Path(tempfile.mkdtemp(prefix="work-", dir=tmp_path))
            for entry in ROOT.iterdir():
                if entry.name != ".git":
                    (workdir / entry.name).symlink_to(entry)
            home = tmp_path / f"home-{workdir.name.removeprefix('work-')}"
            return ROOT if spec.cwd_root else workdir, command_environ(home)
        environ = command_environ(local.home)
        environ["AWS_ENDPOINT_URL"] = f"http://127.0.0.1:{local.aws_port}"  # the playbook's export, for `aws`
        return local.workdir, environ

    # documented forms that come to the same command run it once
    commands: dict[str, tuple[Run, list[str]]] = {}
    for documented, spec in RUN.items():
        command = spec.command.format(**values) if spec.command else documented
        command = command.replace("127.0.0.1:4566", f"127.0.0.1:{local.aws_port}")
        commands.setdefault(command, (spec, []))[1].append(documented)

    def check(command: str) -> str | None:
        spec, documented = commands[command]
        cwd, environ = prepare(command, spec)
        started = time.monotonic()
        try:
            completed = run_shell(command, cwd, environ)
        except subprocess.TimeoutExpired as expired:
            print(f"{documented} (ran {command!r}) timed out after {expired.timeout} s", flush=True)
            return f"{documented} (ran {command!r}) timed out after {expired.timeout} s"
        output = completed.stdout + completed.stderr
        print(f"{time.monotonic() - started:6.1f} s  rc {completed.returncode}  {command}", flush=True)
        failure = None
        if completed.returncode != 0:
            failure = f"{documented} (ran {command!r}) exited {completed.returncode}:\n{output[-3000:]}"
        elif spec.expect is not None and spec.expect not in output:
            failure = f"{documented} (ran {command!r}) did not print {spec.expect!r}:\n{output[-3000:]}"
        if failure:
            print(failure, flush=True)
        return failure

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=2) as pool:  # the standalone ones beside the stack's, two at a time
        failures_alone = pool.map(check, [c for c, (spec, _) in commands.items() if spec.alone])
        failures = [check(c) for c, (spec, _) in commands.items() if not spec.alone]
        failures += list(failures_alone)
    print(f"{len(commands)} commands for {len(RUN)} documented forms in {time.monotonic() - started:.0f} s")
    failed = [f for f in failures if f is not None]
    assert not failed, "\n\n".join(failed)
