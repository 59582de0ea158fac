"""Real clients, each in its own environment, against one local stack: the same answers as `signals query`.

The stack's lock table gets a known set of events (some POSTed twice, as a retrying client does), and
one compactor run makes the compacted table; `signals query` (the command, in its own process) counts
both, and every client must count the same: boto3 at the lock's version (the project's venv) and at
the newest release, the locked aws CLI, pyathena and awswrangler on the newest botocore (venvs of their
own), and the AWS SDK for JavaScript v3 (newest from npm; it also reads Glue, SQS, CloudWatch and S3
and must see what boto3 sees). Each client reaches the stack only through the endpoint URL, with
fake credentials, as a user's would. Environments are cached by their versions (tests/e2e/local/
client_envs.py), so a rerun with nothing newly released installs nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from signals.compact import compact
from signals.env import Output, resolve
from signals.local.stack import LocalStack
from tests.e2e.local.client_envs import node_env, pinned, python_env
from tests.e2e.local.conftest import API_KEY, post

pytestmark = pytest.mark.slow

DATABASE = "telemetry-parser-db"
FLAT = "SELECT count(*) FROM telemetry_lock_flat WHERE device_id LIKE 'cli-%'"
COMPACTED = "SELECT count(*) FROM telemetry_alerts_local.int_lock_compacted_daily WHERE device_id LIKE 'cli-%'"
QUERIES = (FLAT, COMPACTED)
EVENTS, RESENT = 30, 10
JS_PACKAGES = ("@aws-sdk/client-athena", "@aws-sdk/client-glue", "@aws-sdk/client-sqs",
               "@aws-sdk/client-cloudwatch", "@aws-sdk/client-s3")


@pytest.fixture(scope="module")
def seeded(stack: LocalStack) -> dict[str, Any]:
    """Lock events (some sent twice), compacted; what `signals query` counts for QUERIES."""
    now = int(time.time() * 1000)
    events = [{"event_id": f"cli-{i}", "device_id": f"cli-lock-{i % 3}", "device_type": "lock",
               "event_name": "bolt_changed", "event_time": now - 60_000 - i, "battery_pct": 30 + i}
              for i in range(EVENTS)]
    for body in (events, events[:RESENT]):  # a client retrying part of its batch: duplicates in verified
        status, reply = post(stack, "/v1/telemetry", json.dumps(body).encode(),
                             {"x-api-key": API_KEY, "content-type": "application/json"})
        assert (status, reply["accepted"]) == (200, len(body))
    assert stack.wait_until_drained(60, flush_firehose=True)
    deadline = time.monotonic() + 120
    while (result := compact(resolve("local"), {"tables": ["lock"]})).get("skipped"):
        # the stack's scheduled compactor holds the lease: this run must still happen after it
        assert time.monotonic() < deadline, result
        time.sleep(1)
    assert result["days_failed"] == 0, result
    expected = [signals_query(sql) for sql in QUERIES]
    assert expected == [EVENTS + RESENT, EVENTS], "the seeded rows are not what the test sent"
    return {"counts": expected, "workgroup": stack.outputs[Output.HUMAN_WORKGROUP]}


def signals_query(sql: str) -> int:
    """`signals query --format json` in its own process, through the state file, as a user runs it."""
    completed = subprocess.run([str(Path(sys.executable).parent / "signals"), "query", sql, "--format", "json"],
                               capture_output=True, text=True, timeout=120, check=False)
    assert completed.returncode == 0, completed.stderr
    rows = json.loads(completed.stdout)
    return int(next(iter(rows[0].values())) if isinstance(rows[0], dict) else rows[0][0])


def client_environ(stack: LocalStack, tmp_path: Path) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "VIRTUAL_ENV", "PYTHON"))}
    environ.update(AWS_ENDPOINT_URL=stack.aws_endpoint_url, AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="x",
                   AWS_DEFAULT_REGION="us-west-2", AWS_REGION="us-west-2",
                   AWS_CONFIG_FILE=str(tmp_path / "no-config"), AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"))
    return environ


def run_client(command: list[str], environ: Mapping[str, str], config: Mapping[str, Any]) -> dict[str, Any]:
    started = time.monotonic()
    completed = subprocess.run([*command, json.dumps(config)], env=dict(environ), capture_output=True, text=True,
                               timeout=180, check=False)
    assert completed.returncode == 0, f"{command[0]} failed:\n{completed.stdout}\n{completed.stderr[-4000:]}"
    answer: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    answer["seconds"] = round(time.monotonic() - started, 1)
    print(f"{Path(command[0]).name}: {answer}")
    return answer


BOTO3_ATHENA = r"""
import json, sys, time
import boto3, botocore
config = json.loads(sys.argv[1])
athena = boto3.client("athena")  # endpoint, region and credentials from the environment
counts = []
for sql in config["queries"]:
    qid = athena.start_query_execution(QueryString=sql, WorkGroup=config["workgroup"],
                                       QueryExecutionContext={"Database": config["database"]})["QueryExecutionId"]
    while (status := athena.get_query_execution(QueryExecutionId=qid)["QueryExecution"]["Status"])["State"] in (
            "QUEUED", "RUNNING"):
        time.sleep(0.1)
    if status["State"] != "SUCCEEDED":
        sys.exit(f"{sql}: {status}")
    rows = athena.get_query_results(QueryExecutionId=qid)["ResultSet"]["Rows"]
    counts.append(int(rows[1]["Data"][0]["VarCharValue"]))
