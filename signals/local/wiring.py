"""What the template declares, as the local stack needs it: queues, streams, functions and their events.

Everything here is read from the resolved template (`ResolvedTemplate`), never listed by hand. The
local timing overrides (`LocalTimings`) are applied in one place, `QueueSpec.local_visibility` and
`SqsEventSpec.local_window`, so docs/local-stack.md can say exactly what changes locally.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from signals.local.template import ResolvedTemplate, Resource, TemplateError


@dataclass(frozen=True)
class LocalTimings:
    """Local replacements for production-sized timings (documented in docs/local-stack.md).

    visibility_seconds: every queue's VisibilityTimeout (the template sizes it at >= 6x the consumer's
      Lambda timeout, hours in total before a poison message reaches its DLQ).
    max_batching_window_seconds: upper bound for each SQS event source's MaximumBatchingWindowInSeconds.
    buffer_seconds: each Firehose stream's IntervalInSeconds, when set.
    reconcile_seconds: period of every scheduled function (EventBridge schedules).
    """

    visibility_seconds: int = 3
    max_batching_window_seconds: float = 0.5
    buffer_seconds: float | None = None
    reconcile_seconds: float = 60.0


@dataclass(frozen=True)
class QueueSpec:
    logical_id: str
    name: str
    url: str
    arn: str
    visibility_timeout: int  # as the template says
    dlq_arn: str | None
    max_receive_count: int | None
    attributes: dict[str, str]

    def local_visibility(self, timings: LocalTimings) -> int:
        return min(self.visibility_timeout, timings.visibility_seconds)


@dataclass(frozen=True)
class SqsEventSpec:
    name: str
    queue_arn: str
    batch_size: int
    window_seconds: float
    report_batch_item_failures: bool
    enabled: bool

    def local_window(self, timings: LocalTimings) -> float:
        return min(self.window_seconds, timings.max_batching_window_seconds)


@dataclass(frozen=True)
class ScheduleSpec:
    name: str
    expression: str
    enabled: bool
    rule_name: str


@dataclass(frozen=True)
class ApiRoute:
    method: str
    path: str

    def matches(self, method: str, path: str) -> bool:
        if self.method not in ("ANY", method.upper()):
            return False
        pattern = re.sub(r"\\\{[^}]+\\\+\\\}", ".+", re.escape(self.path))
        pattern = re.sub(r"\\\{[^}]+\\\}", "[^/]+", pattern)
        return re.fullmatch(pattern, path) is not None


@dataclass(frozen=True)
class FunctionSpec:
    logical_id: str
    name: str
    module: str  # dotted module holding `build_handler`
    environment: dict[str, str]
    timeout_seconds: int
    memory_mb: int
    sqs_events: tuple[SqsEventSpec, ...] = ()
    schedules: tuple[ScheduleSpec, ...] = ()
    routes: tuple[ApiRoute, ...] = ()


@dataclass(frozen=True)
class StreamSpec:
    logical_id: str
    name: str
    bucket: str
    prefix: str
    error_output_prefix: str
    interval_seconds: float
    size_mb: float
    compression: str
    # Reported by DescribeDeliveryStream as the template sets them (no local effect):
    role_arn: str = ""
    encryption_key_type: str | None = None  # DeliveryStreamEncryptionConfigurationInput.KeyType
    cloudwatch_logging: tuple[bool, str, str] | None = None  # (Enabled, LogGroupName, LogStreamName)

    @property
    def arn(self) -> str:
        return f"arn:aws:firehose:us-west-2:123456789012:deliverystream/{self.name}"


@dataclass(frozen=True)
class NotificationSpec:
    bucket: str
    queue_arn: str
    events: tuple[str, ...]
    filter_rules: tuple[tuple[str, str], ...]


@dataclass
class Wiring:
    template: ResolvedTemplate
    queues: dict[str, QueueSpec] = field(default_factory=dict)  # by ARN
    functions: dict[str, FunctionSpec] = field(default_factory=dict)  # by logical id
    streams: dict[str, StreamSpec] = field(default_factory=dict)  # by name
    notifications: list[NotificationSpec] = field(default_factory=list)
    binary_media_types: tuple[str, ...] = ()
    stage_name: str = "local"

    def queue_by_name(self, name: str) -> QueueSpec:
        for queue in self.queues.values():
            if queue.name == name:
                return queue
        raise KeyError(name)

    def function_by_module(self, module: str) -> FunctionSpec:
        for function in self.functions.values():
            if function.module == module:
                return function
        raise KeyError(module)


def read_wiring(template: ResolvedTemplate) -> Wiring:
    wiring = Wiring(template=template)
    for resource in template.of_type("AWS::SQS::Queue"):
        queue = _queue(template, resource)
        wiring.queues[queue.arn] = queue
    for resource in template.of_type("AWS::KinesisFirehose::DeliveryStream"):
        stream = _stream(template, resource)
        wiring.streams[stream.name] = stream
    for resource in template.of_type("AWS::S3::Bucket"):
        wiring.notifications.extend(_notifications(template, resource))
    for resource in template.of_type("AWS::Serverless::Function"):
        function = _function(template, resource)
        wiring.functions[function.logical_id] = function
    for resource in (*template.of_type("AWS::Serverless::Api"), *template.of_type("AWS::ApiGateway::RestApi")):
        types = resource.properties.get("BinaryMediaTypes") or []
        wiring.binary_media_types += tuple(str(t).replace("~1", "/") for t in types)
        wiring.stage_name = str(resource.properties.get("StageName") or wiring.stage_name)
    return wiring


def _queue(template: ResolvedTemplate, resource: Resource) -> QueueSpec:
    props = resource.properties
    name = template.physical_name(resource.logical_id)
    redrive = props.get("RedrivePolicy")
    if isinstance(redrive, str):
        redrive = json.loads(redrive)
    attributes: dict[str, str] = {
        key: str(props[key])
        for key in ("MessageRetentionPeriod", "DelaySeconds", "ReceiveMessageWaitTimeSeconds", "MaximumMessageSize")
        if key in props
    }
    return QueueSpec(
        logical_id=resource.logical_id,
        name=name,
        url=template.queue_url(name),
        arn=template.arn(resource.logical_id),
        visibility_timeout=int(props.get("VisibilityTimeout", 30)),
        dlq_arn=str(redrive["deadLetterTargetArn"]) if redrive else None,
        max_receive_count=int(redrive["maxReceiveCount"]) if redrive else None,
        attributes=attributes,
    )


def _stream(template: ResolvedTemplate, resource: Resource) -> StreamSpec:
    props = resource.properties
    destination: dict[str, Any] = props.get("ExtendedS3DestinationConfiguration") or props.get(
        "S3DestinationConfiguration"
    ) or {}
    if not destination:
        raise TemplateError(f"{resource.logical_id}: only S3 destinations are supported locally")
    hints = destination.get("BufferingHints") or {}
    log_options = destination.get("CloudWatchLoggingOptions") or {}
    return StreamSpec(
        logical_id=resource.logical_id,
        name=template.physical_name(resource.logical_id),
        bucket=str(destination["BucketARN"]).split(":::", 1)[-1],
        prefix=str(destination.get("Prefix") or ""),
        error_output_prefix=str(destination.get("ErrorOutputPrefix") or ""),
        interval_seconds=float(hints.get("IntervalInSeconds", 300)),
        size_mb=float(hints.get("SizeInMBs", 5)),
        compression=str(destination.get("CompressionFormat") or "UNCOMPRESSED"),
        role_arn=str(destination.get("RoleARN") or ""),
        encryption_key_type=(props.get("DeliveryStreamEncryptionConfigurationInput") or {}).get("KeyType"),
        cloudwatch_logging=(bool(log_options.get("Enabled")), str(log_options.get("LogGroupName") or ""),
                            str(log_options.get("LogStreamName") or "")) if log_options else None,
    )


def _notifications(template: ResolvedTemplate, resource: Resource) -> list[NotificationSpec]:
    config = resource.properties.get("NotificationConfiguration") or {}
    bucket = template.physical_name(resource.logical_id)
    result: list[NotificationSpec] = []
    for entry in config.get("QueueConfigurations") or []:
        rules = ((entry.get("Filter") or {}).get("S3Key") or {}).get("Rules") or []
        result.append(
            NotificationSpec(
                bucket=bucket,
                queue_arn=str(entry["Queue"]),
                events=(str(entry["Event"]),),
                filter_rules=tuple((str(r["Name"]).lower(), str(r["Value"])) for r in rules),
            )
        )
    return result


def _module_of(code_uri: str, handler: str) -> str:
    module_path = handler.rsplit(".", 1)[0]
    package = code_uri.strip("./").replace("/", ".") if code_uri not in ("", ".", "./") else ""
    return f"{package}.{module_path}" if package and not module_path.startswith(f"{package}.") else module_path


def _function(template: ResolvedTemplate, resource: Resource) -> FunctionSpec:
    props = resource.properties
    code_uri = props.get("CodeUri")
    module = _module_of(code_uri if isinstance(code_uri, str) else ".", str(props["Handler"]))
    variables = (props.get("Environment") or {}).get("Variables") or {}
    sqs_events: list[SqsEventSpec] = []
    schedules: list[ScheduleSpec] = []
    routes: list[ApiRoute] = []
    for event_name, event in (props.get("Events") or {}).items():
        event_type = event.get("Type")
        spec = event.get("Properties") or {}
        if event_type == "SQS":
            sqs_events.append(
                SqsEventSpec(
                    name=event_name,
                    queue_arn=str(spec["Queue"]),
                    batch_size=int(spec.get("BatchSize", 10)),
                    window_seconds=float(spec.get("MaximumBatchingWindowInSeconds", 0)),
                    report_batch_item_failures="ReportBatchItemFailures" in (spec.get("FunctionResponseTypes") or []),
                    enabled=_truthy(spec.get("Enabled", True)),
                )
            )
        elif event_type in ("Schedule", "ScheduleV2"):
            schedules.append(
                ScheduleSpec(
                    name=event_name,
                    expression=str(spec.get("Schedule") or spec.get("ScheduleExpression") or ""),
                    enabled=_truthy(spec.get("Enabled", True)) and str(spec.get("State", "ENABLED")) != "DISABLED",
                    rule_name=str(spec.get("Name") or f"{resource.logical_id}{event_name}"),
                )
            )
        elif event_type == "Api":
            routes.append(ApiRoute(method=str(spec.get("Method", "ANY")).upper(), path=str(spec["Path"])))
    return FunctionSpec(
        logical_id=resource.logical_id,
        name=template.physical_name(resource.logical_id),
        module=module,
        environment={str(k): str(v) for k, v in variables.items()},
        timeout_seconds=int(props.get("Timeout", 3)),
        memory_mb=int(props.get("MemorySize", 128)),
        sqs_events=tuple(sqs_events),
        schedules=tuple(schedules),
        routes=tuple(routes),
    )


def _truthy(value: object) -> bool:
    return str(value).lower() not in ("false", "0", "no", "disabled")
