"""Data access for the registry and the reconciler: the registry table, the Glue catalog, S3.

Each adapter wraps one boto3 client and speaks in plain dicts and dataclasses, so the logic
modules never see AttributeValues, paginators or error codes. Every batch call is chunked to the
service's limit and treats partial failure as failure of those entries only.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Final, TypeVar

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import BotoCoreError, ClientError

from shared import registry_keys as rk
from shared.layout import (
    META_ROWS,
    META_SCHEMA_VERSION,
    META_SOURCE_ETAG,
    META_SOURCE_KEY,
    META_TYPE,
    Partition,
)
from shared.schema import PARTITION_KEYS, TableSpec, glue_columns, glue_partition_keys
from shared.sqs import send_message_batches

DYNAMODB_BATCH_GET_LIMIT: Final = 100
DYNAMODB_BATCH_WRITE_LIMIT: Final = 25
GLUE_BATCH_CREATE_LIMIT: Final = 100
GLUE_BATCH_GET_LIMIT: Final = 1000
UNPROCESSED_RETRIES: Final = 5

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


T = TypeVar("T")


def chunked(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def error_code(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", "ClientError"))
    return type(exc).__name__


def _to_item(values: Mapping[str, Any]) -> dict[str, Any]:
    return {name: _serializer.serialize(value) for name, value in values.items() if value is not None}


def _from_item(item: Mapping[str, Any]) -> dict[str, Any]:
    plain: dict[str, Any] = {}
    for name, value in item.items():
        python_value = _deserializer.deserialize(value)
        if isinstance(python_value, Decimal):  # the registry stores integers only
            python_value = int(python_value)
        plain[name] = python_value
    return plain


def _backoff(attempt: int) -> None:
    time.sleep(min(0.05 * 2**attempt, 1.0))


# --- DynamoDB -------------------------------------------------------------------------------------


class RegistryTable:
    """The file-registry table (key design in shared.registry_keys). Never scans."""

    def __init__(self, dynamodb: Any, table_name: str) -> None:
        self._dynamodb = dynamodb
        self._table = table_name

    def batch_get(self, keys: Sequence[Mapping[str, str]], attributes: Sequence[str] = ()) -> dict[str, dict[str, Any]]:
        """Items by pk for the given keys (absent keys are missing from the result)."""
        found: dict[str, dict[str, Any]] = {}
        unique = list({key[rk.PK]: key for key in keys}.values())
        for chunk in chunked(unique, DYNAMODB_BATCH_GET_LIMIT):
            request: dict[str, Any] = {"Keys": [_to_item(key) for key in chunk], "ConsistentRead": True}
            if attributes:
                names = {f"#a{i}": name for i, name in enumerate((rk.PK, *attributes))}
                request["ProjectionExpression"] = ", ".join(names)
                request["ExpressionAttributeNames"] = names
            pending: dict[str, Any] = {self._table: request}
            for attempt in range(UNPROCESSED_RETRIES + 1):
                response = self._dynamodb.batch_get_item(RequestItems=pending)
                for item in response.get("Responses", {}).get(self._table, []):
                    plain = _from_item(item)
                    found[plain[rk.PK]] = plain
                pending = response.get("UnprocessedKeys") or {}
                if not pending:
                    break
                if attempt == UNPROCESSED_RETRIES:
                    raise RuntimeError(f"BatchGetItem left {len(pending[self._table]['Keys'])} keys unprocessed")
                _backoff(attempt)
        return found

    def batch_put(self, items: Sequence[Mapping[str, Any]]) -> int:
        """Unconditional puts (idempotent items only); returns how many could not be written."""
        left_over = 0
        for chunk in chunked(list(items), DYNAMODB_BATCH_WRITE_LIMIT):
            pending: dict[str, Any] = {self._table: [{"PutRequest": {"Item": _to_item(item)}} for item in chunk]}
            for attempt in range(UNPROCESSED_RETRIES + 1):
                response = self._dynamodb.batch_write_item(RequestItems=pending)
                pending = response.get("UnprocessedItems") or {}
                if not pending:
                    break
                if attempt == UNPROCESSED_RETRIES:
                    left_over += len(pending[self._table])
                    break
                _backoff(attempt)
        return left_over

    def put_file_item(self, item: Mapping[str, Any], *, replace_registered_same_etag: bool = False) -> bool:
        """Write a verified-file item unless the same version is already on record.

        Same pk and etag means redelivery: nothing to do, except that a pending/failed item may be
        upgraded to `registered` (`replace_registered_same_etag=False` keeps registered ones intact).
        Returns False when the condition kept the existing item.
        """
        condition = "attribute_not_exists(#pk) OR #etag <> :etag"
        values: dict[str, Any] = {":etag": {"S": item["etag"]}}
        if item.get(rk.STATUS_ATTR) == rk.STATUS_REGISTERED and not replace_registered_same_etag:
            condition += " OR #status <> :registered"
            values[":registered"] = {"S": rk.STATUS_REGISTERED}
        names = {"#pk": rk.PK, "#etag": "etag"}
        if ":registered" in values:
            names["#status"] = rk.STATUS_ATTR
        try:
            self._dynamodb.put_item(
                TableName=self._table,
                Item=_to_item(item),
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def set_file_status(
        self, verified_key: str, etag: str, status: str, *, now: str, last_error: str | None, count_attempt: bool
    ) -> bool:
        """Move a file item to `status` if it still holds this etag and is not registered yet."""
        updates = ["#status = :status", "updated_at = :now"]
        values: dict[str, Any] = {
            ":status": {"S": status},
            ":now": {"S": now},
            ":etag": {"S": etag},
            ":registered": {"S": rk.STATUS_REGISTERED},
        }
        if count_attempt:
            updates.append("attempts = if_not_exists(attempts, :zero) + :one")
            values[":zero"] = {"N": "0"}
            values[":one"] = {"N": "1"}
        expression = "SET " + ", ".join(updates)
        if last_error is None:
            expression += " REMOVE last_error"
        else:
            expression = "SET last_error = :error, " + expression[len("SET "):]
            values[":error"] = {"S": last_error[:1000]}
        try:
            self._dynamodb.update_item(
                TableName=self._table,
                Key=_to_item(rk.file_key(verified_key)),
                UpdateExpression=expression,
                ConditionExpression="attribute_exists(#pk) AND etag = :etag AND #status <> :registered",
                ExpressionAttributeNames={"#pk": rk.PK, "#status": rk.STATUS_ATTR},
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def query_status(
        self, status: str, updated_before: str, *, limit: int, start_key: Mapping[str, Any] | None = None
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        """One page of file items in `status` last updated before `updated_before` (oldest first)."""
        request: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": rk.STATUS_INDEX,
            "KeyConditionExpression": "#status = :status AND #updated < :before",
            "ExpressionAttributeNames": {"#status": rk.STATUS_ATTR, "#updated": rk.STATUS_SORT_ATTR},
            "ExpressionAttributeValues": {":status": {"S": status}, ":before": {"S": updated_before}},
            "Limit": limit,
        }
        if start_key:
            request["ExclusiveStartKey"] = start_key
        response = self._dynamodb.query(**request)
        return [_from_item(item) for item in response.get("Items", [])], response.get("LastEvaluatedKey")

    def get(self, key: Mapping[str, str]) -> dict[str, Any] | None:
        response = self._dynamodb.get_item(TableName=self._table, Key=_to_item(key), ConsistentRead=True)
        item = response.get("Item")
        return None if item is None else _from_item(item)

    def put(self, item: Mapping[str, Any]) -> None:
        self._dynamodb.put_item(TableName=self._table, Item=_to_item(item))


# --- Glue -----------------------------------------------------------------------------------------


class GlueUnavailable(RuntimeError):
    """Glue could not be asked at all (network, throttling, 5xx after retries): try again later."""


class TableMissing(RuntimeError):
    """The Glue table (or database) does not exist."""


@dataclass(frozen=True)
class PartitionError:
    partition: Partition
    code: str
    message: str


# Errors that are Glue's definite answer about this request, not a sign that Glue is unavailable.
_DEFINITE_GLUE_ERRORS: Final = frozenset(
    {"InvalidInputException", "AccessDeniedException", "ValidationException", "AlreadyExistsException",
     "ResourceNumberLimitExceededException"}
)


def _glue_call(call: Any, **kwargs: Any) -> Any:
    try:
        return call(**kwargs)
    except ClientError as exc:
        if error_code(exc) == "EntityNotFoundException":
            raise TableMissing(str(exc)) from exc
        code = error_code(exc)
        if code in _DEFINITE_GLUE_ERRORS:
            raise
        raise GlueUnavailable(f"{code}: {exc}") from exc
    except BotoCoreError as exc:  # endpoint unreachable, timeouts
        raise GlueUnavailable(f"{type(exc).__name__}: {exc}") from exc


def partition_location(table_location: str, partition: Partition) -> str:
    return f"{table_location.rstrip('/')}/{partition.path}/"


def table_input(table: TableSpec, verified_bucket: str) -> dict[str, Any]:
    """A Glue TableInput for a verified table, derived from the shared schema (as the template holds it)."""
    return {
        "Name": table.name,
        "Description": table.description,
        "TableType": "EXTERNAL_TABLE",
        "Parameters": {"classification": "parquet", "EXTERNAL": "TRUE", "parquet.compression": "SNAPPY"},
        "PartitionKeys": glue_partition_keys(),
        "StorageDescriptor": {
            "Columns": glue_columns(table),
            "Location": f"s3://{verified_bucket}/{table.location_prefix}",
            "InputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
            "OutputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
            "SerdeInfo": {
                "SerializationLibrary": "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe",
                "Parameters": {"serialization.format": "1"},
            },
            "Compressed": False,
            "StoredAsSubDirectories": False,
        },
    }


#: How long a cached table descriptor is used. A partition copies its table's descriptor (columns
#: included): after `signals schema apply` adds a column, a warm instance creates partitions with the
#: new column list within this time (apply, run again, updates any created before).
TABLE_CACHE_SECONDS: Final = 300.0


class GlueCatalog:
    """The Glue database holding the verified tables. Table descriptors are cached per instance for
    TABLE_CACHE_SECONDS, so the registry calls `GetTable` about once per table in five minutes."""

    def __init__(self, glue: Any, database: str, *, clock: Any = time.monotonic) -> None:
        self._glue = glue
        self._database = database
        self._clock = clock
        self._tables: dict[str, tuple[float, dict[str, Any]]] = {}

    @property
    def database(self) -> str:
        return self._database

    def table(self, name: str) -> dict[str, Any]:
        """The table's description (cached); raises TableMissing or GlueUnavailable."""
        now = self._clock()
        cached = self._tables.get(name)
        if cached is None or now - cached[0] > TABLE_CACHE_SECONDS:
            table = _glue_call(self._glue.get_table, DatabaseName=self._database, Name=name)["Table"]
            self._tables[name] = cached = (now, table)
        return cached[1]

    def forget_table(self, name: str) -> None:
        self._tables.pop(name, None)

    def create_table(self, table: TableSpec, verified_bucket: str) -> None:
        try:
            _glue_call(
                self._glue.create_table, DatabaseName=self._database, TableInput=table_input(table, verified_bucket)
            )
        except ClientError as exc:
            if error_code(exc) != "AlreadyExistsException":
                raise
        self.forget_table(table.name)

    def partition_input(self, table_name: str, partition: Partition) -> dict[str, Any]:
        """The table's storage descriptor with the partition's location (as aws-sdk-pandas does)."""
        table = self.table(table_name)
        keys = [key["Name"] for key in table.get("PartitionKeys", [])]
        values = partition.values
        # Glue (and moto) accept any number of values; a wrong one breaks every later filter.
        if keys != list(PARTITION_KEYS) or len(values) != len(keys):
            raise ValueError(f"table {table_name} has partition keys {keys}, expected {list(PARTITION_KEYS)}")
        descriptor = copy.deepcopy(table["StorageDescriptor"])
        descriptor["Location"] = partition_location(descriptor["Location"], partition)
        return {"Values": values, "StorageDescriptor": descriptor}

    def create_partitions(self, table_name: str, partitions: Sequence[Partition]) -> list[PartitionError]:
        """BatchCreatePartition in chunks of 100; AlreadyExists counts as created.

        Returns per-entry errors; raises TableMissing / GlueUnavailable / ValueError for the whole call.
        """
        errors: list[PartitionError] = []
        inputs = [self.partition_input(table_name, partition) for partition in partitions]
        by_values = {tuple(partition.values): partition for partition in partitions}
        for chunk in chunked(inputs, GLUE_BATCH_CREATE_LIMIT):
            response = _glue_call(
                self._glue.batch_create_partition,
                DatabaseName=self._database,
                TableName=table_name,
                PartitionInputList=list(chunk),
            )
            for entry in response.get("Errors", []):
                detail = entry.get("ErrorDetail", {})
                code = str(detail.get("ErrorCode", "Unknown"))
                if code == "AlreadyExistsException":
                    continue
                partition = by_values.get(tuple(entry.get("PartitionValues", [])))
                if partition is not None:
                    errors.append(PartitionError(partition, code, str(detail.get("ErrorMessage", ""))))
        return errors

    def existing_partitions(self, table_name: str, partitions: Sequence[Partition]) -> set[Partition]:
        """Which of these partitions Glue has (BatchGetPartition, 1000 per call)."""
        present: set[Partition] = set()
        for chunk in chunked(list(partitions), GLUE_BATCH_GET_LIMIT):
            response = _glue_call(
                self._glue.batch_get_partition,
                DatabaseName=self._database,
                TableName=table_name,
                PartitionsToGet=[{"Values": partition.values} for partition in chunk],
            )
            for found in response.get("Partitions", []):
                values = found.get("Values", [])
                if len(values) == 2:
                    present.add(Partition(values[0], values[1]))
            if response.get("UnprocessedKeys"):
                raise GlueUnavailable(f"BatchGetPartition left {len(response['UnprocessedKeys'])} keys unprocessed")
        return present


