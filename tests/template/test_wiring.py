"""What SAM deploys from template.yaml is wired the way the pipeline needs it."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from shared import layout, registry_keys
from shared.config import (
    CompactorConfig,
    FunctionConfig,
    IngesterConfig,
    ParserConfig,
    ReconcilerConfig,
    RegistryConfig,
)
from shared.schema import Source
from signals.env import Output
from tests.template.conftest import of_type, target

Resources = dict[str, dict[str, Any]]

# queue logical id -> (queue name, DLQ logical id, consuming function)
QUEUES = {
    "TelemetryProcessingQueue": ("telemetry-processing-queue", "TelemetryProcessingDlq", "ParserFunction"),
    "OtlpLogsProcessingQueue": ("otlp-logs-processing-queue", "OtlpLogsProcessingDlq", "ParserFunction"),
    "RedriveQueue": ("telemetry-processing-redrive-queue", "RedriveDlq", "ParserFunction"),
    "RegistryQueue": ("telemetry-registry-queue", "RegistryDlq", "RegistryFunction"),
}
FUNCTIONS: dict[str, tuple[str, type[FunctionConfig]]] = {
    "IngesterFunction": ("ingester", IngesterConfig),
    "ParserFunction": ("parser", ParserConfig),
    "RegistryFunction": ("registry", RegistryConfig),
    "ReconcilerFunction": ("reconciler", ReconcilerConfig),
    "CompactorFunction": ("compactor", CompactorConfig),
}
SCOPED_SERVICES = ("s3", "sqs", "dynamodb", "firehose")


def _props(resources: Resources, logical_id: str) -> dict[str, Any]:
    return dict(resources[logical_id]["Properties"])


def _event_source_mappings(resources: Resources) -> dict[str, list[dict[str, Any]]]:
    """queue logical id -> its event source mappings' properties."""
    by_queue: dict[str, list[dict[str, Any]]] = {}
    for _, mapping in of_type(resources, "AWS::Lambda::EventSourceMapping"):
        props = mapping["Properties"]
        by_queue.setdefault(target(props["EventSourceArn"]), []).append(props)
    return by_queue


# --- queues, consumers, DLQs ---------------------------------------------------------------------


@pytest.mark.parametrize("queue_id", list(QUEUES))
def test_each_queue_has_its_consumer_and_dlq(resources: Resources, queue_id: str) -> None:
    name, dlq_id, consumer = QUEUES[queue_id]
    queue = _props(resources, queue_id)
    assert queue["QueueName"] == name
    assert target(queue["RedrivePolicy"]["deadLetterTargetArn"]) == dlq_id
    assert 1 <= queue["RedrivePolicy"]["maxReceiveCount"] <= 10
    dlq = _props(resources, dlq_id)
    assert dlq["QueueName"] == f"{name}_dlq"
    assert dlq["MessageRetentionPeriod"] >= queue["MessageRetentionPeriod"]  # a message never expires on the way

    mappings = _event_source_mappings(resources)[queue_id]
    assert [target(m["FunctionName"]) for m in mappings] == [consumer]
    timeout = _props(resources, consumer)["Timeout"]
    window = mappings[0].get("MaximumBatchingWindowInSeconds", 0)
    assert queue["VisibilityTimeout"] >= 6 * timeout + window


def test_dead_letter_queues_have_no_consumer(resources: Resources) -> None:
    consumed = set(_event_source_mappings(resources))
    assert consumed == set(QUEUES)
    assert not consumed & {dlq for _, dlq, _ in QUEUES.values()}


def test_every_sqs_event_source_reports_batch_item_failures(resources: Resources) -> None:
    mappings = [m for ms in _event_source_mappings(resources).values() for m in ms]
    assert len(mappings) == 4
    for mapping in mappings:
        assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        assert mapping["MaximumBatchingWindowInSeconds"] > 0
        assert mapping["ScalingConfig"]["MaximumConcurrency"]


