"""Ingester Lambda: API Gateway REST proxy events (v1) -> `ingester.service` -> Firehose.

`handler` is the Lambda entry point; `build_handler(environ, clients, sink=...)` builds the same
handler over another environment mapping, boto3 clients or record sink (the local stack and tests).
Configuration is read on the first request, not at import. The API key is enforced by API Gateway
(and by the local stack's HTTP front), not here.

Cold start: this module loads botocore, Powertools (Logger, Metrics, the event handler) and orjson.
pydantic (configuration) loads on the first request, protobuf on the first protobuf request to
/v1/logs. Never loaded: pyarrow; boto3 (one Firehose client needs only botocore, and boto3's own
layer, s3transfer and resources, is about a sixth of `import boto3`); the Powertools Tracer (it
imports the X-Ray SDK, which builds two botocore clients at import, costing about as much as
`import boto3` again). With active tracing on, Lambda still records each invocation.
"""

from __future__ import annotations

import base64
import binascii
import gc
import os
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from botocore.config import Config

from ingester.firehose import FirehoseSink, FirehoseWriter, RecordSink, firehose_client
from ingester.service import Ingester, Outcome, Reply, Request, retry_budget
from shared.observability import METRICS_NAMESPACE, logger_and_metrics

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from shared.aws import Clients

SERVICE = "ingester"
# Logger and Metrics without the Tracer (see the module docstring).
logger, metrics = logger_and_metrics(SERVICE)

#: The writer retries by itself within its budget, so each Firehose call gives up early.
FIREHOSE_CLIENT_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 2},
    connect_timeout=2,
    read_timeout=5,
    max_pool_connections=4,
)

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


