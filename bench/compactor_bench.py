"""Compactor: local engine throughput beside a DuckDB floor, and cost growth with history.

1. Throughput. N verified lock files (Parquet with the parser's schema, in the embedded AWS: moto
   behind AwsGateway) for one day, d% of the rows copies of earlier ones (retries, a few of them
   conflicting). The compactor's local engine compacts them (S3 reads, the DuckDB dedup queries,
   the pyiceberg commit to Glue), and a forced recompute of the same day follows. The floor,
   measured in the same run: DuckDB alone over the same files written with pyarrow to local disk,
   `SELECT * ... QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY received_at,
   source_key, source_line) = 1`. Figures: rows/s (median of --runs) and the ratio to the floor.
2. Cost growth. H days of history, one file each, compacted; then one new file in one day. The
   next run's S3 requests are counted at the endpoint (objects read and written per bucket), with
   H = 10 and H = 100: a run should read and write that day only, the same at both sizes.

    .venv/bin/python bench/compactor_bench.py [--files 20] [--rows 5000] [--dup-pct 10] [--runs 3]
                                        [--history 10,100]
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import random
import statistics
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import requests

from compactor.app import build_compactor, build_handler, logger
from compactor.local_engine import LocalEngine, catalog_for
from compactor.logic import Compactor, RunRequest, compacted_table
from registry.dal import table_input
from shared import registry_keys as rk
from shared.arrow import arrow_schema
from shared.aws import Clients
from shared.config import CompactorConfig, load
from shared.iceberg import pyiceberg_partition_spec, pyiceberg_schema
from shared.layout import Partition, verified_key
from shared.schema import AUDIT_TABLES, COMPACTED_BY_TYPE, TABLES, TABLES_BY_TYPE, alerts_database, audit_database
from signals.local.gateway import AwsGateway, AwsRequest

REGION = "us-west-2"
VERIFIED, DBT, ARTIFACTS = "bench-verified", "bench-dbt", "bench-artifacts"
REGISTRY = "bench-registry"
GLUE_DB = "telemetry-parser-db"
ALERTS, AUDIT = alerts_database("bench"), audit_database("bench")
LOCK = TABLES_BY_TYPE["lock"]
DAY0 = datetime(2026, 3, 1, tzinfo=UTC)

ENVIRON = {
    "REGISTRY_TABLE": REGISTRY, "GLUE_DATABASE": GLUE_DB, "ALERTS_DATABASE": ALERTS, "AUDIT_DATABASE": AUDIT,
    "VERIFIED_BUCKET": VERIFIED, "DBT_BUCKET": DBT, "ARTIFACTS_BUCKET": ARTIFACTS,
    "ATHENA_WORKGROUP": "bench-wg", "COMPACTOR_ENGINE": "local", "SETTLE_SECONDS": "0", "TIME_RESERVE_MS": "0",
    "MAX_FILES_PER_DAY": "1000",
}


class EndpointClients(Clients):
    def __init__(self, session: boto3.Session, url: str) -> None:
        super().__init__(session)
        self._url = url
        self._made: dict[str, Any] = {}

    def client(self, service: str) -> Any:
        if service not in self._made:
            self._made[service] = self.session.client(service, endpoint_url=self._url)  # type: ignore[call-overload]
        return self._made[service]


class S3Requests:
    """S3 requests seen at the endpoint, by bucket and kind (objects read, written, listed)."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def __call__(self, request: AwsRequest) -> None:  # an interceptor that only watches
        parts = request.path.lstrip("/").split("/", 1)
        bucket, has_key = parts[0], len(parts) > 1 and bool(parts[1])
        if not has_key:
            kind = "list" if request.method == "GET" else request.method.lower()
        elif request.method in ("GET", "HEAD"):
            kind = "read" if request.method == "GET" else "head"
        elif request.method == "PUT" and "partNumber" not in request.query:
            kind = "written"
        elif request.method == "POST" and "uploadId" in request.query:
            kind = "written"  # CompleteMultipartUpload: one object
        else:
            kind = "other"
        self.counts[f"{bucket}.{kind}"] += 1


