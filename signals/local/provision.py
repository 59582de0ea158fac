"""Create the template's resources in the embedded AWS (moto's server).

Only what changes the pipeline's behaviour is created: queues (DLQs first, then their sources with
the RedrivePolicy, so moto moves a message after maxReceiveCount receives), buckets with their
notification configuration, the DynamoDB registry table with its indexes, the Glue database and
tables, and the Athena workgroups. IAM, KMS, policies, alarms, dashboards and log groups have no
local effect and are skipped. Firehose streams are served by the stand-in (signals.local.firehose).
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

from signals.local.template import Resource
from signals.local.wiring import LocalTimings, Wiring


def provision(wiring: Wiring, client: Any, timings: LocalTimings) -> None:
    """`client(service)` returns a boto3 client bound to the embedded AWS."""
    _queues(wiring, client("sqs"), timings)
    _buckets(wiring, client("s3"))
    _tables(wiring, client("dynamodb"))
    _glue(wiring, client("glue"))
    _workgroups(wiring, client("athena"))


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
    for resource in template.of_type("AWS::Glue::Table"):
        glue.create_table(
            DatabaseName=str(resource.properties["DatabaseName"]),
            TableInput=resource.properties["TableInput"],
        )


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
