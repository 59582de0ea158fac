"""The compactor's world on the embedded AWS endpoint (AwsGateway): buckets, registry, Glue, Iceberg.

Verified files are written as the parser writes them (Parquet with the shared Arrow schema under
`telemetry_flat/type=.../day=.../hour=.../`), their Glue partitions created and their registry items
put as the registry puts them, so the compactor sees exactly what the pipeline leaves behind.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
from botocore.config import Config

from compactor.app import build_handler
from compactor.local_engine import catalog_for
from compactor.logic import iso_ms
from registry.dal import table_input
from shared import registry_keys as rk
from shared.arrow import arrow_schema
from shared.aws import Clients
from shared.handler import Handler
from shared.iceberg import pyiceberg_partition_spec, pyiceberg_schema
from shared.layout import Partition, verified_key
from shared.schema import (
    AUDIT_TABLES,
    COMPACTED_BY_TYPE,
    COMPACTED_TABLES,
    DUPLICATE_CONFLICTS,
    TABLES,
    TABLES_BY_TYPE,
    CompactedTableSpec,
    alerts_database,
    audit_database,
)

REGION = "us-west-2"
VERIFIED_BUCKET = "test-verified-parquet-v2"
DBT_BUCKET = "test-signal-data-lake-dbt"
ARTIFACTS_BUCKET = "test-dbt-artifacts"
REGISTRY_TABLE = "test-tps-telemetry-file-registry-v2"
GLUE_DATABASE = "telemetry-parser-db"
ALERTS_DATABASE = alerts_database("test")
AUDIT_DATABASE = audit_database("test")
WORKGROUP = "test-tps-telemetry-dbt-wg"


def compactor_environ(engine: str = "local", **overrides: str) -> dict[str, str]:
    return {
        "REGISTRY_TABLE": REGISTRY_TABLE,
        "GLUE_DATABASE": GLUE_DATABASE,
        "ALERTS_DATABASE": ALERTS_DATABASE,
        "AUDIT_DATABASE": AUDIT_DATABASE,
        "VERIFIED_BUCKET": VERIFIED_BUCKET,
        "DBT_BUCKET": DBT_BUCKET,
        "ARTIFACTS_BUCKET": ARTIFACTS_BUCKET,
        "ATHENA_WORKGROUP": WORKGROUP,
        "COMPACTOR_ENGINE": engine,
        "SETTLE_SECONDS": "0",
        "TIME_RESERVE_MS": "0",
        **overrides,
    }


def create_iceberg_tables(catalog: Any, tables: Sequence[CompactedTableSpec] = COMPACTED_TABLES) -> None:
    """What the stack's provisioning does from template.yaml: the compacted and audit Iceberg tables."""
    for database in (ALERTS_DATABASE, AUDIT_DATABASE):
        catalog.create_namespace_if_not_exists(database)
    specs: list[tuple[str, Any]] = [(ALERTS_DATABASE, t) for t in tables]
    specs += [(AUDIT_DATABASE, t) for t in AUDIT_TABLES]
    for database, spec in specs:
        catalog.create_table(
            (database, spec.name), schema=pyiceberg_schema(spec), partition_spec=pyiceberg_partition_spec(spec),
            location=f"s3://{DBT_BUCKET}/{spec.data_prefix.rstrip('/')}", properties={"format-version": "2"},
        )


@dataclass
class World:
    url: str
    session: boto3.Session
    clients: Clients
    catalog: Any
    environ: dict[str, str] = field(default_factory=compactor_environ)
    _names: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def client(self, service: str) -> Any:
        return self.clients.client(service)

    def handler(self, *, config: Config | None = None, **overrides: str) -> Handler:
        return build_handler({**self.environ, **overrides}, EndpointClients(self.session, self.url, config))

    # -- the pipeline's output ---------------------------------------------------------------------

    def write_verified(self, type_value: str, day: str, hour: str, rows: Sequence[Mapping[str, Any]],
                       *, updated_at: datetime | None = None, name: str | None = None) -> str:
        """One verified file, its Glue partition and its registry item (status registered)."""
        spec = TABLES_BY_TYPE[type_value]
        partition = Partition(day, hour)
        key = verified_key(type_value, partition, name or f"file{next(self._names):04d}")
        buffer = io.BytesIO()
        pq.write_table(pa.Table.from_pylist(list(rows), schema=arrow_schema(spec)), buffer)
        self.client("s3").put_object(Bucket=VERIFIED_BUCKET, Key=key, Body=buffer.getvalue())
        glue = self.client("glue")
        location = table_input(spec, VERIFIED_BUCKET)["StorageDescriptor"]
        glue.batch_create_partition(DatabaseName=GLUE_DATABASE, TableName=spec.name, PartitionInputList=[
            {"Values": partition.values, "StorageDescriptor": {**location,
                                                              "Location": f"{location['Location']}{partition.path}/"}}])
        now = iso_ms(updated_at or datetime.now(UTC))
        self.put_registry_item(key, type_value, partition, len(rows), updated_at=now)
        return key

    def put_registry_item(self, key: str, type_value: str, partition: Partition, rows: int, *, updated_at: str,
                          status: str = rk.STATUS_REGISTERED) -> None:
        item = {**rk.file_key(key), "item_type": "file", "verified_key": key, "bucket": VERIFIED_BUCKET,
                "type": type_value, "table": TABLES_BY_TYPE[type_value].name, "day": partition.day,
                "hour": partition.hour, "rows": rows, "size": 1, "etag": "e", rk.STATUS_ATTR: status,
                "attempts": 1, "created_at": updated_at, rk.STATUS_SORT_ATTR: updated_at}
        self.client("dynamodb").put_item(
            TableName=REGISTRY_TABLE,
            Item={k: ({"N": str(v)} if isinstance(v, int) else {"S": str(v)}) for k, v in item.items()},
        )

    # -- what the compactor left -------------------------------------------------------------------

    def compacted(self, type_value: str, day: str | None = None) -> list[dict[str, Any]]:
        table = self.catalog.load_table((ALERTS_DATABASE, COMPACTED_BY_TYPE[type_value].name))
        rows = table.scan().to_arrow().to_pylist()
        return sorted((r for r in rows if day is None or r["day"] == day),
                      key=lambda r: (r["day"], str(r.get("event_id") or r.get("body")), r["source_line"]))

    def audit(self, name: str) -> list[dict[str, Any]]:
        return list(self.catalog.load_table((AUDIT_DATABASE, name)).scan().to_arrow().to_pylist())

    def conflicts(self) -> list[dict[str, Any]]:
        return self.audit(DUPLICATE_CONFLICTS.name)

    def state(self) -> dict[str, Any]:
        item = self.client("dynamodb").get_item(TableName=REGISTRY_TABLE, Key={
            k: {"S": v} for k, v in rk.compactor_state_key().items()}).get("Item", {})
        return {k: next(iter(v.values())) for k, v in item.items()}


