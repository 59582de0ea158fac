"""What the lake holds after the settle phase, per event id: verified rows, quarantine, compacted rows.

Read with the campaign's own clients (no fault answers them): every verified Parquet object (the
verified layer is at least once, so every copy counts, registered in Glue or not), every quarantine
record (its `original` line names the event), the registry's file items, the compacted Iceberg
tables through pyiceberg (the embedded Glue is their catalog), and, for ids found nowhere, the raw
objects, so a lost event can be traced to the last place it was seen.
"""

from __future__ import annotations

import gzip
import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from shared.arrow import parquet_input
from shared.schema import COMPACTED_TABLES, OTLP_TYPE, alerts_database
from signals.chaos.clients import CHAOS_ID_ATTRIBUTE
from signals.chaos.faults import INTERNAL_CONFIG
from signals.chaos.ledger import LakeView, event_key_of
from signals.env import Output

VERIFIED_PREFIX = "telemetry_flat/"


def internal_client(stack: Any, service: str) -> Any:
    return stack.session().client(service, endpoint_url=stack.aws_endpoint_url, config=INTERNAL_CONFIG)


def _keys(s3: Any, bucket: str, prefix: str) -> Iterator[str]:
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            yield str(item["Key"])


def _otlp_id(attributes: Any) -> str | None:
    for key, value in attributes or ():
        if key == CHAOS_ID_ATTRIBUTE:
            return str(value)
    return None


def ids_of_table(table: pa.Table, type_value: str) -> list[str | None]:
    if type_value == OTLP_TYPE:
        return [_otlp_id(attributes) for attributes in table.column("attributes").to_pylist()]
    return [None if row["event_id"] is None else event_key_of(row)
            for row in table.select(["device_id", "event_id"]).to_pylist()]


def read_lake(stack: Any, known_ids: set[str], *, compacted: bool = True) -> LakeView:
    s3 = internal_client(stack, "s3")
    lake = LakeView()
    verified_bucket = stack.outputs[Output.VERIFIED_BUCKET]
    for key in _keys(s3, verified_bucket, VERIFIED_PREFIX):
        if not key.endswith(".parquet"):
            continue
        type_value = key[len(VERIFIED_PREFIX):].split("/", 1)[0].removeprefix("type=")
        columns = ["attributes"] if type_value == OTLP_TYPE else ["device_id", "event_id"]
        body = s3.get_object(Bucket=verified_bucket, Key=key)["Body"].read()
        table = pq.read_table(parquet_input(body), columns=columns)
        for event_id in ids_of_table(table, type_value):
            if event_id is None or event_id not in known_ids:
                lake.unknown_rows += 1
                continue
            lake.verified[event_id] += 1
            lake.verified_keys[event_id] = key
    quarantine_bucket = stack.outputs[Output.QUARANTINE_BUCKET]
    for key in _keys(s3, quarantine_bucket, "quarantine/"):
        for line in gzip.decompress(s3.get_object(Bucket=quarantine_bucket, Key=key)["Body"].read()).splitlines():
            record = json.loads(line)
            try:
                original = json.loads(record.get("original") or "null")
            except ValueError:
                continue
            if isinstance(original, dict) and "event_id" in original and event_key_of(original) in known_ids:
                lake.quarantined[event_key_of(original)] += 1
    lake.registered_keys = registered_keys(stack)
    if compacted:
        lake.compacted = read_compacted(stack, known_ids)
    return lake


def registered_keys(stack: Any) -> set[str]:
    dynamodb = internal_client(stack, "dynamodb")
    found: set[str] = set()
    for page in dynamodb.get_paginator("scan").paginate(
        TableName=stack.outputs[Output.REGISTRY_TABLE], ProjectionExpression="verified_key, item_type",
    ):
        for item in page.get("Items", []):
            if item.get("item_type", {}).get("S") == "file" and "verified_key" in item:
                found.add(item["verified_key"]["S"])
    return found


def iceberg_catalog(stack: Any) -> Any:
    from shared.iceberg import glue_catalog  # noqa: PLC0415 (pyiceberg is heavy)

    return glue_catalog("chaos", region="us-west-2", endpoint_url=stack.aws_endpoint_url,
                        credentials=stack.session().get_credentials())


def read_compacted(stack: Any, known_ids: set[str]) -> Counter[str] | None:
    """Rows per event id in the compacted tables; None when the stack has no compacted layer."""
    from pyiceberg.exceptions import NoSuchTableError  # noqa: PLC0415

    catalog = iceberg_catalog(stack)
    database = alerts_database("local")
    counts: Counter[str] = Counter()
    tables = 0
    for spec in COMPACTED_TABLES:
        try:
            table = catalog.load_table((database, spec.name))
        except NoSuchTableError:
            continue
        tables += 1
        columns = ("attributes",) if spec.type_value == OTLP_TYPE else ("device_id", "event_id")
        rows = table.scan(selected_fields=columns).to_arrow()
        for event_id in ids_of_table(rows, spec.type_value):
            if event_id is not None:
                counts[event_id] += 1
    return counts if tables else None


def trace_raw(stack: Any, wanted: set[str]) -> dict[str, str]:
    """For ids found nowhere else: a raw object holding each (device lines and OTLP JSON lines)."""
    if not wanted:
        return {}
    s3 = internal_client(stack, "s3")
    raw_bucket = stack.outputs[Output.RAW_BUCKET]
    found: dict[str, str] = {}
    for key in _keys(s3, raw_bucket, "raw/"):
        body = s3.get_object(Bucket=raw_bucket, Key=key)["Body"].read()
        data = gzip.decompress(body) if body[:2] == b"\x1f\x8b" else body
        for line in data.splitlines():
            for event_id in _ids_in_raw_line(line):
                if event_id in wanted:
                    found.setdefault(event_id, key)
    return found


def _ids_in_raw_line(line: bytes) -> list[str]:
    try:
        document = json.loads(line)
    except ValueError:
        return []
    if not isinstance(document, dict):
        return []
    if "event_id" in document:
        return [event_key_of(document)]
    ids: list[str] = []
    for resource_logs in document.get("resourceLogs") or []:
        for scope_logs in resource_logs.get("scopeLogs") or []:
            for record in scope_logs.get("logRecords") or []:
                for attribute in record.get("attributes") or []:
                    if attribute.get("key") == CHAOS_ID_ATTRIBUTE:
                        ids.append(str((attribute.get("value") or {}).get("stringValue")))
    return ids
