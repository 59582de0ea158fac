"""OTLP decoding and normalizing: every raw line is a strict OTLP/JSON ExportLogsServiceRequest."""

from __future__ import annotations

import math

import orjson
import pytest
from google.protobuf.json_format import MessageToDict
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse

from ingester import otlp
from ingester.firehose import MAX_LINE_BYTES
from tests.unit.ingester.otlp_samples import TRACE_ID, logs_request, strict_parse_otlp_json, to_protobuf


def split(document: dict[str, object], ids: otlp.IdEncoding = "hex", max_line: int = MAX_LINE_BYTES) -> otlp.LogsBatch:
    return otlp.split_request(document, ids=ids, max_line_bytes=max_line)


@pytest.mark.parametrize("int64_as_string", [True, False])
def test_spec_shaped_request_in_both_int64_encodings_gives_the_same_line(int64_as_string: bool) -> None:
    batch = split(logs_request(int64_as_string=int64_as_string))
    assert (batch.accepted, batch.rejected) == (1, 0)
    [line] = batch.lines
    assert line == split(logs_request(int64_as_string=True)).lines[0]
    record = orjson.loads(line)["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]
    assert record["traceId"] == TRACE_ID.lower()
    assert record["timeUnixNano"] == "1544712660300000000"
    assert record["attributes"][2]["value"] == {"intValue": "10"}
    strict_parse_otlp_json(line)


def test_protobuf_path_gives_the_same_lines_as_json() -> None:
    request = logs_request(int64_as_string=True, records=3)
    body = to_protobuf(request).SerializeToString()
    from_protobuf = split(otlp.decode_protobuf(body), ids="base64")
    assert from_protobuf.lines == split(request).lines
    assert from_protobuf.accepted == 3


def test_enum_names_snake_case_and_unknown_fields() -> None:
    request = logs_request(int64_as_string=True)
    record = request["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]
    record["severityNumber"] = "SEVERITY_NUMBER_WARN"
    record["futureField"] = {"x": 1}
    record["event_name"] = record.pop("body") and "door.opened"
    request["resourceLogs"][0]["somethingNew"] = True
    [line] = split(request).lines
    normalized = orjson.loads(line)
    out = normalized["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]
    assert out["severityNumber"] == 13
    assert out["eventName"] == "door.opened"
    assert "futureField" not in out
    assert "somethingNew" not in normalized["resourceLogs"][0]
    strict_parse_otlp_json(line)


def test_empty_request_is_fine() -> None:
    assert split({"resourceLogs": []}).lines == []
    assert split({}).accepted == 0


@pytest.mark.parametrize(
    ("change", "message"),
    [({"traceId": "abc"}, "traceId"), ({"spanId": "zz" * 8}, "spanId"), ({"timeUnixNano": "soon"}, "timeUnixNano"),
     ({"timeUnixNano": -1}, "timeUnixNano"), ({"severityNumber": 99}, "severityNumber"),
     ({"body": {"intValue": "1.5"}}, "intValue"), ({"body": "plain"}, "AnyValue"), ({"flags": True}, "flags"),
     ({"attributes": [{"value": {}}]}, "key")],
)
def test_invalid_records_are_rejected_alone(change: dict[str, object], message: str) -> None:
    request = logs_request(int64_as_string=True, records=3)
    request["resourceLogs"][0]["scopeLogs"][0]["logRecords"][1].update(change)
    batch = split(request)
    assert (batch.accepted, batch.rejected) == (2, 1)
    assert message in batch.error_message
    strict_parse_otlp_json(batch.lines[0])


def test_invalid_resource_rejects_its_records() -> None:
    request = logs_request(int64_as_string=True, records=2)
    request["resourceLogs"].append({**logs_request(int64_as_string=True, records=4)["resourceLogs"][0],
                                    "resource": {"attributes": "nope"}})
    batch = split(request)
    assert (batch.accepted, batch.rejected) == (2, 4)


@pytest.mark.parametrize("body", [b"nope", b"[]", b'"x"'])
def test_undecodable_json_raises(body: bytes) -> None:
    with pytest.raises(otlp.DecodeFailed):
        split(otlp.decode_json(body))


def test_resource_logs_not_an_array_raises() -> None:
    with pytest.raises(otlp.DecodeFailed):
        split({"resourceLogs": {"a": 1}})


def test_undecodable_protobuf_raises() -> None:
    with pytest.raises(otlp.DecodeFailed):
        otlp.decode_protobuf(b"\xff\xff\xff\xff")


def test_zero_ids_and_default_values_are_left_out() -> None:
    request = logs_request(int64_as_string=True)
    record = request["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]
    record.update(traceId="0" * 32, spanId="", timeUnixNano="0", flags=0)
    out = orjson.loads(split(request).lines[0])["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]
    assert not {"traceId", "spanId", "timeUnixNano", "flags"} & out.keys()


def test_special_doubles_use_proto3_json_strings() -> None:
    request = logs_request(int64_as_string=True)
    record = request["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]
    record["body"] = {"arrayValue": {"values": [{"doubleValue": "NaN"}, {"doubleValue": "-Infinity"},
                                                {"doubleValue": "2.5"}]}}
    line = split(request).lines[0]
    values = orjson.loads(line)["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]["body"]["arrayValue"]["values"]
    assert values == [{"doubleValue": "NaN"}, {"doubleValue": "-Infinity"}, {"doubleValue": 2.5}]
    parsed = strict_parse_otlp_json(line).resource_logs[0].scope_logs[0].log_records[0].body.array_value.values
    assert math.isnan(parsed[0].double_value)


def test_large_requests_split_into_lines_that_fit_a_record() -> None:
    request = logs_request(int64_as_string=True, records=200)
    for index, record in enumerate(request["resourceLogs"][0]["scopeLogs"][0]["logRecords"]):
        record["body"] = {"stringValue": f"{index:04d}" + "x" * 996}
    record["body"] = {"stringValue": "y" * 40_000}  # the last one cannot fit the small limit below
    batch = split(request, max_line=20_000)
    assert batch.rejected == 1
    assert "larger than a Firehose record" in batch.error_message
    assert batch.accepted == 199
    assert len(batch.lines) > 10
    assert all(len(line) <= 20_000 for line in batch.lines)
    bodies = [record.body.string_value[:4] for line in batch.lines
              for record in strict_parse_otlp_json(line).resource_logs[0].scope_logs[0].log_records]
    assert bodies == [f"{index:04d}" for index in range(199)]
    first = strict_parse_otlp_json(batch.lines[0]).resource_logs[0]
    assert first.resource.attributes[0].value.string_value == "my.service"
    assert first.scope_logs[0].scope.name == "my.library"


# --- responses -----------------------------------------------------------------------------------


def test_export_response_json_and_protobuf() -> None:
    assert otlp.export_response(0, "", protobuf=False) == b"{}"
    empty = otlp.export_response(0, "", protobuf=True)
    assert ExportLogsServiceResponse.FromString(empty) == ExportLogsServiceResponse()
    partial = otlp.export_response(3, "log record: bad traceId", protobuf=True)
    decoded = ExportLogsServiceResponse.FromString(partial)
    assert decoded.partial_success.rejected_log_records == 3
    assert decoded.partial_success.error_message == "log record: bad traceId"
    as_json = orjson.loads(otlp.export_response(3, "m", protobuf=False))
    assert as_json == {"partialSuccess": {"rejectedLogRecords": "3", "errorMessage": "m"}}
    from google.protobuf.json_format import ParseDict  # noqa: PLC0415

    assert MessageToDict(ParseDict(as_json, ExportLogsServiceResponse()))["partialSuccess"]["rejectedLogRecords"] == "3"


def test_status_body_json_and_protobuf() -> None:
    decoded = Status.FromString(otlp.status_body(otlp.INVALID_ARGUMENT, "bad body", protobuf=True))
    assert (decoded.code, decoded.message) == (3, "bad body")
    assert orjson.loads(otlp.status_body(14, "later", protobuf=False)) == {"code": 14, "message": "later"}
