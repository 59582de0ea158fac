"""The parser's AWS access: read a raw object, put finished files, write the processing record.

Every call raises botocore's errors unchanged: the caller fails that one message, SQS delivers it
again, and deterministic output names make the retry overwrite whatever the failed try wrote.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from parser.source import Readable
from shared import registry_keys

PARQUET_CONTENT_TYPE: Final = "application/vnd.apache.parquet"
QUARANTINE_CONTENT_TYPE: Final = "application/gzip"


@dataclass(frozen=True)
class RawBody:
    stream: Readable
    etag: str
    last_modified: datetime
    size: int


class RawObjects:
    def __init__(self, s3: Any) -> None:
        self._s3 = s3

    def open(self, bucket: str, key: str) -> RawBody:
        response = self._s3.get_object(Bucket=bucket, Key=key)
        return RawBody(
            stream=response["Body"],
            etag=str(response.get("ETag", "")).strip('"'),
            last_modified=response["LastModified"],
            size=int(response.get("ContentLength", 0)),
        )


class OutputObjects:
    """Single-PutObject uploads (never multipart: one notification per object, metadata in place)."""

    def __init__(self, s3: Any) -> None:
        self._s3 = s3

    def put_file(self, bucket: str, key: str, path: Path, content_type: str,
                 metadata: Mapping[str, str] | None = None) -> None:
        with path.open("rb") as body:
            self._s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type,
                                Metadata=dict(metadata or {}))

    def delete(self, bucket: str, key: str) -> None:
        """Remove an output a reparse no longer produces (a versioned bucket keeps it as a noncurrent version)."""
        self._s3.delete_object(Bucket=bucket, Key=key)


    def put_bytes(self, bucket: str, key: str, body: bytes, content_type: str) -> None:
        self._s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type)


class ProcessingRecords:
    """The registry table's raw processing records (item design: shared.registry_keys)."""

    def __init__(self, dynamodb: Any, table_name: str) -> None:
        self._dynamodb = dynamodb
        self._table_name = table_name

    def put(self, raw_bucket: str, raw_key: str, attributes: Mapping[str, Any]) -> str | None:
        """Write the record; returns the quarantine key the record it replaced named (None: none, or first parse).

        `ReturnValues=ALL_OLD` costs nothing extra: a reparse (redrive) learns what the previous parse
        quarantined without another read.
        """
        item = {**registry_keys.raw_key(raw_bucket, raw_key), **attributes}
        response = self._dynamodb.put_item(TableName=self._table_name, Item={k: _attribute(v) for k, v in item.items()},
                                           ReturnValues="ALL_OLD")
        previous = (response.get("Attributes") or {}).get("quarantine_key") or {}
        return str(previous["S"]) if "S" in previous else None


def _attribute(value: Any) -> dict[str, Any]:
    """A Python value as a DynamoDB attribute value (the low-level client's wire shape)."""
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int | float):
        return {"N": str(value)}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, Mapping):
        return {"M": {str(k): _attribute(v) for k, v in value.items()}}
    if isinstance(value, list | tuple):
        return {"L": [_attribute(item) for item in value]}
    raise TypeError(f"cannot store {type(value).__name__} in DynamoDB")
