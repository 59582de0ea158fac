"""Powertools observability, set up the same way for every function.

Each handler module calls `observability("ingester")` once at module level and decorates its handler
in the cookbook's order: `@logger.inject_lambda_context`, `@metrics.log_metrics`,
`@tracer.capture_lambda_handler`. Construction is cheap: nothing here touches AWS or the
environment beyond Powertools' own variables, and the X-Ray SDK loads lazily.
"""

from __future__ import annotations

from typing import Final, NamedTuple

from aws_lambda_powertools import Logger, Metrics, Tracer

METRICS_NAMESPACE: Final = "SignalsPipeline"


class Observability(NamedTuple):
    logger: Logger
    metrics: Metrics
    tracer: Tracer


def observability(service: str) -> Observability:
    return Observability(
        logger=Logger(service=service),
        metrics=Metrics(namespace=METRICS_NAMESPACE, service=service),
        tracer=Tracer(service=service),
    )
