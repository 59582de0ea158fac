"""The playbook's resources in the embedded AWS, as CloudFormation creates them from template.yaml.

The pipeline's data path (queues, buckets, table, Glue, workgroups) is created by
`signals.local.provision`; this module creates what an operator looks at with the AWS CLI, with the
settings SAM's transform gives them for Environment=local:

- IAM roles (with their inline policies): moto's Lambda refuses a function whose role is unknown;
- every `AWS::Serverless::Function` as a Lambda function (name, handler, runtime, architecture,
  memory, timeout, description, tracing, tags, its LOCAL environment, reserved concurrency, event
  invoke config) holding a placeholder zip: the code runs in-process (signals.local.runtime) and
  `Invoke` is answered by signals.local.lambda_api, never by moto (it would need Docker);
- each `SQS` event as an event source mapping (batch size, batching window, response types,
  scaling config). moto's SQS would hand every new message to a mapped function itself (through
  Docker), so the mappings are detached from moto's queues once created: they are listed and
  described like the deployed ones while the local pollers (signals.local.pollers) do the polling;
- each `Schedule` event as an EventBridge rule with its schedule expression and Lambda target
  (named as SAM names them); moto never fires it, signals.local.pollers.Schedule does;
- each `AWS::Serverless::Api` as a REST API: its routes as resources with POST methods and
  AWS_PROXY integrations, the stage, the usage plan (throttle, quota) and an API key whose value is
  the local stack's key (so `apigateway get-api-keys --include-values` shows what clients send);
- the SNS alarm topic, the CloudWatch alarms and dashboards (their bodies resolved), the log groups
  with their retention and the log streams.

A test (tests/unit/local/test_resources.py) checks these settings against SAM's own transform.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from signals.local.template import ACCOUNT_ID, ResolvedTemplate, Resource
from signals.local.wiring import FunctionSpec, Wiring

ClientFactory = Callable[[str], Any]

#: What `create_function` stores as each function's code: the code itself runs in-process.
PLACEHOLDER_README: Final = (
    "signals local: this function runs in-process from the project checkout "
    "(signals/local/runtime.py); this archive is a placeholder.\n"
)

#: API Gateway refuses a shorter API key value.
MIN_API_KEY_LENGTH: Final = 20

# CloudWatch alarm properties that PutMetricAlarm takes under the same name.
_ALARM_FIELDS: Final = (
    "AlarmName", "AlarmDescription", "ActionsEnabled", "OKActions", "AlarmActions", "InsufficientDataActions",
    "MetricName", "Namespace", "Statistic", "ExtendedStatistic", "Dimensions", "Period", "Unit",
    "EvaluationPeriods", "DatapointsToAlarm", "Threshold", "ComparisonOperator", "TreatMissingData",
    "EvaluateLowSampleCountPercentile", "Metrics", "ThresholdMetricId",
)


@dataclass(frozen=True)
class FunctionRequests:
    """The Lambda API calls that create one `AWS::Serverless::Function` and its SQS event sources."""

    logical_id: str
    name: str
    create: dict[str, Any]  # CreateFunction without Code
    reserved_concurrency: int | None
    event_invoke_config: dict[str, Any] | None
    mappings: list[dict[str, Any]]  # CreateEventSourceMapping, one per enabled or disabled SQS event
    log_group: str


@dataclass(frozen=True)
class RuleRequests:
    """PutRule and PutTargets for one `Schedule` event of a function."""

    rule: dict[str, Any]
    targets: list[dict[str, Any]]


@dataclass(frozen=True)
class ApiRequests:
    """A REST API, its routes, stage, usage plan and key, from one `AWS::Serverless::Api`."""

    logical_id: str
    create: dict[str, Any]
    routes: list[tuple[str, str, bool, str]]  # (path, method, api key required, function ARN)
    stage_name: str
    stage: dict[str, Any]  # CreateStage extras (tracing, method settings are not sent to moto)
    usage_plan: dict[str, Any] | None  # CreateUsagePlan without apiStages
    api_key_name: str | None


@dataclass
class Provisioned:
    """What was created, for the stack and `signals invoke`."""

    function_arns: dict[str, str] = field(default_factory=dict)  # by function name
    log_groups: dict[str, str] = field(default_factory=dict)  # function name -> log group
    json_logs: set[str] = field(default_factory=set)  # functions whose LoggingConfig.LogFormat is JSON
    rest_api_ids: dict[str, str] = field(default_factory=dict)  # by logical id
    rest_api_stages: dict[str, tuple[str, str]] = field(default_factory=dict)  # logical id -> (name, stage)
    rule_names: list[str] = field(default_factory=list)
    mappings: dict[str, tuple[str, str]] = field(default_factory=dict)  # uuid -> (function name, queue ARN)


# --- from the template ---------------------------------------------------------------------------


def function_requests(template: ResolvedTemplate, spec: FunctionSpec) -> FunctionRequests:
    """CreateFunction and friends for one function, with the local environment `spec` carries."""
    resource = template.resources[spec.logical_id]
    props = resource.properties
    create: dict[str, Any] = {
        "FunctionName": spec.name,
        "Runtime": str(props.get("Runtime", "python3.13")),
        # SAM makes "{LogicalId}Role" for a function without one (see _roles).
        "Role": str(props.get("Role") or f"arn:aws:iam::{template.account_id}:role/{spec.logical_id}Role"),
        "Handler": str(props["Handler"]),
        "Description": str(props.get("Description", "")),
        "Timeout": spec.timeout_seconds,
        "MemorySize": spec.memory_mb,
        "Architectures": [str(a) for a in props.get("Architectures") or ["x86_64"]],
        "Environment": {"Variables": dict(spec.environment)},
        "PackageType": "Zip",
    }
    if str(props.get("Tracing", "")) in ("Active", "PassThrough"):
        create["TracingConfig"] = {"Mode": str(props["Tracing"])}
    tags = {"lambda:createdBy": "SAM", **{str(k): str(v) for k, v in (props.get("Tags") or {}).items()}}
    create["Tags"] = tags
    logging_config = props.get("LoggingConfig")
    if isinstance(logging_config, dict):
        create["LoggingConfig"] = {str(k): str(v) for k, v in logging_config.items()}
    log_group = str((logging_config or {}).get("LogGroup") or f"/aws/lambda/{spec.name}")
    reserved = props.get("ReservedConcurrentExecutions")
    invoke_config = props.get("EventInvokeConfig")
    event_invoke_config = None
    if isinstance(invoke_config, dict):
        event_invoke_config = {
            key: invoke_config[key]
            for key in ("MaximumRetryAttempts", "MaximumEventAgeInSeconds", "DestinationConfig")
            if key in invoke_config
        }
    mappings: list[dict[str, Any]] = []
    for event_name, event in (props.get("Events") or {}).items():
        if event.get("Type") != "SQS":
            continue
        event_props = event.get("Properties") or {}
        mapping: dict[str, Any] = {
            "EventSourceArn": str(event_props["Queue"]),
            "FunctionName": spec.name,
            "BatchSize": int(event_props.get("BatchSize", 10)),
            "Enabled": str(event_props.get("Enabled", True)).lower() != "false",
        }
        if "MaximumBatchingWindowInSeconds" in event_props:
            mapping["MaximumBatchingWindowInSeconds"] = int(event_props["MaximumBatchingWindowInSeconds"])
        if event_props.get("FunctionResponseTypes"):
            mapping["FunctionResponseTypes"] = [str(t) for t in event_props["FunctionResponseTypes"]]
        scaling = event_props.get("ScalingConfig")
        if isinstance(scaling, dict) and "MaximumConcurrency" in scaling:
            mapping["ScalingConfig"] = {"MaximumConcurrency": int(scaling["MaximumConcurrency"])}
        mapping["_event"] = event_name  # not sent: names the mapping in errors
        mappings.append(mapping)
    return FunctionRequests(
        logical_id=spec.logical_id,
        name=spec.name,
        create=create,
        reserved_concurrency=int(reserved) if reserved is not None else None,
        event_invoke_config=event_invoke_config,
        mappings=mappings,
        log_group=log_group,
    )


def rule_requests(template: ResolvedTemplate, logical_id: str) -> list[RuleRequests]:
    """The EventBridge rules SAM makes of a function's `Schedule` events."""
    resource = template.resources[logical_id]
    function_arn = template.arn(logical_id)
    rules: list[RuleRequests] = []
    for event_name, event in (resource.properties.get("Events") or {}).items():
        if event.get("Type") != "Schedule":
            continue
        props = event.get("Properties") or {}
        enabled = str(props.get("Enabled", True)).lower() != "false"
        state = str(props.get("State") or ("ENABLED" if enabled else "DISABLED"))
        rule: dict[str, Any] = {
            "Name": str(props.get("Name") or f"{template.stack_name}-{logical_id}{event_name}"),
            "ScheduleExpression": str(props["Schedule"]),
            "State": state,
        }
        if props.get("Description"):
            rule["Description"] = str(props["Description"])
        target: dict[str, Any] = {"Id": f"{logical_id}{event_name}LambdaTarget", "Arn": function_arn}
        if isinstance(props.get("RetryPolicy"), dict):
            target["RetryPolicy"] = {k: int(v) for k, v in props["RetryPolicy"].items()}
        if props.get("Input") is not None:
            target["Input"] = str(props["Input"])
        rules.append(RuleRequests(rule=rule, targets=[target]))
    return rules


