"""`signals query --env E` runs the SQL through Athena in the env's human workgroup (moto).

moto answers over HTTP behind the gateway, which routes Athena in whichever protocol botocore sends
(rest-json since botocore 1.44.18; moto 5.2.6's in-process `mock_aws` routes Athena's json only)."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from moto.athena.models import QueryResults, athena_backends

from signals.env import Environment, Output
from signals.local.gateway import AwsGateway
from signals.query import query_athena, render


@pytest.fixture
def endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    gateway = AwsGateway("127.0.0.1", 0)
    gateway.start()
    gateway.reset()
    monkeypatch.setenv("AWS_ENDPOINT_URL", gateway.url)  # the env's clients reach moto through the gateway
    try:
        yield gateway.url
    finally:
        gateway.stop()


def test_athena_query_in_the_human_workgroup_pages_rows_back(endpoint: str) -> None:
    session = boto3.Session(region_name="us-west-2")
    athena = session.client("athena")
    athena.create_work_group(Name="dev-tps-telemetry-human-wg",
                             Configuration={"ResultConfiguration": {"OutputLocation": "s3://results/human/"}})
    backend = athena_backends["123456789012"]["us-west-2"]
    header = {"Data": [{"VarCharValue": "device_type"}, {"VarCharValue": "events"}]}
    backend.query_results_queue.append(QueryResults(
        rows=[header, {"Data": [{"VarCharValue": "lock"}, {"VarCharValue": "42"}]},
              {"Data": [{"VarCharValue": "bridge"}, {}]}],
        column_info=[{"Name": "device_type", "Type": "varchar"}, {"Name": "events", "Type": "bigint"}],
    ))
    env = Environment(name="dev", session=session, outputs={
        Output.GLUE_DATABASE: "telemetry-parser-db", Output.HUMAN_WORKGROUP: "dev-tps-telemetry-human-wg"})

    result = query_athena(env, "SELECT device_type, count(*) AS events FROM telemetry_lock_flat GROUP BY 1",
                          poll=0.01)

    assert result.columns == ["device_type", "events"]
    assert result.rows == [("lock", 42), ("bridge", None)]
    (execution_id,) = athena.list_query_executions(WorkGroup="dev-tps-telemetry-human-wg")["QueryExecutionIds"]
    execution = athena.get_query_execution(QueryExecutionId=execution_id)["QueryExecution"]
    assert execution["QueryExecutionContext"]["Database"] == "telemetry-parser-db"
    assert render(result, "csv") == "device_type,events\nlock,42\nbridge,\n"
    assert render(result, "json").startswith('[\n  {\n    "device_type": "lock",\n    "events": 42')