def build_handler(
    environ: Mapping[str, str],
    clients: Clients | None = None,
    *,
    sink: RecordSink | None = None,
    writer_factory: Callable[[RecordSink], FirehoseWriter] = FirehoseWriter,
) -> Handler:
    """A handler reading its configuration from `environ` on first use.

    `sink` replaces the Firehose client (tests, the local stack's Firehose stand-in); otherwise the
    Firehose client comes from `clients`, or, by default, from botocore with short timeouts.
    Like a Lambda instance, a handler serves one request at a time (the resolver holds the current
    event); build one per concurrent caller.
    """
    state: dict[str, Any] = {}

    def ingester() -> tuple[Ingester, float]:
        if "ingester" not in state:
            from shared.config import IngesterConfig, load  # noqa: PLC0415 (pydantic: first request, not import)

            config = load(IngesterConfig, environ)
            if sink is not None:
                record_sink = sink
            elif clients is not None:
                record_sink = FirehoseSink(clients.client("firehose"))
            else:
                record_sink = FirehoseSink(firehose_client(FIREHOSE_CLIENT_CONFIG))
            state["budget_s"] = config.firehose_retry_budget_s
            state["ingester"] = Ingester(
                writer_factory(record_sink),
                telemetry_stream=config.telemetry_stream_name,
                otlp_stream=config.otlp_stream_name,
                max_body_bytes=config.max_body_bytes,
            )
        return state["ingester"], state["budget_s"]

    resolver = APIGatewayRestResolver()

    def request() -> Request:
        event = resolver.current_event
        headers = event.headers
        remaining = getattr(resolver.lambda_context, "get_remaining_time_in_millis", None)
        request_time = (event.get("requestContext") or {}).get("requestTimeEpoch")
        body, body_error = _body_bytes(event.get("body"), bool(event.get("isBase64Encoded")))
        return Request(
            body=body,
            body_error=body_error,
            content_type=headers.get("content-type"),
            content_encoding=headers.get("content-encoding"),
            retry_budget_s=retry_budget(
                ingester()[1], remaining() if callable(remaining) else None,
                int(request_time) if isinstance(request_time, int | float) else None, int(time.time() * 1000),
            ),
        )

    @resolver.post("/v1/telemetry")
    def post_telemetry() -> Response[str | bytes]:
        reply, outcome = ingester()[0].telemetry(request())
        _record(outcome, reply.status)
        return _response(reply)

    @resolver.post("/v1/logs")
    def post_logs() -> Response[str | bytes]:
        reply, outcome = ingester()[0].logs(request())
        _record(outcome, reply.status)
        return _response(reply)

    def validation_error(error: RequestValidationError) -> Response[str]:
        # Powertools answers 422 by default; a request this API cannot read is a 400.
        return Response(400, "application/json", '{"message":"invalid request"}')

    resolver.exception_handler(RequestValidationError)(validation_error)

    @logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
    @metrics.log_metrics
    def handle(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        ingester()  # a missing or bad variable fails here, naming it
        return resolver.resolve(event, context)

    return handle


def _body_bytes(body: str | None, is_base64: bool) -> tuple[bytes, str | None]:
    """The body's bytes, or an error message when API Gateway's base64 framing is broken."""
    if not body:
        return b"", None
    if is_base64:
        try:
            return base64.b64decode(body, validate=True), None
        except binascii.Error:
            return b"", "body is not valid base64"
    # A text body: lone surrogates (from \\ud800-style escapes) stay invalid UTF-8 for the parser to flag.
    return body.encode("utf-8", "surrogatepass"), None


def _response(reply: Reply) -> Response[str | bytes]:
    body: str | bytes = reply.body
    if reply.content_type == "application/json":
        body = reply.body.decode("utf-8")
    return Response(reply.status, reply.content_type, body, headers=reply.headers or None)


def _record(outcome: Outcome, status: int) -> None:
    """EMF metrics and one structured log line per request (counts only, never bodies)."""
    unit = "LogRecords" if outcome.route == "logs" else "Events"
    metrics.add_metric(name=f"Accepted{unit}", unit=MetricUnit.Count, value=outcome.accepted)
    rejected_total = sum(outcome.rejected.values())
    metrics.add_metric(name=f"Rejected{unit}", unit=MetricUnit.Count, value=rejected_total)
    for reason, count in outcome.rejected.items():
        with single_metric(name=f"Rejected{unit}ByReason", unit=MetricUnit.Count, value=count,
                           namespace=METRICS_NAMESPACE,
                           default_dimensions={"service": SERVICE, "reason": reason}):
            pass
    if outcome.parked:  # accepted with a device type the schema does not know yet (quarantined, replayable)
        metrics.add_metric(name=f"Parked{unit}", unit=MetricUnit.Count, value=outcome.parked)
    write = outcome.write
    if write is not None:
        metrics.add_metric(name="FirehoseRecords", unit=MetricUnit.Count, value=write.records_sent)
        metrics.add_metric(name="FirehoseBytes", unit=MetricUnit.Bytes, value=write.bytes_sent)
        if write.failed_records:  # zero most of the time; alarms treat missing data as not breaching
            metrics.add_metric(name="FirehoseRetries", unit=MetricUnit.Count, value=write.retries)
            metrics.add_metric(name="FirehoseFailedRecords", unit=MetricUnit.Count, value=write.failed_records)
    fields: dict[str, Any] = {
        "route": outcome.route, "status": status, "accepted": outcome.accepted, "rejected": outcome.rejected,
    }
    if outcome.parked:
        fields["parked"] = outcome.parked
    if write is not None:
        fields.update(records=write.records_sent, bytes=write.bytes_sent, calls=write.calls,
                      retries=write.retries, failed_records=write.failed_records)
        if write.error_codes:
            fields["firehose_errors"] = write.error_codes
    if outcome.not_written:
        metrics.add_metric(name=f"NotWritten{unit}", unit=MetricUnit.Count, value=outcome.not_written)
        fields["not_written"] = outcome.not_written
    if outcome.error:
        fields["error"] = outcome.error
    if status >= 500:
        logger.warning("request not fully written", extra=fields)
    else:
        logger.info("request done", extra=fields)


handler = build_handler(os.environ)

# In Lambda, everything loaded so far lives as long as the process: keep it out of the cyclic
# collector's full passes, which otherwise walk these ~50k objects again and again while requests
# allocate. Not in a shared process (the local stack, tests), where it would pin other modules' objects.
if "AWS_LAMBDA_FUNCTION_NAME" in os.environ:
    gc.freeze()