def api_requests(template: ResolvedTemplate, api: Resource, functions: list[Resource]) -> ApiRequests:
    """The REST API SAM builds from an `AWS::Serverless::Api` and the `Api` events that name it."""
    props = api.properties
    auth = props.get("Auth") or {}
    create: dict[str, Any] = {"name": str(props.get("Name") or template.stack_name)}
    if props.get("Description"):
        create["description"] = str(props["Description"])
    types = props.get("BinaryMediaTypes") or []
    if types:
        create["binaryMediaTypes"] = [str(t).replace("~1", "/") for t in types]
    endpoint = (props.get("EndpointConfiguration") or {}).get("Type")
    if endpoint:
        create["endpointConfiguration"] = {"types": [str(endpoint)]}
    routes: list[tuple[str, str, bool, str]] = []
    for function in functions:
        for event in (function.properties.get("Events") or {}).values():
            event_props = event.get("Properties") or {}
            if event.get("Type") != "Api" or event_props.get("RestApiId") not in (None, api.logical_id,
                                                                                 template.physical_name(api.logical_id)):
                continue
            required = (event_props.get("Auth") or {}).get("ApiKeyRequired", auth.get("ApiKeyRequired", False))
            routes.append((str(event_props["Path"]), str(event_props.get("Method", "ANY")).upper(),
                           str(required).lower() == "true", template.arn(function.logical_id)))
    stage: dict[str, Any] = {}
    if str(props.get("TracingEnabled", "")).lower() == "true":
        stage["tracingEnabled"] = True
    usage_plan: dict[str, Any] | None = None
    api_key_name = None
    plan = auth.get("UsagePlan") or {}
    if plan.get("CreateUsagePlan") in ("PER_API", "SHARED"):
        usage_plan = {"name": str(plan.get("UsagePlanName") or f"{api.logical_id}UsagePlan")}
        if plan.get("Description"):
            usage_plan["description"] = str(plan["Description"])
        if plan.get("Throttle"):
            usage_plan["throttle"] = {"rateLimit": float(plan["Throttle"]["RateLimit"]),
                                      "burstLimit": int(plan["Throttle"]["BurstLimit"])}
        if plan.get("Quota"):
            usage_plan["quota"] = {"limit": int(plan["Quota"]["Limit"]), "period": str(plan["Quota"]["Period"])}
        # CloudFormation names an ApiKey without a Name after the stack and the logical id.
        api_key_name = f"{template.stack_name}-{api.logical_id}ApiKey"
    return ApiRequests(
        logical_id=api.logical_id,
        create=create,
        routes=routes,
        stage_name=str(props.get("StageName") or "Prod"),
        stage=stage,
        usage_plan=usage_plan,
        api_key_name=api_key_name,
    )


