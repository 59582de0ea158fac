"""Create the template's resources in the embedded AWS (moto's server).

Only what changes the pipeline's behaviour is created: queues (DLQs first, then their sources with
the RedrivePolicy, so moto moves a message after maxReceiveCount receives), buckets with their
notification configuration, the DynamoDB registry table with its indexes, the Glue databases and
tables, and the Athena workgroups. IAM, KMS, policies, alarms, dashboards and log groups have no
local effect and are skipped. Firehose streams are served by the stand-in (signals.local.firehose).

A Glue table declared with `OpenTableFormatInput.IcebergInput` (the compacted and audit tables) is
created the way CloudFormation creates it: as an Iceberg table with its first metadata file, here by
pyiceberg's Glue catalog on the embedded AWS, with the declared schema, field ids, partition spec,
format version and properties. Every declaration is read by pyiceberg's parser of the Iceberg JSON
schema (`shared.iceberg.schema_from_fields`) before anything is created: a field Glue would refuse
(the Hive string `map<string,string>` as a type, a map without its key and value ids, an id used
twice) stops the stack with the resource, table and field named, and nothing half-provisioned. Each
created table is then brought to the field-id ledger as `signals schema apply` brings a deployed one
(template.yaml declares the schema a table was created with; columns added since come from the
ledger, with its ids). moto ignores partition
projection (`projection.*` parameters of quarantine_records): the table is created as declared and
the local query engine must compute its partitions from those parameters.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Final

from shared.iceberg import DeclarationError, partition_spec_from_fields, schema_from_fields
from signals.local.template import REGION, Resource, TemplateError
from signals.local.wiring import LocalTimings, Wiring

#: moto's server accepts any credentials; these are the local stack's.
LOCAL_ACCESS_KEY: Final = "testing"


@dataclass(frozen=True)
class IcebergDeclaration:
    """An `AWS::Glue::Table` with `OpenTableFormatInput.IcebergInput`, resolved."""

    database: str
    name: str
    location: str
    fields: list[dict[str, Any]]
    partition_fields: list[dict[str, Any]]
    format_version: str
    properties: dict[str, str]

    @property
    def qualified_name(self) -> str:
        return f"{self.database}.{self.name}"

    def schema(self) -> Any:
        """The declared `pyiceberg.schema.Schema` (pyiceberg's parser; DeclarationError names the field)."""
        return schema_from_fields(self.fields, table=self.qualified_name)

    def partition_spec(self) -> Any:
        return partition_spec_from_fields(self.partition_fields, table=self.qualified_name)


def provision(wiring: Wiring, client: Any, timings: LocalTimings) -> list[str]:
    """`client(service)` returns a boto3 client bound to the embedded AWS.

    On state restored from a data directory (signals.local.persist), what exists is kept: a queue
    gets the template's attributes, a bucket its notifications, and a table, database or Iceberg
    table that exists is never created again; how the template and the field-id ledger now differ
    from it is returned, one line per difference (nothing is changed: `signals schema apply` evolves
    tables).
    """
    check_iceberg_declarations(wiring)  # before anything exists: a refused declaration provisions nothing
    report: list[str] = []
    _queues(wiring, client("sqs"), timings)
    _buckets(wiring, client("s3"))
    report += _tables(wiring, client("dynamodb"))
    report += _glue(wiring, client("glue"))
    _workgroups(wiring, client("athena"))
    return report


def iceberg_catalog(endpoint: str, region: str = REGION, glue: Any = None) -> Any:
    """pyiceberg's Glue catalog on the embedded AWS (metadata and data files through its S3).

    moto checks no credentials; pyarrow's S3 filesystem still wants some, so the local stack's fake
    ones are given explicitly rather than read from the environment.
    """
    from botocore.credentials import Credentials  # noqa: PLC0415

    from shared.iceberg import glue_catalog  # noqa: PLC0415

    return glue_catalog("local", region=region, endpoint_url=endpoint, glue=glue,
                        credentials=Credentials(LOCAL_ACCESS_KEY, LOCAL_ACCESS_KEY))


def iceberg_declaration(resource: Resource) -> IcebergDeclaration | None:
    """The Iceberg table a template resource declares, or None for a Hive table."""
    props = resource.properties
    iceberg = (props.get("OpenTableFormatInput") or {}).get("IcebergInput")
    if iceberg is None:
        return None
    table_input = iceberg.get("IcebergTableInput")
    if table_input is None:
        raise TemplateError(f"{resource.logical_id}: an IcebergInput without IcebergTableInput declares no schema")
    if str(iceberg.get("MetadataOperation", "CREATE")) != "CREATE":
        raise TemplateError(f"{resource.logical_id}: MetadataOperation must be CREATE")
    return IcebergDeclaration(
        database=str(props["DatabaseName"]),
        name=str(props.get("Name") or (props.get("TableInput") or {}).get("Name")),
        location=str(table_input["Location"]),
        fields=list(table_input["Schema"]["Fields"]),
        partition_fields=list((table_input.get("PartitionSpec") or {}).get("Fields") or []),
        format_version=str(iceberg.get("Version", "2")),
        properties={str(k): str(v) for k, v in (table_input.get("Properties") or {}).items()},
    )


def _queues(wiring: Wiring, sqs: Any, timings: LocalTimings) -> None:
    ordered = sorted(wiring.queues.values(), key=lambda q: q.dlq_arn is not None)
    for queue in ordered:
        attributes = dict(queue.attributes)
        attributes["VisibilityTimeout"] = str(queue.local_visibility(timings))
        if queue.dlq_arn is not None:
            attributes["RedrivePolicy"] = json.dumps(
                {"deadLetterTargetArn": queue.dlq_arn, "maxReceiveCount": queue.max_receive_count}
            )
        existing = _queue_url(sqs, queue.name)
        if existing is None:
            sqs.create_queue(QueueName=queue.name, Attributes=attributes)
        else:  # kept with its messages; its settings are the template's (and this start's timings)
            changeable = {k: v for k, v in attributes.items() if k not in ("FifoQueue",)}
            sqs.set_queue_attributes(QueueUrl=existing, Attributes=changeable)


def _queue_url(sqs: Any, name: str) -> str | None:
    try:
        return str(sqs.get_queue_url(QueueName=name)["QueueUrl"])
    except sqs.exceptions.QueueDoesNotExist:
        return None


def _buckets(wiring: Wiring, s3: Any) -> None:
    template = wiring.template
    existing = {bucket["Name"] for bucket in s3.list_buckets().get("Buckets", [])}
    for resource in template.of_type("AWS::S3::Bucket"):
        name = template.physical_name(resource.logical_id)
        if name in existing:
            continue
        s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": template.region})
    by_bucket: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for notification in wiring.notifications:
        entry: dict[str, Any] = {"QueueArn": notification.queue_arn, "Events": list(notification.events)}
        if notification.filter_rules:
            entry["Filter"] = {
                "Key": {"FilterRules": [{"Name": name, "Value": value} for name, value in notification.filter_rules]}
            }
        by_bucket[notification.bucket].append(entry)
    for bucket, entries in by_bucket.items():
        s3.put_bucket_notification_configuration(
            Bucket=bucket, NotificationConfiguration={"QueueConfigurations": entries}
        )


def _tables(wiring: Wiring, dynamodb: Any) -> list[str]:
    template = wiring.template
    report: list[str] = []
    existing = set(dynamodb.list_tables().get("TableNames", []))
    for resource in template.of_type("AWS::DynamoDB::Table"):
        props = resource.properties
        name = template.physical_name(resource.logical_id)
        if name in existing:
            report += _dynamodb_difference(dynamodb.describe_table(TableName=name)["Table"], props)
            continue
        request: dict[str, Any] = {
            "TableName": template.physical_name(resource.logical_id),
            "KeySchema": props["KeySchema"],
            "AttributeDefinitions": props["AttributeDefinitions"],
            "BillingMode": props.get("BillingMode", "PAY_PER_REQUEST"),
        }
        if request["BillingMode"] == "PROVISIONED":
            request["ProvisionedThroughput"] = props["ProvisionedThroughput"]
        indexes = [_index(index, request["BillingMode"]) for index in props.get("GlobalSecondaryIndexes") or []]
        if indexes:
            request["GlobalSecondaryIndexes"] = indexes
        dynamodb.create_table(**request)
    return report


def _dynamodb_difference(table: dict[str, Any], props: dict[str, Any]) -> list[str]:
    name = table["TableName"]
    report: list[str] = []
    if _key_schema(table.get("KeySchema")) != _key_schema(props.get("KeySchema")):
        report.append(f"DynamoDB {name}: the template declares another key schema (kept as it is: a new key "
                      "schema is a new table, which would lose the registry; start with --fresh to take it)")
    live = {index["IndexName"] for index in table.get("GlobalSecondaryIndexes") or []}
    declared = {str(index["IndexName"]) for index in props.get("GlobalSecondaryIndexes") or []}
    if declared - live:
        report.append(f"DynamoDB {name}: the template adds index(es) {', '.join(sorted(declared - live))} "
                      "(not created on kept data)")
    if live - declared:
        report.append(f"DynamoDB {name}: index(es) {', '.join(sorted(live - declared))} are no longer declared "
                      "(kept)")
    return report


def _key_schema(schema: Any) -> list[tuple[str, str]]:
    return [(str(k["AttributeName"]), str(k["KeyType"])) for k in schema or []]


def _index(index: dict[str, Any], billing_mode: str) -> dict[str, Any]:
    result = {key: index[key] for key in ("IndexName", "KeySchema", "Projection")}
    if billing_mode == "PROVISIONED" and "ProvisionedThroughput" in index:
        result["ProvisionedThroughput"] = index["ProvisionedThroughput"]
    return result


def _glue(wiring: Wiring, glue: Any) -> list[str]:
    template = wiring.template
    report: list[str] = []
    databases = {db["Name"] for page in glue.get_paginator("get_databases").paginate() for db in page["DatabaseList"]}
    for resource in template.of_type("AWS::Glue::Database"):
        database_input = _without_catalog(resource.properties["DatabaseInput"])
        if database_input["Name"] not in databases:
            glue.create_database(DatabaseInput=database_input)
    iceberg: list[IcebergDeclaration] = []
    for resource in template.of_type("AWS::Glue::Table"):
        declaration = iceberg_declaration(resource)
        database = str(resource.properties["DatabaseName"])
        table_input = resource.properties.get("TableInput") or {}
        live = _glue_table(glue, database, str(declaration.name if declaration else table_input["Name"]))
        if declaration is not None:
            if live is None:
                iceberg.append(declaration)
            else:
                report += _iceberg_difference(template, glue, declaration)
            continue
        if live is None:
            glue.create_table(DatabaseName=database, TableInput=table_input)
        else:
            report += _column_difference(f"{database}.{live['Name']}", live, table_input)
            report += _verified_plan(glue, database, str(live["Name"]))
    if iceberg:
        catalog = iceberg_catalog(template.endpoint, template.region, glue)
        for declaration in iceberg:
            evolve_to_ledger(create_iceberg_table(catalog, declaration), declaration.name)
    return report


def _verified_plan(glue: Any, database: str, name: str) -> list[str]:
    """For a kept verified table: what `signals schema apply` would change (its own dry run: columns
    against shared.schema, and the partitions whose column lists are stale)."""
    from shared.schema import TABLES  # noqa: PLC0415
    from signals.schema.apply import apply_verified  # noqa: PLC0415

    spec = next((t for t in TABLES if t.name == name), None)
    if spec is None:
        return []
    return [f"signals schema apply would: {line}" for line in
            apply_verified(glue, database, spec, dry_run=True).lines()]


def _glue_table(glue: Any, database: str, name: str) -> dict[str, Any] | None:
    try:
        table: dict[str, Any] = glue.get_table(DatabaseName=database, Name=name)["Table"]
    except glue.exceptions.EntityNotFoundException:
        return None
    return table


def _columns(columns: Any) -> dict[str, str]:
    return {str(c["Name"]).lower(): str(c["Type"]).lower().replace(" ", "") for c in columns or []}


def _difference(label: str, live: dict[str, str], declared: dict[str, str]) -> list[str]:
    lines: list[str] = []
    added = [name for name in declared if name not in live]
    changed = [name for name in declared if name in live and live[name] != declared[name]]
    dropped = [name for name in live if name not in declared]
    if added:
        lines.append(f"{label}: the template adds column(s) {', '.join(f'{n} {declared[n]}' for n in added)}")
    for name in changed:
        lines.append(f"{label}: column {name} is {live[name]}, the template declares {declared[name]}")
    if dropped:
        lines.append(f"{label}: column(s) {', '.join(dropped)} are no longer declared (kept)")
    return lines


def _column_difference(label: str, live: dict[str, Any], table_input: dict[str, Any]) -> list[str]:
    descriptor = live.get("StorageDescriptor") or {}
    declared = table_input.get("StorageDescriptor") or {}
    return (_difference(f"Glue {label}", _columns(descriptor.get("Columns")), _columns(declared.get("Columns")))
            + _difference(f"Glue {label} partition keys", _columns(live.get("PartitionKeys")),
                          _columns(table_input.get("PartitionKeys"))))


def _iceberg_difference(template: Any, glue: Any, declaration: IcebergDeclaration) -> list[str]:
    """What `signals schema apply` would change in a kept Iceberg table: its dry run against the ledger.

    template.yaml declares the schema a table was created with (the ledger's `created`); the columns
    added since come from the ledger, by field id, so the comparison is with the ledger, not the
    declaration.
    """
    from shared.ledger import load  # noqa: PLC0415
    from signals.schema.apply import apply_iceberg  # noqa: PLC0415
    from signals.schema.evolution import iceberg_tables  # noqa: PLC0415

    spec = next((t for t in iceberg_tables() if t.name == declaration.name), None)
    if spec is None:
        return []
    catalog = iceberg_catalog(template.endpoint, template.region, glue)
    table = catalog.load_table((declaration.database, declaration.name))
    report = apply_iceberg(table, load().table(declaration.name), spec, dry_run=True)
    return [f"Iceberg {declaration.database}.{line}" for line in report.lines()]


def check_iceberg_declarations(wiring: Wiring) -> list[IcebergDeclaration]:
    """Every Iceberg declaration of the template, each read by pyiceberg's parser; the first one Glue
    would refuse raises TemplateError naming its resource, table and field."""
    declarations = []
    for resource in wiring.template.of_type("AWS::Glue::Table"):
        declaration = iceberg_declaration(resource)
        if declaration is None:
            continue
        try:
            declaration.schema()
            declaration.partition_spec()
        except DeclarationError as error:
            raise TemplateError(f"{resource.logical_id}: {error}") from None
        declarations.append(declaration)
    return declarations


def create_iceberg_table(catalog: Any, declaration: IcebergDeclaration) -> Any:
    """Create the declared Iceberg table (its first metadata file under the declared location)."""
    return catalog.create_table(
        (declaration.database, declaration.name),
        schema=declaration.schema(),
        location=declaration.location.rstrip("/"),
        partition_spec=declaration.partition_spec(),
        properties={**declaration.properties, "format-version": declaration.format_version},
    )


def evolve_to_ledger(table: Any, name: str) -> None:
    """After the CREATE (the ledger's `created` schema), what a deploy's `signals schema apply` adds:
    the columns the field-id ledger assigned since, with its ids (a no-op while nothing was added)."""
    from shared.ledger import load  # noqa: PLC0415
    from signals.schema.apply import apply_iceberg  # noqa: PLC0415
    from signals.schema.evolution import iceberg_tables  # noqa: PLC0415

    spec = next((t for t in iceberg_tables() if t.name == name), None)
    if spec is None:
        return
    report = apply_iceberg(table, load().table(name), spec, dry_run=False)
    if report.errors:
        raise TemplateError(f"{name}: the created table cannot take the ledger's columns: {report.errors}")


def _without_catalog(database_input: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in database_input.items() if key != "CatalogId"}


def _workgroups(wiring: Wiring, athena: Any) -> None:
    for resource in wiring.template.of_type("AWS::Athena::WorkGroup"):
        athena.create_work_group(**_workgroup_request(resource))


def _workgroup_request(resource: Resource) -> dict[str, Any]:
    props = resource.properties
    request: dict[str, Any] = {"Name": str(props["Name"])}
    configuration = props.get("WorkGroupConfiguration")
    if configuration:
        request["Configuration"] = configuration
    if props.get("Description"):
        request["Description"] = str(props["Description"])
    return request
