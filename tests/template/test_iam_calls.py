"""Every AWS call a function's code can make is granted by its role, and nothing much beyond that.

The calls are found statically: attribute names in the modules a handler can reach (the same import
graph the artifact builder uses) that are operations of the services the pipeline talks to, plus
`get_paginator("operation")` arguments.
"""

from __future__ import annotations

import ast
from functools import cache
from typing import Any

import botocore.session
import pytest
from botocore import xform_name

from deploy import build
from tests.template.conftest import ROOT, of_type, target

SERVICES = ("s3", "dynamodb", "glue", "sqs", "firehose", "athena")
FUNCTIONS = {"ingester": "IngesterFunction", "parser": "ParserFunction", "registry": "RegistryFunction",
             "reconciler": "ReconcilerFunction", "compactor": "CompactorFunction"}
# Operations whose IAM action has another name.
ACTION_OF = {
    "s3:HeadObject": "s3:GetObject",
    "s3:ListObjectsV2": "s3:ListBucket",
    "s3:ListObjects": "s3:ListBucket",
    "s3:HeadBucket": "s3:ListBucket",
    "sqs:SendMessageBatch": "sqs:SendMessage",
    "sqs:DeleteMessageBatch": "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibilityBatch": "sqs:ChangeMessageVisibility",
}
# Granted for what Athena does with the caller's credentials while it runs the compactor's MERGE,
# OPTIMIZE and VACUUM statements (it reads verified through Glue and S3 and commits Iceberg snapshots
# to the compacted tables); the function's own code never calls them.
ATHENA_ON_BEHALF = {
    "glue:GetDatabase", "glue:GetTable", "glue:GetTables", "glue:UpdateTable", "glue:GetPartition",
    "glue:GetPartitions", "glue:BatchGetPartition",
    "s3:GetObject", "s3:DeleteObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts",
    "s3:ListBucket", "s3:GetBucketLocation", "s3:ListBucketMultipartUploads",
    "athena:GetWorkGroup",
}
USED_ON_BEHALF = {"compactor": ATHENA_ON_BEHALF}
# Reachable by import but called only by another function that shares the module.
NOT_CALLED_BY = {
    "registry": {
        "glue:CreateTable": "the reconciler's table repair (registry/dal.py GlueCatalog.create_table)",
        "sqs:SendMessage": "the reconciler's RedriveQueue (registry/dal.py)",
    },
}


@cache
def _operations() -> dict[str, set[str]]:
    """snake_case operation -> the services (of SERVICES) that have it, e.g. get_table -> {glue}."""
    session = botocore.session.get_session()
    by_name: dict[str, set[str]] = {}
    for service in SERVICES:
        for operation in session.get_service_model(service).operation_names:
            by_name.setdefault(xform_name(operation), set()).add(service)
    return by_name


@cache
def _pascal(service: str, snake: str) -> str:
    model = botocore.session.get_session().get_service_model(service)
    return next(op for op in model.operation_names if xform_name(op) == snake)


@cache
def calls(package: str) -> set[frozenset[str]]:
    """IAM actions the function's reachable code may need; each entry is a set of alternatives."""
    modules, _ = build.reachable(f"{package}.app", exclude=build.FUNCTIONS[package].local_only)
    operations = _operations()
    needed: set[frozenset[str]] = set()
    for module in modules:
        path = build._module_file(module, ROOT)
        assert path is not None
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[tuple[str, str]] = []
            if isinstance(node, ast.Attribute) and node.attr in operations:
                names.append((node.attr, ast.unparse(node.value).lower()))
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "get_paginator" and node.args
                    and isinstance(node.args[0], ast.Constant) and node.args[0].value in operations):
                names.append((str(node.args[0].value), ast.unparse(node.func.value).lower()))
            for name, receiver in names:
                if receiver.endswith("session"):  # botocore.session.get_session(), not Glue's GetSession
                    continue
                services = operations[name]
                named = {s for s in services if s in receiver}
                chosen = named or services
                actions = {ACTION_OF.get(f"{s}:{_pascal(s, name)}", f"{s}:{_pascal(s, name)}") for s in chosen}
                needed.add(frozenset(actions))
    return needed


def granted(resources: dict[str, dict[str, Any]], function_id: str) -> set[str]:
    role = resources[target(resources[function_id]["Properties"]["Role"])]
    actions: set[str] = set()
    for policy in role["Properties"].get("Policies", []):
        for statement in policy["PolicyDocument"]["Statement"]:
            if statement["Effect"] == "Allow":
                value = statement["Action"]
                actions |= set(value if isinstance(value, list) else [value])
    return actions


@pytest.mark.parametrize("package", list(FUNCTIONS))
def test_every_call_in_the_code_is_granted(resources: dict[str, dict[str, Any]], package: str) -> None:
    allowed = granted(resources, FUNCTIONS[package]) | set(NOT_CALLED_BY.get(package, {}))
    missing = sorted(" or ".join(sorted(alternatives)) for alternatives in calls(package)
                     if not alternatives & allowed)
    assert not missing, f"{package} calls AWS without a grant: {missing}"


@pytest.mark.parametrize("package", list(FUNCTIONS))
def test_no_data_action_is_granted_that_the_code_never_needs(
    resources: dict[str, dict[str, Any]], package: str
) -> None:
    used = set().union(*calls(package))
    # The SQS event source polls with the function's role; Firehose delivery is not this role's.
    polling = {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes"}
    consumes = any(target(m["Properties"]["FunctionName"]) == FUNCTIONS[package]
                   for _, m in of_type(resources, "AWS::Lambda::EventSourceMapping"))
    allowed = {a for a in granted(resources, FUNCTIONS[package]) if a.split(":")[0] in SERVICES}
    unused = allowed - used - (polling if consumes else set()) - USED_ON_BEHALF.get(package, set())
    # ListBucket makes a missing key a 404 instead of a 403 for whoever reads objects.
    assert unused <= {"s3:ListBucket"}, f"{package} role grants unused {sorted(unused)}"


def test_what_athena_does_for_the_compactor_is_granted(resources: dict[str, dict[str, Any]]) -> None:
    granted_actions = granted(resources, FUNCTIONS["compactor"])
    assert granted_actions >= ATHENA_ON_BEHALF
    assert "glue:UpdateTable" in granted_actions  # an Iceberg commit is an UpdateTable