def alarm_request(resource: Resource) -> dict[str, Any]:
    props = resource.properties
    request: dict[str, Any] = {key: props[key] for key in _ALARM_FIELDS if key in props}
    for key in ("Period", "EvaluationPeriods", "DatapointsToAlarm"):
        if key in request:
            request[key] = int(request[key])
    if "Threshold" in request:
        request["Threshold"] = float(request["Threshold"])
    if "ActionsEnabled" in request:
        request["ActionsEnabled"] = str(request["ActionsEnabled"]).lower() == "true"
    return request


def placeholder_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("README-signals-local.txt", PLACEHOLDER_README)
    return buffer.getvalue()


# --- into the embedded AWS -----------------------------------------------------------------------


def provision_resources(wiring: Wiring, client: ClientFactory, *, api_key: str) -> Provisioned:
    """Create the resources above in the embedded AWS; `client(service)` is bound to it."""
    template = wiring.template
    provisioned = Provisioned()
    _log_groups(template, client("logs"))
    _roles(template, client("iam"))
    _topics(template, client("sns"))
    lambda_client = client("lambda")
    code = placeholder_zip()
    for spec in wiring.functions.values():
        requests = function_requests(template, spec)
        arn = _function(lambda_client, requests, code)
        provisioned.function_arns[spec.name] = arn
        provisioned.log_groups[spec.name] = requests.log_group
        if requests.create.get("LoggingConfig", {}).get("LogFormat") == "JSON":
            provisioned.json_logs.add(spec.name)
        for mapping in requests.mappings:
            sent = {k: v for k, v in mapping.items() if not k.startswith("_")}
            uuid = lambda_client.create_event_source_mapping(**sent)["UUID"]
            provisioned.mappings[uuid] = (spec.name, str(sent["EventSourceArn"]))
    _detach_moto_event_sources(template)
    events = client("events")
    for function in template.of_type("AWS::Serverless::Function"):
        for rule in rule_requests(template, function.logical_id):
            events.put_rule(**rule.rule)
            events.put_targets(Rule=rule.rule["Name"], Targets=rule.targets)
            provisioned.rule_names.append(rule.rule["Name"])
    apigateway = client("apigateway")
    functions = template.of_type("AWS::Serverless::Function")
    for api in template.of_type("AWS::Serverless::Api"):
        requests_ = api_requests(template, api, functions)
        provisioned.rest_api_ids[api.logical_id] = _rest_api(apigateway, requests_, template.region, api_key)
        provisioned.rest_api_stages[api.logical_id] = (str(requests_.create["name"]), requests_.stage_name)
    cloudwatch = client("cloudwatch")
    for resource in template.of_type("AWS::CloudWatch::Alarm"):
        cloudwatch.put_metric_alarm(**alarm_request(resource))
    for resource in template.of_type("AWS::CloudWatch::Dashboard"):
        body = resource.properties["DashboardBody"]
        cloudwatch.put_dashboard(
            DashboardName=template.physical_name(resource.logical_id),
            DashboardBody=body if isinstance(body, str) else json.dumps(body),
        )
    return provisioned


