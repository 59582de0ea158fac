"""S3 event notifications as they arrive in SQS, for the parser and the registry.

Handles what real S3 and moto both send: several `Records` per body, URL-encoded keys (`+` is a
space, moto quotes slashes too), the `s3:TestEvent` a bucket sends when notifications are
configured, and SNS-wrapped bodies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus, unquote_plus

import orjson


@dataclass(frozen=True)
class S3ObjectRef:
    bucket: str
    key: str
    etag: str
    size: int | None
    event_name: str
    event_time: str | None


class NotAnS3Event(ValueError):
    """The message body is not an S3 notification at all (a poison message)."""


def parse_s3_notification(body: str | bytes) -> list[S3ObjectRef]:
    """The objects one SQS message names; empty for `s3:TestEvent`."""
    try:
        message: Any = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise NotAnS3Event(f"message body is not JSON: {exc}") from None
    if isinstance(message, dict) and message.get("Type") == "Notification" and "Message" in message:
        message = orjson.loads(message["Message"])  # delivered through SNS
    if not isinstance(message, dict):
        raise NotAnS3Event("message body is not a JSON object")
    if message.get("Event") == "s3:TestEvent":
        return []
    records = message.get("Records")
    if not isinstance(records, list):
        raise NotAnS3Event("message has no Records")
    refs: list[S3ObjectRef] = []
    for record in records:
        try:
            s3 = record["s3"]
            obj = s3["object"]
            refs.append(
                S3ObjectRef(
                    bucket=s3["bucket"]["name"],
                    key=unquote_plus(obj["key"]),
                    etag=str(obj.get("eTag") or obj.get("etag") or "").strip('"'),
                    size=obj.get("size"),
                    event_name=str(record.get("eventName", "")),
                    event_time=record.get("eventTime"),
                )
            )
        except (KeyError, TypeError) as exc:
            raise NotAnS3Event(f"record without s3 bucket/object: {exc}") from None
    return refs


def s3_notification_body(
    bucket: str, key: str, etag: str, size: int, *, event_time: str, event_name: str = "ObjectCreated:Put"
) -> str:
    """A message in S3's own notification shape (what the reconciler and redrive enqueue)."""
    record = {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "eventTime": event_time,
        "eventName": event_name,
        "s3": {
            "s3SchemaVersion": "1.0",
            "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
            "object": {"key": quote_plus(key, safe="/"), "size": size, "eTag": etag.strip('"')},
        },
    }
    return orjson.dumps({"Records": [record]}).decode()
