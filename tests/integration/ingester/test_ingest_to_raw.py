"""Requests through the handler land in raw S3 via (moto's) Firehose: content, limits, failures."""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Sequence

import orjson
import pytest
from botocore.stub import Stubber
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse

from ingester.firehose import MAX_BATCH_BYTES, MAX_BATCH_RECORDS, MAX_RECORD_BYTES, FirehoseSink
from tests.integration.ingester.conftest import PREFIXES, Stack
from tests.unit.ingester.fakes import (
    RecordingSink,
    api_event,
    device_event,
    header,
    response_body,
    response_json,
    sample_event,
)
from tests.unit.ingester.otlp_samples import logs_request, strict_parse_otlp_json, to_protobuf

TELEMETRY = PREFIXES["telemetry-stream"]
OTLP = PREFIXES["otlp-stream"]


def ids(lines: Sequence[bytes]) -> list[str]:
    return [orjson.loads(line)["event_id"] for line in lines]


# --- the samples, every body form ----------------------------------------------------------------


def test_sample_events_land_in_their_raw_prefixes(stack: Stack) -> None:
    for name in ("ingester_telemetry", "ingester_telemetry_ndjson_gzip", "ingester_logs_json",
                 "ingester_logs_protobuf"):
        assert stack.invoke(sample_event(name))["statusCode"] == 200
    telemetry = stack.raw_lines(TELEMETRY)
    assert sorted(ids(telemetry)) == sorted(["evt-0001", "evt-0002", "evt-0003"] * 2)
    assert all(orjson.loads(line)["received_at"].endswith("Z") for line in telemetry)
    logs = stack.raw_lines(OTLP)
    assert len(logs) == 2
    assert logs[0] == logs[1]  # JSON and protobuf forms of one request give the same raw line
    strict_parse_otlp_json(logs[0])


@pytest.mark.parametrize(
    ("content_type", "encoding", "encode"),
    [("application/json", None, lambda b: b), ("application/json", "gzip", gzip.compress),
     ("application/x-ndjson", "deflate", zlib.compress), ("application/x-ndjson", "gzip", lambda b: b)],
)
def test_body_forms(stack: Stack, content_type: str, encoding: str | None, encode: object) -> None:
    assert callable(encode)
    events = [device_event(i, "video_doorbell", motion_detected=True) for i in range(50)]
    raw = orjson.dumps(events) if content_type == "application/json" else b"\n".join(map(orjson.dumps, events))
    response = stack.invoke(api_event("/v1/telemetry", encode(raw), content_type, encoding=encoding))
    assert response_json(response) == {"accepted": 50, "rejected": []}
    assert ids(stack.raw_lines(TELEMETRY)) == [e["event_id"] for e in events]


def test_every_reject_reason_and_nothing_rejected_reaches_raw(stack: Stack) -> None:
    body = b"\n".join([
        orjson.dumps(device_event(0)), b"{oops", b"[]", orjson.dumps({"event_id": "x"}),
        orjson.dumps(device_event(4, "fridge.v2")), orjson.dumps(device_event(5, note="n" * MAX_RECORD_BYTES)),
        orjson.dumps(device_event(6, "bridge", cpu_pct="high")),  # the parser judges field values
    ])
    response = stack.invoke(api_event("/v1/telemetry", body, "application/x-ndjson"))
    assert response_json(response) == {"accepted": 2, "rejected": [
        {"index": 1, "reason": "invalid_json"}, {"index": 2, "reason": "not_an_object"},
        {"index": 3, "reason": "missing_field"}, {"index": 4, "reason": "unknown_device_type"},
        {"index": 5, "reason": "record_too_large"}]}
    assert ids(stack.raw_lines(TELEMETRY)) == ["evt-000000", "evt-000006"]


@pytest.mark.parametrize(
    ("kwargs", "status"),
    [({"content_type": "text/csv"}, 415), ({"encoding": "br"}, 415), ({"body": b"nonsense"}, 400),
     ({"body": b'[{"device_type": "Oven"}]'}, 400), ({"body": gzip.compress(bytes(40 * 1024 * 1024)),
                                                     "encoding": "gzip"}, 413)],
)
def test_refused_requests_write_nothing(stack: Stack, kwargs: dict[str, object], status: int) -> None:
    arguments: dict[str, object] = {"body": orjson.dumps([device_event(0)])} | kwargs
    body = arguments.pop("body")
    assert isinstance(body, bytes)
    response = stack.invoke(api_event("/v1/telemetry", body, **arguments))  # type: ignore[arg-type]
    assert response["statusCode"] == status
    assert stack.raw_object_count("raw/") == 0


# --- OTLP ----------------------------------------------------------------------------------------


def test_otlp_spec_example_in_every_encoding_gives_identical_raw_lines(stack: Stack) -> None:
    as_numbers = logs_request(int64_as_string=False, records=2)
    as_strings = logs_request(int64_as_string=True, records=2)
    protobuf = to_protobuf(as_strings).SerializeToString()
    requests = [
        api_event("/v1/logs", orjson.dumps(as_numbers)),
        api_event("/v1/logs", orjson.dumps(as_strings)),
        api_event("/v1/logs", protobuf, "application/x-protobuf"),
        api_event("/v1/logs", gzip.compress(protobuf), "application/x-protobuf", encoding="gzip"),
    ]
    for event in requests:
        response = stack.invoke(event)
        assert response["statusCode"] == 200
        if header(response, "Content-Type") == "application/x-protobuf":
            ExportLogsServiceResponse.FromString(response_body(response))
        else:
            assert response_json(response) == {}
    lines = stack.raw_lines(OTLP)
    assert len(lines) == 4
    assert len(set(lines)) == 1
    message = strict_parse_otlp_json(lines[0])
    assert len(message.resource_logs[0].scope_logs[0].log_records) == 2


