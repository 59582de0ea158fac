"""The ingester's logic: one request in, one reply out. Knows nothing of Lambda or API Gateway.

`Ingester.telemetry` and `Ingester.logs` take a `Request` (raw body bytes and the headers that
matter, plus the retry deadline) and return a `Reply` (status, body, content type, headers) and an
`Outcome` (counts for metrics and logs; never event bodies).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from ingester import otlp, telemetry
from ingester.encoding import BodyError, BodyTooLarge, decode_body, media_type
from ingester.firehose import MAX_LINE_BYTES, FirehoseWriter, WriteResult
from shared.schema import Reason
from shared.timeparse import format_rfc3339_ms

#: API Gateway ends every integration at 29 s; replies must leave before that.
API_GATEWAY_TIMEOUT_S: Final = 29.0
#: Time kept back from every limit for building and returning the reply.
REPLY_RESERVE_S: Final = 1.0
#: Seconds a client is asked to wait after a 503.
RETRY_AFTER_S: Final = 2

JSON: Final = "application/json"
_UNKNOWN_DEVICE_TYPE: Final = Reason.UNKNOWN_DEVICE_TYPE.value


@dataclass(frozen=True)
class Request:
    body: bytes
    content_type: str | None
    content_encoding: str | None
    retry_budget_s: float  # time the writer may spend on Firehose retries (see `retry_budget`)
    body_error: str | None = None  # the transport could not hand the body over (bad base64)


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    content_type: str
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Outcome:
    """What happened, for metrics and logs."""

    route: str
    accepted: int = 0
    rejected: dict[str, int] = field(default_factory=dict)  # by reason
    parked: int = 0  # accepted (written to raw) with a device type the schema does not know yet
    write: WriteResult | None = None
    not_written: int = 0
    error: str | None = None


def retry_budget(budget_s: float, remaining_ms: int | None, request_time_epoch_ms: int | None,
                 now_epoch_ms: int) -> float:
    """Seconds the writer may spend: the configured budget, inside the Lambda's time and API Gateway's 29 s."""
    allowed = budget_s
    if remaining_ms is not None:
        allowed = min(allowed, remaining_ms / 1000 - REPLY_RESERVE_S)
    if request_time_epoch_ms is not None:
        elapsed_s = max(0.0, (now_epoch_ms - request_time_epoch_ms) / 1000)
        allowed = min(allowed, API_GATEWAY_TIMEOUT_S - elapsed_s - REPLY_RESERVE_S)
    return max(0.0, allowed)


class Ingester:
    def __init__(
        self,
        writer: FirehoseWriter,
        *,
        telemetry_stream: str,
        otlp_stream: str,
        max_body_bytes: int,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._writer = writer
        self._telemetry_stream = telemetry_stream
        self._otlp_stream = otlp_stream
        self._max_body_bytes = max_body_bytes
        self._wall_clock = wall_clock

    # --- POST /v1/telemetry ------------------------------------------------------------------------

    def telemetry(self, request: Request) -> tuple[Reply, Outcome]:
        outcome = Outcome(route="telemetry")
        media = media_type(request.content_type)
        if media not in telemetry.MEDIA_TYPES:
            return _fail(outcome, 415, "Content-Type must be application/json or application/x-ndjson")
        if request.body_error:
            return _fail(outcome, 400, request.body_error)
        try:
            body = decode_body(request.body, request.content_encoding, self._max_body_bytes)
        except BodyError as exc:
            return _fail(outcome, exc.status, str(exc))
        if not body or body.isspace():
            return _fail(outcome, 400, "empty body")
        received_at = format_rfc3339_ms(int(self._wall_clock() * 1000))
        batch = telemetry.split_events(body, media, received_at, MAX_LINE_BYTES)
        outcome.rejected = batch.rejected_by_reason()
        rejected = [{"index": item.index, "reason": item.reason} for item in batch.rejected]
        # Parked events are accepted (in raw, counted in `accepted`); the list says which of them wait
        # for their device type. Present only when non-empty, so replies without one are unchanged.
        parked_of = {index: {"index": index, "reason": _UNKNOWN_DEVICE_TYPE} for index in batch.parked}
        if not batch.lines:
            message = "no valid event" if batch.readable else "body is neither JSON nor NDJSON"
            outcome.error = message
            return _json(400, {"message": message, "accepted": 0, "rejected": rejected}), outcome
        result = self._writer.write(self._telemetry_stream, batch.lines, request.retry_budget_s)
        outcome.write = result
        if result.not_written:
            not_written = [batch.indices[position] for position in result.not_written]
            outcome.accepted = len(batch.lines) - len(not_written)
            outcome.not_written = len(not_written)
            outcome.error = "firehose unavailable"
            unwritten = set(not_written)
            parked = [entry for index, entry in parked_of.items() if index not in unwritten]
            outcome.parked = len(parked)
            payload: dict[str, Any] = {
                "message": "Firehose unavailable; resend only the events listed in not_written",
                "accepted": outcome.accepted,
                "rejected": rejected,
                "not_written": not_written,
            }
            if parked:
                payload["parked"] = parked
            return _json(503, payload, headers={"Retry-After": str(RETRY_AFTER_S)}), outcome
        outcome.accepted = len(batch.lines)
        outcome.parked = len(parked_of)
        payload = {"accepted": outcome.accepted, "rejected": rejected}
        if parked_of:
            payload["parked"] = list(parked_of.values())
        return _json(200, payload), outcome

    # --- POST /v1/logs (OTLP/HTTP) -----------------------------------------------------------------

    def logs(self, request: Request) -> tuple[Reply, Outcome]:
        outcome = Outcome(route="logs")
        media = media_type(request.content_type)
        protobuf = media in otlp.PROTOBUF_TYPES
        reply_type = media if protobuf else JSON

        def status(http: int, code: int, message: str, headers: dict[str, str] | None = None) -> tuple[Reply, Outcome]:
            outcome.error = message
            return Reply(http, otlp.status_body(code, message, protobuf=protobuf), reply_type, headers or {}), outcome

        if not protobuf and media != otlp.JSON_TYPE:
            return status(415, otlp.INVALID_ARGUMENT, "Content-Type must be application/x-protobuf or application/json")
        if request.body_error:
            return status(400, otlp.INVALID_ARGUMENT, request.body_error)
        try:
            body = decode_body(request.body, request.content_encoding, self._max_body_bytes)
            document = otlp.decode_protobuf(body) if protobuf else otlp.decode_json(body)
            batch = otlp.split_request(document, ids="base64" if protobuf else "hex", max_line_bytes=MAX_LINE_BYTES)
        except BodyError as exc:
            code = otlp.RESOURCE_EXHAUSTED if isinstance(exc, BodyTooLarge) else otlp.INVALID_ARGUMENT
            return status(exc.status, code, str(exc))
        except otlp.DecodeFailed as exc:
            return status(400, otlp.INVALID_ARGUMENT, str(exc))
        if batch.rejected:
            outcome.rejected = {"invalid_log_record": batch.rejected}
        if batch.lines:
            result = self._writer.write(self._otlp_stream, batch.lines, request.retry_budget_s)
            outcome.write = result
            if result.not_written:
                # OTLP cannot name a subset to resend: the client resends the request. Lines from it
                # that did reach Firehose may then arrive twice; a loss would be worse.
                outcome.not_written = len(result.not_written)
                return status(503, otlp.UNAVAILABLE, "Firehose unavailable; retry later",
                              {"Retry-After": str(RETRY_AFTER_S)})
        outcome.accepted = batch.accepted
        body_out = otlp.export_response(batch.rejected, batch.error_message, protobuf=protobuf)
        return Reply(200, body_out, reply_type), outcome


def _json(status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> Reply:
    return Reply(status, orjson.dumps(payload), JSON, headers or {})


def _fail(outcome: Outcome, status: int, message: str) -> tuple[Reply, Outcome]:
    outcome.error = message
    return _json(status, {"message": message}), outcome
