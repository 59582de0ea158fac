"""Glue tables in template.yaml agree with shared.schema, and the check notices when they do not."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from deploy import glue_columns
from shared.schema import TABLES, TableSpec, glue_partition_keys
from shared.schema import glue_columns as schema_columns
from tests.template.conftest import decode


def _glue_tables(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Verified Glue table name -> TableInput, read from the template as CloudFormation reads it."""
    return {
        r["Properties"]["TableInput"]["Name"]: r["Properties"]["TableInput"]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::Glue::Table" and r["Properties"]["DatabaseName"] == {"Ref": "GlueDatabase"}
    }


@pytest.mark.parametrize("table", TABLES, ids=lambda t: t.name)
def test_template_columns_equal_the_schema(template: dict[str, Any], table: TableSpec) -> None:
    table_input = _glue_tables(template)[table.name]
    descriptor = table_input["StorageDescriptor"]
    assert descriptor["Columns"] == schema_columns(table)
    assert table_input["PartitionKeys"] == glue_partition_keys()
    assert descriptor["Location"] == {"Fn::Sub": f"s3://${{VerifiedBucket}}/{table.location_prefix}"}
    assert descriptor["SerdeInfo"]["SerializationLibrary"].endswith("ParquetHiveSerDe")


def test_template_has_exactly_the_schema_tables(template: dict[str, Any]) -> None:
    assert sorted(_glue_tables(template)) == sorted(t.name for t in TABLES)


def test_generated_block_is_current(template_text: str) -> None:
    assert glue_columns.is_current(template_text), "run python -m deploy.glue_columns --write"


def test_check_fails_when_a_column_drifts(template_text: str, tmp_path: Path) -> None:
    drifted = template_text.replace('{Name: "battery_pct", Type: "bigint"', '{Name: "battery_pct", Type: "int"', 1)
    assert drifted != template_text
    path = tmp_path / "template.yaml"
    path.write_text(drifted)
    assert glue_columns.main(["--check", "--template", str(path)]) == 1
    lock = _glue_tables(decode(drifted))["telemetry_lock_flat"]["StorageDescriptor"]["Columns"]
    assert lock != schema_columns(TABLES[0])

    assert glue_columns.main(["--write", "--template", str(path)]) == 0
    assert path.read_text() == template_text
    assert glue_columns.main(["--check", "--template", str(path)]) == 0