@pytest.mark.parametrize("service", ["s3.amazonaws.com", "cloudwatch.amazonaws.com"])
def test_queues_and_alarm_topic_use_a_key_their_senders_may_use(resources: Resources, service: str) -> None:
    """AWS-managed SQS/SNS keys admit neither S3 notifications nor CloudWatch alarm actions."""
    key_policy = _props(resources, "MessagingKey")["KeyPolicy"]["Statement"]
    statement = next(s for s in key_policy if s.get("Principal", {}).get("Service") == service)
    assert {"kms:GenerateDataKey", "kms:Decrypt"} <= set(statement["Action"])
    queues = [props["Properties"] for _, props in of_type(resources, "AWS::SQS::Queue")]
    assert len(queues) == 8
    for queue in queues:
        assert target(queue["KmsMasterKeyId"]) == "MessagingKey"
    ((_, topic),) = of_type(resources, "AWS::SNS::Topic")
    assert target(topic["Properties"]["KmsMasterKeyId"]) == "MessagingKey"


# --- S3 notifications ----------------------------------------------------------------------------


def _notifications(resources: Resources, bucket_id: str) -> dict[str, dict[str, str]]:
    """queue logical id -> {'prefix': ..., 'suffix': ...} of a bucket's queue notifications."""
    configs = _props(resources, bucket_id)["NotificationConfiguration"]["QueueConfigurations"]
    result = {}
    for config in configs:
        assert config["Event"] == "s3:ObjectCreated:*"
        rules = {rule["Name"]: rule["Value"] for rule in config["Filter"]["S3Key"]["Rules"]}
        result[target(config["Queue"])] = rules
    return result


def test_raw_notifications_filter_each_source_to_its_queue(resources: Resources) -> None:
    assert _notifications(resources, "RawBucket") == {
        "TelemetryProcessingQueue": {"prefix": layout.raw_prefix(Source.JSON_TELEMETRY), "suffix": ".gz"},
        "OtlpLogsProcessingQueue": {"prefix": layout.raw_prefix(Source.OTLP_LOGS), "suffix": ".gz"},
    }


def test_verified_notifications_announce_parquet_to_the_registry(resources: Resources) -> None:
    assert _notifications(resources, "VerifiedBucket") == {
        "RegistryQueue": {"prefix": layout.VERIFIED_ROOT, "suffix": layout.VERIFIED_SUFFIX},
    }


@pytest.mark.parametrize(
    ("bucket_id", "policy_id", "queue_ids"),
    [
        ("RawBucket", "RawNotificationQueuePolicy", {"TelemetryProcessingQueue", "OtlpLogsProcessingQueue"}),
        ("VerifiedBucket", "VerifiedNotificationQueuePolicy", {"RegistryQueue"}),
    ],
)
def test_queue_policy_admits_the_bucket_by_name_before_notifications_exist(
    resources: Resources, bucket_id: str, policy_id: str, queue_ids: set[str]
) -> None:
    assert policy_id in resources[bucket_id]["DependsOn"]
    policy = _props(resources, policy_id)
    assert {target(q) for q in policy["Queues"]} == queue_ids
    allow = next(s for s in policy["PolicyDocument"]["Statement"] if s["Effect"] == "Allow")
    assert allow["Principal"] == {"Service": "s3.amazonaws.com"}
    assert allow["Action"] == "sqs:SendMessage"
    source_arn = allow["Condition"]["ArnEquals"]["aws:SourceArn"]["Fn::Sub"]
    bucket_name = _props(resources, bucket_id)["BucketName"]["Fn::Sub"]
    # Built from the bucket's name: a Ref/GetAtt of the bucket here would be a dependency cycle.
    assert source_arn == f"arn:${{AWS::Partition}}:s3:::{bucket_name}"
    assert bucket_id not in _intrinsic_targets(policy)


def _intrinsic_targets(value: Any) -> set[str]:
    if isinstance(value, dict):
        found = {target(value)} if set(value) & {"Ref", "Fn::GetAtt"} else set()
        for name, item in value.items():
            found |= _intrinsic_targets(item)
            if name == "Fn::Sub":
                text = item[0] if isinstance(item, list) else item
                found |= {ref.split(".")[0] for ref in re.findall(r"\$\{([^}!]+)\}", text)}
        return found
    if isinstance(value, list):
        return set().union(*(_intrinsic_targets(item) for item in value)) if value else set()
    return set()


