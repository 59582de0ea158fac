"""The Iceberg view of the compacted and audit tables, derived from `shared.schema`.

Pure Python (no pyiceberg import), so the template generator, the Lambda and the local stack can all
use it; `pyiceberg_schema` builds the pyiceberg objects for the local engine and imports pyiceberg
only when called.

Types follow what Athena's Iceberg DDL supports: string, long (bigint), int, double, boolean,
map<string,string>, and `timestamp` (Iceberg timestamp without zone, microseconds; every value is
UTC, as in the verified tables). Field ids are stable: columns are numbered in schema order from 1,
and a map's key and value take the ids after the last column, in column order, so a regenerated
schema keeps every id.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from shared.schema import AuditTableSpec, CompactedTableSpec, FieldSpec, Kind

FORMAT_VERSION: Final = "2"

_ICEBERG_TYPES: Final[Mapping[Kind, str]] = {
    Kind.STRING: "string",
    Kind.INT: "long",
    Kind.INT32: "int",
    Kind.FLOAT: "double",
    Kind.BOOL: "boolean",
    Kind.TIMESTAMP_MS: "timestamp",
    Kind.TIMESTAMP_US: "timestamp",
    Kind.STRING_MAP: "map<string,string>",
}

IcebergTable = CompactedTableSpec | AuditTableSpec


def iceberg_type(kind: Kind) -> str:
    return _ICEBERG_TYPES[kind]


def partition_column(table: IcebergTable) -> str:
    """Every compacted and audit table is partitioned by identity on `day`."""
    return "day" if isinstance(table, CompactedTableSpec) else table.partition_column


def field_ids(table: IcebergTable) -> dict[str, int]:
    """Column name -> Iceberg field id (1-based, schema order)."""
    return {spec.name: index for index, spec in enumerate(table.fields, start=1)}


def map_field_ids(table: IcebergTable) -> dict[str, tuple[int, int]]:
    """Map column name -> (key id, value id), numbered after the last column."""
    next_id = len(table.fields) + 1
    ids: dict[str, tuple[int, int]] = {}
    for spec in table.fields:
        if spec.kind is Kind.STRING_MAP:
            ids[spec.name] = (next_id, next_id + 1)
            next_id += 2
    return ids


def iceberg_fields(table: IcebergTable) -> list[dict[str, Any]]:
    """Schema fields in the shape CloudFormation's Glue `IcebergTableInput.Schema.Fields` takes."""
    ids = field_ids(table)
    return [
        {"Id": ids[spec.name], "Name": spec.name, "Type": iceberg_type(spec.kind), "Required": spec.required,
         "Doc": spec.description[:255]}
        for spec in table.fields
    ]


def pyiceberg_schema(table: IcebergTable) -> Any:
    """The table's `pyiceberg.schema.Schema` (imports pyiceberg: local engine and local stack only)."""
    from pyiceberg import types as t  # noqa: PLC0415
    from pyiceberg.schema import Schema  # noqa: PLC0415

    scalar = {
        Kind.STRING: t.StringType(),
        Kind.INT: t.LongType(),
        Kind.INT32: t.IntegerType(),
        Kind.FLOAT: t.DoubleType(),
        Kind.BOOL: t.BooleanType(),
        Kind.TIMESTAMP_MS: t.TimestampType(),
        Kind.TIMESTAMP_US: t.TimestampType(),
    }
    ids = field_ids(table)
    maps = map_field_ids(table)

    def field_type(spec: FieldSpec) -> Any:
        if spec.kind is Kind.STRING_MAP:
            key_id, value_id = maps[spec.name]
            return t.MapType(key_id=key_id, key_type=t.StringType(), value_id=value_id,
                             value_type=t.StringType(), value_required=False)
        return scalar[spec.kind]

    return Schema(*(
        t.NestedField(field_id=ids[spec.name], name=spec.name, field_type=field_type(spec),
                      required=spec.required, doc=spec.description)
        for spec in table.fields
    ))


