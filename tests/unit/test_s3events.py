from __future__ import annotations

import orjson
import pytest

from shared.s3events import NotAnS3Event, parse_s3_notification, s3_notification_body


def test_round_trip_with_spaces_and_plus() -> None:
    body = s3_notification_body("raw", "raw/json telemetry/a+b.gz", '"e1"', 10, event_time="2026-11-25T19:00:00.000Z")
    assert "%2B" in body or "+" in body
    (ref,) = parse_s3_notification(body)
    assert (ref.bucket, ref.key, ref.etag, ref.size) == ("raw", "raw/json telemetry/a+b.gz", "e1", 10)


def test_moto_quotes_slashes_too() -> None:
    body = orjson.dumps({"Records": [{"eventName": "ObjectCreated:Put", "s3": {
        "bucket": {"name": "b"}, "object": {"key": "raw%2Fjson_telemetry%2Fx+y.gz", "eTag": "t", "size": 1}}}]})
    assert parse_s3_notification(body)[0].key == "raw/json_telemetry/x y.gz"


def test_several_records_and_test_event() -> None:
    one = orjson.loads(s3_notification_body("b", "k1", "e", 1, event_time="t"))["Records"][0]
    two = orjson.loads(s3_notification_body("b", "k2", "e", 1, event_time="t"))["Records"][0]
    assert [r.key for r in parse_s3_notification(orjson.dumps({"Records": [one, two]}))] == ["k1", "k2"]
    assert parse_s3_notification('{"Service":"Amazon S3","Event":"s3:TestEvent","Bucket":"b"}') == []


@pytest.mark.parametrize("body", ["not json", "[1]", "{}", '{"Records":[{"s3":{}}]}'])
def test_poison_messages_raise(body: str) -> None:
    with pytest.raises(NotAnS3Event):
        parse_s3_notification(body)
