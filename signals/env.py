"""Which pipeline a `signals` command talks to: the local stack or a deployed environment.

Every operator command takes `--env` (default `local`) and `--profile`. Resource names are never
hard-coded: a deployed env's come from its CloudFormation stack outputs, the local stack's from the
state file it writes while running (same output keys, so commands do not care which it is).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import boto3

REGION: Final = "us-west-2"
ENVIRONMENTS: Final = ("local", "dev", "stage", "prod")
PROFILES: Final = {"dev": "platform-dev", "stage": "platform-stage", "prod": "platform-prod"}


def stack_name(env: str) -> str:
    return f"signals-pipeline-{env}"


class Output:
    """CloudFormation output keys of template.yaml; the local stack's state file uses the same keys."""

    API_URL: Final = "ApiUrl"
    RAW_BUCKET: Final = "RawBucket"
    VERIFIED_BUCKET: Final = "VerifiedBucket"
    QUARANTINE_BUCKET: Final = "QuarantineBucket"
    ATHENA_RESULTS_BUCKET: Final = "AthenaResultsBucket"
    REGISTRY_TABLE: Final = "RegistryTable"
    GLUE_DATABASE: Final = "GlueDatabase"
    TELEMETRY_QUEUE_URL: Final = "TelemetryProcessingQueueUrl"
    TELEMETRY_DLQ_URL: Final = "TelemetryProcessingDlqUrl"
    OTLP_QUEUE_URL: Final = "OtlpLogsProcessingQueueUrl"
    OTLP_DLQ_URL: Final = "OtlpLogsProcessingDlqUrl"
    REDRIVE_QUEUE_URL: Final = "RedriveQueueUrl"
    REDRIVE_DLQ_URL: Final = "RedriveDlqUrl"
    REGISTRY_QUEUE_URL: Final = "RegistryQueueUrl"
    REGISTRY_DLQ_URL: Final = "RegistryDlqUrl"
    TELEMETRY_FIREHOSE: Final = "TelemetryFirehoseName"
    OTLP_FIREHOSE: Final = "OtlpFirehoseName"
    RECONCILER_FUNCTION: Final = "ReconcilerFunctionName"
    HUMAN_WORKGROUP: Final = "HumanWorkgroup"
    # The compacted layer (issue 11).
    DBT_BUCKET: Final = "DbtBucket"  # {env}-signal-data-lake-dbt: the compacted tables' data and metadata
    ARTIFACTS_BUCKET: Final = "DbtArtifactsBucket"  # {env}-dbt-artifacts-<suffix>: compactor run reports
    ALERTS_DATABASE: Final = "AlertsDatabase"  # telemetry_alerts_{env}
    AUDIT_DATABASE: Final = "AuditDatabase"  # telemetry_alerts_{env}_dq_audit
    DBT_WORKGROUP: Final = "DbtWorkgroup"  # {env}-tps-telemetry-dbt-wg
    COMPACTOR_FUNCTION: Final = "CompactorFunctionName"


def local_state_path() -> Path:
    """Where a running `signals local` describes itself (`SIGNALS_HOME`, default ~/.signals)."""
    home = os.environ.get("SIGNALS_HOME") or str(Path.home() / ".signals")
    return Path(home) / "local-stack.json"


class EnvironmentNotFound(RuntimeError):
    pass


@dataclass
class Environment:
    name: str
    session: boto3.Session
    outputs: dict[str, str]
    endpoint_url: str | None = None  # the embedded AWS for `local`, None for a real account
    api_key: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def output(self, key: str) -> str:
        try:
            return self.outputs[key]
        except KeyError:
            raise EnvironmentNotFound(f"{self.name}: stack has no output {key!r}") from None

    def client(self, service: str) -> Any:
        return self.session.client(service, endpoint_url=self.endpoint_url)  # type: ignore[call-overload]


def resolve(env: str = "local", profile: str | None = None) -> Environment:
    if env == "local":
        return _resolve_local()
    if env not in ENVIRONMENTS:
        raise EnvironmentNotFound(f"unknown env {env!r}; expected one of {', '.join(ENVIRONMENTS)}")
    session = boto3.Session(profile_name=profile or PROFILES[env], region_name=REGION)
    stacks = session.client("cloudformation").describe_stacks(StackName=stack_name(env))["Stacks"]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
    return Environment(name=env, session=session, outputs=outputs)


def _resolve_local() -> Environment:
    path = local_state_path()
    try:
        state = json.loads(path.read_text())
    except FileNotFoundError:
        raise EnvironmentNotFound(f"no local stack is running (no {path}); start one with `signals local`") from None
    session = boto3.Session(
        aws_access_key_id=state.get("aws_access_key_id", "testing"),
        aws_secret_access_key=state.get("aws_secret_access_key", "testing"),
        region_name=state.get("region", REGION),
    )
    return Environment(
        name="local",
        session=session,
        outputs=dict(state["outputs"]),
        endpoint_url=state["aws_endpoint_url"],
        api_key=state.get("api_key"),
        extra=state,
    )
