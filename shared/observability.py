"""Powertools observability, set up the same way for every function.

Each handler module calls `observability("ingester")` once at module level and decorates its handler
in the cookbook's order: `@logger.inject_lambda_context`, `@metrics.log_metrics`,
`@tracer.capture_lambda_handler`. Construction is cheap: nothing here touches AWS or the
environment beyond Powertools' own variables. Constructing a Tracer imports the X-Ray SDK (about as
costly as `import boto3`), so a function whose cold start matters more than its own subsegments
(the ingester) takes `logger_and_metrics` instead; Lambda's active tracing still records it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, NamedTuple

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.metrics import EphemeralMetrics

METRICS_NAMESPACE: Final = "SignalsPipeline"


class FunctionMetrics(EphemeralMetrics):
    """EphemeralMetrics whose `log_metrics` says what it returns (Powertools leaves it unannotated)."""

    def log_metrics(
        self,
        lambda_handler: Callable[..., Any] | None = None,
        capture_cold_start_metric: bool = False,
        raise_on_empty_metrics: bool = False,
        **kwargs: Any,
    ) -> Callable[..., Any]:
        decorated: Callable[..., Any] = super().log_metrics(
            lambda_handler,
            capture_cold_start_metric=capture_cold_start_metric,
            raise_on_empty_metrics=raise_on_empty_metrics,
            **kwargs,
        )
        return decorated


class Observability(NamedTuple):
    logger: Logger
    metrics: FunctionMetrics
    tracer: Tracer


def logger_and_metrics(service: str) -> tuple[Logger, FunctionMetrics]:
    # EphemeralMetrics, not Metrics: Metrics keeps one metric set per process, so when the local stack
    # runs all four functions in one process a flush by one would publish another's metrics under its
    # own service. Each function has exactly one instance, so in Lambda the two behave the same.
    return Logger(service=service), FunctionMetrics(namespace=METRICS_NAMESPACE, service=service)


def observability(service: str) -> Observability:
    logger, metrics = logger_and_metrics(service)
    return Observability(logger=logger, metrics=metrics, tracer=Tracer(service=service))