class Bench:
    def __init__(self, url: str) -> None:
        requests.post(f"{url}/moto-api/reset", timeout=10)
        self.url = url
        self.session = boto3.Session(region_name=REGION, aws_access_key_id="testing",
                                     aws_secret_access_key="testing")
        self.clients = EndpointClients(self.session, url)
        s3 = self.clients.client("s3")
        for bucket in (VERIFIED, DBT, ARTIFACTS):
            s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
        self.clients.client("dynamodb").create_table(**rk.create_table_request(REGISTRY))
        glue = self.clients.client("glue")
        glue.create_database(DatabaseInput={"Name": GLUE_DB})
        for table in TABLES:
            glue.create_table(DatabaseName=GLUE_DB, TableInput=table_input(table, VERIFIED))
        catalog = catalog_for(glue, s3, self.session.get_credentials(), REGION)
        for database in (ALERTS, AUDIT):
            catalog.create_namespace(database)
        for database, spec in [(ALERTS, COMPACTED_BY_TYPE["lock"]), *((AUDIT, t) for t in AUDIT_TABLES)]:
            catalog.create_table((database, spec.name), schema=pyiceberg_schema(spec),
                                 partition_spec=pyiceberg_partition_spec(spec),
                                 location=f"s3://{DBT}/{spec.data_prefix.rstrip('/')}",
                                 properties={"format-version": "2"})
        self.files = 0

    def handler(self) -> Any:
        return build_handler(ENVIRON, EndpointClients(self.session, self.url))

    def compactor(self) -> Compactor:
        return build_compactor(load(CompactorConfig, ENVIRON), EndpointClients(self.session, self.url))

    def write(self, table: pa.Table, day: str, hour: str) -> str:
        self.files += 1
        partition = Partition(day, hour)
        key = verified_key("lock", partition, f"bench{self.files:05d}")
        buffer = io.BytesIO()
        pq.write_table(table, buffer, compression="zstd")
        self.clients.client("s3").put_object(Bucket=VERIFIED, Key=key, Body=buffer.getvalue())
        location = table_input(LOCK, VERIFIED)["StorageDescriptor"]
        self.clients.client("glue").batch_create_partition(
            DatabaseName=GLUE_DB, TableName=LOCK.name,
            PartitionInputList=[{"Values": partition.values,
                                 "StorageDescriptor": {**location,
                                                       "Location": f"{location['Location']}{partition.path}/"}}])
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        item = {**rk.file_key(key), "item_type": "file", "verified_key": key, "type": "lock", "table": LOCK.name,
                "day": day, "hour": hour, "rows": table.num_rows, "etag": "e", rk.STATUS_ATTR: rk.STATUS_REGISTERED,
                "created_at": now, rk.STATUS_SORT_ATTR: now}
        self.clients.client("dynamodb").put_item(
            TableName=REGISTRY, Item={k: ({"N": str(v)} if isinstance(v, int) else {"S": v}) for k, v in item.items()})
        return key


def lock_files(files: int, rows: int, dup_pct: float, day: datetime, seed: int = 7) -> list[pa.Table]:
    """`files` tables of `rows` rows; dup_pct% of each file's rows copy earlier events (1 in 50 conflicting)."""
    rng = random.Random(seed)
    made: list[pa.Table] = []
    next_event = 0
    for number in range(files):
        ids, received, bolt = [], [], []
        for _ in range(rows):
            if next_event and rng.random() * 100 < dup_pct:
                ids.append(f"ev{rng.randrange(next_event):09d}")
                bolt.append("jammed" if rng.random() < 0.02 else "locked")
            else:
                ids.append(f"ev{next_event:09d}")
                next_event += 1
                bolt.append("locked")
            received.append(day + timedelta(seconds=number * 60 + rng.random()))
        count = len(ids)
        columns = {
            "event_id": ids, "device_id": [f"lock-{int(i[2:]) % 997}" for i in ids], "device_type": ["lock"] * count,
            "event_name": ["bolt_changed"] * count,
            "event_time": [day + timedelta(seconds=int(i[2:]) % 86_000) for i in ids],
            "received_at": received, "firmware_version": ["1.2.3"] * count, "schema_version": [1] * count,
            "attributes": [[("k", "v")]] * count, "battery_pct": [80] * count, "bolt_state": bolt,
            "door_state": ["closed"] * count, "operation_source": ["app"] * count, "rssi_dbm": [-60] * count,
            "temperature_c": [21.5] * count, "extra": [None] * count,
            "source_key": [f"raw/json_telemetry/{number:05d}"] * count, "source_line": list(range(1, count + 1)),
        }
        made.append(pa.Table.from_pydict(columns, schema=arrow_schema(LOCK)))
    return made


def duckdb_floor(paths: list[str]) -> tuple[float, int]:
    connection = duckdb.connect()
    connection.execute("SET TimeZone='UTC'")
    started = time.perf_counter()
    (kept,) = connection.execute(
        "SELECT count(*) FROM (SELECT * FROM read_parquet(?) QUALIFY row_number() OVER "
        "(PARTITION BY event_id ORDER BY received_at, source_key, source_line) = 1)", [paths]).fetchone() or (0,)
    elapsed = time.perf_counter() - started
    connection.close()
    return elapsed, int(kept)


