"""The compacted layer in template.yaml: Iceberg tables as shared.schema declares them, the dbt and
artifacts buckets, the dbt workgroup, the compactor function, its least-privilege role, schedule,
alarms and dashboard widgets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from deploy import glue_columns
from parser.records import Rejection
from shared import ledger
from shared.config import CompactorConfig
from shared.iceberg import (
    FORMAT_VERSION,
    DeclarationError,
    IcebergTable,
    field_ids,
    iceberg_fields,
    ledger_created_schema,
    partition_column,
    partition_spec_from_fields,
    pyiceberg_schema,
    schema_from_fields,
)
from shared.iceberg_properties import iceberg_table_properties
from shared.models import FieldError
from shared.schema import AUDIT_TABLES, COMPACTED_TABLES, QUARANTINE_RECORDS_TABLE, SCHEMA_DRIFT_TABLE, Source
from signals.local.template import ResolvedTemplate
from tests.template.conftest import decode, of_type, target

Resources = dict[str, dict[str, Any]]
ICEBERG_TABLES: tuple[IcebergTable, ...] = (*COMPACTED_TABLES, *AUDIT_TABLES)


def _props(resources: Resources, logical_id: str) -> dict[str, Any]:
    return dict(resources[logical_id]["Properties"])


def _tables_in(template: dict[str, Any], database_id: str) -> dict[str, dict[str, Any]]:
    """Table name -> properties of the Glue tables in one database."""
    tables = {}
    for resource in template["Resources"].values():
        props = resource["Properties"]
        if resource["Type"] == "AWS::Glue::Table" and props["DatabaseName"] == {"Ref": database_id}:
            name = props.get("Name") or props["TableInput"]["Name"]
            tables[name] = props
    return tables


# --- tables --------------------------------------------------------------------------------------


def test_databases_are_named_as_the_running_system_has_them(resources: Resources) -> None:
    alerts = _props(resources, "AlertsDatabase")["DatabaseInput"]
    audit = _props(resources, "AuditDatabase")["DatabaseInput"]
    assert alerts["Name"] == {"Fn::Sub": "telemetry_alerts_${Environment}"}
    assert audit["Name"] == {"Fn::Sub": "telemetry_alerts_${Environment}_dq_audit"}


def test_each_database_holds_exactly_its_tables(template: dict[str, Any]) -> None:
    assert sorted(_tables_in(template, "AlertsDatabase")) == sorted(t.name for t in COMPACTED_TABLES)
    assert sorted(_tables_in(template, "AuditDatabase")) == sorted(
        [*(t.name for t in AUDIT_TABLES), QUARANTINE_RECORDS_TABLE, SCHEMA_DRIFT_TABLE])


@pytest.mark.parametrize("table", ICEBERG_TABLES, ids=lambda t: t.name)
def test_iceberg_tables_are_declared_as_the_schema_derives_them(template: dict[str, Any], table: IcebergTable) -> None:
    database = "AlertsDatabase" if table in COMPACTED_TABLES else "AuditDatabase"
    props = _tables_in(template, database)[table.name]
    # The shape that survives a stack update: no TableInput next to the IcebergInput.
    assert "TableInput" not in props
    iceberg = props["OpenTableFormatInput"]["IcebergInput"]
    assert iceberg["MetadataOperation"] == "CREATE"
    assert iceberg["Version"] == FORMAT_VERSION == "2"
    declared = iceberg["IcebergTableInput"]
    assert declared["Location"] == {"Fn::Sub": f"s3://${{DbtBucket}}/{table.data_prefix}"}
    assert declared["Schema"]["Fields"] == iceberg_fields(table)
    (partition,) = declared["PartitionSpec"]["Fields"]
    assert partition == {"SourceId": field_ids(table)[partition_column(table)], "FieldId": 1000,
                         "Name": "day", "Transform": "identity"}


def test_adding_a_field_keeps_every_declared_id(template_text: str) -> None:
    """A new lock field takes the id after the last one; no declared id moves (Iceberg reads old files
    by id), and the CREATE declaration stays as it is: `signals schema apply` adds the column."""
    import dataclasses  # noqa: PLC0415

    from shared.schema import COMPACTED_BY_TYPE, FieldSpec, Kind  # noqa: PLC0415
    from signals.schema.evolution import compare  # noqa: PLC0415

    lock = COMPACTED_BY_TYPE["lock"]
    fields = list(lock.source.fields)
    fields.insert(fields.index(lock.source.field("extra")), FieldSpec("auto_lock_delay_s", Kind.INT, "Delay."))
    grown = dataclasses.replace(lock, source=dataclasses.replace(lock.source, fields=tuple(fields)))
    result = compare(ledger.load(), [grown if t is lock else t for t in ICEBERG_TABLES])
    assert result.ledger is not None
    before = {name: field_ids(lock)[name] for name in lock.column_names}
    with ledger.proposed(result.ledger):
        after = field_ids(grown)
        grown_declaration = glue_columns.render_iceberg_table(grown)
    assert {name: after[name] for name in before} == before
    assert after["auto_lock_delay_s"] == 23  # after attributes' key and value (21, 22)
    assert grown_declaration == glue_columns.render_iceberg_table(lock)
    assert glue_columns.render_iceberg_table(lock) in template_text


def _iceberg_declarations(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Table name -> IcebergTableInput, for every Glue table the template declares with an IcebergInput."""
    found = {}
    for resource in template["Resources"].values():
        iceberg = (resource["Properties"].get("OpenTableFormatInput") or {}).get("IcebergInput")
        if resource["Type"] == "AWS::Glue::Table" and iceberg is not None:
            found[resource["Properties"]["Name"]] = iceberg["IcebergTableInput"]
    return found


