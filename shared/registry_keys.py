"""The file-registry table's item design, shared by the parser, registry and reconciler.

One DynamoDB table (`{env}-tps-telemetry-file-registry-v2`), string keys `pk` and `sk`, and a GSI
`status-index` on (`status`, `updated_at`). Every access path is a key lookup or a GSI query:

| item                   | pk                                   | sk          | written by          |
|------------------------|--------------------------------------|-------------|---------------------|
| verified file          | `FILE#{verified_key}`                | `FILE`      | registry/reconciler |
| known Glue partition   | `PARTITION#{table}#{day}#{hour}`     | `PARTITION` | registry/reconciler |
| raw processing record  | `RAW#{raw_bucket}/{raw_key}`         | `RAW`       | parser              |
| reconciler state       | `RECONCILER`                         | `STATE`     | reconciler          |
| compactor watermark    | `COMPACTOR`                          | `STATE`     | compactor           |
| compactor lease        | `COMPACTOR`                          | `LEASE`     | compactor           |

Only verified-file items carry `status`, so the GSI holds exactly the files and a query for
`partition_pending` / `partition_failed` never reads the registered ones' partitions. The item
attributes are documented in docs/data-contract.md.
"""

from __future__ import annotations

from typing import Any, Final

PK: Final = "pk"
SK: Final = "sk"
STATUS_INDEX: Final = "status-index"
STATUS_ATTR: Final = "status"
STATUS_SORT_ATTR: Final = "updated_at"

STATUS_REGISTERED: Final = "registered"
STATUS_PARTITION_PENDING: Final = "partition_pending"
STATUS_PARTITION_FAILED: Final = "partition_failed"
FILE_STATUSES: Final = (STATUS_REGISTERED, STATUS_PARTITION_PENDING, STATUS_PARTITION_FAILED)


def file_key(verified_key: str) -> dict[str, str]:
    return {PK: f"FILE#{verified_key}", SK: "FILE"}


def partition_key(table: str, day: str, hour: str) -> dict[str, str]:
    return {PK: f"PARTITION#{table}#{day}#{hour}", SK: "PARTITION"}


def raw_key(raw_bucket: str, raw_object_key: str) -> dict[str, str]:
    return {PK: f"RAW#{raw_bucket}/{raw_object_key}", SK: "RAW"}


def reconciler_state_key() -> dict[str, str]:
    return {PK: "RECONCILER", SK: "STATE"}


def compactor_state_key() -> dict[str, str]:
    """The compactor's watermark: every `registered` file updated at or before it is compacted."""
    return {PK: "COMPACTOR", SK: "STATE"}


def compactor_lease_key() -> dict[str, str]:
    """The compactor's lease (owner run id, `expires_at` epoch seconds), so runs never overlap."""
    return {PK: "COMPACTOR", SK: "LEASE"}


def create_table_request(table_name: str) -> dict[str, Any]:
    """`CreateTable` arguments for the registry table's keys and index, as template.yaml declares them.

    For tests and benchmarks that build the table themselves (the local stack and real deploys take
    it from the template; tests/template checks the two agree).
    """
    return {
        "TableName": table_name,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [
            {"AttributeName": name, "AttributeType": "S"} for name in (PK, SK, STATUS_ATTR, STATUS_SORT_ATTR)
        ],
        "KeySchema": [{"AttributeName": PK, "KeyType": "HASH"}, {"AttributeName": SK, "KeyType": "RANGE"}],
        "GlobalSecondaryIndexes": [
            {
                "IndexName": STATUS_INDEX,
                "KeySchema": [
                    {"AttributeName": STATUS_ATTR, "KeyType": "HASH"},
                    {"AttributeName": STATUS_SORT_ATTR, "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
    }
