"""Powertools observability, set up the same way for every function.

Each handler module calls `observability("ingester")` once at module level and decorates its handler
in the cookbook's order: `@logger.inject_lambda_context`, `@metrics.log_metrics`,
`@tracer.capture_lambda_handler`. Construction is cheap: nothing here touches AWS or the
environment beyond Powertools' own variables. Constructing a Tracer imports the X-Ray SDK (about as
costly as `import boto3`), so a function whose cold start matters more than its own subsegments
(the ingester) takes `logger_and_metrics` instead; Lambda's active tracing still records it.
"""

from __future__ import annotations

from typing import Final, NamedTuple

from aws_lambda_powertools import Logger, Metrics, Tracer

METRICS_NAMESPACE: Final = "SignalsPipeline"


class Observability(NamedTuple):
    logger: Logger
    metrics: Metrics
    tracer: Tracer


def logger_and_metrics(service: str) -> tuple[Logger, Metrics]:
    return Logger(service=service), Metrics(namespace=METRICS_NAMESPACE, service=service)


def observability(service: str) -> Observability:
    logger, metrics = logger_and_metrics(service)
    return Observability(logger=logger, metrics=metrics, tracer=Tracer(service=service))
