"""`signals inventory`: an S3 Inventory report of the raw and verified buckets, now, for the local stack.

In AWS, S3 writes each bucket's inventory daily (template.yaml: the buckets' `InventoryConfigurations`,
Parquet, into the InventoryBucket) and the Glue database `{env}-tps_s3_inventory` reads them (a table
per configuration, partition projection on `dt`, queried in the `s3_inventory` workgroup). moto never
writes one, so locally this command writes the report on demand, in S3 Inventory's layout:

    <prefix>/<source bucket>/<configuration id>/<YYYY-MM-DDTHH-MMZ>/manifest.json   (+ manifest.checksum)
    <prefix>/<source bucket>/<configuration id>/data/<uuid>.parquet
    <prefix>/<source bucket>/<configuration id>/hive/dt=<YYYY-MM-DD-HH-MM>/symlink.txt

with the configuration's columns (`bucket`, `key`, then its `OptionalFields` in S3's column order),
so `SELECT ... FROM "local-tps_s3_inventory".raw_inventory` answers. The configurations are read from
template.yaml, never listed twice. A deployed env's reports are S3's own: the command refuses them.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from signals.env import ENVIRONMENTS, Environment, EnvironmentNotFound, resolve

#: S3 Inventory's Parquet columns after `bucket` and `key`, by OptionalFields name, in S3's order:
#: (column, Glue type). Only fields the local report can fill are listed; another fails loudly.
OPTIONAL_COLUMNS: Final[dict[str, tuple[str, str]]] = {
    "Size": ("size", "bigint"),
    "LastModifiedDate": ("last_modified_date", "timestamp"),
    "ETag": ("e_tag", "string"),
    "StorageClass": ("storage_class", "string"),
    "IsMultipartUploaded": ("is_multipart_uploaded", "boolean"),
    "ChecksumAlgorithm": ("checksum_algorithm", "string"),
}
REQUIRED_COLUMNS: Final = (("bucket", "string"), ("key", "string"))
#: Glue table name per inventory configuration id (template.yaml's InventoryTable* resources).
TABLE_BY_CONFIGURATION: Final = {"raw-daily": "raw_inventory", "verified-daily": "verified_inventory"}


def inventory_database(env: str) -> str:
    return f"{env}-tps_s3_inventory"


@dataclass(frozen=True)
class InventoryConfiguration:
    source_bucket: str
    destination_bucket: str
    prefix: str
    id: str
    optional_fields: tuple[str, ...]
    included_versions: str

    @property
    def root(self) -> str:
        """Key prefix of this configuration's reports in the destination bucket."""
        return f"{self.prefix.strip('/') + '/' if self.prefix else ''}{self.source_bucket}/{self.id}/"

    @property
    def columns(self) -> list[tuple[str, str]]:
        """(column, Glue type) of the report, in S3 Inventory's order."""
        unknown = [f for f in self.optional_fields if f not in OPTIONAL_COLUMNS]
        if unknown:
            raise ValueError(f"inventory {self.id}: the local report cannot fill {', '.join(unknown)}")
        return [*REQUIRED_COLUMNS, *(OPTIONAL_COLUMNS[f] for f in OPTIONAL_COLUMNS if f in self.optional_fields)]


def configurations(template: Any) -> list[InventoryConfiguration]:
    """Every bucket's InventoryConfigurations in a resolved template (`signals.local.template`)."""
    found = []
    for resource in template.of_type("AWS::S3::Bucket"):
        for configuration in resource.properties.get("InventoryConfigurations") or []:
            if not configuration.get("Enabled", True):
                continue
            destination = configuration["Destination"]
            if destination.get("Format", "CSV") != "Parquet":
                raise ValueError(f"inventory {configuration['Id']}: only Parquet reports are written locally")
            found.append(InventoryConfiguration(
                source_bucket=template.physical_name(resource.logical_id),
                destination_bucket=str(destination["BucketArn"]).rsplit(":", 1)[-1],
                prefix=str(destination.get("Prefix", "")),
                id=str(configuration["Id"]),
                optional_fields=tuple(configuration.get("OptionalFields") or ()),
                included_versions=str(configuration.get("IncludedObjectVersions", "Current")),
            ))
    return found


@dataclass
class Report:
    configuration: InventoryConfiguration
    objects: int
    manifest_key: str
    symlink_key: str
    dt: str


