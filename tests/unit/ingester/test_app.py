"""The handler end to end over a recording sink: routes, status codes, bodies, logs and metrics."""

from __future__ import annotations

import gzip
import io
import json
import re
import zlib
from collections.abc import Sequence

import orjson
import pytest
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse

from ingester.app import build_handler, logger
from ingester.firehose import FirehoseWriter
from shared.config import ConfigError
from tests.unit.ingester.conftest import Invoke
from tests.unit.ingester.fakes import (
    STREAMS,
    FakeContext,
    ManualClock,
    RecordingSink,
    api_event,
    device_event,
    header,
    response_body,
    response_json,
    sample_event,
)
from tests.unit.ingester.otlp_samples import logs_request, to_protobuf

RFC3339_MS_UTC = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")


def written_lines(sink: RecordingSink) -> list[bytes]:
    return [line for record in sink.written for line in record[:-1].split(b"\n")]


# --- the events/ samples -------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["ingester_telemetry", "ingester_telemetry_ndjson_gzip"])
def test_sample_telemetry_events(invoke: Invoke, sink: RecordingSink, name: str) -> None:
    response = invoke(sample_event(name))
    assert response["statusCode"] == 200
    assert response_json(response) == {"accepted": 3, "rejected": []}
    lines = [orjson.loads(line) for line in written_lines(sink)]
    assert [line["device_type"] for line in lines] == ["lock", "bridge", "video_doorbell"]
    assert all(RFC3339_MS_UTC.fullmatch(line["received_at"]) for line in lines)
    assert {stream for stream, _ in sink.calls} == {"telemetry-stream"}


@pytest.mark.parametrize("name", ["ingester_logs_json", "ingester_logs_protobuf"])
def test_sample_logs_events(invoke: Invoke, sink: RecordingSink, name: str) -> None:
    response = invoke(sample_event(name))
    assert response["statusCode"] == 200
    if name.endswith("protobuf"):
        assert header(response, "Content-Type") == "application/x-protobuf"
        assert ExportLogsServiceResponse.FromString(response_body(response)) == ExportLogsServiceResponse()
    else:
        assert header(response, "Content-Type") == "application/json"
        assert response_json(response) == {}
    [line] = written_lines(sink)
    assert orjson.loads(line)["resourceLogs"][0]["resource"]["attributes"][0]["key"] == "service.name"
    assert sink.calls[0][0] == "otlp-stream"


# --- /v1/telemetry -------------------------------------------------------------------------------


def test_rejects_are_listed_by_index_and_reason(invoke: Invoke, sink: RecordingSink) -> None:
    body = json.dumps([device_event(0), {"device_type": "Toaster"}, 5, device_event(3, "bridge"), {"x": 1}])
    response = invoke(api_event("/v1/telemetry", body))
    assert response["statusCode"] == 200
    assert response_json(response) == {"accepted": 2, "rejected": [
        {"index": 1, "reason": "unknown_device_type"}, {"index": 2, "reason": "not_an_object"},
        {"index": 4, "reason": "missing_field"}]}
    assert len(written_lines(sink)) == 2


@pytest.mark.parametrize(
    ("encoding", "encode"),
    [("gzip", gzip.compress), ("deflate", zlib.compress), ("gzip", lambda body: body)],  # last: already inflated
)
def test_compressed_and_already_inflated_bodies(invoke: Invoke, encoding: str, encode: object) -> None:
    assert callable(encode)
    ndjson = b"\n".join(orjson.dumps(device_event(i)) for i in range(5))
    response = invoke(api_event("/v1/telemetry", encode(ndjson), "application/x-ndjson", encoding=encoding))
    assert response["statusCode"] == 200
    assert response_json(response)["accepted"] == 5


def test_already_inflated_text_body_is_read(invoke: Invoke) -> None:
    body = json.dumps([device_event(0)])
    response = invoke(api_event("/v1/telemetry", body, encoding="gzip"))  # text, not base64
    assert (response["statusCode"], response_json(response)["accepted"]) == (200, 1)


@pytest.mark.parametrize(
    ("kwargs", "status", "message"),
    [({"content_type": "text/plain"}, 415, "Content-Type"), ({"content_type": None}, 415, "Content-Type"),
     ({"content_type": "application/x-www-form-urlencoded"}, 415, "Content-Type"),
     ({"encoding": "br"}, 415, "Content-Encoding"),
     ({"body": b"[" + b"1," * (3 * 1024 * 1024) + b"1]"}, 413, "larger than"),
     ({"body": gzip.compress(b" " * (5 * 1024 * 1024)), "encoding": "gzip"}, 413, "inflates"),
     ({"body": b"\x1f\x8b\x08\x00garbage", "encoding": "gzip"}, 400, "gzip"),
     ({"body": ""}, 400, "empty body"), ({"body": "\n \n"}, 400, "empty body"),
     ({"body": "definitely not json"}, 400, "neither JSON nor NDJSON")],
)
def test_error_statuses(invoke: Invoke, sink: RecordingSink, kwargs: dict[str, object], status: int,
                        message: str) -> None:
    arguments: dict[str, object] = {"body": json.dumps([device_event(0)])} | kwargs
    body = arguments.pop("body")
    assert isinstance(body, str | bytes)
    response = invoke(api_event("/v1/telemetry", body, **arguments))  # type: ignore[arg-type]
    assert response["statusCode"] == status
    assert message in response_json(response)["message"]
    assert sink.calls == []