def pyiceberg_partition_spec(table: IcebergTable) -> Any:
    """Identity partitioning on `day` (`pyiceberg.partitioning.PartitionSpec`)."""
    from pyiceberg.partitioning import PartitionField, PartitionSpec  # noqa: PLC0415
    from pyiceberg.transforms import IdentityTransform  # noqa: PLC0415

    column = partition_column(table)
    return PartitionSpec(PartitionField(source_id=field_ids(table)[column], field_id=1000,
                                        transform=IdentityTransform(), name=column))


# --- from a declaration (template.yaml's IcebergTableInput) ----------------------------------------

_DECLARED_SCALARS: Final = ("string", "long", "int", "double", "boolean", "timestamp")
_DECLARED_MAP: Final = "map<string,string>"


def schema_from_fields(fields: Sequence[Mapping[str, Any]]) -> Any:
    """The `pyiceberg.schema.Schema` of fields in CloudFormation's shape (what `iceberg_fields` makes).

    A map's key and value ids follow the last column, in column order (the rule `map_field_ids`
    numbers them by), so a table created from the template has the ids the schema derives.
    """
    from pyiceberg import types as t  # noqa: PLC0415
    from pyiceberg.schema import Schema  # noqa: PLC0415

    scalar = {"string": t.StringType(), "long": t.LongType(), "int": t.IntegerType(), "double": t.DoubleType(),
              "boolean": t.BooleanType(), "timestamp": t.TimestampType()}
    next_id = max((int(field["Id"]) for field in fields), default=0) + 1
    columns = []
    for field in fields:
        declared = str(field["Type"])
        if declared == _DECLARED_MAP:
            field_type: Any = t.MapType(key_id=next_id, key_type=t.StringType(), value_id=next_id + 1,
                                        value_type=t.StringType(), value_required=False)
            next_id += 2
        elif declared in _DECLARED_SCALARS:
            field_type = scalar[declared]
        else:
            raise ValueError(f"field {field['Name']}: Iceberg type {declared!r} is not one the tables use")
        columns.append(t.NestedField(field_id=int(field["Id"]), name=str(field["Name"]), field_type=field_type,
                                     required=bool(field["Required"]), doc=field.get("Doc")))
    return Schema(*columns)


def partition_spec_from_fields(fields: Sequence[Mapping[str, Any]]) -> Any:
    """The `pyiceberg.partitioning.PartitionSpec` of CloudFormation's `PartitionSpec.Fields` (identity only)."""
    from pyiceberg.partitioning import PartitionField, PartitionSpec  # noqa: PLC0415
    from pyiceberg.transforms import IdentityTransform  # noqa: PLC0415

    partition_fields = []
    for number, field in enumerate(fields):
        if str(field["Transform"]) != "identity":
            raise ValueError(f"partition {field['Name']}: transform {field['Transform']!r} is not supported locally")
        partition_fields.append(PartitionField(source_id=int(field["SourceId"]),
                                               field_id=int(field.get("FieldId", 1000 + number)),
                                               transform=IdentityTransform(), name=str(field["Name"])))
    return PartitionSpec(*partition_fields)


def glue_catalog(name: str, *, region: str, endpoint_url: str | None = None, credentials: Any = None,
                 glue: Any = None) -> Any:
    """pyiceberg's Glue catalog, its S3 file IO on the same endpoint and credentials as our boto3 clients.

    pyiceberg builds its own Glue client and pyarrow S3 filesystem, and neither follows boto3's
    `AWS_ENDPOINT_URL`, so the endpoint (the embedded AWS; None on AWS) and the credentials (a
    botocore `Credentials`) are passed explicitly. `glue`: a boto3 Glue client to use instead of its own.
    """
    from pyiceberg.catalog.glue import GlueCatalog  # noqa: PLC0415 (local engine and local stack only)

    properties = {"glue.region": region, "s3.region": region}
    if endpoint_url:
        properties.update({"glue.endpoint": endpoint_url, "s3.endpoint": endpoint_url,
                           "s3.path-style-access": "true"})
    if credentials is not None:
        frozen = credentials.get_frozen_credentials()
        for service in ("glue", "s3"):
            properties[f"{service}.access-key-id"] = frozen.access_key
            properties[f"{service}.secret-access-key"] = frozen.secret_key
            if frozen.token:
                properties[f"{service}.session-token"] = frozen.token
    return GlueCatalog(name, client=glue, **properties)