print(json.dumps({"botocore": botocore.__version__, "counts": counts}))
"""

PYATHENA = r"""
import json, sys
import botocore, pyathena
config = json.loads(sys.argv[1])
cursor = pyathena.connect(region_name="us-west-2", work_group=config["workgroup"],
                          schema_name=config["database"]).cursor()
counts = []
for sql in config["queries"]:
    cursor.execute(sql)
    counts.append(int(cursor.fetchone()[0]))
print(json.dumps({"botocore": botocore.__version__, "pyathena": pyathena.__version__, "counts": counts}))
"""

AWSWRANGLER = r"""
import json, sys
import awswrangler as wr, botocore
config = json.loads(sys.argv[1])
counts = [int(wr.athena.read_sql_query(sql, database=config["database"], workgroup=config["workgroup"],
                                       ctas_approach=False).iloc[0, 0]) for sql in config["queries"]]
try:  # the default path: CREATE TABLE AS SELECT into a temporary table, then its Parquet read back
    frame = wr.athena.read_sql_query(config["queries"][0], database=config["database"],
                                     workgroup=config["workgroup"])
    ctas = {"count": int(frame.iloc[0, 0]), "rows": len(frame)}
except Exception as error:
    ctas = {"error": f"{type(error).__name__}: {error}"}
print(json.dumps({"awswrangler": wr.__version__, "botocore": botocore.__version__, "counts": counts,
                  "ctas": ctas}))
"""

JS_SDK = r"""
const { AthenaClient, StartQueryExecutionCommand, GetQueryExecutionCommand, GetQueryResultsCommand } =
  require('@aws-sdk/client-athena');
const { GlueClient, GetTableCommand } = require('@aws-sdk/client-glue');
const { SQSClient, ListQueuesCommand } = require('@aws-sdk/client-sqs');
const { CloudWatchClient, PutMetricDataCommand, ListMetricsCommand } = require('@aws-sdk/client-cloudwatch');
const { S3Client, ListObjectsV2Command } = require('@aws-sdk/client-s3');
const config = JSON.parse(process.argv[2]);
const common = { endpoint: process.env.AWS_ENDPOINT_URL, region: 'us-west-2',
                 credentials: { accessKeyId: 'x', secretAccessKey: 'x' } };