# --- Firehose ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stream_id", "name", "source"),
    [
        ("TelemetryFirehose", "telemetry-signals-lake-firehose", Source.JSON_TELEMETRY),
        ("OtlpFirehose", "otlp-logs-firehose", Source.OTLP_LOGS),
    ],
)
def test_firehose_lands_gzip_under_its_raw_prefix_and_errors_outside_raw(
    resources: Resources, stream_id: str, name: str, source: Source
) -> None:
    props = _props(resources, stream_id)
    assert props["DeliveryStreamName"] == name
    destination = props["ExtendedS3DestinationConfiguration"]
    assert destination["CompressionFormat"] == "GZIP"
    assert destination["Prefix"] == f"{layout.raw_prefix(source)}!{{timestamp:yyyy/MM/dd/HH}}/"
    error_prefix = destination["ErrorOutputPrefix"]
    assert "!{firehose:error-output-type}" in error_prefix
    assert not error_prefix.startswith(layout.RAW_ROOT)
    assert target(destination["BufferingHints"]["IntervalInSeconds"]) == "FirehoseBufferSeconds"
    assert target(destination["BufferingHints"]["SizeInMBs"]) == "FirehoseBufferMiB"


# --- API -----------------------------------------------------------------------------------------


def _rest_api(resources: Resources) -> dict[str, Any]:
    ((_, api),) = of_type(resources, "AWS::ApiGateway::RestApi")
    return dict(api["Properties"])


def test_every_route_requires_the_api_key(resources: Resources) -> None:
    body = _rest_api(resources)["Body"]
    routes = {(path, method) for path, methods in body["paths"].items() for method in methods}
    assert routes == {("/v1/telemetry", "post"), ("/v1/logs", "post")}
    for methods in body["paths"].values():
        for operation in methods.values():
            assert operation["security"] == [{"api_key": []}]
            assert operation["x-amazon-apigateway-integration"]["type"] == "aws_proxy"
    assert body["securityDefinitions"]["api_key"] == {"type": "apiKey", "name": "x-api-key", "in": "header"}


def test_binary_media_types_pass_protobuf_and_compressed_bodies_through(resources: Resources) -> None:
    api = _rest_api(resources)
    assert "application~1x-protobuf" in api["BinaryMediaTypes"]  # `~1` is how API Gateway spells `/`
    binary = api["Body"]["x-amazon-apigateway-binary-media-types"]
    assert "application/x-protobuf" in binary
    assert "*/*" in binary  # gzip bodies arrive with text content types


def test_usage_plan_throttles_and_quotas_the_api_key(resources: Resources) -> None:
    ((plan_id, plan),) = of_type(resources, "AWS::ApiGateway::UsagePlan")
    props = plan["Properties"]
    assert props["Throttle"] == {"RateLimit": 500, "BurstLimit": 1000}  # parameter defaults
    assert props["Quota"]["Period"] == "DAY"
    ((_, key),) = of_type(resources, "AWS::ApiGateway::ApiKey")
    assert key["Properties"]["Enabled"] is True
    ((_, link),) = of_type(resources, "AWS::ApiGateway::UsagePlanKey")
    assert target(link["Properties"]["UsagePlanId"]) == plan_id


def test_custom_domain_only_when_domain_and_certificate_are_given(template: dict[str, Any]) -> None:
    resources = template["Resources"]
    assert resources["ApiDomainName"]["Condition"] == "HasCustomDomain"
    assert resources["ApiBasePathMapping"]["Condition"] == "HasCustomDomain"
    assert resources["ApiDnsRecord"]["Condition"] == "HasDnsRecord"
    condition = template["Conditions"]["HasCustomDomain"]["Fn::And"]
    assert {"Ref": "CustomDomainName"} in condition[0]["Fn::Not"][0]["Fn::Equals"]
    assert {"Ref": "CertificateArn"} in condition[1]["Fn::Not"][0]["Fn::Equals"]


# --- schedule ------------------------------------------------------------------------------------


def _rule_of(resources: Resources, function_id: str) -> dict[str, Any]:
    (rule,) = [r for _, r in of_type(resources, "AWS::Events::Rule")
               if [target(t["Arn"]) for t in r["Properties"]["Targets"]] == [function_id]]
    return rule


def test_reconciler_runs_every_15_minutes_on_the_named_rule(resources: Resources) -> None:
    props = _rule_of(resources, "ReconcilerFunction")["Properties"]
    assert props["ScheduleExpression"] == "cron(0/15 * * * ? *)"
    assert props["Name"] == {"Fn::Sub": "${Environment}-tps-telemetry-registry-reconciler"}
    assert props["State"] == "ENABLED"
    assert [target(t["Arn"]) for t in props["Targets"]] == ["ReconcilerFunction"]
    reconciler = _props(resources, "ReconcilerFunction")
    assert reconciler["Timeout"] < 15 * 60  # a run ends before the next starts
    assert reconciler["ReservedConcurrentExecutions"] == 1