def create_world(url: str, tables: Sequence[CompactedTableSpec] = COMPACTED_TABLES) -> World:
    session = boto3.Session(region_name=REGION)
    clients = EndpointClients(session, url)
    s3 = clients.client("s3")
    for bucket in (VERIFIED_BUCKET, DBT_BUCKET, ARTIFACTS_BUCKET):
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    clients.client("dynamodb").create_table(**rk.create_table_request(REGISTRY_TABLE))
    glue = clients.client("glue")
    glue.create_database(DatabaseInput={"Name": GLUE_DATABASE})
    for table in TABLES:
        glue.create_table(DatabaseName=GLUE_DATABASE, TableInput=table_input(table, VERIFIED_BUCKET))
    catalog = catalog_for(glue, s3, session.get_credentials(), REGION)
    create_iceberg_tables(catalog, tables)
    return World(url=url, session=session, clients=clients, catalog=catalog)


class EndpointClients(Clients):
    def __init__(self, session: boto3.Session, url: str, config: Config | None = None) -> None:
        super().__init__(session, config)
        self._url = url
        self._client_config = config
        self._made: dict[str, Any] = {}

    def client(self, service: str) -> Any:
        if service not in self._made:
            self._made[service] = self.session.client(  # type: ignore[call-overload]
                service, endpoint_url=self._url, config=self._client_config)
        return self._made[service]


# --- rows as the parser writes them --------------------------------------------------------------

BASE = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def lock_row(event_id: str, *, received: datetime = BASE, line: int = 1, source_key: str = "raw/json_telemetry/a",
             event_time: datetime | None = None, bolt_state: str = "locked", attributes: Any = None,
             temperature_c: float | None = 21.5) -> dict[str, Any]:
    return {
        "event_id": event_id, "device_id": "lock-1", "device_type": "lock", "event_name": "bolt_changed",
        "event_time": event_time or BASE - timedelta(seconds=5), "received_at": received,
        "firmware_version": "1.2.3", "schema_version": 1, "attributes": attributes, "battery_pct": 80,
        "bolt_state": bolt_state, "door_state": "closed", "operation_source": "app", "rssi_dbm": -60,
        "temperature_c": temperature_c, "extra": None, "source_key": source_key, "source_line": line,
    }


def otlp_row(body: str, *, received: datetime = BASE, line: int = 1, source_key: str = "raw/otlp_logs/a",
             attributes: Any = None, time_unix_nano: int | None = None) -> dict[str, Any]:
    nanos = time_unix_nano if time_unix_nano is not None else int((BASE - timedelta(seconds=1)).timestamp()) * 10**9
    return {
        "time": datetime.fromtimestamp(nanos / 1e9, UTC), "observed_time": None, "time_unix_nano": nanos,
        "severity_number": 9, "severity_text": "INFO", "body": body, "attributes": attributes,
        "resource_attributes": [("service.name", "door"), ("device.id", "lock-1")], "scope_name": "s",
        "scope_version": None, "trace_id": None, "span_id": None, "flags": 0, "dropped_attributes_count": 0,
        "event_name": None, "service_name": "door", "device_id": "lock-1", "received_at": received,
        "source_key": source_key, "source_line": line,
    }


def day_of(moment: datetime) -> tuple[str, str]:
    partition = Partition.from_datetime(moment)
    return partition.day, partition.hour