def _log_groups(template: ResolvedTemplate, logs: Any) -> None:
    for resource in template.of_type("AWS::Logs::LogGroup"):
        name = template.physical_name(resource.logical_id)
        logs.create_log_group(logGroupName=name)
        retention = resource.properties.get("RetentionInDays")
        if retention is not None:
            logs.put_retention_policy(logGroupName=name, retentionInDays=int(retention))
    for resource in template.of_type("AWS::Logs::LogStream"):
        logs.create_log_stream(
            logGroupName=str(resource.properties["LogGroupName"]),
            logStreamName=str(resource.properties.get("LogStreamName") or resource.logical_id),
        )


def _roles(template: ResolvedTemplate, iam: Any) -> None:
    for resource in template.of_type("AWS::IAM::Role"):
        props = resource.properties
        name = template.physical_name(resource.logical_id)
        request: dict[str, Any] = {
            "RoleName": name,
            "AssumeRolePolicyDocument": json.dumps(props["AssumeRolePolicyDocument"]),
        }
        if props.get("Path"):
            request["Path"] = str(props["Path"])
        if props.get("Description"):
            request["Description"] = str(props["Description"])
        iam.create_role(**request)
        for policy in props.get("Policies") or []:
            iam.put_role_policy(RoleName=name, PolicyName=str(policy["PolicyName"]),
                                PolicyDocument=json.dumps(policy["PolicyDocument"]))
    # A function without a Role gets one from SAM ("{LogicalId}Role"); moto's Lambda needs it to exist.
    for function in template.of_type("AWS::Serverless::Function"):
        if not function.properties.get("Role"):
            iam.create_role(RoleName=f"{function.logical_id}Role", AssumeRolePolicyDocument=json.dumps({
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                               "Action": "sts:AssumeRole"}],
            }))


