"""OTLP logs requests shaped like the specification's examples/logs.json, in both int64 encodings."""

from __future__ import annotations

import base64
import copy
from typing import Any

from google.protobuf.json_format import ParseDict
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

TRACE_ID = "5B8EFFF798038103D269B633813FC60C"
SPAN_ID = "EEE19B7EC3C1B174"


def logs_request(*, int64_as_string: bool, records: int = 1) -> dict[str, Any]:
    """resource -> scope -> log records with every AnyValue kind; hex ids in upper case."""

    def int64(value: int) -> int | str:
        return str(value) if int64_as_string else value

    record = {
        "timeUnixNano": int64(1544712660300000000),
        "observedTimeUnixNano": int64(1544712660300000000),
        "severityNumber": 9,
        "severityText": "Information",
        "traceId": TRACE_ID,
        "spanId": SPAN_ID,
        "body": {"stringValue": "Example log record"},
        "attributes": [
            {"key": "string.attribute", "value": {"stringValue": "some string"}},
            {"key": "boolean.attribute", "value": {"boolValue": True}},
            {"key": "int.attribute", "value": {"intValue": int64(10)}},
            {"key": "double.attribute", "value": {"doubleValue": 637.704}},
            {"key": "array.attribute", "value": {"arrayValue": {"values": [
                {"stringValue": "many"}, {"stringValue": "values"}]}}},
            {"key": "map.attribute", "value": {"kvlistValue": {"values": [
                {"key": "some.map.key", "value": {"stringValue": "some value"}}]}}},
        ],
    }
    return {"resourceLogs": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "my.service"}}]},
        "scopeLogs": [{
            "scope": {"name": "my.library", "version": "1.0.0", "attributes": [
                {"key": "my.scope.attribute", "value": {"stringValue": "some scope attribute"}}]},
            "logRecords": [copy.deepcopy(record) for _ in range(records)],
        }],
    }]}


def to_protobuf(request: dict[str, Any]) -> ExportLogsServiceRequest:
    """Our OTLP/JSON (hex ids) as a protobuf message (json_format wants base64 ids)."""
    proto_json = copy.deepcopy(request)
    for resource_logs in proto_json.get("resourceLogs", []):
        for scope_logs in resource_logs.get("scopeLogs", []):
            for record in scope_logs.get("logRecords", []):
                for key in ("traceId", "spanId"):
                    if record.get(key):
                        record[key] = base64.b64encode(bytes.fromhex(record[key])).decode()
    message = ExportLogsServiceRequest()
    ParseDict(proto_json, message)
    return message


def strict_parse_otlp_json(line: bytes) -> ExportLogsServiceRequest:
    """Read a raw line as an OTLP/JSON receiver must: hex ids, no unknown fields allowed."""
    import json  # noqa: PLC0415

    document = json.loads(line)
    for resource_logs in document["resourceLogs"]:
        for scope_logs in resource_logs["scopeLogs"]:
            for record in scope_logs["logRecords"]:
                for key, size in (("traceId", 32), ("spanId", 16)):
                    if key in record:
                        value = record[key]
                        assert len(value) == size, value
                        assert value == value.lower(), value
                        record[key] = base64.b64encode(bytes.fromhex(value)).decode()
                assert isinstance(record.get("severityNumber", 0), int)
                for key in ("timeUnixNano", "observedTimeUnixNano"):
                    assert isinstance(record.get(key, ""), str)
    message = ExportLogsServiceRequest()
    ParseDict(document, message, ignore_unknown_fields=False)
    return message