def test_no_valid_event_is_400_with_the_rejects(invoke: Invoke, sink: RecordingSink) -> None:
    response = invoke(api_event("/v1/telemetry", '[{"device_type": "fridge!"}, []]'))
    assert response["statusCode"] == 400
    assert response_json(response) == {"message": "no valid event", "accepted": 0, "rejected": [
        {"index": 0, "reason": "unknown_device_type"}, {"index": 1, "reason": "not_an_object"}]}
    assert sink.calls == []


@pytest.mark.parametrize("body", ["[]", '{"events": []}', "[[]]"])
def test_json_without_events_is_400_no_valid_event(invoke: Invoke, body: str) -> None:
    response = invoke(api_event("/v1/telemetry", body))
    assert response["statusCode"] == 400
    assert response_json(response)["message"] == "no valid event"


def test_bad_base64_framing_is_400(invoke: Invoke) -> None:
    event = api_event("/v1/telemetry", "!!!not base64!!!", base64_body=True)
    assert invoke(event)["statusCode"] == 400


@pytest.mark.filterwarnings("ignore:No application metrics to publish")
def test_unknown_route_is_404(invoke: Invoke) -> None:
    assert invoke(api_event("/v1/metrics", "{}"))["statusCode"] == 404


def test_firehose_down_is_503_with_retry_after_and_the_indices_not_written() -> None:
    clock = ManualClock()

    def fail_the_record_holding_event_350(number: int, records: Sequence[bytes]) -> list[str | None]:
        return ["ServiceUnavailableException" if b'"evt-000350"' in record else None for record in records]

    sink = RecordingSink(failures=fail_the_record_holding_event_350)
    handler = build_handler(
        {**STREAMS, "FIREHOSE_RETRY_BUDGET_S": "3"}, sink=sink,
        writer_factory=lambda s: FirehoseWriter(s, clock=clock, sleep=clock.sleep, jitter=lambda: 1.0),
    )
    events = [device_event(i, note="n" * 3000) for i in range(700)]  # ~2.1 MB: three records
    events.insert(5, {"device_type": "Kettle"})
    response = handler(api_event("/v1/telemetry", json.dumps(events)), FakeContext())
    assert response["statusCode"] == 503
    assert header(response, "Retry-After") == "2"
    body = response_json(response)
    assert body["rejected"] == [{"index": 5, "reason": "unknown_device_type"}]
    written_ids = {orjson.loads(line)["event_id"] for line in written_lines(sink)}
    not_written_ids = {json.loads(json.dumps(events[i]))["event_id"] for i in body["not_written"]}
    assert body["not_written"]
    assert not written_ids & not_written_ids
    assert len(written_ids) + len(not_written_ids) == 700 == body["accepted"] + len(body["not_written"])
    assert clock.now - 1000 < 3


# --- /v1/logs ------------------------------------------------------------------------------------


@pytest.mark.parametrize("int64_as_string", [True, False])
@pytest.mark.parametrize("encoding", [None, "gzip", "deflate"])
def test_logs_json_in_both_int64_encodings_and_compressions(invoke: Invoke, sink: RecordingSink,
                                                            int64_as_string: bool, encoding: str | None) -> None:
    body = orjson.dumps(logs_request(int64_as_string=int64_as_string))
    if encoding:
        body = gzip.compress(body) if encoding == "gzip" else zlib.compress(body)
    response = invoke(api_event("/v1/logs", body, encoding=encoding))
    assert (response["statusCode"], response_json(response)) == (200, {})
    assert b'"timeUnixNano":"1544712660300000000"' in written_lines(sink)[0]


@pytest.mark.parametrize("encoding", [None, "gzip"])
def test_logs_protobuf_plain_and_gzip(invoke: Invoke, sink: RecordingSink, encoding: str | None) -> None:
    body = to_protobuf(logs_request(int64_as_string=True, records=4)).SerializeToString()
    response = invoke(api_event("/v1/logs", gzip.compress(body) if encoding else body, "application/x-protobuf",
                                encoding=encoding))
    assert response["statusCode"] == 200
    assert response["isBase64Encoded"] is True
    assert ExportLogsServiceResponse.FromString(response_body(response)) == ExportLogsServiceResponse()
    assert b'"traceId":"5b8efff798038103d269b633813fc60c"' in written_lines(sink)[0]


