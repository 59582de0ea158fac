"""Athena on the embedded endpoint runs queries: pyathena, boto3 and `signals query` agree.

One stack for the module; its lock table gets a known set of events first. Every client is pointed
at the stack only through `AWS_ENDPOINT_URL`, as a user would.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.exceptions import ClientError

from signals.env import Environment, Output
from signals.local.stack import LocalStack
from signals.query import QueryFailed, query_athena, query_local
from tests.e2e.local.conftest import API_KEY, post

DATABASE = "telemetry-parser-db"
EVENTS = 40


@pytest.fixture(scope="module")
def loaded(stack: LocalStack) -> LocalStack:
    now = int(time.time() * 1000)
    events = [
        {"event_id": f"ath-{i}", "device_id": f"ath-lock-{i % 4}", "device_type": "lock", "event_name": "bolt_changed",
         "event_time": now - 1000 - i, "battery_pct": 50 + i, "bolt_state": "locked" if i % 2 else "unlocked",
         "temperature_c": 20.5 + i / 4, "attributes": {"home": f"h{i % 3}"}}
        for i in range(EVENTS)
    ]
    status, reply = post(stack, "/v1/telemetry", json.dumps(events).encode(),
                         {"x-api-key": API_KEY, "content-type": "application/json"})
    assert (status, reply["accepted"]) == (200, EVENTS)
    assert stack.wait_until_drained(60)
    return stack


@pytest.fixture
def endpoint(loaded: LocalStack, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("AWS_ENDPOINT_URL", loaded.aws_endpoint_url)
    return loaded.aws_endpoint_url


def workgroup(stack: LocalStack) -> str:
    return stack.outputs[Output.HUMAN_WORKGROUP]


def run(stack: LocalStack, sql: str, *, database: str = DATABASE, timeout: float = 30.0,
        in_workgroup: str | None = None) -> dict[str, Any]:
    """StartQueryExecution, then GetQueryExecution until the state is final; the final QueryExecution."""
    athena = stack.client("athena")
    execution_id = athena.start_query_execution(
        QueryString=sql, WorkGroup=in_workgroup or workgroup(stack),
        QueryExecutionContext={"Database": database})["QueryExecutionId"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        execution: dict[str, Any] = athena.get_query_execution(QueryExecutionId=execution_id)["QueryExecution"]
        if execution["Status"]["State"] in ("SUCCEEDED", "FAILED", "CANCELLED"):
            return execution
        time.sleep(0.05)
    raise AssertionError(f"{sql!r} still running after {timeout} s")


def results(stack: LocalStack, execution_id: str) -> list[list[str | None]]:
    pages = stack.client("athena").get_paginator("get_query_results").paginate(QueryExecutionId=execution_id)
    return [[cell.get("VarCharValue") for cell in row["Data"]] for page in pages for row in page["ResultSet"]["Rows"]]


def test_pyathena_count_equals_signals_query_and_a_bad_column_raises(loaded: LocalStack, env: Environment,
                                                                     endpoint: str) -> None:
    import pyathena  # noqa: PLC0415
    from pyathena.error import OperationalError  # noqa: PLC0415

    sql = "SELECT count(*) FROM telemetry_lock_flat WHERE device_id LIKE 'ath-%'"
    cursor = pyathena.connect(region_name="us-west-2", work_group=workgroup(loaded), schema_name=DATABASE).cursor()
    cursor.execute(sql)
    assert cursor.description[0][:2] == ("_col0", "bigint")
    (athena_count,) = cursor.fetchone()
    assert athena_count == EVENTS
    assert query_local(env, sql).rows == [(athena_count,)]

    with pytest.raises(OperationalError, match=r"COLUMN_NOT_FOUND: line 1:8: Column 'no_such_column' cannot be"):
        cursor.execute("SELECT no_such_column FROM telemetry_lock_flat")
    with pytest.raises(QueryFailed, match="COLUMN_NOT_FOUND"):
        query_local(env, "SELECT no_such_column FROM telemetry_lock_flat")


def test_signals_query_returns_the_rows_the_athena_api_returns(loaded: LocalStack, env: Environment) -> None:
    sql = ("SELECT event_id, device_id, battery_pct, temperature_c, bolt_state = 'locked' AS locked, event_time, "
           "received_at, day FROM telemetry_lock_flat WHERE device_id LIKE 'ath-%' ORDER BY event_id")
    local = query_local(env, sql)
    through_api = query_athena(env, sql, poll=0.05)  # the env's HumanWorkgroup, on the embedded endpoint
    assert through_api.columns == local.columns
    assert through_api.rows == local.rows
    assert len(local.rows) == EVENTS
    assert isinstance(local.rows[0][5], datetime)
    assert local.rows[0][5].tzinfo is UTC


def test_results_and_metadata_are_written_where_athena_writes_them(loaded: LocalStack) -> None:
    execution = run(loaded, "SELECT 'say \"hi\", twice' AS quoted, NULL AS missing, 42 AS answer, 2.5e0 AS ratio, "
                            "TIMESTAMP '2026-11-25 19:00:00.125' AS at")
    assert execution["Status"]["State"] == "SUCCEEDED"
    location = execution["ResultConfiguration"]["OutputLocation"]
    bucket = loaded.outputs[Output.ATHENA_RESULTS_BUCKET]
    assert location == f"s3://{bucket}/human/{execution['QueryExecutionId']}.csv"
    s3 = loaded.client("s3")
    key = location.removeprefix(f"s3://{bucket}/")
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
    assert body == ('"quoted","missing","answer","ratio","at"\n'
                    '"say ""hi"", twice",,"42","2.5","2026-11-25 19:00:00.125"\n')
    metadata = json.loads(s3.get_object(Bucket=bucket, Key=key + ".metadata")["Body"].read())
    assert [(c["Name"], c["Type"]) for c in metadata["ColumnInfo"]] == [
        ("quoted", "varchar"), ("missing", "unknown"), ("answer", "integer"), ("ratio", "double"), ("at", "timestamp")]
    assert execution["Statistics"]["TotalExecutionTimeInMillis"] >= 0
    assert execution["WorkGroup"] == workgroup(loaded)
    assert execution["QueryExecutionContext"]["Database"] == DATABASE
    assert execution["StatementType"] == "DML"


def test_typed_results_page_with_the_header_first(loaded: LocalStack, endpoint: str) -> None:
    import pyathena  # noqa: PLC0415

    execution = run(loaded, "SELECT x, CAST(x AS varchar) AS label FROM UNNEST(sequence(1, 2500)) AS t(x)")
    assert execution["Status"]["State"] == "SUCCEEDED", execution["Status"]
    athena = loaded.client("athena")
    first = athena.get_query_results(QueryExecutionId=execution["QueryExecutionId"], MaxResults=1000)
    info = first["ResultSet"]["ResultSetMetadata"]["ColumnInfo"]
    # sequence() is array(bigint) in Trino too
    assert [(c["Name"], c["Type"]) for c in info] == [("x", "bigint"), ("label", "varchar")]
    assert "NextToken" in first
    rows = results(loaded, execution["QueryExecutionId"])
    assert rows[0] == ["x", "label"]
    assert len(rows) == 2501
    assert rows[-1] == ["2500", "2500"]

    cursor = pyathena.connect(region_name="us-west-2", work_group=workgroup(loaded), schema_name=DATABASE).cursor()
    cursor.execute("SELECT x FROM UNNEST(sequence(1, 2500)) AS t(x) ORDER BY x")
    fetched = cursor.fetchall()
    assert [row[0] for row in fetched] == list(range(1, 2501))


def test_a_running_query_can_be_stopped(loaded: LocalStack) -> None:
    athena = loaded.client("athena")
    slow = ("SELECT count(*) FROM UNNEST(sequence(1, 10000)) AS a(x) CROSS JOIN UNNEST(sequence(1, 10000)) AS b(y) "
            "CROSS JOIN UNNEST(sequence(1, 10000)) AS c(z) WHERE x + y + z = 7")
    execution_id = athena.start_query_execution(QueryString=slow, WorkGroup=workgroup(loaded))["QueryExecutionId"]
    deadline = time.monotonic() + 10
    while athena.get_query_execution(QueryExecutionId=execution_id)["QueryExecution"]["Status"]["State"] != "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    athena.stop_query_execution(QueryExecutionId=execution_id)
    deadline = time.monotonic() + 10
    while (status := athena.get_query_execution(QueryExecutionId=execution_id)["QueryExecution"]["Status"])[
            "State"] != "CANCELLED":
        assert time.monotonic() < deadline, status
        time.sleep(0.05)
    with pytest.raises(ClientError, match="CANCELLED"):
        athena.get_query_results(QueryExecutionId=execution_id)
    bucket = loaded.outputs[Output.ATHENA_RESULTS_BUCKET]
    listed = loaded.client("s3").list_objects_v2(Bucket=bucket, Prefix=f"human/{execution_id}")
    assert listed.get("KeyCount", 0) == 0


def test_show_and_describe_answer_from_glue(loaded: LocalStack) -> None:
    tables = run(loaded, "SHOW TABLES")
    assert tables["StatementType"] == "UTILITY"
    assert tables["ResultConfiguration"]["OutputLocation"].endswith(".txt")
    assert [r[0] for r in results(loaded, tables["QueryExecutionId"])] == [
        "telemetry_bridge_flat", "telemetry_lock_flat", "telemetry_otlp_logs_flat", "telemetry_video_doorbell_flat"]
    databases = [r[0] for r in results(loaded, run(loaded, "SHOW DATABASES")["QueryExecutionId"])]
    assert DATABASE in databases
    assert "local-tps_s3_inventory" in databases
    partitions = [r[0] for r in results(loaded, run(loaded, "SHOW PARTITIONS telemetry_lock_flat")["QueryExecutionId"])]
    today = datetime.now(UTC)
    assert any(p.startswith(f"day={today:%Y-%m-%d}/hour=") for p in partitions), partitions
    described = [r[0] or "" for r in results(loaded, run(loaded, "DESCRIBE telemetry_lock_flat")["QueryExecutionId"])]
    assert described[0].split("\t")[0].strip() == "event_id"
    assert described[0].split("\t")[1].strip() == "string"
    assert "# Partition Information" in described
    assert described[-1].split("\t")[0].strip() == "hour"


def test_what_the_engine_cannot_do_fails_loudly(loaded: LocalStack) -> None:
    for sql, expected in [
        ("CREATE TABLE copy AS SELECT * FROM telemetry_lock_flat", "NOT_SUPPORTED: CREATE"),
        ("UNLOAD (SELECT 1) TO 's3://x/' WITH (format = 'PARQUET')", "NOT_SUPPORTED: UNLOAD"),
        ("SELECT * FROM no_such_table", "TABLE_NOT_FOUND: line 1:15: Table 'awsdatacatalog.telemetry-parser-db."),
        ("SELECT * FROM nowhere.t", "SCHEMA_NOT_FOUND: line 1:15: Schema 'nowhere' does not exist"),
        ("SELECT nope(1)", "FUNCTION_NOT_FOUND: line 1:8: Function 'nope' not registered"),
        ("SELECT 1; SELECT 2", "Only one sql statement is allowed"),
    ]:
        execution = run(loaded, sql)
        status = execution["Status"]
        assert status["State"] == "FAILED", sql
        assert status["StateChangeReason"].startswith(expected), (sql, status["StateChangeReason"])
        assert status["AthenaError"]["ErrorCategory"] == 2
        with pytest.raises(ClientError, match="FAILED"):
            loaded.client("athena").get_query_results(QueryExecutionId=execution["QueryExecutionId"])


def test_executions_are_listed_and_workgroups_still_reach_moto(loaded: LocalStack) -> None:
    athena = loaded.client("athena")
    first, second = run(loaded, "SELECT 1"), run(loaded, "SELECT 2")
    listed = athena.list_query_executions(WorkGroup=workgroup(loaded))["QueryExecutionIds"]
    assert listed.index(second["QueryExecutionId"]) < listed.index(first["QueryExecutionId"])  # newest first
    batch = athena.batch_get_query_execution(QueryExecutionIds=[first["QueryExecutionId"], "nope"])
    assert [e["QueryExecutionId"] for e in batch["QueryExecutions"]] == [first["QueryExecutionId"]]
    assert batch["UnprocessedQueryExecutionIds"][0]["QueryExecutionId"] == "nope"
    names = {w["Name"] for w in athena.list_work_groups()["WorkGroups"]}
    assert {"local-tps-telemetry-human-wg", "local-tps-telemetry-s3_inventory-wg"} <= names
    configuration = athena.get_work_group(WorkGroup=workgroup(loaded))["WorkGroup"]["Configuration"]
    assert configuration["ResultConfiguration"]["OutputLocation"].endswith("/human/")
    # No workgroup: "primary", which has no result location, so the request's is used (pyathena's s3_staging_dir).
    bucket = loaded.outputs[Output.ATHENA_RESULTS_BUCKET]
    with pytest.raises(ClientError, match="No output location provided"):
        athena.start_query_execution(QueryString="SELECT 1")
    adhoc = athena.start_query_execution(QueryString="SELECT 1",
                                         ResultConfiguration={"OutputLocation": f"s3://{bucket}/adhoc"})
    deadline = time.monotonic() + 10
    while (execution := athena.get_query_execution(QueryExecutionId=adhoc["QueryExecutionId"])["QueryExecution"])[
            "Status"]["State"] != "SUCCEEDED":
        assert time.monotonic() < deadline, execution["Status"]
        time.sleep(0.05)
    assert execution["WorkGroup"] == "primary"
    assert execution["ResultConfiguration"]["OutputLocation"] == f"s3://{bucket}/adhoc/{adhoc['QueryExecutionId']}.csv"
    with pytest.raises(ClientError, match="WorkGroup nope is not found"):
        athena.start_query_execution(QueryString="SELECT 1", WorkGroup="nope")
    with pytest.raises(ClientError, match="was not found"):
        athena.get_query_execution(QueryExecutionId="no-such-id")


def iceberg_rows(spec: Any, prefix: str, count: int) -> list[dict[str, Any]]:
    day = datetime.now(UTC).replace(hour=3, minute=0, second=0, microsecond=0)
    rows = []
    for i in range(count):
        row: dict[str, Any] = dict.fromkeys(spec.column_names)
        row.update(event_id=f"{prefix}{i}", device_id="ice-lock", device_type="lock", event_name="bolt_changed",
                   event_time=day.replace(tzinfo=None), received_at=day.replace(tzinfo=None), battery_pct=60 + i,
                   source_key=f"raw/json_telemetry/ice-{i}.gz", source_line=i + 1, day=f"{day:%Y-%m-%d}", hour="03")
        rows.append(row)
    return rows


def test_a_qualified_iceberg_table_reads_its_current_snapshot(loaded: LocalStack, env: Environment) -> None:
    import pyarrow as pa  # noqa: PLC0415
    from pyiceberg.exceptions import NamespaceAlreadyExistsError  # noqa: PLC0415

    from shared.iceberg import pyiceberg_partition_spec, pyiceberg_schema  # noqa: PLC0415
    from shared.schema import COMPACTED_BY_NAME, DUPLICATE_CONFLICTS, alerts_database, audit_database  # noqa: PLC0415
    from signals.sql.catalog import iceberg_catalog  # noqa: PLC0415

    spec = COMPACTED_BY_NAME["int_lock_compacted_daily"]
    catalog = iceberg_catalog(loaded.session(), loaded.aws_endpoint_url)
    bucket = "athena-e2e-iceberg"
    loaded.client("s3").create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    tables = {}
    for database, table_spec in ((alerts_database("local"), spec), (audit_database("local"), DUPLICATE_CONFLICTS)):
        with contextlib.suppress(NamespaceAlreadyExistsError):  # the local stack's template may declare it
            catalog.create_namespace(database)
        tables[table_spec.name] = catalog.create_table_if_not_exists(
            (database, table_spec.name), schema=pyiceberg_schema(table_spec),
            partition_spec=pyiceberg_partition_spec(table_spec), location=f"s3://{bucket}/{table_spec.name}/")
    compacted = tables[spec.name]
    compacted.append(pa.Table.from_pylist(iceberg_rows(spec, "ice-a", 3), schema=compacted.schema().as_arrow()))

    sql = (f"SELECT event_id, battery_pct, day FROM {alerts_database('local')}.{spec.name} "
           "WHERE event_id LIKE 'ice-%' ORDER BY event_id")
    assert [row[:2] for row in query_local(env, sql).rows] == [("ice-a0", 60), ("ice-a1", 61), ("ice-a2", 62)]
    compacted.append(pa.Table.from_pylist(iceberg_rows(spec, "ice-b", 2), schema=compacted.schema().as_arrow()))
    local = query_local(env, sql)
    assert len(local.rows) == 5  # the current snapshot, not the first
    assert query_athena(env, sql, poll=0.05).rows == local.rows
    today = local.rows[0][2]
    qualified = f"{alerts_database('local')}.{spec.name}"
    assert query_local(env, f"SELECT count(*) FROM {qualified} WHERE day = '{today}' AND event_id LIKE 'ice-%'"
                       ).rows == [(5,)]
    assert query_local(env, f"SELECT count(*) FROM {qualified} WHERE day = '2001-01-01'").rows == [(0,)]

    conflicts = query_local(env, f"SELECT count(*) FROM {audit_database('local')}.duplicate_conflicts "
                                 "WHERE event_key LIKE 'ice-%'")
    assert conflicts.rows == [(0,)]
    with pytest.raises(QueryFailed, match="NOT_SUPPORTED: SHOW PARTITIONS is not supported for Iceberg"):
        query_local(env, f"SHOW PARTITIONS {alerts_database('local')}.{spec.name}")


def test_a_projected_table_reads_the_partitions_projection_yields(loaded: LocalStack, env: Environment) -> None:
    import gzip  # noqa: PLC0415

    bad = [{"event_id": f"proj-{i}", "device_id": "proj-lock", "device_type": "lock", "event_name": "x",
            "event_time": int(time.time() * 1000), "battery_pct": 500} for i in range(3)]
    status, reply = post(loaded, "/v1/telemetry", json.dumps(bad).encode(),
                         {"x-api-key": API_KEY, "content-type": "application/json"})
    assert (status, reply["accepted"]) == (200, 3)
    assert loaded.wait_until_drained(60)
    s3, glue = loaded.client("s3"), loaded.client("glue")
    bucket = loaded.outputs[Output.QUARANTINE_BUCKET]
    keys = [item["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="quarantine/")
            for item in page.get("Contents", [])]
    expected = sum(len(gzip.decompress(s3.get_object(Bucket=bucket, Key=k)["Body"].read()).splitlines()) for k in keys)
    assert expected >= 3
    today = f"{datetime.now(UTC):%Y-%m-%d}"
    stray = gzip.compress(b'{"reason": "stray", "line": 1}\n')
    for key in (f"quarantine/source=bogus/day={today}/hour=01/x.jsonl.gz",  # not an enum value
                f"quarantine/source=json_telemetry/day={today}/hour=7/x.jsonl.gz",  # not zero-padded
                "quarantine/source=json_telemetry/day=2001-01-01/hour=01/x.jsonl.gz"):  # outside the range
        s3.put_object(Bucket=bucket, Key=key, Body=stray)

    glue.create_database(DatabaseInput={"Name": "athena_e2e_audit"})
    glue.create_table(DatabaseName="athena_e2e_audit", TableInput={
        "Name": "quarantine_probe",
        "TableType": "EXTERNAL_TABLE",
        "Parameters": {
            "projection.enabled": "true",
            "projection.source.type": "enum", "projection.source.values": "json_telemetry,otlp_logs",
            "projection.day.type": "date", "projection.day.format": "yyyy-MM-dd",
            "projection.day.range": "NOW-7DAYS,NOW", "projection.day.interval.unit": "DAYS",
            "projection.hour.type": "integer", "projection.hour.range": "0,23", "projection.hour.digits": "2",
            "storage.location.template": f"s3://{bucket}/quarantine/source=${{source}}/day=${{day}}/hour=${{hour}}/",
        },
        "PartitionKeys": [{"Name": "source", "Type": "string"}, {"Name": "day", "Type": "string"},
                          {"Name": "hour", "Type": "string"}],
        "StorageDescriptor": {
            "Location": f"s3://{bucket}/quarantine/",
            "InputFormat": "org.apache.hadoop.mapred.TextInputFormat",
            "SerdeInfo": {"SerializationLibrary": "org.openx.data.jsonserde.JsonSerDe"},
            "Columns": [{"Name": "reason", "Type": "string"},
                        {"Name": "errors", "Type": "array<struct<field:string,error:string,message:string>>"},
                        {"Name": "source_key", "Type": "string"}, {"Name": "line", "Type": "bigint"},
                        {"Name": "original", "Type": "string"}],
        },
    })
    assert glue.get_partitions(DatabaseName="athena_e2e_audit", TableName="quarantine_probe")["Partitions"] == []
    # The template's own quarantine_records (the audit database; the same projection) reads the same records.
    from shared.schema import QUARANTINE_RECORDS_TABLE, audit_database  # noqa: PLC0415

    declared = f"{audit_database('local')}.{QUARANTINE_RECORDS_TABLE}"
    assert query_local(env, f"SELECT count(*) FROM {declared}").rows == [(expected,)]
    assert query_local(env, f"SELECT count(*) FROM {declared} WHERE reason = 'invalid_value' "
                            "AND original LIKE '%proj-%'").rows == [(3,)]
    counted = query_local(env, "SELECT count(*), count_if(reason = 'stray') FROM athena_e2e_audit.quarantine_probe")
    assert counted.rows == [(expected, 0)]
    sql = ("SELECT errors[1].field AS field, source, day FROM athena_e2e_audit.quarantine_probe "
           "WHERE original LIKE '%proj-%' ORDER BY line")
    rows = query_local(env, sql).rows
    assert rows == [("battery_pct", "json_telemetry", today)] * 3
    assert query_athena(env, sql, poll=0.05).rows == rows


def test_the_inventory_database_answers_after_signals_inventory(loaded: LocalStack, env: Environment) -> None:
    from signals.inventory import write_reports  # noqa: PLC0415

    s3 = loaded.client("s3")
    reports = write_reports(env)
    raw = next(r for r in reports if r.configuration.id == "raw-daily")
    raw_keys = sorted(item["Key"] for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=loaded.outputs[Output.RAW_BUCKET]) for item in page.get("Contents", []))
    assert raw.objects == len(raw_keys) > 0
    manifest = json.loads(s3.get_object(Bucket=raw.configuration.destination_bucket, Key=raw.manifest_key)["Body"]
                          .read())
    assert (manifest["fileFormat"], manifest["sourceBucket"]) == ("Parquet", loaded.outputs[Output.RAW_BUCKET])

    sql = f"SELECT key, size FROM \"local-tps_s3_inventory\".raw_inventory WHERE dt = '{raw.dt}' ORDER BY key"
    rows = query_local(env, sql).rows
    assert [row[0] for row in rows] == raw_keys
    assert all(size > 0 for _, size in rows)
    execution = run(loaded, f"SELECT count(*) FROM verified_inventory WHERE dt = '{raw.dt}'",
                    database="local-tps_s3_inventory", in_workgroup="local-tps-telemetry-s3_inventory-wg")
    assert execution["Status"]["State"] == "SUCCEEDED", execution["Status"]
    assert "/s3_inventory/" in execution["ResultConfiguration"]["OutputLocation"]
    verified = next(r for r in reports if r.configuration.id == "verified-daily")
    assert results(loaded, execution["QueryExecutionId"])[1] == [str(verified.objects)]



def test_insert_and_merge_write_an_iceberg_table(loaded: LocalStack, env: Environment) -> None:
    from shared.iceberg import pyiceberg_partition_spec, pyiceberg_schema  # noqa: PLC0415
    from shared.schema import COMPACTED_BY_NAME  # noqa: PLC0415
    from signals.sql.catalog import iceberg_catalog  # noqa: PLC0415

    spec = COMPACTED_BY_NAME["int_lock_compacted_daily"]
    catalog = iceberg_catalog(loaded.session(), loaded.aws_endpoint_url)
    catalog.create_namespace("athena_e2e_writes")
    table = catalog.create_table(("athena_e2e_writes", "lock_copy"), schema=pyiceberg_schema(spec),
                                 partition_spec=pyiceberg_partition_spec(spec),
                                 location=f"s3://{loaded.outputs[Output.ATHENA_RESULTS_BUCKET]}/iceberg/lock_copy/")
    columns = "event_id, device_id, device_type, event_name, event_time, received_at, battery_pct, source_key, " \
              "source_line, day, hour"
    insert = run(loaded, f"INSERT INTO athena_e2e_writes.lock_copy ({columns}) SELECT {columns} "
                         "FROM telemetry_lock_flat WHERE device_id LIKE 'ath-%' AND battery_pct < 60")
    assert insert["Status"]["State"] == "SUCCEEDED", insert["Status"]
    assert loaded.client("athena").get_query_results(QueryExecutionId=insert["QueryExecutionId"])["UpdateCount"] == 10

    values = ", ".join("s." + c.strip() for c in columns.split(","))
    merge = (f"MERGE INTO athena_e2e_writes.lock_copy AS t USING (SELECT {columns} FROM telemetry_lock_flat "
             "WHERE device_id LIKE 'ath-%') AS s ON t.event_id = s.event_id AND t.day = s.day "
             f"WHEN NOT MATCHED THEN INSERT ({columns}) VALUES ({values})")
    merged = run(loaded, merge)
    assert merged["Status"]["State"] == "SUCCEEDED", merged["Status"]
    assert loaded.client("athena").get_query_results(QueryExecutionId=merged["QueryExecutionId"])["UpdateCount"] == 30
    again = run(loaded, merge)  # a rerun adds nothing: MERGE inserts only what is absent
    assert loaded.client("athena").get_query_results(QueryExecutionId=again["QueryExecutionId"])["UpdateCount"] == 0

    copied = query_local(env, "SELECT event_id, battery_pct, event_time FROM athena_e2e_writes.lock_copy ORDER BY 1")
    original = query_local(env, "SELECT event_id, battery_pct, event_time FROM telemetry_lock_flat "
                                "WHERE device_id LIKE 'ath-%' ORDER BY 1")
    assert copied.rows == original.rows
    assert len(table.refresh().snapshots()) == 2  # two commits; the empty rerun committed nothing
    assert len(list(table.scan().plan_files())) == 2
    day = query_local(env, "SELECT max(day) FROM athena_e2e_writes.lock_copy").rows[0][0]
    optimized = run(loaded, f"OPTIMIZE athena_e2e_writes.lock_copy REWRITE DATA USING BIN_PACK WHERE day = '{day}'")
    assert optimized["Status"]["State"] == "SUCCEEDED", optimized["Status"]
    assert len(list(table.refresh().scan().plan_files())) == 1  # bin-packed into one file
    assert query_local(env, "SELECT event_id, battery_pct, event_time FROM athena_e2e_writes.lock_copy "
                            "ORDER BY 1").rows == original.rows

    # WHEN MATCHED: an UPDATE where the condition holds, then a DELETE; the day's files are replaced.
    update = run(loaded, "MERGE INTO athena_e2e_writes.lock_copy AS t USING (SELECT event_id, battery_pct + 100 AS "
                         "battery_pct, day FROM athena_e2e_writes.lock_copy WHERE event_id IN ('ath-1', 'ath-2')) AS s "
                         "ON t.event_id = s.event_id AND t.day = s.day "
                         "WHEN MATCHED AND s.battery_pct > t.battery_pct THEN UPDATE SET battery_pct = s.battery_pct")
    assert update["Status"]["State"] == "SUCCEEDED", update["Status"]
    assert loaded.client("athena").get_query_results(QueryExecutionId=update["QueryExecutionId"])["UpdateCount"] == 2
    delete = run(loaded, "MERGE INTO athena_e2e_writes.lock_copy AS t USING (SELECT 'ath-3' AS event_id) AS s "
                         "ON t.event_id = s.event_id WHEN MATCHED THEN DELETE")
    assert delete["Status"]["State"] == "SUCCEEDED", delete["Status"]
    after = dict(query_local(env, "SELECT event_id, battery_pct FROM athena_e2e_writes.lock_copy").rows)
    assert (len(after), after["ath-1"], after["ath-2"], after["ath-4"]) == (EVENTS - 1, 151, 152, 54)
    assert "ath-3" not in after

    for sql, expected in [
        ("INSERT INTO telemetry_lock_flat SELECT * FROM telemetry_lock_flat", "NOT_SUPPORTED: INSERT INTO"),
        ("MERGE INTO athena_e2e_writes.lock_copy t USING (SELECT event_id FROM telemetry_lock_flat UNION ALL "
         "SELECT event_id FROM telemetry_lock_flat) s ON t.event_id = s.event_id WHEN MATCHED THEN DELETE",
         "MERGE_TARGET_ROW_MULTIPLE_MATCHES: One MERGE target table row matched more than one source row"),
        ("MERGE INTO telemetry_lock_flat t USING telemetry_lock_flat s ON t.event_id = s.event_id "
         "WHEN MATCHED THEN DELETE", "NOT_SUPPORTED: MERGE INTO telemetry-parser-db.telemetry_lock_flat: only Iceberg"),
        ("INSERT INTO athena_e2e_writes.lock_copy (event_id) VALUES ('x')", "CONSTRAINT_VIOLATION"),
        ("OPTIMIZE athena_e2e_writes.lock_copy REWRITE DATA USING BIN_PACK WHERE battery_pct > 1",
         "NOT_SUPPORTED: OPTIMIZE's WHERE takes conditions on partition columns"),
        ("OPTIMIZE telemetry_lock_flat REWRITE DATA USING BIN_PACK", "NOT_SUPPORTED: OPTIMIZE"),
    ]:
        status = run(loaded, sql)["Status"]
        assert status["State"] == "FAILED", sql
        assert status["StateChangeReason"].startswith(expected), (sql, status["StateChangeReason"])


def test_the_stock_aws_cli_runs_a_query_and_reads_its_rows(loaded: LocalStack, tmp_path: Any) -> None:
    import os  # noqa: PLC0415
    import shutil  # noqa: PLC0415
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415
    from pathlib import Path  # noqa: PLC0415

    beside = Path(sys.executable).parent / "aws"
    cli = str(beside) if beside.exists() else shutil.which("aws")
    if cli is None:
        pytest.fail("the aws CLI is missing: awscli is in the dev extra (make install)")
    environ = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    environ.update(AWS_ENDPOINT_URL=loaded.aws_endpoint_url, AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="x",
                   AWS_DEFAULT_REGION="us-west-2", AWS_CONFIG_FILE=str(tmp_path / "none"),
                   AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"))

    def aws(*arguments: str) -> Any:
        completed = subprocess.run([cli, "athena", *arguments, "--output", "json"], env=environ, capture_output=True,
                                   text=True, timeout=120, check=False)
        assert completed.returncode == 0, completed.stderr
        return json.loads(completed.stdout)

    started = aws("start-query-execution", "--work-group", workgroup(loaded),
                  "--query-execution-context", f"Database={DATABASE}",
                  "--query-string", "SELECT count(*) AS events FROM telemetry_lock_flat WHERE device_id LIKE 'ath-%'")
    execution_id = started["QueryExecutionId"]
    deadline = time.monotonic() + 30
    while (state := aws("get-query-execution", "--query-execution-id", execution_id)["QueryExecution"]["Status"][
            "State"]) != "SUCCEEDED":
        assert state in ("QUEUED", "RUNNING"), state
        assert time.monotonic() < deadline
        time.sleep(0.2)
    rows = aws("get-query-results", "--query-execution-id", execution_id)["ResultSet"]["Rows"]
    assert [[cell.get("VarCharValue") for cell in row["Data"]] for row in rows] == [["events"], [str(EVENTS)]]



def test_the_compactors_athena_engine_runs_on_the_local_athena(loaded: LocalStack, env: Environment) -> None:
    """The compactor's Athena orchestration as its Lambda runs it (AthenaQueries on the dbt workgroup): stats,
    the conflicts MERGE, the MERGE (WHEN MATCHED UPDATE + NOT MATCHED INSERT), `$files`, OPTIMIZE, the
    compaction_runs INSERT and VACUUM, each executed for real by the local Athena."""
    from compactor.athena_engine import AthenaEngine  # noqa: PLC0415
    from compactor.dal import AthenaQueries  # noqa: PLC0415
    from compactor.logic import DayUnit, RunInfo  # noqa: PLC0415
    from shared.schema import COMPACTED_BY_NAME, alerts_database, audit_database  # noqa: PLC0415

    spec = COMPACTED_BY_NAME["int_lock_compacted_daily"]
    day = query_local(env, "SELECT max(day) FROM telemetry_lock_flat WHERE device_id LIKE 'ath-%'").rows[0][0]
    engine = AthenaEngine(AthenaQueries(loaded.client("athena"), "local-tps-telemetry-dbt-wg"),
                          glue_database=DATABASE, alerts_database=alerts_database("local"),
                          audit_database=audit_database("local"), max_files_per_day=1, poll_max_s=0.1)
    started = datetime.now(UTC)
    outcome = engine.compact_day(DayUnit(table=spec, day=day), RunInfo(run_id=f"athena-e2e-{uuid.uuid4()}",
                                                                        started_at=started),
                                 remaining_ms=lambda: 600_000)
    assert len(outcome.queries) >= 4
    assert outcome.data_files is not None
    compacted = f"{alerts_database('local')}.{spec.name}"
    assert query_local(env, f"SELECT count(*) FROM {compacted} WHERE day = '{day}' AND event_id LIKE 'ath-%'"
                       ).rows == [(EVENTS,)]
    again = engine.compact_day(DayUnit(table=spec, day=day), RunInfo(run_id=f"athena-e2e-{uuid.uuid4()}",
                                                                      started_at=datetime.now(UTC)),
                               remaining_ms=lambda: 600_000)
    assert again.counts.inserted == 0  # a rerun adds nothing
    assert query_local(env, f"SELECT count(*) FROM {compacted} WHERE day = '{day}' AND event_id LIKE 'ath-%'"
                       ).rows == [(EVENTS,)]
    assert engine.expire_snapshots(spec, started, lambda: 600_000).startswith(f"{spec.name}: VACUUM")


def test_the_first_deploy_checks_pass_on_the_local_stack_and_leave_no_row(loaded: LocalStack, env: Environment,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """`signals verify --env local --first-deploy`: every step through the local Athena's API in the dbt
    workgroup, each ok; the scratch row is gone afterwards."""
    from shared.schema import AUDIT_TABLES, COMPACTED_TABLES, alerts_database  # noqa: PLC0415
    from signals.cli import main  # noqa: PLC0415
    from signals.ops.first_deploy import SCRATCH_DAY, first_deploy_checks  # noqa: PLC0415

    steps = first_deploy_checks(env)
    assert [s for s in steps if not s.ok] == []
    names = [s.name for s in steps]
    tables = (*COMPACTED_TABLES, *AUDIT_TABLES)  # backfill_runs too: every Iceberg table the template declares
    assert names[:len(tables)] == [f"read {t.name}" for t in tables]
    assert names[len(tables):] == ["compactor merge", "merge commits", "merge read back",
                                   "int_lock_compacted_daily$partitions", "cleanup", "cleanup read back", "vacuum"]
    assert {s.name: s.detail for s in steps}["merge read back"].startswith("1 scratch row(s)")
    leftover = query_local(env, f"SELECT count(*) FROM {alerts_database('local')}.int_lock_compacted_daily "
                                f"WHERE day = '{SCRATCH_DAY}'")
    assert leftover.rows == [(0,)]
    capsys.readouterr()
    assert main(["verify", "--env", "local", "--first-deploy"]) == 0
    printed = capsys.readouterr().out
    assert "ok    vacuum" in printed
    assert printed.rstrip().endswith(f"{len(steps)} ok, 0 fail")


def test_a_lost_catalog_entry_fails_its_first_deploy_check_and_registering_the_last_metadata_file_recovers_it(
        loaded: LocalStack, env: Environment) -> None:
    """docs/deploy.md, 'Recovering an Iceberg table whose catalog entry was lost': the data and metadata
    outlive the Glue entry; the check names the AWS error, and a Glue CreateTable pointing at the newest
    metadata file under the table's Location brings every row back."""
    from shared.schema import DUPLICATE_CONFLICTS, audit_database  # noqa: PLC0415
    from signals.ops.first_deploy import first_deploy_checks  # noqa: PLC0415

    glue, s3 = loaded.client("glue"), loaded.client("s3")
    database = audit_database("local")
    before = query_local(env, f"SELECT count(*) FROM {database}.{DUPLICATE_CONFLICTS.name}").rows
    glue.delete_table(DatabaseName=database, Name=DUPLICATE_CONFLICTS.name)

    steps = {s.name: s for s in first_deploy_checks(env)}
    lost = steps[f"read {DUPLICATE_CONFLICTS.name}"]
    assert not lost.ok
    assert "TABLE_NOT_FOUND" in lost.detail
    assert all(s.ok for name, s in steps.items() if name != lost.name)

    # The recovery, as docs/deploy.md writes it: the newest metadata file under the table's Location.
    bucket = "local-signal-data-lake-dbt"  # the dbt bucket of the local stack (DbtBucket)
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=f"{DUPLICATE_CONFLICTS.data_prefix}metadata/")["Contents"]
    newest = max((o["Key"] for o in listed if o["Key"].endswith(".metadata.json")),
                 key=lambda key: int(key.rsplit("/", 1)[-1].split("-", 1)[0]))
    glue.create_table(DatabaseName=database, TableInput={
        "Name": DUPLICATE_CONFLICTS.name, "TableType": "EXTERNAL_TABLE",
        "Parameters": {"table_type": "ICEBERG", "metadata_location": f"s3://{bucket}/{newest}"}})

    assert all(s.ok for s in first_deploy_checks(env))
    assert query_local(env, f"SELECT count(*) FROM {database}.{DUPLICATE_CONFLICTS.name}").rows == before
