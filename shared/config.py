"""Typed function configuration from environment variables.

Each function's settings are a pydantic model whose fields name their variables (the upper-cased
field name). `load(ConfigClass, environ)` validates once and fails with the variable's name. The
handlers call it on first use, never at import, and the local stack passes each function its own
mapping instead of sharing `os.environ` between four functions in one process.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Literal, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

MiB = 1024 * 1024


class ConfigError(RuntimeError):
    """A missing or bad environment variable; the message names it."""


class FunctionConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    @classmethod
    def env_name(cls, field_name: str) -> str:
        return field_name.upper()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        missing: list[str] = []
        for name, info in cls.model_fields.items():
            variable = cls.env_name(name)
            raw = env.get(variable)
            if raw is None or raw == "":
                if info.is_required():
                    missing.append(variable)
                continue
            values[name] = raw
        if missing:
            raise ConfigError(f"{cls.__name__}: missing environment variable(s): {', '.join(missing)}")
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            problems = "; ".join(
                f"{cls.env_name(str(err['loc'][0]))}={values.get(str(err['loc'][0]))!r}: {err['msg']}"
                for err in exc.errors(include_url=False)
            )
            raise ConfigError(f"{cls.__name__}: bad environment variable(s): {problems}") from None


class IngesterConfig(FunctionConfig):
    telemetry_stream_name: str = Field(min_length=1, description="Firehose stream for device telemetry.")
    otlp_stream_name: str = Field(min_length=1, description="Firehose stream for OTLP logs.")
    max_body_bytes: int = Field(32 * MiB, gt=0, description="Largest request body after decompression.")
    firehose_retry_budget_s: float = Field(10.0, gt=0, le=28, description="Time allowed for Firehose retries.")


class ParserConfig(FunctionConfig):
    verified_bucket: str = Field(min_length=3)
    quarantine_bucket: str = Field(min_length=3)
    registry_table: str = Field(min_length=3)
    event_time_past_days: float = Field(30.0, gt=0, description="Oldest accepted event_time before received_at.")
    event_time_future_days: float = Field(1.0, ge=0, description="Latest accepted event_time after received_at.")


class RegistryConfig(FunctionConfig):
    registry_table: str = Field(min_length=3)
    glue_database: str = Field(min_length=1)


class ReconcilerConfig(FunctionConfig):
    registry_table: str = Field(min_length=3)
    glue_database: str = Field(min_length=1)
    verified_bucket: str = Field(min_length=3)
    raw_bucket: str = Field(min_length=3)
    redrive_queue_url: str = Field(min_length=1)
    lookback_hours: int = Field(6, gt=0, le=24 * 7, description="How far back repairs (2) and (3) look.")
    registry_grace_minutes: float = Field(
        20.0, ge=0, description="Newest verified files left to the registry (> batching window + visibility)."
    )
    raw_grace_minutes: float = Field(30.0, ge=0, description="Raw objects younger than this are left alone.")
    time_reserve_ms: int = Field(10_000, ge=0, description="Remaining time at which a run stops and resumes next time.")


class CompactorConfig(FunctionConfig):
    """The compactor (issue 11): registry -> changed (table, day) -> dedup MERGE into the Iceberg tables."""

    registry_table: str = Field(min_length=3)
    glue_database: str = Field(min_length=1, description="Database of the verified tables (telemetry-parser-db).")
    alerts_database: str = Field(min_length=1, description="Database of the compacted tables (telemetry_alerts_{env}).")
    audit_database: str = Field(min_length=1, description="Audit database (telemetry_alerts_{env}_dq_audit).")
    verified_bucket: str = Field(min_length=3)
    dbt_bucket: str = Field(min_length=3, description="Compacted tables' bucket ({env}-signal-data-lake-dbt).")
    artifacts_bucket: str = Field(min_length=3, description="Where run reports go ({env}-dbt-artifacts-<suffix>).")
    athena_workgroup: str = Field(min_length=1, description="Workgroup the athena engine submits to (dbt workgroup).")
    compactor_engine: Literal["athena", "local"] = Field(
        "athena", description="`athena`: SQL on Athena (the Lambda); `local`: DuckDB + pyiceberg (local stack, tests)."
    )
    time_reserve_ms: int = Field(
        60_000, ge=0, description="Remaining time at which a run stops starting table-days (the next run resumes)."
    )
    lease_seconds: int = Field(960, gt=0, description="Lease length; longer than the function's timeout (900 s).")
    settle_seconds: float = Field(
        120.0, ge=0, description="Registry updates younger than this wait for the next run (index propagation)."
    )
    max_files_per_day: int = Field(8, gt=0, description="Data files in a day above which the day is bin-packed.")
    snapshot_retention_hours: float = Field(168.0, gt=0, description="Iceberg snapshots older than this expire.")
    maintenance_interval_hours: float = Field(
        24.0, ge=0, description="How often a table's snapshots are expired (VACUUM on Athena)."
    )
    audit_maintenance_interval_hours: float = Field(
        168.0, ge=0, description="How often each audit table is bin-packed and its snapshots expired "
        "(OPTIMIZE and VACUUM on Athena): they take one small append per run."
    )
    athena_max_attempts: int = Field(3, ge=1, le=10, description="Tries per Athena query (failed or throttled).")
    athena_poll_max_seconds: float = Field(5.0, gt=0, description="Longest wait between two polls of one query.")


ConfigT = TypeVar("ConfigT", bound=FunctionConfig)


def load(config_class: type[ConfigT], environ: Mapping[str, str] | None = None) -> ConfigT:
    return config_class.from_env(environ)