def throughput(gateway: AwsGateway, args: argparse.Namespace) -> None:
    day = DAY0.strftime("%Y-%m-%d")
    tables = lock_files(args.files, args.rows, args.dup_pct, DAY0)
    total = sum(t.num_rows for t in tables)
    with tempfile.TemporaryDirectory() as directory:
        paths = []
        for number, table in enumerate(tables):
            path = str(Path(directory) / f"f{number:05d}.parquet")
            pq.write_table(table, path, compression="zstd")
            paths.append(path)
        floor = [duckdb_floor(paths) for _ in range(args.runs)]
    floor_s = statistics.median(s for s, _ in floor)
    first: list[float] = []
    again: list[float] = []
    phases: list[dict[str, float]] = []
    recompute = RunRequest(tables=(compacted_table("lock"),), days=(day,))
    for _ in range(args.runs):
        bench = Bench(gateway.url)
        for number, table in enumerate(tables):
            bench.write(table, day, f"{number % 24:02d}")
        compactor = bench.compactor()
        engine = compactor.engine
        assert isinstance(engine, LocalEngine)
        started = time.perf_counter()
        result = compactor.run(lambda: 10**9)
        first.append(time.perf_counter() - started)
        phases.append(dict(engine.seconds))
        started = time.perf_counter()
        compactor.run(lambda: 10**9, recompute)
        again.append(time.perf_counter() - started)
    counts = result.days[0].counts
    kept = floor[0][1]
    assert counts.inserted == kept, (counts, kept)  # the engine keeps what DuckDB's QUALIFY keeps
    print(f"\n1. Throughput: {args.files} files x {args.rows} rows = {total:,} verified rows, {args.dup_pct}% copies "
          f"({counts.natural_duplicates:,} natural, {counts.conflicting_duplicates:,} conflicting), "
          f"{kept:,} kept; median of {args.runs}")
    rows = [("DuckDB floor (QUALIFY over local files)", floor_s),
            ("local engine, first run (reads S3, commits)", statistics.median(first)),
            ("local engine, forced recompute (no writes)", statistics.median(again))]
    print(f"   {'':48} {'seconds':>8} {'rows/s':>11} {'of floor':>9}")
    for label, seconds in rows:
        print(f"   {label:48} {seconds:8.2f} {total / seconds:11,.0f} {floor_s / seconds:9.2f}")
    print("   first run by phase (median s): " + ", ".join(
        f"{phase} {statistics.median(p.get(phase, 0.0) for p in phases):.2f}"
        for phase in ("read verified", "scan iceberg", "duckdb", "commit")))


def cost_growth(gateway: AwsGateway, history_days: int) -> dict[str, int]:
    bench = Bench(gateway.url)
    tables = lock_files(history_days, 200, 5, DAY0, seed=history_days)
    for number, table in enumerate(tables):
        moment = DAY0 + timedelta(days=number)
        bench.write(table.set_column(5, "received_at", pa.array(
            [moment] * table.num_rows, pa.timestamp("ms", tz="UTC"))).set_column(
            4, "event_time", pa.array([moment] * table.num_rows, pa.timestamp("ms", tz="UTC"))),
            moment.strftime("%Y-%m-%d"), "00")
    handler = bench.handler()
    history = handler({}, None)
    assert history["days_compacted"] == history_days, history["days_failed"]
    moment = DAY0 + timedelta(days=history_days // 2)
    (new,) = lock_files(1, 200, 0, moment, seed=1)
    new = new.set_column(0, "event_id", pa.array([f"new{i}" for i in range(new.num_rows)]))
    new = new.set_column(4, "event_time", pa.array([moment] * new.num_rows, pa.timestamp("ms", tz="UTC")))
    bench.write(new, moment.strftime("%Y-%m-%d"), "07")
    counter = S3Requests()
    remove = gateway.intercept("s3", counter)
    started = time.perf_counter()
    try:
        run = handler({}, None)
    finally:
        remove()
    elapsed = time.perf_counter() - started
    (day,) = run["days"]
    assert day["inserted"] == new.num_rows
    return {"days compacted": run["days_compacted"], "verified objects read": counter.counts[f"{VERIFIED}.read"],
            "dbt objects read": counter.counts[f"{DBT}.read"], "dbt objects written": counter.counts[f"{DBT}.written"],
            "artifacts written": counter.counts[f"{ARTIFACTS}.written"],
            "S3 lists": sum(v for k, v in counter.counts.items() if k.endswith(".list")),
            "run ms": int(elapsed * 1000)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=20)
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--dup-pct", type=float, default=10.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--history", default="10,100")
    args = parser.parse_args()
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")  # no EMF lines between the figures
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    logger.setLevel(logging.WARNING)
    gateway = AwsGateway("127.0.0.1", 0)
    gateway.start()
    try:
        throughput(gateway, args)
        sizes = [int(size) for size in args.history.split(",")]
        results = {size: cost_growth(gateway, size) for size in sizes}
        print("\n2. Cost growth: one new file in one day, the next run's S3 requests")
        names = list(next(iter(results.values())))
        print(f"   {'':24}" + "".join(f"{f'{size} days':>12}" for size in sizes))
        for name in names:
            print(f"   {name:24}" + "".join(f"{results[size][name]:>12}" for size in sizes))
    finally:
        gateway.stop()


if __name__ == "__main__":
    main()
