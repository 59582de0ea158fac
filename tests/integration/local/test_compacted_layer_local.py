"""The compacted layer in the embedded AWS, provisioned from template.yaml as `signals local` does it:
the Iceberg tables with the declared schema, partitioning and format, the audit database with
quarantine_records, the dbt and artifacts buckets, and the compactor wired with its local engine."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from shared.config import CompactorConfig, load
from shared.iceberg import (
    IcebergTable,
    iceberg_fields,
    pyiceberg_partition_spec,
    pyiceberg_schema,
    schema_from_fields,
)
from shared.schema import (
    AUDIT_TABLES,
    COMPACTED_TABLES,
    QUARANTINE_RECORDS_TABLE,
    SCHEMA_DRIFT_TABLE,
    alerts_database,
    audit_database,
)
from signals.local.gateway import AwsGateway
from signals.local.provision import iceberg_catalog, iceberg_declaration, provision
from signals.local.runtime import LocalFunction
from signals.local.stack import EndpointClients, free_port
from signals.local.template import ResolvedTemplate, Resource, TemplateError, find_template, load_template
from signals.local.wiring import LocalTimings, Wiring, read_wiring

ICEBERG: tuple[IcebergTable, ...] = (*COMPACTED_TABLES, *AUDIT_TABLES)


class Embedded:
    def __init__(self, gateway: AwsGateway, wiring: Wiring) -> None:
        self.gateway = gateway
        self.wiring = wiring
        self.session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                     region_name="us-west-2")

    def client(self, service: str) -> Any:
        return self.session.client(service, endpoint_url=self.gateway.url)  # type: ignore[call-overload]


@pytest.fixture(scope="module")
def embedded() -> Iterator[Embedded]:
    gateway = AwsGateway("127.0.0.1", free_port())
    gateway.start()
    gateway.reset()  # moto's backends are per process: another test's buckets would already exist
    try:
        template = ResolvedTemplate(load_template(find_template()), parameters={"Environment": "local"},
                                    stack_name="signals-pipeline-local", endpoint=gateway.url)
        world = Embedded(gateway, read_wiring(template))
        provision(world.wiring, world.client, LocalTimings())
        yield world
    finally:
        gateway.stop()


def test_every_declared_table_exists_in_its_database(embedded: Embedded) -> None:
    glue = embedded.client("glue")
    alerts = {t["Name"]: t for t in glue.get_tables(DatabaseName=alerts_database("local"))["TableList"]}
    audit = {t["Name"]: t for t in glue.get_tables(DatabaseName=audit_database("local"))["TableList"]}
    assert sorted(alerts) == sorted(t.name for t in COMPACTED_TABLES)
    assert sorted(audit) == sorted([*(t.name for t in AUDIT_TABLES), QUARANTINE_RECORDS_TABLE, SCHEMA_DRIFT_TABLE])
    for table in ICEBERG:
        glue_table = (alerts if table in COMPACTED_TABLES else audit)[table.name]
        assert glue_table["Parameters"]["table_type"] == "ICEBERG"
        location = glue_table["Parameters"]["metadata_location"]
        assert location.startswith(f"s3://local-signal-data-lake-dbt/{table.data_prefix}metadata/")


@pytest.mark.parametrize("table", ICEBERG, ids=lambda t: t.name)
def test_iceberg_tables_have_the_declared_schema_and_partitioning(embedded: Embedded, table: IcebergTable) -> None:
    database = alerts_database("local") if table in COMPACTED_TABLES else audit_database("local")
    loaded = iceberg_catalog(embedded.gateway.url, glue=embedded.client("glue")).load_table((database, table.name))
    assert loaded.format_version == 2
    assert loaded.schema() == pyiceberg_schema(table) == schema_from_fields(iceberg_fields(table))
    assert loaded.spec() == pyiceberg_partition_spec(table)
    assert loaded.location() == f"s3://local-signal-data-lake-dbt/{table.data_prefix}".rstrip("/")
    assert loaded.properties["write.format.default"] == "parquet"
    assert loaded.current_snapshot() is None  # created empty, as CloudFormation creates it


def test_the_declarations_are_read_from_the_template(embedded: Embedded) -> None:
    declared = [d for r in embedded.wiring.template.of_type("AWS::Glue::Table")
                if (d := iceberg_declaration(r)) is not None]
    assert sorted(d.name for d in declared) == sorted(t.name for t in ICEBERG)
    assert {d.format_version for d in declared} == {"2"}


def test_quarantine_records_keeps_its_projection_for_the_query_engine(embedded: Embedded) -> None:
    table = embedded.client("glue").get_table(DatabaseName=audit_database("local"),
                                              Name=QUARANTINE_RECORDS_TABLE)["Table"]
    assert [k["Name"] for k in table["PartitionKeys"]] == ["source", "day", "hour"]
    assert table["Parameters"]["projection.enabled"] == "true"
    assert table["Parameters"]["projection.day.range"] == "NOW-90DAYS,NOW"
    assert table["StorageDescriptor"]["Location"] == "s3://local-parquet-output-simple-quarantine-123456789012/quarantine/"
    # moto registers nothing by itself: partitions come from the projection, never from Glue.
    partitions = embedded.client("glue").get_partitions(DatabaseName=audit_database("local"),
                                                         TableName=QUARANTINE_RECORDS_TABLE)["Partitions"]
    assert partitions == []


def test_dbt_and_artifacts_buckets_exist(embedded: Embedded) -> None:
    names = {b["Name"] for b in embedded.client("s3").list_buckets()["Buckets"]}
    assert {"local-signal-data-lake-dbt", "local-dbt-artifacts-123456789012"} <= names


def test_compactor_is_wired_with_the_local_engine_on_its_schedule(embedded: Embedded) -> None:
    spec = embedded.wiring.function_by_module("compactor.app")
    assert spec.name == "telemetry-compactor"
    config = load(CompactorConfig, spec.environment)
    assert config.compactor_engine == "local"
    assert config.alerts_database == alerts_database("local")
    assert config.audit_database == audit_database("local")
    assert config.athena_workgroup == "local-tps-telemetry-dbt-wg"
    assert config.settle_seconds == 2.0
    (schedule,) = spec.schedules
    assert schedule.rule_name == "local-tps-telemetry-compactor"
    assert schedule.enabled
    # The function builds and runs against the embedded AWS: nothing registered, nothing to do.
    clients = EndpointClients(embedded.session, {}, embedded.gateway.url)
    result = LocalFunction(spec, clients, None).invoke({})
    assert result["engine"] == "local"
    assert result["days_compacted"] == 0
    assert result["skipped"] is None


def test_an_iceberg_declaration_without_a_schema_fails_loudly() -> None:
    bare = Resource("Bare", "AWS::Glue::Table", {
        "DatabaseName": "db", "Name": "t",
        "OpenTableFormatInput": {"IcebergInput": {"MetadataOperation": "CREATE", "Version": "2"}}}, {})
    with pytest.raises(TemplateError, match="IcebergTableInput"):
        iceberg_declaration(bare)
    hive = Resource("Hive", "AWS::Glue::Table", {"DatabaseName": "db", "TableInput": {"Name": "t"}}, {})
    assert iceberg_declaration(hive) is None


def test_the_local_stack_refuses_the_hive_map_declaration_and_provisions_nothing() -> None:
    """The declaration of issue 18 (a map column typed `map<string,string>`): Glue takes an Iceberg
    JSON type, so the embedded AWS must refuse it too, naming the resource, table and field."""
    gateway = AwsGateway("127.0.0.1", free_port())
    gateway.start()
    gateway.reset()
    try:
        document = load_template(find_template())
        lock = document["Resources"]["CompactedTableLock"]["Properties"]["OpenTableFormatInput"]["IcebergInput"]
        for field in lock["IcebergTableInput"]["Schema"]["Fields"]:
            if field["Name"] == "attributes":
                field["Type"] = "map<string,string>"
        template = ResolvedTemplate(document, parameters={"Environment": "local"},
                                    stack_name="signals-pipeline-local", endpoint=gateway.url)
        world = Embedded(gateway, read_wiring(template))
        with pytest.raises(TemplateError) as refused:
            provision(world.wiring, world.client, LocalTimings())
        message = str(refused.value)
        assert "CompactedTableLock" in message
        assert "telemetry_alerts_local.int_lock_compacted_daily" in message
        assert "field attributes" in message
        assert "map<string,string>" in message
        assert world.client("s3").list_buckets()["Buckets"] == []
        assert world.client("glue").get_databases()["DatabaseList"] == []
    finally:
        gateway.stop()