def _topics(template: ResolvedTemplate, sns: Any) -> None:
    for resource in template.of_type("AWS::SNS::Topic"):
        sns.create_topic(Name=template.physical_name(resource.logical_id))


def _function(lambda_client: Any, requests: FunctionRequests, code: bytes) -> str:
    created = lambda_client.create_function(**requests.create, Code={"ZipFile": code})
    if requests.reserved_concurrency is not None:
        lambda_client.put_function_concurrency(
            FunctionName=requests.name, ReservedConcurrentExecutions=requests.reserved_concurrency
        )
    if requests.event_invoke_config:
        lambda_client.put_function_event_invoke_config(FunctionName=requests.name, **requests.event_invoke_config)
    arn: str = created["FunctionArn"]
    return arn


def _detach_moto_event_sources(template: ResolvedTemplate) -> None:
    """Keep the mappings listed, but stop moto's SQS from invoking (through Docker) on every message.

    moto hands each message sent to a queue with a mapping to the function itself, synchronously
    and outside the template's batching; the local pollers are the event source instead.
    """
    from moto.sqs.models import sqs_backends  # noqa: PLC0415 (moto runs in this process: the gateway)

    backend = sqs_backends[template.account_id][template.region]
    for queue in backend.queues.values():
        queue.lambda_event_source_mappings.clear()


def _set_short_key_value(region: str, key_id: str, value: str) -> None:
    """Register a local key shorter than API Gateway allows (20), so get-api-keys shows what clients send.

    The ingest API accepts any `--api-key`; API Gateway would refuse one this short, so the key is
    created with a generated value and given the local one in moto's backend (this process).
    """
    from moto.apigateway.models import apigateway_backends  # noqa: PLC0415

    apigateway_backends[ACCOUNT_ID][region].keys[key_id].value = value


def _rest_api(apigateway: Any, requests: ApiRequests, region: str, api_key: str) -> str:
    create = {k: v for k, v in requests.create.items() if k != "binaryMediaTypes"}
    api_id: str = apigateway.create_rest_api(**create)["id"]
    # moto's CreateRestApi drops binaryMediaTypes; UpdateRestApi's "add" keeps them.
    media_types = requests.create.get("binaryMediaTypes") or []
    if media_types:
        apigateway.update_rest_api(restApiId=api_id, patchOperations=[
            {"op": "add", "path": "/binaryMediaTypes/" + t.replace("/", "~1"), "value": t} for t in media_types
        ])
    resources = apigateway.get_resources(restApiId=api_id)["items"]
    by_path: dict[str, str] = {item["path"]: item["id"] for item in resources}
    for path, method, key_required, function_arn in requests.routes:
        parent = by_path["/"]
        current = ""
        for part in [p for p in path.split("/") if p]:
            current += f"/{part}"
            if current not in by_path:
                by_path[current] = apigateway.create_resource(restApiId=api_id, parentId=parent, pathPart=part)["id"]
            parent = by_path[current]
        apigateway.put_method(restApiId=api_id, resourceId=parent, httpMethod=method,
                              authorizationType="NONE", apiKeyRequired=key_required)
        apigateway.put_integration(
            restApiId=api_id, resourceId=parent, httpMethod=method, type="AWS_PROXY", integrationHttpMethod="POST",
            uri=f"arn:aws:apigateway:{region}:lambda:path/2015-03-31/functions/{function_arn}/invocations",
        )
    apigateway.create_deployment(restApiId=api_id, stageName=requests.stage_name, **requests.stage)
    if requests.usage_plan is not None:
        plan = apigateway.create_usage_plan(
            **requests.usage_plan, apiStages=[{"apiId": api_id, "stage": requests.stage_name}]
        )
        key = apigateway.create_api_key(
            name=requests.api_key_name, enabled=True,
            stageKeys=[{"restApiId": api_id, "stageName": requests.stage_name}],
            **({"value": api_key} if len(api_key) >= MIN_API_KEY_LENGTH else {}),
        )
        if len(api_key) < MIN_API_KEY_LENGTH:
            _set_short_key_value(region, key["id"], api_key)
        apigateway.create_usage_plan_key(usagePlanId=plan["id"], keyId=key["id"], keyType="API_KEY")
    return api_id