# --- Firehose failures (moto always reports FailedPutCount 0: failures are injected) -------------


def test_partial_failures_are_retried_without_loss_or_duplicates(stack: Stack) -> None:
    def fail_half_the_first_call(number: int, records: Sequence[bytes]) -> list[str | None]:
        return ["ServiceUnavailableException" if number == 0 and i % 2 == 0 else None for i in range(len(records))]

    flaky = RecordingSink(failures=fail_half_the_first_call, downstream=stack.firehose_sink())
    invoke = stack.handler(flaky)
    events = [device_event(i, note="n" * 1500) for i in range(4000)]  # ~6.5 MB: 7 records, 2 calls
    response = invoke(api_event("/v1/telemetry", orjson.dumps(events)))
    assert response_json(response) == {"accepted": 4000, "rejected": []}
    landed = ids(stack.raw_lines(TELEMETRY))
    assert sorted(landed) == sorted(e["event_id"] for e in events)  # each exactly once
    assert len(flaky.calls) == 3  # two calls, then one with only the failed records


def test_throttled_past_the_budget_503_then_the_client_resends_only_what_is_missing(stack: Stack) -> None:
    throttled_calls = set(range(1, 1000))  # the first call gets through, then Firehose throttles

    def throttle_after_the_first_record(number: int, records: Sequence[bytes]) -> list[str | None]:
        if number in throttled_calls:
            return ["ServiceUnavailableException"] * len(records)
        return [None if i == 0 else "ServiceUnavailableException" for i in range(len(records))]

    flaky = RecordingSink(failures=throttle_after_the_first_record, downstream=stack.firehose_sink())
    invoke = stack.handler(flaky, FIREHOSE_RETRY_BUDGET_S="0.3")
    events = [device_event(i, note="n" * 1500) for i in range(3000)]
    first = invoke(api_event("/v1/telemetry", orjson.dumps(events)))
    assert first["statusCode"] == 503
    assert header(first, "Retry-After") == "2"
    missing = response_json(first)["not_written"]
    assert 0 < len(missing) < len(events)

    retry = stack.invoke(api_event("/v1/telemetry", orjson.dumps([events[i] for i in missing])))
    assert response_json(retry) == {"accepted": len(missing), "rejected": []}
    assert sorted(ids(stack.raw_lines(TELEMETRY))) == sorted(e["event_id"] for e in events)


def test_stubbed_firehose_partial_failure_resends_exactly_the_failed_record(stack: Stack) -> None:
    client = stack.clients.session.client("firehose")
    small = [device_event(0), device_event(1)]
    with Stubber(client) as stub:
        stub.add_response("put_record_batch", {"FailedPutCount": 1, "RequestResponses": [
            {"ErrorCode": "ServiceUnavailableException", "ErrorMessage": "Slow down."}]})
        stub.add_response("put_record_batch", {"FailedPutCount": 0, "RequestResponses": [{"RecordId": "r1"}]})
        response = stack.handler(FirehoseSink(client))(api_event("/v1/telemetry", orjson.dumps(small)))
        stub.assert_no_pending_responses()
    assert response_json(response)["accepted"] == 2


@pytest.mark.parametrize("protobuf", [False, True])
def test_otlp_throttled_is_503_retry_after_in_the_request_content_type(stack: Stack, protobuf: bool) -> None:
    down = RecordingSink(unavailable_calls=set(range(1000)), downstream=stack.firehose_sink())
    invoke = stack.handler(down, FIREHOSE_RETRY_BUDGET_S="0.2")
    request = logs_request(int64_as_string=True)
    body = to_protobuf(request).SerializeToString() if protobuf else orjson.dumps(request)
    response = invoke(api_event("/v1/logs", body, "application/x-protobuf" if protobuf else "application/json"))
    assert response["statusCode"] == 503
    assert header(response, "Retry-After") == "2"
    assert stack.raw_object_count(OTLP) == 0


# --- limits --------------------------------------------------------------------------------------


def test_large_request_respects_call_and_record_limits(stack: Stack) -> None:
    recorder = RecordingSink(downstream=stack.firehose_sink())
    invoke = stack.handler(recorder)
    events = [device_event(i, "bridge", uptime_s=i, note="x" * 330) for i in range(25_000)]  # ~10 MB
    response = invoke(api_event("/v1/telemetry", orjson.dumps(events)))
    assert response_json(response) == {"accepted": 25_000, "rejected": []}
    assert len(recorder.calls) >= 3
    for _stream, records in recorder.calls:
        assert len(records) <= MAX_BATCH_RECORDS
        assert sum(map(len, records)) <= MAX_BATCH_BYTES
        assert all(len(record) <= MAX_RECORD_BYTES for record in records)
    assert sorted(ids(stack.raw_lines(TELEMETRY))) == sorted(e["event_id"] for e in events)
    assert stack.raw_object_count(TELEMETRY) == len(recorder.calls)  # moto: one object per call


def test_json_body_with_trailing_values_is_read_as_ndjson(stack: Stack) -> None:
    body = json.dumps(device_event(0)) + "\n" + json.dumps(device_event(1))
    response = stack.invoke(api_event("/v1/telemetry", body))
    assert response_json(response) == {"accepted": 2, "rejected": []}
