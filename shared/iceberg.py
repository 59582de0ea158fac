"""The Iceberg view of the compacted and audit tables, derived from `shared.schema`.

Ids and names are pure Python (no pyiceberg import), so the template generator, the Lambda and the
local stack can all use them. Types are pyiceberg's: `pyiceberg_schema` builds the table's schema,
`iceberg_fields` serializes it for the template in the Iceberg JSON schema serialization (the Iceberg
spec, appendix C, https://iceberg.apache.org/spec/#appendix-c-json-serialization), and
`schema_from_fields` reads a declaration back with pyiceberg's own parser; nothing here parses an
Iceberg type by hand. The functions that build or read pyiceberg objects import pyiceberg only when
called (local engine, local stack, template generator and tests).

Types follow what Athena's Iceberg DDL supports: string, long (bigint), int, double, boolean,
map<string,string> (`{"type":"map","key-id":..,"key":"string","value-id":..,"value":"string",
"value-required":false}` in JSON), and `timestamp` (Iceberg timestamp without zone, microseconds;
every value is UTC, as in the verified tables). Field ids come from the committed ledger
(`shared.ledger`, `shared/iceberg_ids.json`), never from a column's position: adding a column gives it
the id after the last one and leaves every other id as it was.
"""

from __future__ import annotations

import json
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
}

IcebergTable = CompactedTableSpec | AuditTableSpec


def iceberg_type(kind: Kind) -> str:
    """The Iceberg primitive type name of a scalar kind (a map has ids: see `iceberg_fields`)."""
    if kind not in _ICEBERG_TYPES:
        raise ValueError(f"{kind} is not an Iceberg primitive type; its JSON type carries field ids")
    return _ICEBERG_TYPES[kind]


def partition_column(table: IcebergTable) -> str:
    """Every compacted and audit table is partitioned by identity on `day`."""
    return "day" if isinstance(table, CompactedTableSpec) else table.partition_column


def _ledger_table(table: IcebergTable) -> LedgerTable:
    return ledger.load().table(table.name)


def ledger_schema(recorded: LedgerTable) -> Any:
    """The `pyiceberg.schema.Schema` a deployed table has once applied: every field the ledger ever
    assigned (tombstoned ones included: they stay in the table), in id order."""
    from pyiceberg.schema import Schema  # noqa: PLC0415

    every = sorted((ledger.iceberg_field(f) for f in (*recorded.fields, *recorded.dropped)), key=lambda f: int(f["id"]))
    return Schema.model_validate({"type": "struct", "schema-id": 0, "fields": every})


def ledger_active_schema(recorded: LedgerTable) -> Any:
    """The columns the code writes (`shared.schema` order), as a pyiceberg Schema."""
    from pyiceberg.schema import Schema  # noqa: PLC0415

    return Schema.model_validate({"type": "struct", "schema-id": 0,
                                  "fields": [ledger.iceberg_field(f) for f in recorded.fields]})


def ledger_created_schema(recorded: LedgerTable) -> Any:
    """The schema the table was created with (what template.yaml declares)."""
    from pyiceberg.schema import Schema  # noqa: PLC0415

    return Schema.model_validate(dict(recorded.created))


