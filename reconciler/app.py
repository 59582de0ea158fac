"""Reconciler Lambda: an EventBridge schedule (every 15 minutes) runs the five repairs.

The run is bounded by the Lambda's remaining time minus TIME_RESERVE_MS and resumes where it
stopped on the next run (reconciler.logic). Counts go to the return value, the log and EMF metrics.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, Final

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from reconciler.logic import Reconciler, RunSummary, Settings
from registry.dal import GlueCatalog, Objects, RedriveQueue, RegistryTable
from registry.logic import Registrar
from shared.aws import Clients
from shared.config import ReconcilerConfig, load
from shared.handler import Handler, on_first_call, remaining_time
from shared.observability import observability

logger, metrics, tracer = observability("reconciler")


# Without a Lambda context (the local stack's scheduler), a run gets this much time.
DEFAULT_BUDGET_MS: Final = 300_000


def build_reconciler(config: ReconcilerConfig, clients: Clients) -> Reconciler:
    registrar = Registrar(
        RegistryTable(clients.client("dynamodb"), config.registry_table),
        GlueCatalog(clients.client("glue"), config.glue_database),
        Objects(clients.client("s3")),
        logger=logger,
    )
    settings = Settings(
        verified_bucket=config.verified_bucket,
        raw_bucket=config.raw_bucket,
        lookback_hours=config.lookback_hours,
        registry_grace=timedelta(minutes=config.registry_grace_minutes),
        raw_grace=timedelta(minutes=config.raw_grace_minutes),
        time_reserve_ms=config.time_reserve_ms,
    )
    return Reconciler(registrar, RedriveQueue(clients.client("sqs"), config.redrive_queue_url), settings, logger=logger)



def build_handler(environ: Mapping[str, str], clients: Clients | None = None) -> Handler:
    """A handler with its own configuration and clients (validated and created on the first call)."""
    reconciler = on_first_call(lambda: build_reconciler(load(ReconcilerConfig, environ), clients or Clients()))

    @metrics.log_metrics
    def handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
        summary = reconciler().run(remaining_time(context, DEFAULT_BUDGET_MS))
        publish(summary)
        return summary.as_dict()

    return handle


def publish(summary: RunSummary) -> None:
    for name, value in sorted(summary.counts.items()):
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
    metrics.add_metric(name="run_complete", unit=MetricUnit.Count, value=int(summary.complete))
    logger.info("reconciler run", extra={"summary": summary.as_dict()})


# Reads os.environ on the first invocation, not at import (build_handler is lazy).
_handle = build_handler(os.environ)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return _handle(event, context)
