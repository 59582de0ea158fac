"""Keep template.yaml's Glue tables in step with `shared.schema`.

Two blocks of `AWS::Glue::Table` resources sit between marker comments in template.yaml:

- the verified tables, generated from `shared.schema.TABLES` (columns from `glue_columns`,
  partition keys from `glue_partition_keys`, location from the table's `type=` prefix);
- the compacted layer: the Iceberg (v2) tables of `shared.schema.COMPACTED_TABLES` in the
  alerts database and the three of `AUDIT_TABLES` in the audit database (schema, field ids and the
  identity partition on `day` from `shared.iceberg`), `quarantine_records`, a Hive JSON table
  over the quarantine bucket with partition projection on source/day/hour, and `schema_drift`, the
  parser's drift counts (parser.drift) under the same bucket's `schema_drift/`, projected on day/hour.

Edit the schema, then run

    python -m deploy.glue_columns --write    # regenerate the block in template.yaml
    python -m deploy.glue_columns --check    # exit 1 if template.yaml is out of date (CI)
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final

from shared.iceberg import FORMAT_VERSION, IcebergTable, field_ids, iceberg_fields, partition_column
from shared.iceberg_properties import iceberg_table_properties
from shared.layout import DRIFT_ROOT, QUARANTINE_ROOT
from shared.schema import (
    AUDIT_TABLES,
    COMPACTED_TABLES,
    QUARANTINE_RECORDS_TABLE,
    SCHEMA_DRIFT_TABLE,
    TABLES,
    CompactedTableSpec,
    Source,
    TableSpec,
    glue_columns,
    glue_partition_keys,
)

TEMPLATE: Final = Path(__file__).resolve().parent.parent / "template.yaml"
BEGIN: Final = "  # BEGIN GENERATED GLUE TABLES (python -m deploy.glue_columns --write; do not edit by hand)\n"
END: Final = "  # END GENERATED GLUE TABLES\n"
ICEBERG_BEGIN: Final = (
    "  # BEGIN GENERATED COMPACTED TABLES (python -m deploy.glue_columns --write; do not edit by hand)\n"
)
ICEBERG_END: Final = "  # END GENERATED COMPACTED TABLES\n"

# Hive/Glue settings every table shares: Parquet files under the table's `type=` prefix.
_INPUT_FORMAT: Final = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
_OUTPUT_FORMAT: Final = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"
_SERDE: Final = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"


def logical_id(table: TableSpec) -> str:
    """`telemetry_video_doorbell_flat` -> `GlueTableVideoDoorbell`."""
    return "GlueTable" + "".join(part.capitalize() for part in table.type_value.split("_"))


def _scalar(value: str) -> str:
    # JSON strings are valid YAML double-quoted scalars; quoting keeps `map<string,string>` intact.
    return json.dumps(value, ensure_ascii=True)


def _flow(mapping: Mapping[str, str]) -> str:
    return "{" + ", ".join(f"{key}: {_scalar(value)}" for key, value in mapping.items()) + "}"


def render_table(table: TableSpec) -> str:
    lines = [
        f"  {logical_id(table)}:",
        "    Type: AWS::Glue::Table",
        "    Properties:",
        "      CatalogId: !Ref AWS::AccountId",
        "      DatabaseName: !Ref GlueDatabase",
        "      TableInput:",
        f"        Name: {table.name}",
        f"        Description: {_scalar(table.description)}",
        "        TableType: EXTERNAL_TABLE",
        "        Parameters:",
        "          classification: parquet",
        '          EXTERNAL: "TRUE"',
        "        PartitionKeys:",
        *(f"          - {_flow(key)}" for key in glue_partition_keys()),
        "        StorageDescriptor:",
        f"          Location: !Sub s3://${{VerifiedBucket}}/{table.location_prefix}",
        f"          InputFormat: {_INPUT_FORMAT}",
        f"          OutputFormat: {_OUTPUT_FORMAT}",
        "          SerdeInfo:",
        f"            SerializationLibrary: {_SERDE}",
        "            Parameters:",
        '              serialization.format: "1"',
        "          Columns:",
        *(f"            - {_flow(column)}" for column in glue_columns(table)),
    ]
    return "\n".join(lines) + "\n"


def render_block() -> str:
    return BEGIN + "\n".join(render_table(table) for table in TABLES) + END


# --- the compacted layer -------------------------------------------------------------------------

#: Iceberg table properties of every compacted and audit table: the file format and Athena's VACUUM
#: settings, the snapshot age from the compactor's own SNAPSHOT_RETENTION_HOURS default.
ICEBERG_PROPERTIES: Final = iceberg_table_properties()
#: The first partition field id Iceberg assigns (ids of partition fields start at 1000).
PARTITION_FIELD_ID: Final = 1000

#: Columns of the quarantine bucket's JSON lines, as the parser writes them (docs/data-contract.md,
#: "Quarantine"); `path` is present for OTLP log records only. Device type and firmware are inside
#: `original`: `json_extract_scalar(original, '$.device_type')`.
QUARANTINE_COLUMNS: Final = (
    {"Name": "reason", "Type": "string", "Comment": "Reason code (docs/data-contract.md)."},
    {"Name": "errors", "Type": "array<struct<field:string,error:string,message:string>>",
     "Comment": "Field errors: the field path ($ for the whole line), a short code, a readable message."},
    {"Name": "source_key", "Type": "string", "Comment": "Raw object key the record came from."},
    {"Name": "line", "Type": "bigint", "Comment": "1-based line number in the raw object."},
    {"Name": "path", "Type": "string", "Comment": "OTLP only: where the LogRecord sits in the request."},
    {"Name": "original", "Type": "string",
     "Comment": "The original line (or LogRecord JSON) as text; device_type and firmware_version are in it."},
)
#: Partition columns of quarantine_records: the key layout quarantine/source=/day=/hour=/.
QUARANTINE_PARTITION_KEYS: Final = (
    {"Name": "source", "Type": "string", "Comment": "json_telemetry or otlp_logs."},
    {"Name": "day", "Type": "string", "Comment": "Arrival day of the raw object, UTC (YYYY-MM-DD)."},
    {"Name": "hour", "Type": "string", "Comment": "Arrival hour of the raw object, UTC (HH)."},
)


def quarantine_projection(retention_days_ref: str = "QuarantineRetentionDays") -> dict[str, str]:
    """Athena partition projection of quarantine_records: every partition is computed, none registered.

    `day` reaches back as far as the quarantine bucket keeps records (`${retention_days_ref}` is
    substituted by CloudFormation's `!Sub`).
    """
    return {
        "projection.enabled": "true",
        "projection.source.type": "enum",
        "projection.source.values": ",".join(source.value for source in Source),
        "projection.day.type": "date",
        "projection.day.format": "yyyy-MM-dd",
        "projection.day.range": f"NOW-${{{retention_days_ref}}}DAYS,NOW",
        "projection.day.interval": "1",
        "projection.day.interval.unit": "DAYS",
        "projection.hour.type": "integer",
        "projection.hour.range": "0,23",
        "projection.hour.digits": "2",
    }


def iceberg_logical_id(table: IcebergTable) -> str:
    """`int_video_doorbell_compacted_daily` -> `CompactedTableVideoDoorbell`;
    `compaction_runs` -> `AuditTableCompactionRuns`."""
    if isinstance(table, CompactedTableSpec):
        return "CompactedTable" + "".join(part.capitalize() for part in table.type_value.split("_"))
    return "AuditTable" + "".join(part.capitalize() for part in table.name.split("_"))


QUARANTINE_LOGICAL_ID: Final = "AuditTableQuarantineRecords"
QUARANTINE_DESCRIPTION: Final = "Quarantined records (gzip JSON lines), one row per record; partitions projected."


def _json_text(value: str) -> str:
    """A YAML scalar of JSON text: single-quoted (no escapes needed) when it holds double quotes."""
    if '"' in value and "'" not in value:
        return f"'{value}'"
    return _scalar(value)


def _iceberg_field(field: dict[str, object]) -> str:
    # Type: an Iceberg primitive name, or a nested type's Iceberg JSON object as JSON text.
    parts = [f"Id: {field['Id']}", f"Name: {_scalar(str(field['Name']))}", f"Type: {_json_text(str(field['Type']))}",
             f"Required: {'true' if field['Required'] else 'false'}", f"Doc: {_scalar(str(field['Doc']))}"]
    return "{" + ", ".join(parts) + "}"


def render_iceberg_table(table: IcebergTable) -> str:
    """The shape that survives a stack update: the table's `Name` at the top, everything Iceberg under
    `OpenTableFormatInput.IcebergInput.IcebergTableInput`, and no `TableInput` (a `TableInput` with
    columns next to an `IcebergInput` creates the table, but the first update strips its
    `table_type=ICEBERG` and Athena stops reading it).

    Retained on delete and on replacement: a replaced table would be re-created empty at the same
    Location (MetadataOperation CREATE) and the next VACUUM would delete the old data files as
    orphans (docs/deploy.md, "Iceberg tables outlive the stack")."""
    database = "AlertsDatabase" if isinstance(table, CompactedTableSpec) else "AuditDatabase"
    column = partition_column(table)
    lines = [
        f"  {iceberg_logical_id(table)}:",
        "    Type: AWS::Glue::Table",
        "    DeletionPolicy: Retain",
        "    UpdateReplacePolicy: Retain",
        "    Properties:",
        "      CatalogId: !Ref AWS::AccountId",
        f"      DatabaseName: !Ref {database}",
        f"      Name: {table.name}",
        "      OpenTableFormatInput:",
        "        IcebergInput:",
        "          MetadataOperation: CREATE",
        f'          Version: "{FORMAT_VERSION}"',
        "          IcebergTableInput:",
        f"            Location: !Sub s3://${{DbtBucket}}/{table.data_prefix}",
        "            Schema:",
        "              Type: struct",
        "              Fields:",
        *(f"                - {_iceberg_field(field)}" for field in iceberg_fields(table)),
        "            PartitionSpec:",
        "              SpecId: 0",
        "              Fields:",
        f"                - {{SourceId: {field_ids(table)[column]}, FieldId: {PARTITION_FIELD_ID}, "
        f"Name: {column}, Transform: identity}}",
        "            Properties:",
        *(f"              {key}: {_scalar(value)}" for key, value in ICEBERG_PROPERTIES.items()),
    ]
    return "\n".join(lines) + "\n"


def render_quarantine_table() -> str:
    return _render_json_lines_table(
        logical_id=QUARANTINE_LOGICAL_ID, name=QUARANTINE_RECORDS_TABLE, description=QUARANTINE_DESCRIPTION,
        projection=quarantine_projection(), partition_keys=QUARANTINE_PARTITION_KEYS, root=QUARANTINE_ROOT,
        columns=QUARANTINE_COLUMNS,
    )


#: Columns of the parser's drift lines (parser.drift), one per raw object, device type, key and kind.
DRIFT_COLUMNS: Final = (
    {"Name": "device_type", "Type": "string", "Comment": "Device type of the rows."},
    {"Name": "key", "Type": "string", "Comment": "Unknown top-level key, kept in extra."},
    {"Name": "kind", "Type": "string", "Comment": "Inferred JSON kind: int, float, bool, string, object, array."},
    {"Name": "rows", "Type": "bigint", "Comment": "Rows of the raw object carrying the key with this kind."},
    {"Name": "type_rows", "Type": "bigint", "Comment": "Rows of this device type in the raw object."},
    {"Name": "first_seen", "Type": "string", "Comment": "Earliest received_at of those rows (RFC 3339 UTC)."},
    {"Name": "last_seen", "Type": "string", "Comment": "Latest received_at of those rows (RFC 3339 UTC)."},
    {"Name": "firmware_versions", "Type": "array<string>", "Comment": "Firmware versions of those rows (at most 20)."},
    {"Name": "firmware_versions_more", "Type": "bigint", "Comment": "Further firmware versions not listed."},
    {"Name": "source_key", "Type": "string", "Comment": "Raw object the rows came from."},
)
DRIFT_PARTITION_KEYS: Final = (
    {"Name": "day", "Type": "string", "Comment": "Arrival day of the raw object, UTC (YYYY-MM-DD)."},
    {"Name": "hour", "Type": "string", "Comment": "Arrival hour of the raw object, UTC (HH)."},
)
DRIFT_LOGICAL_ID: Final = "AuditTableSchemaDrift"
DRIFT_DESCRIPTION: Final = "Unknown top-level keys the parser kept in extra, per raw object, device type and kind."


def render_drift_table() -> str:
    projection = {key: value for key, value in quarantine_projection().items() if ".source." not in key}
    return _render_json_lines_table(
        logical_id=DRIFT_LOGICAL_ID, name=SCHEMA_DRIFT_TABLE, description=DRIFT_DESCRIPTION,
        projection=projection, partition_keys=DRIFT_PARTITION_KEYS, root=DRIFT_ROOT, columns=DRIFT_COLUMNS,
    )


def _render_json_lines_table(
    *,
    logical_id: str,
    name: str,
    description: str,
    projection: Mapping[str, str],
    partition_keys: Sequence[Mapping[str, str]],
    root: str,
    columns: Sequence[Mapping[str, str]],
) -> str:
    """A Hive table of gzip JSON lines in the quarantine bucket, in the audit database (the quarantine
    records and the parser's drift lines), partitions projected."""
    lines = [
        f"  {logical_id}:",
        "    Type: AWS::Glue::Table",
        "    Properties:",
        "      CatalogId: !Ref AWS::AccountId",
        "      DatabaseName: !Ref AuditDatabase",
        "      TableInput:",
        f"        Name: {name}",
        f"        Description: {_scalar(description)}",
        "        TableType: EXTERNAL_TABLE",
        "        Parameters:",
        "          classification: json",
        "          compressionType: gzip",
        '          EXTERNAL: "TRUE"',
        *(f"          {key}: {_sub_if_needed(value)}" for key, value in projection.items()),
        "        PartitionKeys:",
        *(f"          - {_flow(key)}" for key in partition_keys),
        "        StorageDescriptor:",
        f"          Location: !Sub s3://${{QuarantineBucket}}/{root}",
        f"          InputFormat: {_TEXT_INPUT_FORMAT}",
        f"          OutputFormat: {_TEXT_OUTPUT_FORMAT}",
        "          SerdeInfo:",
        f"            SerializationLibrary: {_JSON_SERDE}",
        "            Parameters:",
        '              ignore.malformed.json: "true"',
        "          Columns:",
        *(f"            - {_flow(column)}" for column in columns),
    ]
    return "\n".join(lines) + "\n"


def _sub_if_needed(value: str) -> str:
    return f"!Sub {_scalar(value)}" if "${" in value else _scalar(value)


_TEXT_INPUT_FORMAT: Final = "org.apache.hadoop.mapred.TextInputFormat"
_TEXT_OUTPUT_FORMAT: Final = "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat"
_JSON_SERDE: Final = "org.openx.data.jsonserde.JsonSerDe"


def render_iceberg_block() -> str:
    iceberg: tuple[IcebergTable, ...] = (*COMPACTED_TABLES, *AUDIT_TABLES)
    tables = [render_iceberg_table(table) for table in iceberg]
    return ICEBERG_BEGIN + "\n".join([*tables, render_quarantine_table(), render_drift_table()]) + ICEBERG_END


# --- the template file ---------------------------------------------------------------------------

_BLOCKS: Final = ((BEGIN, END, render_block), (ICEBERG_BEGIN, ICEBERG_END, render_iceberg_block))


def _split(text: str, begin: str = BEGIN, end_marker: str = END) -> tuple[str, str, str]:
    start = text.find(begin)
    end = text.find(end_marker)
    if start < 0 or end < start:
        raise SystemExit(f"{TEMPLATE.name}: generated block markers not found: {begin.strip()}")
    return text[:start], text[start : end + len(end_marker)], text[end + len(end_marker) :]


def regenerate(template_text: str) -> str:
    """The template with every generated block rendered afresh."""
    for begin, end, render in _BLOCKS:
        head, _, tail = _split(template_text, begin, end)
        template_text = head + render() + tail
    return template_text


def is_current(template_text: str) -> bool:
    return regenerate(template_text) == template_text


def write(path: Path = TEMPLATE) -> bool:
    """Regenerate the blocks; True when the file changed."""
    text = path.read_text()
    fresh = regenerate(text)
    if fresh == text:
        return False
    path.write_text(fresh)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.glue_columns", description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="regenerate the generated Glue tables in template.yaml")
    mode.add_argument("--check", action="store_true", help="exit 1 when template.yaml differs from the schema")
    parser.add_argument("--template", type=Path, default=TEMPLATE)
    args = parser.parse_args(argv)
    if args.write:
        changed = write(args.template)
        print(f"{args.template}: {'updated' if changed else 'already current'}")
        return 0
    if is_current(args.template.read_text()):
        print(f"{args.template}: Glue tables match shared.schema")
        return 0
    print(f"{args.template}: Glue tables differ from shared.schema; run python -m deploy.glue_columns --write",
          file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