def test_every_iceberg_schema_in_the_template_parses_with_pyiceberg_and_round_trips(
        template: dict[str, Any]) -> None:
    """Each IcebergInput schema, read by pyiceberg's parser of the Iceberg JSON schema, has the ids and
    types shared.schema derives; written back by pyiceberg it is the declaration, field for field (a
    map's Type is its appendix-C JSON object, never the Hive `map<string,string>`)."""
    declarations = _iceberg_declarations(template)
    assert sorted(declarations) == sorted(t.name for t in ICEBERG_TABLES)
    by_name = {t.name: t for t in ICEBERG_TABLES}
    nested = 0
    for name, declared in declarations.items():
        assert declared["Schema"]["Type"] == "struct"
        schema = schema_from_fields(declared["Schema"]["Fields"], table=name)
        # the schema the table is created with: the ledger's `created` (today also its whole schema)
        created = ledger_created_schema(ledger.load().table(name))
        assert [(f.field_id, f.name, f.field_type, f.required) for f in schema.fields] == [
            (f.field_id, f.name, f.field_type, f.required) for f in created.fields], name
        assert schema == pyiceberg_schema(by_name[name]), name
        written = json.loads(schema.model_dump_json(by_alias=True))["fields"]
        for field, back in zip(declared["Schema"]["Fields"], written, strict=True):
            declared_type = json.loads(field["Type"]) if field["Type"].startswith("{") else field["Type"]
            assert (field["Id"], field["Name"], declared_type, field["Required"]) == (
                back["id"], back["name"], back["type"], back["required"]), f"{name}.{field['Name']}"
            nested += isinstance(declared_type, dict)
        spec = partition_spec_from_fields(declared["PartitionSpec"]["Fields"], table=name)
        assert [(f.source_id, f.field_id, f.name, str(f.transform)) for f in spec.fields] == [
            (field_ids(by_name[name])["day"], 1000, "day", "identity")]
    assert nested == 5  # the map columns: attributes (x3), attributes and resource_attributes (OTLP)


def test_a_hive_type_string_is_refused_by_the_parser_with_table_and_field_named() -> None:
    fields = [dict(f) for f in iceberg_fields(COMPACTED_TABLES[0])]
    for field in fields:
        if field["Name"] == "attributes":
            field["Type"] = "map<string,string>"
    refused = r"table int_lock_compacted_daily, field attributes: .*map<string,string>"
    with pytest.raises(DeclarationError, match=refused):
        schema_from_fields(fields, table="int_lock_compacted_daily")


def test_compacted_tables_live_under_dbt_data(template: dict[str, Any]) -> None:
    for table in COMPACTED_TABLES:
        assert table.data_prefix == f"dbt/data/{table.name}/"
        columns = [f["Name"] for f in iceberg_fields(table)]
        assert columns[-2:] == ["day", "hour"]
        assert {"source_key", "source_line", "received_at"} <= set(columns)


def test_compacted_block_check_fails_when_a_field_drifts(template_text: str, tmp_path: Path) -> None:
    drifted = template_text.replace('Name: "battery_pct", Type: "long"', 'Name: "battery_pct", Type: "int"', 1)
    assert drifted != template_text
    path = tmp_path / "template.yaml"
    path.write_text(drifted)
    assert glue_columns.main(["--check", "--template", str(path)]) == 1
    assert glue_columns.main(["--write", "--template", str(path)]) == 0
    assert path.read_text() == template_text
    assert decode(path.read_text())["Resources"] == decode(template_text)["Resources"]