def ledger_partition_spec(recorded: LedgerTable) -> Any:
    from pyiceberg.partitioning import PartitionSpec  # noqa: PLC0415

    return PartitionSpec.model_validate(dict(recorded.partition_spec))


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
    schema = ledger_active_schema(_ledger_table(table))
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
    change alters (`signals schema apply` evolves a deployed table; the template only creates it).

    `Type` is the field's type in the Iceberg JSON schema serialization, written by pyiceberg: a
    primitive is its name (`"string"`), a map is its JSON object (with the key and value ids) as
    compact JSON text. Glue's API takes the type as a JSON value
    (https://docs.aws.amazon.com/glue/latest/webapi/API_IcebergStructField.html); CloudFormation's
    resource schema for `AWS::Glue::Table` declares `IcebergStructField.Type` a String
    (https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-properties-glue-table-icebergstructfield.html),
    so a nested type travels as its JSON text.
    """
    docs = {spec.name: spec.description for spec in table.fields}
    created = ledger_created_schema(_ledger_table(table))
    return [
        {"Id": f.field_id, "Name": f.name, "Type": _type_json(f.field_type), "Required": f.required,
         "Doc": docs.get(f.name, f.doc or "")[:255]}
        for f in created.fields
    ]


def _type_json(field_type: Any) -> str:
    """pyiceberg's JSON serialization of a type: a primitive's name, a nested type's JSON object text."""
    if field_type.is_primitive:
        return str(field_type.model_dump(mode="json"))
    return str(field_type.model_dump_json(by_alias=True))


def pyiceberg_schema(table: IcebergTable) -> Any:
    """The `pyiceberg.schema.Schema` a deployed table has once `signals schema apply` ran: every
    field the ledger assigned, in id order, with `shared.schema`'s docs."""
    from pyiceberg.schema import Schema  # noqa: PLC0415

    docs = {spec.name: spec.description for spec in table.fields}
    schema = ledger_schema(_ledger_table(table))
    return Schema(*(f.model_copy(update={"doc": docs.get(f.name, f.doc)}) for f in schema.fields))


def pyiceberg_partition_spec(table: IcebergTable) -> Any:
    """Identity partitioning on `day`, its source id from the ledger (`pyiceberg.partitioning.PartitionSpec`)."""
    spec = ledger_partition_spec(_ledger_table(table))
    column = partition_column(table)
    if [f.source_id for f in spec.fields] != [field_ids(table)[column]]:
        raise LedgerError(f"{table.name}: the ledger's partition spec is not on {column}")
    return spec


def partition_source_id(table: IcebergTable) -> int:
    return int(_ledger_table(table).partition_spec["fields"][0]["source-id"])


# --- from a declaration (template.yaml's IcebergTableInput) ----------------------------------------


class DeclarationError(ValueError):
    """An Iceberg declaration Glue would refuse: the message names the table and the field."""


def schema_from_fields(fields: Sequence[Mapping[str, Any]], *, table: str = "?") -> Any:
    """The `pyiceberg.schema.Schema` of fields in CloudFormation's shape (what `iceberg_fields` makes).

    Each field is read by pyiceberg's parser of the Iceberg JSON schema serialization (field id,
    name, type, required, doc; a nested type's own ids). `Type` is a JSON value: a primitive name,
    or a nested type given as its JSON object or as that object's JSON text (CloudFormation's
    String). A type the spec does not define (the Hive `map<string,string>`, say), a map without its
    key and value ids, or an id used twice raises `DeclarationError` naming `table` and the field.
    """
    from pydantic import ValidationError  # noqa: PLC0415
    from pyiceberg.schema import Schema  # noqa: PLC0415
    from pyiceberg.types import NestedField  # noqa: PLC0415

    columns = []
    for position, field in enumerate(fields, start=1):
        name = field.get("Name", f"#{position}")
        serialized = {"id": field.get("Id"), "name": field.get("Name"), "type": _declared_type(field.get("Type")),
                      "required": field.get("Required"), "doc": field.get("Doc")}
        try:
            columns.append(NestedField.model_validate(serialized))
        except ValidationError as error:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'field'}: {e['msg']}" for e in error.errors())
            raise DeclarationError(
                f"table {table}, field {name}: not an Iceberg field as the Iceberg JSON schema serialization "
                f"defines it (Type {field.get('Type')!r}): {problems}") from None
    schema = Schema(*columns)
    _refuse_reused_ids(schema, table)
    return schema


def _declared_type(declared: Any) -> Any:
    """A JSON value as declared: objects as they are, a string decoded when it is JSON text of an
    object (a nested type), otherwise the string itself (a primitive type name)."""
    if isinstance(declared, str):
        try:
            decoded = json.loads(declared)
        except ValueError:
            return declared
        return decoded if isinstance(decoded, dict) else declared
    return declared


def _refuse_reused_ids(schema: Any, table: str) -> None:
    from pyiceberg.schema import index_name_by_id  # noqa: PLC0415

    seen: dict[int, str] = {}
    names = index_name_by_id(schema)
    for field in _all_fields(schema.as_struct()):
        if field.field_id in seen:
            raise DeclarationError(f"table {table}, field {names.get(field.field_id, field.name)}: field id "
                                   f"{field.field_id} is used twice (also by {seen[field.field_id]})")
        seen[field.field_id] = field.name


def _all_fields(struct: Any) -> list[Any]:
    """Every NestedField of a struct, nested ones (map keys and values, list elements) included."""
    found = []
    for field in struct.fields:
        found.append(field)
        found.extend(_nested(field.field_type))
    return found


def _nested(field_type: Any) -> list[Any]:
    from pyiceberg import types as t  # noqa: PLC0415

    if isinstance(field_type, t.StructType):
        return _all_fields(field_type)
    if isinstance(field_type, t.MapType):
        return [field_type.key_field, *_nested(field_type.key_type),
                field_type.value_field, *_nested(field_type.value_type)]
    if isinstance(field_type, t.ListType):
        return [field_type.element_field, *_nested(field_type.element_type)]
    return []


def partition_spec_from_fields(fields: Sequence[Mapping[str, Any]], *, table: str = "?") -> Any:
    """The `pyiceberg.partitioning.PartitionSpec` of CloudFormation's `PartitionSpec.Fields`, read by
    pyiceberg's parser of the Iceberg JSON partition spec (identity only: the tables use no other)."""
    from pydantic import ValidationError  # noqa: PLC0415
    from pyiceberg.partitioning import PartitionField, PartitionSpec  # noqa: PLC0415
    from pyiceberg.transforms import IdentityTransform  # noqa: PLC0415

    partition_fields = []
    for number, field in enumerate(fields):
        serialized = {"source-id": field.get("SourceId"), "field-id": field.get("FieldId", 1000 + number),
                      "name": field.get("Name"), "transform": field.get("Transform")}
        try:
            parsed = PartitionField.model_validate(serialized)
        except ValidationError as error:
            message = error.errors()[0]["msg"]
            raise DeclarationError(f"table {table}, partition {field.get('Name')}: {message}") from None
        if not isinstance(parsed.transform, IdentityTransform):
            raise DeclarationError(f"table {table}, partition {parsed.name}: transform {parsed.transform} "
                                   "is not supported locally")
        partition_fields.append(parsed)
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
