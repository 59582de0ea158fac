"""How the local stack reads a partial batch response and builds API Gateway proxy events."""

from __future__ import annotations

import base64

from signals.local.api import IngestApi, proxy_event
from signals.local.pollers import failed_message_ids
from signals.local.wiring import ApiRoute


def test_partial_batch_response_as_lambda_reads_it() -> None:
    ids = {"a", "b", "c"}
    assert failed_message_ids({"batchItemFailures": []}, ids) == set()
    assert failed_message_ids(None, ids) == set()
    assert failed_message_ids({"batchItemFailures": [{"itemIdentifier": "b"}]}, ids) == {"b"}
    # An unknown or empty identifier fails the whole batch, as Lambda does.
    assert failed_message_ids({"batchItemFailures": [{"itemIdentifier": "zzz"}]}, ids) == ids
    assert failed_message_ids({"batchItemFailures": [{"itemIdentifier": ""}]}, ids) == ids


def test_routes_match_template_paths() -> None:
    assert ApiRoute("POST", "/v1/logs").matches("POST", "/v1/logs")
    assert not ApiRoute("POST", "/v1/logs").matches("GET", "/v1/logs")
    assert ApiRoute("ANY", "/items/{id}").matches("PUT", "/items/42")
    assert ApiRoute("GET", "/files/{proxy+}").matches("GET", "/files/a/b")


def test_proxy_event_carries_headers_and_binary_bodies() -> None:
    api = IngestApi([], api_key="k", binary_media_types=("application/x-protobuf",), stage="live", port=0)
    try:
        route = ApiRoute("POST", "/v1/logs")
        headers = [("Content-Type", "application/x-protobuf"), ("X-Api-Key", "k"), ("X-Tag", "1"), ("X-Tag", "2")]
        event = proxy_event(api, route, method="POST", raw_path="/v1/logs?x=1", header_items=headers,
                            body=b"\x00\x01", source_ip="127.0.0.1", request_id="rid")
        assert event["isBase64Encoded"] is True
        assert base64.b64decode(event["body"]) == b"\x00\x01"
        assert event["headers"]["X-Tag"] == "2"
        assert event["multiValueHeaders"]["X-Tag"] == ["1", "2"]
        assert event["requestContext"]["requestId"] == "rid"
        assert event["requestContext"]["stage"] == "live"
        assert event["queryStringParameters"] == {"x": "1"}

        text = proxy_event(api, route, method="POST", raw_path="/v1/logs",
                           header_items=[("Content-Type", "application/json")], body=b'{"a":1}',
                           source_ip="127.0.0.1", request_id="rid")
        assert (text["body"], text["isBase64Encoded"]) == ('{"a":1}', False)
        gzipped = proxy_event(api, route, method="POST", raw_path="/v1/logs",
                              header_items=[("Content-Type", "application/json"), ("Content-Encoding", "gzip")],
                              body=b"\x1f\x8b", source_ip="127.0.0.1", request_id="rid")
        assert gzipped["isBase64Encoded"] is True
    finally:
        api.stop()