# --- quarantine_records ----------------------------------------------------------------------------


def _quarantine_table(template: dict[str, Any]) -> dict[str, Any]:
    return dict(_tables_in(template, "AuditDatabase")[QUARANTINE_RECORDS_TABLE]["TableInput"])


def test_quarantine_columns_are_the_fields_the_parser_writes(template: dict[str, Any]) -> None:
    error = FieldError(field="$.battery_pct", error="range", message="too big")
    rejection = Rejection("invalid_value", (error,), line=7, original=b'{"device_type": "lock"}',
                          path="resourceLogs[0].scopeLogs[0].logRecords[1]")
    written = json.loads(rejection.to_json("raw/json_telemetry/2026/11/25/20/x.gz"))
    columns = _quarantine_table(template)["StorageDescriptor"]["Columns"]
    assert [c["Name"] for c in columns] == list(written)
    errors = next(c for c in columns if c["Name"] == "errors")
    assert errors["Type"] == "array<struct<" + ",".join(f"{k}:string" for k in written["errors"][0]) + ">>"


def test_quarantine_partitions_are_projected_over_the_bucket_layout(template: dict[str, Any]) -> None:
    table = _quarantine_table(template)
    assert [k["Name"] for k in table["PartitionKeys"]] == ["source", "day", "hour"]
    descriptor = table["StorageDescriptor"]
    assert descriptor["Location"] == {"Fn::Sub": "s3://${QuarantineBucket}/quarantine/"}
    assert descriptor["SerdeInfo"]["SerializationLibrary"] == "org.openx.data.jsonserde.JsonSerDe"
    parameters = table["Parameters"]
    assert parameters["projection.enabled"] == "true"
    assert parameters["projection.source.values"].split(",") == [s.value for s in Source]
    assert parameters["projection.day.format"] == "yyyy-MM-dd"
    assert parameters["projection.day.range"] == {"Fn::Sub": "NOW-${QuarantineRetentionDays}DAYS,NOW"}
    assert (parameters["projection.hour.range"], parameters["projection.hour.digits"]) == ("0,23", "2")
    assert parameters["compressionType"] == "gzip"


# --- buckets and workgroup ---------------------------------------------------------------------------


def test_dbt_and_artifacts_buckets_are_named_and_expire_scratch(resources: Resources) -> None:
    dbt = _props(resources, "DbtBucket")
    assert dbt["BucketName"] == {"Fn::Sub": "${Environment}-signal-data-lake-dbt"}
    rules = {rule["Prefix"]: rule for rule in dbt["LifecycleConfiguration"]["Rules"] if "Prefix" in rule}
    assert rules["dbt/temp/"]["ExpirationInDays"] <= 7
    assert rules["dbt/staging/"]["ExpirationInDays"] <= 30
    assert "dbt/data/" not in rules  # the tables' files are deleted by snapshot expiry, never by age
    artifacts = _props(resources, "ArtifactsBucket")
    assert artifacts["BucketName"] == {"Fn::Sub": "${Environment}-dbt-artifacts-${AWS::AccountId}"}


def test_dbt_workgroup_lets_dbt_choose_its_staging_location(resources: Resources) -> None:
    workgroup = _props(resources, "DbtWorkgroup")
    assert workgroup["Name"] == {"Fn::Sub": "${Environment}-tps-telemetry-dbt-wg"}
    configuration = workgroup["WorkGroupConfiguration"]
    assert configuration["EnforceWorkGroupConfiguration"] is False  # "overrides disabled"
    assert configuration["ResultConfiguration"]["OutputLocation"] == {"Fn::Sub": "s3://${DbtBucket}/dbt/staging/"}
    assert target(configuration["BytesScannedCutoffPerQuery"]) == "AthenaBytesScannedCutoff"
    assert configuration["EngineVersion"]["SelectedEngineVersion"] == "Athena engine version 3"


# --- the function ------------------------------------------------------------------------------------