# --- functions -----------------------------------------------------------------------------------


@pytest.mark.parametrize("function_id", list(FUNCTIONS))
def test_function_runtime_handler_and_environment(resources: Resources, function_id: str) -> None:
    package, config_class = FUNCTIONS[function_id]
    props = _props(resources, function_id)
    assert props["Runtime"] == "python3.13"
    assert props["Architectures"] == ["arm64"]
    assert props["TracingConfig"] == {"Mode": "Active"}
    assert props["Handler"] == f"{package}.app.handler"
    variables = props["Environment"]["Variables"]
    assert variables["POWERTOOLS_SERVICE_NAME"] == package
    assert variables["POWERTOOLS_METRICS_NAMESPACE"] == "SignalsPipeline"
    # Lambda filters JSON logs by ApplicationLogLevel: Powertools' level must be the same one.
    assert props["LoggingConfig"]["LogFormat"] == "JSON"
    assert props["LoggingConfig"]["ApplicationLogLevel"] == variables["POWERTOOLS_LOG_LEVEL"] == {"Ref": "LogLevel"}
    config_names = {config_class.env_name(name) for name in config_class.model_fields}
    required = {config_class.env_name(name) for name, f in config_class.model_fields.items() if f.is_required()}
    own = {name for name in variables if not name.startswith("POWERTOOLS_")}
    assert required <= own, f"missing {required - own}"
    assert own <= config_names, f"not read by {config_class.__name__}: {own - config_names}"


@pytest.mark.parametrize("function_id", list(FUNCTIONS))
def test_function_logs_go_to_an_explicit_group_with_retention(resources: Resources, function_id: str) -> None:
    group_id = target(_props(resources, function_id)["LoggingConfig"]["LogGroup"])
    group = _props(resources, group_id)
    assert group["LogGroupName"] == f"/aws/lambda/{_props(resources, function_id)['FunctionName']}"
    assert target(group["RetentionInDays"]) == "LogRetentionDays"


def test_every_log_group_has_retention(resources: Resources) -> None:
    groups = list(of_type(resources, "AWS::Logs::LogGroup"))
    assert len(groups) >= 6
    for _, group in groups:
        assert "RetentionInDays" in group["Properties"]


def test_reconciler_sends_to_the_redrive_queue_the_parser_consumes(resources: Resources) -> None:
    variables = _props(resources, "ReconcilerFunction")["Environment"]["Variables"]
    assert target(variables["REDRIVE_QUEUE_URL"]) == "RedriveQueue"
    assert "ParserFunction" in {target(m["FunctionName"]) for m in _event_source_mappings(resources)["RedriveQueue"]}


# --- IAM -----------------------------------------------------------------------------------------


def _statements(role: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for policy in role["Properties"].get("Policies", []) for s in policy["PolicyDocument"]["Statement"]]


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_function_roles_are_explicit_without_managed_policies(resources: Resources) -> None:
    for function_id in FUNCTIONS:
        role_id = target(_props(resources, function_id)["Role"])
        role = resources[role_id]
        assert role["Type"] == "AWS::IAM::Role"
        assert not role["Properties"].get("ManagedPolicyArns"), f"{role_id} attaches managed policies"


def test_data_actions_are_scoped_to_named_resources(resources: Resources) -> None:
    checked = 0
    for role_id, role in of_type(resources, "AWS::IAM::Role"):
        for statement in _statements(role):
            actions = [str(a) for a in _as_list(statement["Action"])]
            data_actions = [a for a in actions if a == "*" or a.split(":")[0] in SCOPED_SERVICES]
            if not data_actions:
                continue
            checked += 1
            assert statement["Effect"] == "Allow"
            for action in data_actions:
                assert not action.endswith(":*"), f"{role_id}: wildcard action {action}"
                assert action != "*", f"{role_id}: wildcard action"
            for resource in _as_list(statement["Resource"]):
                assert resource != "*", f"{role_id} grants {data_actions} on *"
                text = resource if isinstance(resource, str) else repr(resource)
                assert not re.search(r":::\*|:\*$", text), f"{role_id}: {text}"
    assert checked >= 10