@pytest.mark.parametrize("protobuf", [False, True])
def test_logs_partial_success(invoke: Invoke, protobuf: bool) -> None:
    request = logs_request(int64_as_string=True, records=3)
    request["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]["spanId"] = "1234"  # bad: 2 bytes
    if protobuf:  # protobuf carries ids as bytes: a short one arrives the same way
        message = to_protobuf(logs_request(int64_as_string=True, records=3))
        message.resource_logs[0].scope_logs[0].log_records[0].span_id = b"\x12\x34"
        event = api_event("/v1/logs", message.SerializeToString(), "application/x-protobuf")
    else:
        event = api_event("/v1/logs", orjson.dumps(request))
    response = invoke(event)
    assert response["statusCode"] == 200
    if protobuf:
        partial = ExportLogsServiceResponse.FromString(response_body(response)).partial_success
        assert (partial.rejected_log_records, "spanId" in partial.error_message) == (1, True)
    else:
        assert response_json(response)["partialSuccess"]["rejectedLogRecords"] == "1"


@pytest.mark.parametrize(
    ("content_type", "body", "status"),
    [("application/json", b"{broken", 400), ("application/x-protobuf", b"\xff\xff\xff", 400),
     ("application/json", b'{"resourceLogs": 5}', 400), ("text/plain", b"hello", 415),
     ("application/json", gzip.compress(b" " * (5 * 1024 * 1024)), 413)],
)
def test_logs_errors_carry_a_google_rpc_status(invoke: Invoke, content_type: str, body: bytes, status: int) -> None:
    encoding = "gzip" if body[:2] == b"\x1f\x8b" else None
    response = invoke(api_event("/v1/logs", body, content_type, encoding=encoding))
    assert response["statusCode"] == status
    if content_type == "application/x-protobuf":
        decoded = Status.FromString(response_body(response))
        assert (decoded.code, bool(decoded.message)) == (3, True)
    else:
        assert set(response_json(response)) == {"code", "message"}


def test_logs_empty_request_is_200(invoke: Invoke, sink: RecordingSink) -> None:
    response = invoke(api_event("/v1/logs", b'{"resourceLogs": []}'))
    assert (response["statusCode"], response_json(response)) == (200, {})
    protobuf = invoke(api_event("/v1/logs", b"", "application/x-protobuf"))
    assert protobuf["statusCode"] == 200
    assert sink.calls == []


@pytest.mark.parametrize("protobuf", [False, True])
def test_logs_firehose_down_is_503_with_retry_after(protobuf: bool) -> None:
    sink = RecordingSink(unavailable_calls=set(range(100)))
    handler = build_handler({**STREAMS, "FIREHOSE_RETRY_BUDGET_S": "0.05"}, sink=sink)
    request = logs_request(int64_as_string=True)
    body = to_protobuf(request).SerializeToString() if protobuf else orjson.dumps(request)
    content_type = "application/x-protobuf" if protobuf else "application/json"
    response = handler(api_event("/v1/logs", body, content_type), FakeContext())
    assert response["statusCode"] == 503
    assert header(response, "Retry-After") == "2"
    assert header(response, "Content-Type") == content_type
    code = Status.FromString(response_body(response)).code if protobuf else response_json(response)["code"]
    assert code == 14


# --- configuration, logs and metrics -------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:No application metrics to publish")
def test_missing_configuration_names_the_variable(sink: RecordingSink) -> None:
    handler = build_handler({"TELEMETRY_STREAM_NAME": "t"}, sink=sink)
    with pytest.raises(ConfigError, match="OTLP_STREAM_NAME"):
        handler(sample_event("ingester_telemetry"), FakeContext())


def test_logs_carry_the_request_id_and_metrics_but_no_event_bodies(
    invoke: Invoke, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    log_stream = io.StringIO()  # the logger keeps the stdout it found at import; read it here
    monkeypatch.setattr(logger.registered_handler, "stream", log_stream)
    capsys.readouterr()
    event = api_event("/v1/telemetry", json.dumps([device_event(0, secret_note="do-not-log"), {"device_type": "X"}]))
    event["requestContext"]["requestId"] = "req-1234"
    invoke(event)
    output = log_stream.getvalue() + capsys.readouterr().out
    assert "do-not-log" not in output
    assert "evt-000000" not in output
    records = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    [log] = [r for r in records if r.get("message") == "request done"]
    assert log["correlation_id"] == "req-1234"
    assert (log["accepted"], log["rejected"], log["status"]) == (1, {"unknown_device_type": 1}, 200)
    [by_reason] = [r for r in records if "RejectedEventsByReason" in r]
    assert by_reason["reason"] == "unknown_device_type"
    [emf] = [r for r in records if "AcceptedEvents" in r]
    assert emf["AcceptedEvents"] == [1.0]
    assert emf["FirehoseRecords"] == [1.0]