def test_compactor_function_runs_alone_hourly_without_retries(resources: Resources) -> None:
    props = _props(resources, "CompactorFunction")
    assert props["FunctionName"] == "telemetry-compactor"
    assert props["Handler"] == "compactor.app.handler"
    assert (props["Runtime"], props["Architectures"]) == ("python3.13", ["arm64"])
    assert props["ReservedConcurrentExecutions"] == 1
    assert props["Timeout"] <= 900  # a run ends long before the next hourly one
    (invoke_config,) = [c["Properties"] for _, c in of_type(resources, "AWS::Lambda::EventInvokeConfig")
                        if target(c["Properties"]["FunctionName"]) == "CompactorFunction"]
    assert invoke_config["MaximumRetryAttempts"] == 0
    (rule,) = [r["Properties"] for _, r in of_type(resources, "AWS::Events::Rule")
               if [target(t["Arn"]) for t in r["Properties"]["Targets"]] == ["CompactorFunction"]]
    assert rule["Name"] == {"Fn::Sub": "${Environment}-tps-telemetry-compactor"}
    assert rule["ScheduleExpression"].startswith("cron(")
    assert rule["ScheduleExpression"].endswith(" * * * ? *)")
    assert rule["State"] == "ENABLED"
    group = _props(resources, target(props["LoggingConfig"]["LogGroup"]))
    assert group["LogGroupName"] == "/aws/lambda/telemetry-compactor"
    assert target(group["RetentionInDays"]) == "LogRetentionDays"
    assert props["LoggingConfig"]["LogFormat"] == "JSON"


@pytest.mark.parametrize(("environment", "engine"), [("local", "local"), ("dev", "athena"), ("prod", "athena")])
def test_engine_is_local_only_for_the_local_stack(template: dict[str, Any], environment: str, engine: str) -> None:
    resolved = ResolvedTemplate(template, parameters={"Environment": environment},
                                stack_name=f"signals-pipeline-{environment}", endpoint="http://127.0.0.1:1")
    variables = resolved.resources["CompactorFunction"].properties["Environment"]["Variables"]
    assert variables["COMPACTOR_ENGINE"] == engine
    assert variables["ATHENA_WORKGROUP"] == f"{environment}-tps-telemetry-dbt-wg"
    assert variables["ALERTS_DATABASE"] == f"telemetry_alerts_{environment}"
    assert variables["AUDIT_DATABASE"] == f"telemetry_alerts_{environment}_dq_audit"
    assert variables["DBT_BUCKET"] == f"{environment}-signal-data-lake-dbt"
    assert ("SETTLE_SECONDS" in variables) is (environment == "local")


# --- least privilege -----------------------------------------------------------------------------------


def _compactor_statements(resources: Resources) -> list[dict[str, Any]]:
    role = resources[target(_props(resources, "CompactorFunction")["Role"])]
    return [s for p in role["Properties"]["Policies"] for s in p["PolicyDocument"]["Statement"]]


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _text(resource: Any) -> str:
    if isinstance(resource, dict) and "Fn::Sub" in resource:
        return str(resource["Fn::Sub"])
    if isinstance(resource, dict):
        return target(resource)
    return str(resource)


def _granted(resources: Resources, prefix: str) -> dict[str, set[str]]:
    """action -> the resources it is granted on, for the actions of one service."""
    grants: dict[str, set[str]] = {}
    for statement in _compactor_statements(resources):
        assert statement["Effect"] == "Allow"
        for action in _as_list(statement["Action"]):
            if action.startswith(prefix):
                grants.setdefault(action, set()).update(_text(r) for r in _as_list(statement["Resource"]))
    return grants


def test_athena_only_on_the_dbt_workgroup(resources: Resources) -> None:
    athena = _granted(resources, "athena:")
    assert "athena:StartQueryExecution" in athena
    workgroup = "arn:${AWS::Partition}:athena:${AWS::Region}:${AWS::AccountId}:workgroup/${DbtWorkgroup}"
    for action, granted_on in athena.items():
        assert granted_on == {workgroup}, action


def test_glue_writes_only_the_alerts_databases_and_reads_the_verified_one(resources: Resources) -> None:
    glue = _granted(resources, "glue:")
    glue_arn = "arn:${AWS::Partition}:glue:${AWS::Region}:${AWS::AccountId}"
    writable = {f"{glue_arn}:catalog", f"{glue_arn}:database/${{AlertsDatabase}}",
                f"{glue_arn}:database/${{AuditDatabase}}", f"{glue_arn}:table/${{AlertsDatabase}}/*",
                f"{glue_arn}:table/${{AuditDatabase}}/*"}
    assert glue["glue:UpdateTable"] == writable
    for action, granted_on in glue.items():
        assert granted_on <= writable | {f"{glue_arn}:database/${{GlueDatabase}}",
                                         f"{glue_arn}:table/${{GlueDatabase}}/*"}, action
        if any("GlueDatabase" in r for r in granted_on):
            assert action.split(":")[1].startswith(("Get", "BatchGet")), f"{action} on the verified database"
    assert not {a for a in glue if a.split(":")[1].startswith(("Delete", "Create"))}


