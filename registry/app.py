"""Registry Lambda: SQS batches of S3 notifications for verified `telemetry_flat/*.parquet` objects.

The whole batch is registered together (see registry.logic), then Powertools' BatchProcessor
reports the messages that failed, so one poison message never fails its neighbours.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from registry.dal import GlueCatalog, Objects, RegistryTable
from registry.logic import BatchReport, Registrar
from shared.aws import Clients
from shared.config import RegistryConfig, load
from shared.handler import Handler, on_first_call
from shared.observability import observability

logger, metrics, tracer = observability("registry")



class MessageFailed(RuntimeError):
    """Raised for a message the batch could not register, so SQS delivers it again."""


def build_registrar(config: RegistryConfig, clients: Clients) -> Registrar:
    return Registrar(
        RegistryTable(clients.client("dynamodb"), config.registry_table),
        GlueCatalog(clients.client("glue"), config.glue_database),
        Objects(clients.client("s3")),
        logger=logger,
    )


def build_handler(environ: Mapping[str, str], clients: Clients | None = None) -> Handler:
    """A handler with its own configuration and clients (validated and created on the first call)."""
    registrar = on_first_call(lambda: build_registrar(load(RegistryConfig, environ), clients or Clients()))

    @metrics.log_metrics
    def handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
        records = event.get("Records") or []
        report = registrar().register_messages([(str(r["messageId"]), str(r["body"])) for r in records])
        publish(report)
        if not records:
            return {"batchItemFailures": []}

        def record_handler(record: SQSRecord) -> None:
            failure = report.failures.get(record.message_id)
            if failure is not None:
                raise MessageFailed(failure)

        processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
        return dict(process_partial_response(event, record_handler, processor, context))

    return handle


def publish(report: BatchReport) -> None:
    for name, value in sorted(report.counts.items()):
        if value:
            metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
    if report.failures:
        logger.warning("messages left for redelivery", extra={"failures": report.failures})
    logger.info("batch registered", extra={"counts": dict(report.counts)})


# Reads os.environ on the first invocation, not at import (build_handler is lazy).
_handle = build_handler(os.environ)


@logger.inject_lambda_context(correlation_id_path="Records[0].messageId")
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return _handle(event, context)