async function main() {
  const athena = new AthenaClient(common);
  const counts = [];
  for (const sql of config.queries) {
    const { QueryExecutionId } = await athena.send(new StartQueryExecutionCommand({
      QueryString: sql, WorkGroup: config.workgroup, QueryExecutionContext: { Database: config.database } }));
    let state;
    for (;;) {
      const { QueryExecution } = await athena.send(new GetQueryExecutionCommand({ QueryExecutionId }));
      state = QueryExecution.Status;
      if (!['QUEUED', 'RUNNING'].includes(state.State)) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    if (state.State !== 'SUCCEEDED') throw new Error(`${sql}: ${JSON.stringify(state)}`);
    const results = await athena.send(new GetQueryResultsCommand({ QueryExecutionId }));
    counts.push(Number(results.ResultSet.Rows[1].Data[0].VarCharValue));
  }
  const glue = new GlueClient(common);
  const table = await glue.send(new GetTableCommand({ DatabaseName: config.database, Name: 'telemetry_lock_flat' }));
  const sqs = new SQSClient(common);
  const queues = (await sqs.send(new ListQueuesCommand({}))).QueueUrls || [];
  const cloudwatch = new CloudWatchClient(common);
  await cloudwatch.send(new PutMetricDataCommand({ Namespace: 'Signals/Clients',
    MetricData: [{ MetricName: 'JsSdkCheck', Value: 7, Unit: 'Count' }] }));
  const metrics = (await cloudwatch.send(new ListMetricsCommand({ Namespace: 'Signals/Clients' }))).Metrics || [];
  const s3 = new S3Client({ ...common, forcePathStyle: true });
  const listed = await s3.send(new ListObjectsV2Command({
    Bucket: config.bucket, Prefix: 'telemetry_flat/type=lock/' }));
  console.log(JSON.stringify({
    counts,
    glue_columns: table.Table.StorageDescriptor.Columns.map((c) => c.Name),
    queues: queues.map((url) => url.split('/').pop()).sort(),
    metrics: metrics.map((m) => m.MetricName),
    s3_keys: (listed.Contents || []).map((o) => o.Key).sort(),
    sdk: require('@aws-sdk/client-athena/package.json').version,
  }));
}
main().catch((error) => { console.error(error); process.exit(1); });
"""


def config_of(seeded: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
    return {"queries": list(QUERIES), "workgroup": seeded["workgroup"], "database": DATABASE, **extra}


def test_boto3_at_the_locks_version(stack: LocalStack, seeded: dict[str, Any], tmp_path: Path) -> None:
    answer = run_client([sys.executable, "-c", BOTO3_ATHENA], client_environ(stack, tmp_path), config_of(seeded))
    assert answer["counts"] == seeded["counts"]


def test_boto3_at_the_newest_release(stack: LocalStack, seeded: dict[str, Any], tmp_path: Path) -> None:
    python = python_env("boto3-newest", ["boto3"])
    answer = run_client([str(python), "-c", BOTO3_ATHENA], client_environ(stack, tmp_path), config_of(seeded))
    assert answer["botocore"] == pinned(python, "botocore")
    assert answer["counts"] == seeded["counts"]


def test_the_locked_aws_cli(stack: LocalStack, seeded: dict[str, Any], tmp_path: Path) -> None:
    cli = Path(sys.executable).parent / "aws"
    assert cli.exists(), "the aws CLI is in the dev extra: make install"
    environ = client_environ(stack, tmp_path)

    def aws(*arguments: str) -> Any:
        completed = subprocess.run([str(cli), "athena", *arguments, "--output", "json"], env=environ,
                                   capture_output=True, text=True, timeout=120, check=False)
        assert completed.returncode == 0, completed.stderr
        return json.loads(completed.stdout)

    counts = []
    for sql in QUERIES:
        started = aws("start-query-execution", "--work-group", seeded["workgroup"],
                      "--query-execution-context", f"Database={DATABASE}", "--query-string", sql)
        execution_id = started["QueryExecutionId"]
        deadline = time.monotonic() + 60
        while (state := aws("get-query-execution", "--query-execution-id", execution_id)["QueryExecution"]["Status"]
               ["State"]) != "SUCCEEDED":
            assert state in ("QUEUED", "RUNNING"), state
            assert time.monotonic() < deadline
            time.sleep(0.2)
        rows = aws("get-query-results", "--query-execution-id", execution_id)["ResultSet"]["Rows"]
        counts.append(int(rows[1]["Data"][0]["VarCharValue"]))
    assert counts == seeded["counts"]


def test_pyathena_on_the_newest_botocore(stack: LocalStack, seeded: dict[str, Any], tmp_path: Path) -> None:
    python = python_env("pyathena-newest", ["pyathena", "botocore"])
    answer = run_client([str(python), "-c", PYATHENA], client_environ(stack, tmp_path), config_of(seeded))
    assert answer["botocore"] == pinned(python, "botocore")
    assert answer["counts"] == seeded["counts"]


def test_awswrangler_reads_both_ways_or_says_why_not(stack: LocalStack, seeded: dict[str, Any],
                                                     tmp_path: Path) -> None:
    python = python_env("awswrangler", ["awswrangler", "pyarrow<26"])
    answer = run_client([str(python), "-c", AWSWRANGLER], client_environ(stack, tmp_path), config_of(seeded))
    assert answer["counts"] == seeded["counts"]  # ctas_approach=False: the query's CSV result, read back
    ctas = answer["ctas"]
    if "error" in ctas:  # the default CTAS path: the local Athena cannot CREATE TABLE AS, and says so
        assert "QueryFailed" in ctas["error"], ctas
        assert "NOT_SUPPORTED" in ctas["error"], ctas
        assert "CREATE TABLE AS" in ctas["error"], ctas
    else:
        assert (ctas["count"], ctas["rows"]) == (seeded["counts"][0], 1)


def test_the_javascript_sdk_v3(stack: LocalStack, seeded: dict[str, Any], tmp_path: Path) -> None:
    directory = node_env(JS_PACKAGES)
    script = directory / "clients.js"
    script.write_text(JS_SDK)
    verified = stack.outputs[Output.VERIFIED_BUCKET]
    answer = run_client(["node", str(script)], client_environ(stack, tmp_path), config_of(seeded, bucket=verified))
    assert answer["counts"] == seeded["counts"]
    # Glue, SQS, CloudWatch and S3: what the JavaScript SDK sees is what boto3 sees
    glue = stack.client("glue").get_table(DatabaseName=DATABASE, Name="telemetry_lock_flat")["Table"]
    assert answer["glue_columns"] == [c["Name"] for c in glue["StorageDescriptor"]["Columns"]]
    queues = sorted(url.rsplit("/", 1)[-1] for url in stack.client("sqs").list_queues()["QueueUrls"])
    assert answer["queues"] == queues
    assert "JsSdkCheck" in answer["metrics"]
    assert [m["MetricName"] for m in stack.client("cloudwatch").list_metrics(Namespace="Signals/Clients")["Metrics"]
            ] == ["JsSdkCheck"]
    pages = stack.client("s3").get_paginator("list_objects_v2").paginate(Bucket=verified,
                                                                         Prefix="telemetry_flat/type=lock/")
    keys = sorted(item["Key"] for page in pages for item in page.get("Contents", []))
    assert keys
    assert answer["s3_keys"] == keys