def test_s3_reads_verified_and_writes_only_the_dbt_prefixes_and_artifacts(resources: Resources) -> None:
    s3 = _granted(resources, "s3:")
    assert s3["s3:GetObject"] >= {"${VerifiedBucket.Arn}/telemetry_flat/*"}
    assert s3["s3:PutObject"] == {"${DbtBucket.Arn}/dbt/data/*", "${DbtBucket.Arn}/dbt/staging/*",
                                  "${DbtBucket.Arn}/dbt/temp/*", "${ArtifactsBucket.Arn}/compactor/*"}
    assert s3["s3:DeleteObject"] <= {"${DbtBucket.Arn}/dbt/data/*", "${DbtBucket.Arn}/dbt/staging/*",
                                     "${DbtBucket.Arn}/dbt/temp/*"}
    everything = {r for granted_on in s3.values() for r in granted_on}
    assert not {r for r in everything if "Raw" in r or "Quarantine" in r or "AthenaResults" in r}


def test_registry_only_the_table_and_its_status_index(resources: Resources) -> None:
    dynamodb = _granted(resources, "dynamodb:")
    assert "dynamodb:Query" in dynamodb
    assert not {a for a in dynamodb if a.split(":")[1] in ("Scan", "BatchWriteItem", "DeleteTable")}
    for granted_on in dynamodb.values():
        assert granted_on <= {"RegistryTable", "${RegistryTable.Arn}/index/status-index"}


# --- alarms and dashboard ------------------------------------------------------------------------------


def test_compactor_alarms_on_errors_and_on_lag(resources: Resources) -> None:
    alarms = [a["Properties"] for _, a in of_type(resources, "AWS::CloudWatch::Alarm")]
    (errors,) = [a for a in alarms if a["MetricName"] == "Errors"
                 and target(a["Dimensions"][0]["Value"]) == "CompactorFunction"]
    assert errors["Threshold"] == 0
    (lag,) = [a for a in alarms if a["MetricName"] == "compaction_lag_seconds"]
    assert lag["Namespace"] == "SignalsPipeline"
    assert lag["Dimensions"] == [{"Name": "service", "Value": "compactor"}]
    assert target(lag["Threshold"]) == "CompactionLagAlarmSeconds"
    assert lag["TreatMissingData"] == "breaching"  # a compactor that stopped reporting is lagging
    assert errors["AlarmActions"]
    assert lag["AlarmActions"]


def test_parser_dashboard_shows_the_compactor(resources: Resources) -> None:
    ((_, dashboard),) = [d for d in of_type(resources, "AWS::CloudWatch::Dashboard")
                         if d[1]["Properties"]["DashboardName"] == "telemetry-parser-metrics"]
    body = dashboard["Properties"]["DashboardBody"]["Fn::Sub"]
    assert "${CompactorFunction}" in body
    assert "${DbtWorkgroup}" in body
    assert '"compaction_lag_seconds", "service", "compactor"' in body
    assert 'service=\\"compactor\\"' in body



# --- data outlives the stack (issue 18) -------------------------------------------------------------


def test_iceberg_tables_and_their_databases_are_retained_on_delete_and_replace(template: dict[str, Any]) -> None:
    """A replaced table is re-created empty at the same Location and VACUUM then deletes the old files as
    orphans: CloudFormation must never delete or replace a table or database of the compacted layer."""
    retained = {"AlertsDatabase", "AuditDatabase", *(glue_columns.iceberg_logical_id(t) for t in ICEBERG_TABLES)}
    for logical_id in sorted(retained):
        resource = template["Resources"][logical_id]
        assert resource.get("DeletionPolicy") == "Retain", logical_id
        assert resource.get("UpdateReplacePolicy") == "Retain", logical_id


def test_athena_maintenance_properties_come_from_the_compactors_retention(template: dict[str, Any]) -> None:
    """VACUUM reads vacuum_max_snapshot_age_seconds from the table (Athena's default is 5 days); the
    template sets it from the same SNAPSHOT_RETENTION_HOURS default the compactor runs with."""
    retention_hours = CompactorConfig.model_fields["snapshot_retention_hours"].default
    for name, declared in _iceberg_declarations(template).items():
        properties = declared["Properties"]
        assert properties == iceberg_table_properties(), name
        assert properties["vacuum_max_snapshot_age_seconds"] == str(int(retention_hours * 3600)), name
        assert properties["vacuum_min_snapshots_to_keep"] == "1"
