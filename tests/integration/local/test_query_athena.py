"""`signals query --env E` runs the SQL through Athena in the env's human workgroup (moto)."""

from __future__ import annotations

import boto3
from moto import mock_aws
from moto.athena.models import QueryResults, athena_backends

from signals.env import Environment, Output
from signals.query import query_athena, render


@mock_aws
def test_athena_query_in_the_human_workgroup_pages_rows_back() -> None:
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
