"""The inventory database: one Glue table per S3 Inventory configuration, in step with the report.

The columns are what S3 Inventory writes for the configuration (bucket, key, then its OptionalFields
in S3's order) and what `signals inventory` writes locally; the location is the configuration's
`hive/` folder; `dt` is projected, so no partition is ever registered.
"""

from __future__ import annotations

from signals.inventory import TABLE_BY_CONFIGURATION, configurations, inventory_database
from signals.local.template import ResolvedTemplate, find_template, load_template


def resolved(environment: str) -> ResolvedTemplate:
    return ResolvedTemplate(load_template(find_template()), parameters={"Environment": environment},
                            stack_name=f"signals-pipeline-{environment}", endpoint="http://127.0.0.1:1")


def test_each_inventory_configuration_has_its_table() -> None:
    template = resolved("dev")
    (database,) = [r for r in template.of_type("AWS::Glue::Database")
                   if r.properties["DatabaseInput"]["Name"] == inventory_database("dev")]
    tables = {r.properties["TableInput"]["Name"]: r.properties["TableInput"]
              for r in template.of_type("AWS::Glue::Table")
              if r.properties["DatabaseName"] == inventory_database("dev")}
    found = configurations(template)
    assert {c.id for c in found} == {"raw-daily", "verified-daily"}
    assert set(tables) == {TABLE_BY_CONFIGURATION[c.id] for c in found}
    for configuration in found:
        table = tables[TABLE_BY_CONFIGURATION[configuration.id]]
        descriptor = table["StorageDescriptor"]
        assert [(c["Name"], c["Type"]) for c in descriptor["Columns"]] == configuration.columns
        assert descriptor["Location"] == f"s3://{configuration.destination_bucket}/{configuration.root}hive/"
        assert descriptor["InputFormat"] == "org.apache.hadoop.hive.ql.io.SymlinkTextInputFormat"
        assert "parquet" in descriptor["SerdeInfo"]["SerializationLibrary"].lower()
        assert table["PartitionKeys"] == [{"Name": "dt", "Type": "string"}]
        parameters = table["Parameters"]
        assert parameters["projection.enabled"] == "true"
        assert (parameters["projection.dt.type"], parameters["projection.dt.format"]) == ("date", "yyyy-MM-dd-HH-mm")
    assert database.logical_id == "InventoryDatabase"


def test_the_inventory_workgroup_exists_beside_the_database() -> None:
    names = [r.properties["Name"] for r in resolved("prod").of_type("AWS::Athena::WorkGroup")]
    assert "prod-tps-telemetry-s3_inventory-wg" in names