def write_report(s3: Any, configuration: InventoryConfiguration, *, now: datetime | None = None) -> Report:
    """List the source bucket and write one inventory report of it, as S3 Inventory does."""
    import pyarrow as pa  # noqa: PLC0415 (heavy: only when a report is written)
    import pyarrow.parquet as pq  # noqa: PLC0415

    moment = (now or datetime.now(UTC)).replace(minute=0, second=0, microsecond=0)
    rows: list[dict[str, Any]] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=configuration.source_bucket):
        for item in page.get("Contents", []):
            rows.append({
                "bucket": configuration.source_bucket,
                "key": item["Key"],
                "size": item["Size"],
                "last_modified_date": item["LastModified"].astimezone(UTC).replace(tzinfo=None),
                "e_tag": str(item.get("ETag", "")).strip('"'),
                "storage_class": item.get("StorageClass", "STANDARD"),
                "is_multipart_uploaded": "-" in str(item.get("ETag", "")),
                "checksum_algorithm": ",".join(item.get("ChecksumAlgorithm") or []) or None,
            })
    arrow_types = {"string": pa.string(), "bigint": pa.int64(), "timestamp": pa.timestamp("ms"),
                   "boolean": pa.bool_()}
    schema = pa.schema([pa.field(name, arrow_types[glue], nullable=name not in ("bucket", "key"))
                        for name, glue in configuration.columns])
    table = pa.Table.from_pylist([{name: row[name] for name in schema.names} for row in rows], schema=schema)
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="snappy")
    data = buffer.getvalue()
    data_key = f"{configuration.root}data/{uuid.uuid4()}.parquet"
    s3.put_object(Bucket=configuration.destination_bucket, Key=data_key, Body=data)

    folder = moment.strftime("%Y-%m-%dT%H-%MZ")
    manifest = {
        "sourceBucket": configuration.source_bucket,
        "destinationBucket": f"arn:aws:s3:::{configuration.destination_bucket}",
        "version": "2016-11-30",
        "creationTimestamp": str(int(moment.timestamp() * 1000)),
        "fileFormat": "Parquet",
        "fileSchema": _parquet_schema_text(configuration),
        "files": [{"key": data_key, "size": len(data), "MD5checksum": hashlib.md5(data).hexdigest()}],
    }
    manifest_body = json.dumps(manifest, indent=2).encode()
    manifest_key = f"{configuration.root}{folder}/manifest.json"
    s3.put_object(Bucket=configuration.destination_bucket, Key=manifest_key, Body=manifest_body)
    s3.put_object(Bucket=configuration.destination_bucket, Key=f"{configuration.root}{folder}/manifest.checksum",
                  Body=hashlib.md5(manifest_body).hexdigest().encode())
    dt = moment.strftime("%Y-%m-%d-%H-%M")
    symlink_key = f"{configuration.root}hive/dt={dt}/symlink.txt"
    s3.put_object(Bucket=configuration.destination_bucket, Key=symlink_key,
                  Body=f"s3://{configuration.destination_bucket}/{data_key}\n".encode())
    return Report(configuration, len(rows), manifest_key, symlink_key, dt)


def _parquet_schema_text(configuration: InventoryConfiguration) -> str:
    physical = {"string": "binary {name} (STRING)", "bigint": "int64 {name}",
                "timestamp": "int64 {name} (TIMESTAMP(MILLIS,true))", "boolean": "boolean {name}"}
    fields = [("required " if name in ("bucket", "key") else "optional ") + physical[glue].format(name=name)
              for name, glue in configuration.columns]
    return "message s3.inventory { " + "; ".join(fields) + "; }"


def write_reports(env: Environment, *, now: datetime | None = None) -> list[Report]:
    from signals.env import stack_name  # noqa: PLC0415
    from signals.local.template import ResolvedTemplate, find_template, load_template  # noqa: PLC0415

    document = load_template(find_template())
    template = ResolvedTemplate(document, parameters={"Environment": env.name}, stack_name=stack_name(env.name),
                                endpoint=env.endpoint_url or "")
    s3 = env.client("s3")
    return [write_report(s3, configuration, now=now) for configuration in configurations(template)]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "inventory",
        help="write an S3 Inventory report of the raw and verified buckets now (local stack)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--env", default="local", choices=ENVIRONMENTS, help="local only (S3 writes them on AWS)")
    parser.add_argument("--json", action="store_true", help="print the reports as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.env != "local":
        print(f"signals inventory: on {args.env} S3 writes the inventory reports itself (daily); "
              f"query \"{inventory_database(args.env)}\" in the s3_inventory workgroup", file=sys.stderr)
        return 2
    try:
        reports = write_reports(resolve("local"))
    except (EnvironmentNotFound, ValueError) as exc:
        print(f"signals inventory: {exc}", file=sys.stderr)
        return 1
    database = inventory_database("local")
    if args.json:
        print(json.dumps([{"source_bucket": r.configuration.source_bucket, "configuration": r.configuration.id,
                           "objects": r.objects, "dt": r.dt, "manifest": r.manifest_key,
                           "table": f"{database}.{TABLE_BY_CONFIGURATION.get(r.configuration.id, '?')}"}
                          for r in reports], indent=2))
        return 0
    for report in reports:
        table = TABLE_BY_CONFIGURATION.get(report.configuration.id, "?")
        print(f"{report.configuration.source_bucket}: {report.objects} objects -> "
              f"s3://{report.configuration.destination_bucket}/{report.manifest_key} "
              f"(query \"{database}\".{table}, dt='{report.dt}')")
    return 0
