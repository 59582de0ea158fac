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


def provision(wiring: Wiring, client: Any, timings: LocalTimings) -> None:
    """`client(service)` returns a boto3 client bound to the embedded AWS."""
    check_iceberg_declarations(wiring)  # before anything exists: a refused declaration provisions nothing
    _queues(wiring, client("sqs"), timings)
    _buckets(wiring, client("s3"))
    _tables(wiring, client("dynamodb"))
    _glue(wiring, client("glue"))
    _workgroups(wiring, client("athena"))


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
        sqs.create_queue(QueueName=queue.name, Attributes=attributes)


def _buckets(wiring: Wiring, s3: Any) -> None:
    template = wiring.template
    for resource in template.of_type("AWS::S3::Bucket"):
        s3.create_bucket(
            Bucket=template.physical_name(resource.logical_id),
            CreateBucketConfiguration={"LocationConstraint": template.region},
        )
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


def _tables(wiring: Wiring, dynamodb: Any) -> None:
    template = wiring.template
    for resource in template.of_type("AWS::DynamoDB::Table"):
        props = resource.properties
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


def _index(index: dict[str, Any], billing_mode: str) -> dict[str, Any]:
    result = {key: index[key] for key in ("IndexName", "KeySchema", "Projection")}
    if billing_mode == "PROVISIONED" and "ProvisionedThroughput" in index:
        result["ProvisionedThroughput"] = index["ProvisionedThroughput"]
    return result


def _glue(wiring: Wiring, glue: Any) -> None:
    template = wiring.template
    for resource in template.of_type("AWS::Glue::Database"):
        glue.create_database(DatabaseInput=_without_catalog(resource.properties["DatabaseInput"]))
    iceberg: list[IcebergDeclaration] = []
    for resource in template.of_type("AWS::Glue::Table"):
        declaration = iceberg_declaration(resource)
        if declaration is not None:
            iceberg.append(declaration)
            continue
        glue.create_table(
            DatabaseName=str(resource.properties["DatabaseName"]),
            TableInput=resource.properties["TableInput"],
        )
    if iceberg:
        catalog = iceberg_catalog(template.endpoint, template.region, glue)
        for declaration in iceberg:
            evolve_to_ledger(create_iceberg_table(catalog, declaration), declaration.name)


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