def test_parser_writes_only_under_the_verified_quarantine_and_drift_roots(resources: Resources) -> None:
    role = resources[target(_props(resources, "ParserFunction")["Role"])]
    puts = [s for s in _statements(role) if "s3:PutObject" in _as_list(s["Action"])]
    resources_written = sorted(str(r["Fn::Sub"]) for s in puts for r in _as_list(s["Resource"]))
    assert resources_written == [
        f"${{QuarantineBucket.Arn}}/{layout.QUARANTINE_ROOT}*",
        f"${{QuarantineBucket.Arn}}/{layout.DRIFT_ROOT}*",
        f"${{VerifiedBucket.Arn}}/{layout.VERIFIED_ROOT}*",
    ]


# --- storage -------------------------------------------------------------------------------------


def test_registry_table_matches_the_key_design(resources: Resources) -> None:
    props = _props(resources, "RegistryTable")
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["KeySchema"] == [
        {"AttributeName": registry_keys.PK, "KeyType": "HASH"},
        {"AttributeName": registry_keys.SK, "KeyType": "RANGE"},
    ]
    (index,) = props["GlobalSecondaryIndexes"]
    assert index["IndexName"] == registry_keys.STATUS_INDEX
    assert index["KeySchema"] == [
        {"AttributeName": registry_keys.STATUS_ATTR, "KeyType": "HASH"},
        {"AttributeName": registry_keys.STATUS_SORT_ATTR, "KeyType": "RANGE"},
    ]
    assert all(a["AttributeType"] == "S" for a in props["AttributeDefinitions"])
    # What tests and benchmarks create for themselves is the table the template deploys.
    request = registry_keys.create_table_request("any")
    assert request["KeySchema"] == props["KeySchema"]
    assert request["GlobalSecondaryIndexes"][0]["KeySchema"] == index["KeySchema"]
    assert sorted(map(str, request["AttributeDefinitions"])) == sorted(map(str, props["AttributeDefinitions"]))


def test_buckets_are_private_encrypted_and_tls_only(resources: Resources) -> None:
    buckets = dict(of_type(resources, "AWS::S3::Bucket"))
    assert len(buckets) == 7
    policies = {
        target(p["Properties"]["Bucket"]): p["Properties"] for _, p in of_type(resources, "AWS::S3::BucketPolicy")
    }
    for bucket_id, bucket in buckets.items():
        props = bucket["Properties"]
        assert all(props["PublicAccessBlockConfiguration"].values()), bucket_id
        assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        assert "LifecycleConfiguration" in props, bucket_id
        deny = [s for s in policies[bucket_id]["PolicyDocument"]["Statement"] if s["Effect"] == "Deny"]
        assert deny, bucket_id
        assert deny[0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}, bucket_id


def test_raw_and_quarantine_expire_and_raw_and_verified_are_inventoried(resources: Resources) -> None:
    raw_rules = {r["Id"]: r for r in _props(resources, "RawBucket")["LifecycleConfiguration"]["Rules"]}
    assert target(raw_rules["raw-tiering-and-expiry"]["ExpirationInDays"]) == "RawRetentionDays"
    quarantine_rules = _props(resources, "QuarantineBucket")["LifecycleConfiguration"]["Rules"]
    assert any(target(r.get("ExpirationInDays", {"Ref": ""})) == "QuarantineRetentionDays" for r in quarantine_rules)
    for bucket_id in ("RawBucket", "VerifiedBucket"):
        (inventory,) = _props(resources, bucket_id)["InventoryConfigurations"]
        assert target(inventory["Destination"]["BucketArn"]) == "InventoryBucket"


def test_names_as_the_running_system_has_them(resources: Resources) -> None:
    def name(logical_id: str, key: str) -> Any:
        return _props(resources, logical_id)[key]

    assert name("RawBucket", "BucketName") == {"Fn::Sub": "${Environment}-signal-data-lake-raw"}
    assert name("VerifiedBucket", "BucketName") == {"Fn::Sub": "${Environment}-verified-parquet-v2-${AWS::AccountId}"}
    assert name("QuarantineBucket", "BucketName") == {
        "Fn::Sub": "${Environment}-parquet-output-simple-quarantine-${AWS::AccountId}"
    }
    assert name("AthenaResultsBucket", "BucketName") == {
        "Fn::Sub": "${Environment}-athena-query-results-${AWS::AccountId}"
    }
    assert name("InventoryBucket", "BucketName") == {"Fn::Sub": "${Environment}-tps-s3-inventory-${AWS::AccountId}"}
    assert name("RegistryTable", "TableName") == {"Fn::Sub": "${Environment}-tps-telemetry-file-registry-v2"}
    assert name("IngesterFunction", "FunctionName") == "telemetry-signals-ingester"
    assert name("ParserFunction", "FunctionName") == "telemetry-parser-service"
    assert _rest_api(resources)["Name"] == "telemetry-signals-ingester-api"
    workgroups = sorted(wg["Properties"]["Name"]["Fn::Sub"] for _, wg in of_type(resources, "AWS::Athena::WorkGroup"))
    kinds = ("human", "dbt", "signals_e2e", "registry", "s3_inventory")
    assert workgroups == sorted(f"${{Environment}}-tps-telemetry-{kind}-wg" for kind in kinds)
    dashboards = sorted(d["Properties"]["DashboardName"] for _, d in of_type(resources, "AWS::CloudWatch::Dashboard"))
    assert dashboards == ["telemetry-app-metrics", "telemetry-parser-metrics"]


