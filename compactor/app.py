"""Compactor Lambda (`telemetry-compactor`): an hourly EventBridge schedule, or `signals compact`.

The event is ignored except an optional `{"tables": [...], "days": ["YYYY-MM-DD", ...]}`: days force
a recompute of those days (of those tables, default all) and leave the watermark alone; tables alone
restrict the registry's plan. The engine is COMPACTOR_ENGINE: `athena` (the Lambda: SQL on the dbt
workgroup; core dependencies only) or `local` (DuckDB + pyiceberg, imported only then). Counts go to
the return value, the log, EMF metrics and the run report in ARTIFACTS_BUCKET.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Final

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from compactor.athena_engine import AthenaEngine
from compactor.dal import Artifacts, AthenaQueries, CompactorStore
from compactor.logic import Compactor, Engine, RunResult, Settings, parse_request
from shared.aws import Clients
from shared.config import CompactorConfig, load
from shared.handler import Handler, on_first_call, remaining_time
from shared.observability import observability

logger, metrics, tracer = observability("compactor")

FUNCTION_NAME: Final = "telemetry-compactor"
# Without a Lambda context (the local stack's scheduler, `signals compact`), a run gets this much time.
DEFAULT_BUDGET_MS: Final = 900_000


def build_engine(config: CompactorConfig, clients: Clients) -> Engine:
    if config.compactor_engine == "local":
        from compactor.local_engine import LocalEngine, catalog_for  # noqa: PLC0415 (DuckDB, pyiceberg, pyarrow)

        glue, s3 = clients.client("glue"), clients.client("s3")
        catalog = catalog_for(glue, s3, clients.session.get_credentials(), glue.meta.region_name)
        return LocalEngine(glue=glue, s3=s3, catalog=catalog, glue_database=config.glue_database,
                           alerts_database=config.alerts_database, audit_database=config.audit_database,
                           max_files_per_day=config.max_files_per_day)
    return AthenaEngine(
        AthenaQueries(clients.client("athena"), config.athena_workgroup),
        glue_database=config.glue_database, alerts_database=config.alerts_database,
        audit_database=config.audit_database, max_files_per_day=config.max_files_per_day,
        max_attempts=config.athena_max_attempts, poll_max_s=config.athena_poll_max_seconds,
        poll_reserve_ms=config.time_reserve_ms // 2, logger=logger, glue=clients.client("glue"),
    )


def build_compactor(config: CompactorConfig, clients: Clients) -> Compactor:
    settings = Settings(
        time_reserve_ms=config.time_reserve_ms,
        lease_seconds=config.lease_seconds,
        settle_seconds=config.settle_seconds,
        snapshot_retention_hours=config.snapshot_retention_hours,
        maintenance_interval_hours=config.maintenance_interval_hours,
        audit_maintenance_interval_hours=config.audit_maintenance_interval_hours,
        function_name=FUNCTION_NAME,
    )
    return Compactor(
        CompactorStore(clients.client("dynamodb"), config.registry_table),
        build_engine(config, clients),
        Artifacts(clients.client("s3"), config.artifacts_bucket),
        settings,
        logger=logger,
    )



def build_handler(environ: Mapping[str, str], clients: Clients | None = None) -> Handler:
    """A handler with its own configuration and clients (validated and created on the first call)."""
    compactor = on_first_call(lambda: build_compactor(load(CompactorConfig, environ), clients or Clients()))

    @metrics.log_metrics
    def handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
        request = parse_request(event if isinstance(event, dict) else {})
        result = compactor().run(remaining_time(context, DEFAULT_BUDGET_MS), request)
        publish(result)
        return result.as_dict()

    return handle


def publish(result: RunResult) -> None:
    totals = result.totals
    count = MetricUnit.Count
    for name, value in (
        ("rows_read", totals.verified_rows),
        ("rows_inserted", totals.inserted),
        ("rows_replaced", totals.replaced),
        ("rows_refreshed", totals.refreshed),
        ("natural_duplicates", totals.natural_duplicates),
        ("conflicting_duplicates", totals.conflicting_duplicates),
        ("conflicts_recorded", totals.conflicts_recorded),
        ("late_rows", totals.late_rows),
        ("days_compacted", result.days_compacted),
        ("days_failed", result.days_failed),
        ("run_complete", int(result.complete)),
        ("run_skipped", int(result.skipped is not None)),
        ("schema_blocked_tables", len(result.schema_blocked)),
    ):
        metrics.add_metric(name=name, unit=count, value=value)
    # Every run reports it (0 when nothing waits): template.yaml's CompactionLagAlarm treats a missing
    # datapoint as lag.
    metrics.add_metric(name="compaction_lag_seconds", unit=MetricUnit.Seconds, value=result.lag_seconds)
    summary = {k: v for k, v in result.as_dict().items() if k != "days"}
    if result.ok:
        logger.info("compactor run", extra={"summary": summary})
    else:
        logger.error("compactor run had failures", extra={"summary": summary})


# Reads os.environ on the first invocation, not at import (build_handler is lazy).
_handle = build_handler(os.environ)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return _handle(event, context)