# --- S3 -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ObjectHead:
    bucket: str
    key: str
    etag: str
    size: int
    last_modified: datetime
    metadata: Mapping[str, str]


@dataclass(frozen=True)
class FooterFacts:
    rows: int
    source_key: str | None


@dataclass(frozen=True)
class ListedObject:
    key: str
    etag: str
    size: int
    last_modified: datetime


class Objects:
    """HEAD, Parquet footers and prefix listings."""

    def __init__(self, s3: Any) -> None:
        self._s3 = s3

    def head(self, bucket: str, key: str) -> ObjectHead | None:
        try:
            response = self._s3.head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if error_code(exc) in {"404", "NoSuchKey", "NotFound"}:
                return None
            raise
        return ObjectHead(
            bucket=bucket,
            key=key,
            etag=str(response["ETag"]).strip('"'),
            size=int(response["ContentLength"]),
            last_modified=response["LastModified"],
            metadata={name.lower(): value for name, value in response.get("Metadata", {}).items()},
        )

    def parquet_footer(self, bucket: str, key: str, etag: str) -> FooterFacts:
        """Row count (footer) and source key (first value of the lineage column) of one Parquet object."""
        # Loaded only on this fallback path: HEAD metadata is the normal one and pyarrow costs cold-start time.
        import pyarrow.parquet as pq  # noqa: PLC0415

        from shared.arrow import parquet_input  # noqa: PLC0415

        body = self._s3.get_object(Bucket=bucket, Key=key, IfMatch=etag)["Body"].read()
        parquet = pq.ParquetFile(parquet_input(body))
        source_key: str | None = None
        if "source_key" in parquet.schema_arrow.names and parquet.metadata.num_rows > 0:
            column = parquet.read_row_group(0, columns=["source_key"]).column(0)
            source_key = column[0].as_py() if len(column) else None
        return FooterFacts(rows=int(parquet.metadata.num_rows), source_key=source_key)

    def list_prefix(self, bucket: str, prefix: str) -> Iterator[ListedObject]:
        paginator = self._s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            for entry in page.get("Contents", []):
                yield ListedObject(
                    key=entry["Key"],
                    etag=str(entry.get("ETag", "")).strip('"'),
                    size=int(entry.get("Size", 0)),
                    last_modified=entry["LastModified"],
                )


METADATA_FIELDS: Final = (META_ROWS, META_SCHEMA_VERSION, META_SOURCE_KEY, META_SOURCE_ETAG, META_TYPE)


# --- SQS ------------------------------------------------------------------------------------------


class RedriveQueue:
    """The reconciler's redrive queue: S3-notification bodies sent in batches, failed entries retried."""

    def __init__(self, sqs: Any, queue_url: str) -> None:
        self._sqs = sqs
        self._queue_url = queue_url

    def send(self, bodies: Iterable[str]) -> int:
        """Returns how many were not sent."""
        bodies = list(bodies)
        sent, _ = send_message_batches(self._sqs, self._queue_url, bodies)
        return len(bodies) - sent
