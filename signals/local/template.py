"""template.yaml read for one environment: CloudFormation tags, parameters, conditions, intrinsics.

The local stack builds every resource and wire from the deployed template, so nothing is listed a
second time. This is a small resolver, not CloudFormation: it knows the intrinsic functions the
template uses (`Ref`, `Fn::GetAtt`, `Fn::Sub`, `Fn::Join`, `Fn::Select`, `Fn::Split`, `Fn::If`,
`Fn::Equals`, `Fn::Not`, `Fn::And`, `Fn::Or`, `Fn::FindInMap`, `Fn::Base64`, `Condition`) and how
the resource types the pipeline declares are named. Physical ids follow AWS where the name is
explicit and are derived from the stack name and logical id where it is not. SAM's `Globals` are
merged into each function.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml

ACCOUNT_ID: Final = "123456789012"  # moto's default account
REGION: Final = "us-west-2"

# Property that holds the explicit physical name, per resource type.
_NAME_PROPERTY: Final[Mapping[str, tuple[str, ...]]] = {
    "AWS::S3::Bucket": ("BucketName",),
    "AWS::SQS::Queue": ("QueueName",),
    "AWS::DynamoDB::Table": ("TableName",),
    "AWS::KinesisFirehose::DeliveryStream": ("DeliveryStreamName",),
    "AWS::Glue::Database": ("DatabaseInput", "Name"),
    "AWS::Glue::Table": ("TableInput", "Name"),
    "AWS::Athena::WorkGroup": ("Name",),
    "AWS::Events::Rule": ("Name",),
    "AWS::Serverless::Function": ("FunctionName",),
    "AWS::Lambda::Function": ("FunctionName",),
    "AWS::Logs::LogGroup": ("LogGroupName",),
    "AWS::CloudWatch::Dashboard": ("DashboardName",),
    "AWS::CloudWatch::Alarm": ("AlarmName",),
    "AWS::IAM::Role": ("RoleName",),
    "AWS::SNS::Topic": ("TopicName",),
}

_ARN_SERVICE: Final[Mapping[str, str]] = {
    "AWS::SQS::Queue": "sqs",
    "AWS::DynamoDB::Table": "dynamodb",
    "AWS::KinesisFirehose::DeliveryStream": "firehose",
    "AWS::Serverless::Function": "lambda",
    "AWS::Lambda::Function": "lambda",
    "AWS::IAM::Role": "iam",
    "AWS::Events::Rule": "events",
    "AWS::Athena::WorkGroup": "athena",
    "AWS::Logs::LogGroup": "logs",
}

_NO_VALUE: Final = object()  # AWS::NoValue: the enclosing key or list item disappears


class TemplateError(ValueError):
    """The template cannot be read or resolved for the local stack."""


# --- reading -------------------------------------------------------------------------------------


class _CfnLoader(yaml.SafeLoader):
    """YAML loader that turns CloudFormation short forms (`!Ref X`) into their long forms."""


def _construct_tag(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    if tag_suffix == "Ref":
        return {"Ref": value}
    if tag_suffix == "Condition":
        return {"Condition": value}
    if tag_suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{tag_suffix}": value}


_CfnLoader.add_multi_constructor("!", _construct_tag)


def load_template(path: Path) -> dict[str, Any]:
    try:
        document = yaml.load(path.read_text(encoding="utf-8"), Loader=_CfnLoader)
    except (OSError, yaml.YAMLError) as exc:
        raise TemplateError(f"cannot read {path}: {exc}") from None
    if not isinstance(document, dict) or "Resources" not in document:
        raise TemplateError(f"{path} is not a CloudFormation template (no Resources)")
    return document


# --- resolving -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Resource:
    logical_id: str
    type: str
    properties: dict[str, Any]  # resolved
    metadata: dict[str, Any]


class ResolvedTemplate:
    """One environment's view of the template: parameters bound, conditions decided, intrinsics resolved.

    `endpoint` is the embedded AWS endpoint; queue URLs (what `Ref` of a queue returns) are built on
    it the way moto's server builds them.
    """

    def __init__(
        self,
        document: Mapping[str, Any],
        *,
        parameters: Mapping[str, str],
        stack_name: str,
        endpoint: str,
        region: str = REGION,
        account_id: str = ACCOUNT_ID,
    ) -> None:
        self.document = document
        self.stack_name = stack_name
        self.endpoint = endpoint.rstrip("/")
        self.region = region
        self.account_id = account_id
        self.parameters = self._bind_parameters(parameters)
        self._raw_resources: dict[str, dict[str, Any]] = dict(document.get("Resources") or {})
        self._conditions: dict[str, bool] = {}
        self._names: dict[str, str] = {}
        self._resolving_names: set[str] = set()
        self._globals = dict((document.get("Globals") or {}).get("Function") or {})
        self.resources: dict[str, Resource] = {}
        for logical_id, raw in self._raw_resources.items():
            condition = raw.get("Condition")
            if condition is not None and not self.condition(condition):
                continue
            self.resources[logical_id] = self._resolve_resource(logical_id, raw)

    # parameters and conditions

    def _bind_parameters(self, overrides: Mapping[str, str]) -> dict[str, Any]:
        declared = dict(self.document.get("Parameters") or {})
        unknown = set(overrides) - set(declared)
        if unknown:
            raise TemplateError(f"template has no parameter(s) {', '.join(sorted(unknown))}")
        bound: dict[str, Any] = {}
        for name, spec in declared.items():
            value = overrides.get(name, spec.get("Default"))
            if value is None:
                raise TemplateError(f"parameter {name} has no default; pass a value")
            allowed = spec.get("AllowedValues")
            if allowed is not None and str(value) not in [str(a) for a in allowed]:
                raise TemplateError(f"parameter {name}={value!r} not in {allowed}")
            if str(spec.get("Type", "String")).startswith("CommaDelimitedList") or spec.get("Type") == "List<String>":
                bound[name] = [item.strip() for item in str(value).split(",")] if str(value) else []
            elif spec.get("Type") == "Number":
                number = float(value)
                bound[name] = int(number) if number.is_integer() else number
            else:
                bound[name] = str(value)
        return bound

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            expression = (self.document.get("Conditions") or {}).get(name)
            if expression is None:
                raise TemplateError(f"unknown condition {name}")
            self._conditions[name] = bool(self._resolve(expression))
        return self._conditions[name]

    # names and attributes

    def physical_name(self, logical_id: str) -> str:
        """The name AWS would give the resource: its explicit name property, else a derived one."""
        if logical_id in self._names:
            return self._names[logical_id]
        raw = self._raw_resources.get(logical_id)
        if raw is None:
            raise TemplateError(f"unknown resource {logical_id}")
        if logical_id in self._resolving_names:
            raise TemplateError(f"name of {logical_id} refers to itself")
        self._resolving_names.add(logical_id)
        try:
            name = self._explicit_name(raw)
            if name is None:
                name = self._derived_name(logical_id, raw["Type"])
        finally:
            self._resolving_names.discard(logical_id)
        self._names[logical_id] = name
        return name

    def _explicit_name(self, raw: Mapping[str, Any]) -> str | None:
        path = _NAME_PROPERTY.get(raw.get("Type", ""))
        if path is None:
            return None
        node: Any = raw.get("Properties") or {}
        for part in path:
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        value = self._resolve(node)
        return None if value is _NO_VALUE or value is None else str(value)

    def _derived_name(self, logical_id: str, resource_type: str) -> str:
        suffix = hashlib.sha256(f"{self.stack_name}/{logical_id}".encode()).hexdigest()[:12]
        if resource_type == "AWS::S3::Bucket":
            return f"{self.stack_name}-{logical_id}-{suffix}".lower()[:63]
        return f"{self.stack_name}-{logical_id}-{suffix}"[:64]

    def arn(self, logical_id: str) -> str:
        resource_type = self._raw_resources[logical_id]["Type"]
        name = self.physical_name(logical_id)
        if resource_type == "AWS::S3::Bucket":
            return f"arn:aws:s3:::{name}"
        if resource_type == "AWS::SQS::Queue":
            return f"arn:aws:sqs:{self.region}:{self.account_id}:{name}"
        if resource_type == "AWS::DynamoDB::Table":
            return f"arn:aws:dynamodb:{self.region}:{self.account_id}:table/{name}"
        if resource_type == "AWS::KinesisFirehose::DeliveryStream":
            return f"arn:aws:firehose:{self.region}:{self.account_id}:deliverystream/{name}"
        if resource_type in ("AWS::Serverless::Function", "AWS::Lambda::Function"):
            return f"arn:aws:lambda:{self.region}:{self.account_id}:function:{name}"
        if resource_type == "AWS::IAM::Role":
            return f"arn:aws:iam::{self.account_id}:role/{name}"
        if resource_type == "AWS::Events::Rule":
            return f"arn:aws:events:{self.region}:{self.account_id}:rule/{name}"
        service = _ARN_SERVICE.get(resource_type, resource_type.split("::")[1].lower())
        return f"arn:aws:{service}:{self.region}:{self.account_id}:{name}"

    def queue_url(self, queue_name: str) -> str:
        return f"{self.endpoint}/{self.account_id}/{queue_name}"

    def ref(self, name: str) -> Any:
        pseudo = {
            "AWS::Region": self.region,
            "AWS::AccountId": self.account_id,
            "AWS::StackName": self.stack_name,
            "AWS::StackId": f"arn:aws:cloudformation:{self.region}:{self.account_id}:stack/{self.stack_name}/local",
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NotificationARNs": [],
        }
        if name == "AWS::NoValue":
            return _NO_VALUE
        if name in pseudo:
            return pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        raw = self._raw_resources.get(name)
        if raw is None:
            return name  # a SAM-generated resource (e.g. ServerlessRestApi): its logical id stands in
        if raw["Type"] == "AWS::SQS::Queue":
            return self.queue_url(self.physical_name(name))
        if raw["Type"] == "AWS::SNS::Topic":
            return self.arn(name)  # Ref of a topic is its ARN
        return self.physical_name(name)

    def get_att(self, logical_id: str, attribute: str) -> Any:
        raw = self._raw_resources.get(logical_id)
        if raw is None:
            return f"{logical_id}.{attribute}"
        resource_type = raw["Type"]
        name = self.physical_name(logical_id)
        if attribute == "Arn":
            return self.arn(logical_id)
        if resource_type == "AWS::SQS::Queue":
            if attribute == "QueueName":
                return name
            if attribute == "QueueUrl":
                return self.queue_url(name)
        if resource_type == "AWS::S3::Bucket" and attribute in ("DomainName", "RegionalDomainName"):
            return f"{name}.s3.{self.region}.amazonaws.com"
        if resource_type == "AWS::DynamoDB::Table" and attribute == "StreamArn":
            return f"{self.arn(logical_id)}/stream/local"
        return f"{name}.{attribute}"

    # intrinsic functions

    def resolve(self, value: Any) -> Any:
        result = self._resolve(value)
        return None if result is _NO_VALUE else result

    def _resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            items = [self._resolve(item) for item in value]
            return [item for item in items if item is not _NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (key, argument), = value.items()
            function = self._intrinsics.get(key)
            if function is not None:
                return function(self, argument)
        resolved = {key: self._resolve(item) for key, item in value.items()}
        return {key: item for key, item in resolved.items() if item is not _NO_VALUE}

    def _fn_ref(self, argument: Any) -> Any:
        return self.ref(str(self._resolve(argument)))

    def _fn_get_att(self, argument: Any) -> Any:
        argument = self._resolve(argument)
        if isinstance(argument, str):
            argument = argument.split(".", 1)
        logical_id, attribute = argument
        return self.get_att(str(logical_id), str(attribute))

    def _fn_sub(self, argument: Any) -> str:
        if isinstance(argument, list):
            text, variables = argument[0], {k: self._resolve(v) for k, v in (argument[1] or {}).items()}
        else:
            text, variables = argument, {}

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return str(variables[name])
            if "." in name and name.split(".", 1)[0] in self._raw_resources:
                logical_id, attribute = name.split(".", 1)
                return str(self.get_att(logical_id, attribute))
            return str(self.ref(name))

        return re.sub(r"\$\{([^}]+)\}", replace, str(text))

    def _fn_join(self, argument: Any) -> str:
        delimiter, items = argument
        values = self._resolve(items)
        return str(delimiter).join(str(v) for v in values)

    def _fn_select(self, argument: Any) -> Any:
        index, items = argument
        return self._resolve(items)[int(self._resolve(index))]

    def _fn_split(self, argument: Any) -> list[str]:
        delimiter, text = argument
        return str(self._resolve(text)).split(str(delimiter))

    def _fn_if(self, argument: Any) -> Any:
        name, when_true, when_false = argument
        return self._resolve(when_true if self.condition(str(name)) else when_false)

    def _fn_equals(self, argument: Any) -> bool:
        left, right = (self._resolve(item) for item in argument)
        return str(left) == str(right)

    def _fn_not(self, argument: Any) -> bool:
        return not self._resolve(argument[0])

    def _fn_and(self, argument: Any) -> bool:
        return all(self._resolve(item) for item in argument)

    def _fn_or(self, argument: Any) -> bool:
        return any(self._resolve(item) for item in argument)

    def _fn_condition(self, argument: Any) -> bool:
        return self.condition(str(argument))

    def _fn_find_in_map(self, argument: Any) -> Any:
        map_name, top, second = (self._resolve(item) for item in argument[:3])
        return self._resolve(self.document["Mappings"][map_name][str(top)][str(second)])

    def _fn_base64(self, argument: Any) -> str:
        return base64.b64encode(str(self._resolve(argument)).encode()).decode()

    def _fn_get_azs(self, _argument: Any) -> list[str]:
        return [f"{self.region}a", f"{self.region}b", f"{self.region}c"]

    _intrinsics: Final[dict[str, Callable[[ResolvedTemplate, Any], Any]]] = {
        "Ref": _fn_ref,
        "Fn::GetAtt": _fn_get_att,
        "Fn::Sub": _fn_sub,
        "Fn::Join": _fn_join,
        "Fn::Select": _fn_select,
        "Fn::Split": _fn_split,
        "Fn::If": _fn_if,
        "Fn::Equals": _fn_equals,
        "Fn::Not": _fn_not,
        "Fn::And": _fn_and,
        "Fn::Or": _fn_or,
        "Condition": _fn_condition,
        "Fn::FindInMap": _fn_find_in_map,
        "Fn::Base64": _fn_base64,
        "Fn::GetAZs": _fn_get_azs,
    }

    # resources

    def _resolve_resource(self, logical_id: str, raw: Mapping[str, Any]) -> Resource:
        properties = copy.deepcopy(dict(raw.get("Properties") or {}))
        if raw["Type"] == "AWS::Serverless::Function":
            properties = _merge_globals(self._globals, properties)
        resolved = self._resolve(properties)
        return Resource(
            logical_id=logical_id,
            type=raw["Type"],
            properties=resolved if isinstance(resolved, dict) else {},
            metadata=dict(raw.get("Metadata") or {}),
        )

    def of_type(self, resource_type: str) -> list[Resource]:
        return [r for r in self.resources.values() if r.type == resource_type]

    def outputs(self) -> dict[str, str]:
        """The template's Outputs, resolved (those whose condition is false are left out)."""
        result: dict[str, str] = {}
        for key, spec in (self.document.get("Outputs") or {}).items():
            condition = spec.get("Condition")
            if condition is not None and not self.condition(condition):
                continue
            value = self.resolve(spec.get("Value"))
            if value is not None:
                result[key] = str(value)
        return result


def _merge_globals(globals_: Mapping[str, Any], properties: dict[str, Any]) -> dict[str, Any]:
    """SAM's Globals semantics: maps merge (the function wins), scalars and lists are overridden."""
    merged = copy.deepcopy(dict(globals_))
    for key, value in properties.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge_globals(merged[key], value)
        else:
            merged[key] = value
    return merged


def find_template(start: Path | None = None) -> Path:
    """template.yaml of this checkout: next to the installed packages, else in a parent of `start`."""
    candidates = [Path(__file__).resolve().parents[2] / "template.yaml"]
    here = (start or Path.cwd()).resolve()
    candidates += [parent / "template.yaml" for parent in (here, *here.parents)]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise TemplateError("template.yaml not found (run from the project checkout or pass --template)")
