"""Data access for the compactor: the registry table (status index, watermark, lease), Athena, S3.

Each adapter wraps one boto3 client and speaks in plain dicts, so the logic never sees
AttributeValues or error codes. Nothing here scans the registry: changed files come from the
`status-index` GSI, the watermark and the lease are key lookups.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import BotoCoreError, ClientError

from shared import registry_keys as rk

STATUS_PAGE_SIZE: Final = 500
_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def error_code(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", "ClientError"))
    return type(exc).__name__


def _to_item(values: Mapping[str, Any]) -> dict[str, Any]:
    return {name: _serializer.serialize(_plain_numbers(value)) for name, value in values.items() if value is not None}


def _plain_numbers(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, dict):
        return {k: _plain_numbers(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_plain_numbers(v) for v in value]
    return value


def _from_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _from_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_value(v) for v in value]
    return value


def _from_item(item: Mapping[str, Any]) -> dict[str, Any]:
    return {name: _from_value(_deserializer.deserialize(value)) for name, value in item.items()}


@dataclass(frozen=True)
class Lease:
    owner: str
    expires_at: int  # epoch seconds


class CompactorStore:
    """The registry table as the compactor sees it: registered files by update time, its two items."""

    def __init__(self, dynamodb: Any, table_name: str) -> None:
        self._dynamodb = dynamodb
        self._table = table_name

    def registered_since(self, after: str | None, up_to: str) -> Iterator[dict[str, Any]]:
        """`registered` file items with `after` < updated_at <= `up_to`, oldest first (GSI query)."""
        values = {":status": {"S": rk.STATUS_REGISTERED}, ":high": {"S": up_to}}
        if after:
            condition = "#status = :status AND #updated BETWEEN :low AND :high"
            values[":low"] = {"S": after}
        else:  # a key attribute cannot be compared with an empty string
            condition = "#status = :status AND #updated <= :high"
        start_key: dict[str, Any] | None = None
        while True:
            request: dict[str, Any] = {
                "TableName": self._table,
                "IndexName": rk.STATUS_INDEX,
                "KeyConditionExpression": condition,
                "ExpressionAttributeNames": {"#status": rk.STATUS_ATTR, "#updated": rk.STATUS_SORT_ATTR},
                "ExpressionAttributeValues": values,
                "Limit": STATUS_PAGE_SIZE,
            }
            if start_key:
                request["ExclusiveStartKey"] = start_key
            response = self._dynamodb.query(**request)
            for item in response.get("Items", []):
                plain = _from_item(item)
                if after is None or str(plain.get(rk.STATUS_SORT_ATTR, "")) > after:  # BETWEEN includes `after`
                    yield plain
            start_key = response.get("LastEvaluatedKey")
            if not start_key:
                return

    def oldest_registered_after(self, after: str | None) -> dict[str, Any] | None:
        """The first registered file updated after `after` (the compaction lag's subject)."""
        return next(self.registered_since(after, "\uffff"), None)

    def get_state(self) -> dict[str, Any]:
        response = self._dynamodb.get_item(TableName=self._table, Key=_to_item(rk.compactor_state_key()),
                                           ConsistentRead=True)
        item = response.get("Item")
        return {} if item is None else _from_item(item)

    def put_state(self, state: Mapping[str, Any]) -> None:
        self._dynamodb.put_item(TableName=self._table, Item=_to_item({**state, **rk.compactor_state_key()}))

    def acquire_lease(self, owner: str, now_s: int, seconds: int) -> Lease | None:
        """Take the lease unless another run holds an unexpired one; returns the holder's when refused."""
        try:
            self._dynamodb.put_item(
                TableName=self._table,
                Item=_to_item({**rk.compactor_lease_key(), "item_type": "compactor_lease", "owner": owner,
                               "expires_at": now_s + seconds}),
                ConditionExpression="attribute_not_exists(#pk) OR expires_at < :now OR #owner = :owner",
                ExpressionAttributeNames={"#pk": rk.PK, "#owner": "owner"},
                ExpressionAttributeValues={":now": {"N": str(now_s)}, ":owner": {"S": owner}},
            )
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise
            response = self._dynamodb.get_item(TableName=self._table, Key=_to_item(rk.compactor_lease_key()),
                                               ConsistentRead=True)
            held = _from_item(response.get("Item", {}))
            return Lease(owner=str(held.get("owner", "?")), expires_at=int(held.get("expires_at", 0)))
        return None

    def release_lease(self, owner: str) -> None:
        try:
            self._dynamodb.delete_item(
                TableName=self._table,
                Key=_to_item(rk.compactor_lease_key()),
                ConditionExpression="#owner = :owner",
                ExpressionAttributeNames={"#owner": "owner"},
                ExpressionAttributeValues={":owner": {"S": owner}},
            )
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":  # expired and taken over: not ours now
                raise


# --- Athena ---------------------------------------------------------------------------------------

#: StartQueryExecution answers that mean "not now", not "never".
THROTTLED_CODES: Final = frozenset({"TooManyRequestsException", "ThrottlingException", "InternalServerException"})


class AthenaThrottled(RuntimeError):
    pass


@dataclass(frozen=True)
class QueryStatus:
    state: str  # QUEUED | RUNNING | SUCCEEDED | FAILED | CANCELLED
    reason: str = ""
    retryable: bool | None = None


class AthenaQueries:
    """Submit, poll, read and stop queries in one workgroup (the workgroup holds the result location)."""

    def __init__(self, athena: Any, workgroup: str) -> None:
        self._athena = athena
        self._workgroup = workgroup

    @property
    def workgroup(self) -> str:
        return self._workgroup

    def start(self, sql: str, token: str) -> str:
        try:
            response = self._athena.start_query_execution(
                QueryString=sql, WorkGroup=self._workgroup, ClientRequestToken=token
            )
        except ClientError as exc:
            if error_code(exc) in THROTTLED_CODES:
                raise AthenaThrottled(f"{error_code(exc)}: {exc}") from exc
            raise
        except BotoCoreError as exc:
            raise AthenaThrottled(f"{type(exc).__name__}: {exc}") from exc
        return str(response["QueryExecutionId"])

    def status(self, query_id: str) -> QueryStatus:
        execution = self._athena.get_query_execution(QueryExecutionId=query_id)["QueryExecution"]
        status = execution.get("Status", {})
        error = status.get("AthenaError") or {}
        return QueryStatus(
            state=str(status.get("State", "QUEUED")),
            reason=str(status.get("StateChangeReason") or error.get("ErrorMessage") or ""),
            retryable=error.get("Retryable") if "Retryable" in error else None,
        )

    def first_row(self, query_id: str) -> dict[str, str | None]:
        """The first result row of a SELECT, by column name (Athena returns every value as text)."""
        response = self._athena.get_query_results(QueryExecutionId=query_id, MaxResults=2)
        rows = response.get("ResultSet", {}).get("Rows", [])
        columns = [c["Name"] for c in response.get("ResultSet", {}).get("ResultSetMetadata", {}).get("ColumnInfo", [])]
        if not columns and rows:
            columns = [str(d.get("VarCharValue")) for d in rows[0].get("Data", [])]
        data = rows[1] if len(rows) > 1 else None
        if data is None:
            return {}
        return {name: cell.get("VarCharValue") for name, cell in zip(columns, data.get("Data", []), strict=False)}

    def stop(self, query_id: str) -> None:
        with contextlib.suppress(ClientError):  # already finished
            self._athena.stop_query_execution(QueryExecutionId=query_id)


# --- S3 -------------------------------------------------------------------------------------------


class Artifacts:
    """Run reports in the artifacts bucket."""

    def __init__(self, s3: Any, bucket: str) -> None:
        self._s3 = s3
        self._bucket = bucket

    @property
    def bucket(self) -> str:
        return self._bucket

    def put_json(self, key: str, document: Mapping[str, Any]) -> str:
        self._s3.put_object(Bucket=self._bucket, Key=key, ContentType="application/json",
                            Body=json.dumps(document, indent=2, default=str).encode())
        return f"s3://{self._bucket}/{key}"