# --- alarms --------------------------------------------------------------------------------------


def _alarms(resources: Resources) -> list[dict[str, Any]]:
    return [a["Properties"] for _, a in of_type(resources, "AWS::CloudWatch::Alarm")]


def _dimension_target(alarm: dict[str, Any]) -> str | None:
    for dimension in alarm["Dimensions"]:
        value = dimension["Value"]
        if isinstance(value, dict):
            return target(value)
    return None


def test_every_dlq_alarms_on_its_first_message(resources: Resources) -> None:
    alarmed = {
        _dimension_target(a) for a in _alarms(resources)
        if a["MetricName"] == "ApproximateNumberOfMessagesVisible"
        and a["Threshold"] == 0 and a["ComparisonOperator"] == "GreaterThanThreshold"
    }
    assert {dlq for _, dlq, _ in QUEUES.values()} <= alarmed


def test_every_queue_alarms_on_message_age(resources: Resources) -> None:
    alarmed = {_dimension_target(a) for a in _alarms(resources) if a["MetricName"] == "ApproximateAgeOfOldestMessage"}
    assert set(QUEUES) <= alarmed


def test_every_function_alarms_on_errors_and_the_api_on_5xx(resources: Resources) -> None:
    alarms = _alarms(resources)
    assert set(FUNCTIONS) <= {_dimension_target(a) for a in alarms if a["MetricName"] == "Errors"}
    (five_xx,) = [a for a in alarms if a["MetricName"] == "5XXError"]
    assert {"Name": "ApiName", "Value": "telemetry-signals-ingester-api"} in five_xx["Dimensions"]
    for alarm in alarms:
        assert alarm["AlarmActions"], alarm["AlarmName"]


# --- outputs -------------------------------------------------------------------------------------


def test_outputs_are_exactly_the_keys_signals_env_reads(translated: dict[str, Any]) -> None:
    expected = {value for name, value in vars(Output).items() if name.isupper()}
    assert set(translated["Outputs"]) == expected


# --- dashboards ----------------------------------------------------------------------------------


def _dashboard(resources: Resources, name: str) -> tuple[dict[str, Any], set[str]]:
    """The dashboard body as JSON (substitutions blanked) and the resources it substitutes in."""
    ((_, dashboard),) = [d for d in of_type(resources, "AWS::CloudWatch::Dashboard")
                         if d[1]["Properties"]["DashboardName"] == name]
    body = dashboard["Properties"]["DashboardBody"]["Fn::Sub"]
    referenced = {ref.split(".")[0] for ref in re.findall(r"\$\{([^}!]+)\}", body)}
    return json.loads(re.sub(r"\$\{[^}!]+\}", "x", body)), referenced


def test_app_dashboard_shows_the_api_ingester_and_both_streams(resources: Resources) -> None:
    body, referenced = _dashboard(resources, "telemetry-app-metrics")
    assert len(body["widgets"]) >= 6
    assert {"IngesterFunction", "TelemetryFirehose", "OtlpFirehose"} <= referenced
    assert "telemetry-signals-ingester-api" in json.dumps(body)


def test_parser_dashboard_shows_every_queue_dlq_and_function(resources: Resources) -> None:
    body, referenced = _dashboard(resources, "telemetry-parser-metrics")
    assert len(body["widgets"]) >= 6
    queues = set(QUEUES) | {dlq for _, dlq, _ in QUEUES.values()}
    assert queues | {"ParserFunction", "RegistryFunction", "ReconcilerFunction", "CompactorFunction"} <= referenced
