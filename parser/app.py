"""Parser Lambda: SQS batches of S3 notifications for raw objects -> `parser.service`.

Each SQS message is one Powertools batch item: its S3 records (several per body are possible; an
`s3:TestEvent` has none) are processed in order, and any exception fails that message alone
(`ReportBatchItemFailures`), so SQS redelivers it and, after maxReceiveCount, moves it to the DLQ.
Bad data never raises: it ends in quarantine. Messages from the redrive queue have the same shape.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from parser.core import ParseSettings
from parser.dal import OutputObjects, ProcessingRecords, RawObjects
from parser.service import ObjectReport, ParserService, ParserTargets
from shared.aws import Clients
from shared.config import ParserConfig, load
from shared.handler import Handler, on_first_call
from shared.observability import observability
from shared.s3events import parse_s3_notification

logger, metrics, tracer = observability("parser")



def build_service(config: ParserConfig, clients: Clients) -> ParserService:
    s3 = clients.client("s3")
    return ParserService(
        RawObjects(s3),
        OutputObjects(s3),
        ProcessingRecords(clients.client("dynamodb"), config.registry_table),
        targets=ParserTargets(config.verified_bucket, config.quarantine_bucket),
        settings=ParseSettings(past_days=config.event_time_past_days, future_days=config.event_time_future_days),
    )


def build_handler(environ: Mapping[str, str], clients: Clients | None = None) -> Handler:
    """A handler with its own configuration and clients (validated and created on the first call)."""
    service = on_first_call(lambda: build_service(load(ParserConfig, environ), clients or Clients()))

    def record_handler(record: SQSRecord) -> None:
        for ref in parse_s3_notification(record.body):
            try:
                report = service().process(ref)
            except Exception:
                logger.exception("raw object not processed; the message will be retried",
                                 extra={"bucket": ref.bucket, "key": ref.key, "message_id": record.message_id})
                raise
            publish(report)

    @metrics.log_metrics
    def handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
        service()  # configuration errors fail the invocation, not each message
        records = event.get("Records") or []
        metrics.add_metric(name="Messages", unit=MetricUnit.Count, value=len(records))
        if not records:
            return {"batchItemFailures": []}
        processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
        return dict(process_partial_response(event, record_handler, processor, context))

    return handle


def publish(report: ObjectReport) -> None:
    """EMF metrics and one log line per raw object."""
    if report.skipped is not None or report.outcome is None:
        logger.warning("notification ignored", extra={"key": report.key, "reason": report.skipped})
        return
    outcome = report.outcome
    metrics.add_metric(name="RawObjects", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="BytesIn", unit=MetricUnit.Bytes, value=outcome.bytes_in)
    metrics.add_metric(name="FilesOut", unit=MetricUnit.Count, value=len(report.outputs))
    metrics.add_metric(name="RowsOut", unit=MetricUnit.Count, value=outcome.rows)
    metrics.add_metric(name="Quarantined", unit=MetricUnit.Count, value=outcome.quarantined)
    metrics.add_metric(name="BlankLines", unit=MetricUnit.Count, value=outcome.counts.blank_lines)
    metrics.add_metric(name="DurationMs", unit=MetricUnit.Milliseconds, value=report.duration_s * 1000)
    if report.lag_s is not None:
        metrics.add_metric(name="LagSeconds", unit=MetricUnit.Seconds, value=report.lag_s)
    for type_value, rows in sorted(outcome.counts.rows_out.items()):
        _dimensioned("RowsOutByType", rows, "type", type_value)
    for reason, count in sorted(outcome.counts.quarantined.items()):
        _dimensioned("QuarantinedByReason", count, "reason", reason)
    logger.info("raw object parsed", extra={
        "key": report.key, "source": report.source, "rows_out": outcome.counts.rows_out,
        "quarantined": outcome.counts.quarantined, "blank_lines": outcome.counts.blank_lines,
        "bytes_in": outcome.bytes_in, "outputs": report.outputs, "quarantine_key": report.quarantine_key,
        "duration_ms": round(report.duration_s * 1000), "lag_s": report.lag_s,
    })


def _dimensioned(name: str, value: int, dimension: str, dimension_value: str) -> None:
    with single_metric(name=name, unit=MetricUnit.Count, value=value, namespace=metrics.namespace,
                       default_dimensions=metrics.default_dimensions) as metric:
        metric.add_dimension(name="service", value="parser")
        metric.add_dimension(name=dimension, value=dimension_value)


# Reads os.environ on the first invocation, not at import (build_handler is lazy).
_handle = build_handler(os.environ)


@logger.inject_lambda_context(correlation_id_path="Records[0].messageId")
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return _handle(event, context)
