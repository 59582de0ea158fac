"""The Iceberg view of the compacted and audit tables, derived from `shared.schema`.

Pure Python (no pyiceberg import), so the template generator, the Lambda and the local stack can all
use it; `pyiceberg_schema` builds the pyiceberg objects for the local engine and imports pyiceberg
only when called.

Types follow what Athena's Iceberg DDL supports: string, long (bigint), int, double, boolean,
map<string,string>, and `timestamp` (Iceberg timestamp without zone, microseconds; every value is
UTC, as in the verified tables). Field ids come from the committed ledger (`shared.ledger`,
`shared/iceberg_ids.json`), never from a column's position: adding a column gives it the id after
the last one and leaves every other id as it was.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from shared import ledger
from shared.ledger import LedgerError, LedgerTable
from shared.schema import AuditTableSpec, CompactedTableSpec, Kind

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

_DECLARED_SCALARS: Final = ("string", "long", "int", "double", "boolean", "timestamp")
_DECLARED_MAP: Final = "map<string,string>"


def iceberg_type(kind: Kind) -> str:
    return _ICEBERG_TYPES[kind]


def partition_column(table: IcebergTable) -> str:
    """Every compacted and audit table is partitioned by identity on `day`."""
    return "day" if isinstance(table, CompactedTableSpec) else table.partition_column


def _ledger_table(table: IcebergTable) -> LedgerTable:
    return ledger.load().table(table.name)


def field_ids(table: IcebergTable) -> dict[str, int]:
    """Column name -> Iceberg field id, from the ledger, for every column `shared.schema` declares."""
    ids = _ledger_table(table).ids()
    missing = [spec.name for spec in table.fields if spec.name not in ids]
    if missing:
        raise LedgerError(f"{table.name}: {', '.join(missing)} have no field id in {ledger.LEDGER_PATH.name}: "
                          "run `signals schema check --write` and commit it")
    return {spec.name: ids[spec.name] for spec in table.fields}


def map_field_ids(table: IcebergTable) -> dict[str, tuple[int, int]]:
    """Map column name -> (key id, value id), from the ledger."""
    schema = _ledger_table(table).active_schema()
    return {f.name: (f.field_type.key_id, f.field_type.value_id) for f in schema.fields
            if f.name in table.column_names and not f.field_type.is_primitive}


def iceberg_type_of(kind: Kind, key_id: int = 0, value_id: int = 0) -> Any:
    """The pyiceberg type of a Kind (a map takes its key and value ids)."""
    from pyiceberg import types as t  # noqa: PLC0415

    if kind is Kind.STRING_MAP:
        return t.MapType(key_id=key_id, key_type=t.StringType(), value_id=value_id, value_type=t.StringType(),
                         value_required=False)
    return {
        Kind.STRING: t.StringType(),
        Kind.INT: t.LongType(),
        Kind.INT32: t.IntegerType(),
        Kind.FLOAT: t.DoubleType(),
        Kind.BOOL: t.BooleanType(),
        Kind.TIMESTAMP_MS: t.TimestampType(),
        Kind.TIMESTAMP_US: t.TimestampType(),
    }[kind]


def iceberg_fields(table: IcebergTable) -> list[dict[str, Any]]:
    """The schema the table is created with, in the shape CloudFormation's Glue
    `IcebergTableInput.Schema.Fields` takes: the ledger's `created` schema, which no later schema
    change alters (`signals schema apply` evolves a deployed table; the template only creates it)."""
    docs = {spec.name: spec.description for spec in table.fields}
    created = _ledger_table(table).created_schema()
    return [
        {"Id": f.field_id, "Name": f.name, "Type": _declared_type(f.field_type), "Required": f.required,
         "Doc": docs.get(f.name, f.doc or "")[:255]}
        for f in created.fields
    ]


def _declared_type(field_type: Any) -> str:
    return str(field_type) if field_type.is_primitive else _DECLARED_MAP


def pyiceberg_schema(table: IcebergTable) -> Any:
    """The `pyiceberg.schema.Schema` a deployed table has once `signals schema apply` ran: every
    field the ledger assigned, in id order, with `shared.schema`'s docs."""
    from pyiceberg.schema import Schema  # noqa: PLC0415

    docs = {spec.name: spec.description for spec in table.fields}
    schema = _ledger_table(table).schema()
    return Schema(*(f.model_copy(update={"doc": docs.get(f.name, f.doc)}) for f in schema.fields))


def pyiceberg_partition_spec(table: IcebergTable) -> Any:
    """Identity partitioning on `day`, its source id from the ledger (`pyiceberg.partitioning.PartitionSpec`)."""
    spec = _ledger_table(table).partition()
    column = partition_column(table)
    if [f.source_id for f in spec.fields] != [field_ids(table)[column]]:
        raise LedgerError(f"{table.name}: the ledger's partition spec is not on {column}")
    return spec


def partition_source_id(table: IcebergTable) -> int:
    return int(_ledger_table(table).partition_spec["fields"][0]["source-id"])


# --- from a declaration (template.yaml's IcebergTableInput) ----------------------------------------



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
