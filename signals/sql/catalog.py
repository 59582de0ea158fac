"""The Glue catalog as the local engine reads it: one Glue table -> one Arrow table.

What Athena reads, and so what is read here:

- Hive tables (Parquet, or JSON lines with the OpenX / Hive JSON SerDe, gzip or plain): the
  partitions Glue lists, every object under each partition's location (not directory markers, not
  `_`/`.` files), with the table's columns (a column a file lacks reads as NULL; Parquet columns
  are matched by name, case-insensitively) and the partition columns as strings. A partition that
  is not in Glue is invisible, as in Athena. An unpartitioned table reads its whole location.
- Partition projection (`projection.enabled`): partitions enumerated by `signals.sql.projection`
  from S3, never from Glue.
- `SymlinkTextInputFormat` (S3 Inventory's Hive layout): each partition holds `symlink.txt`
  manifests listing the data files (s3:// URLs), which are read in the SerDe's format.
- Iceberg tables (Parameters `table_type` = ICEBERG): the current snapshot, through pyiceberg's Glue
  catalog on the same endpoint (`iceberg_catalog`).

Timestamps come out without a zone (Athena's `timestamp`; every value is UTC). A Hive table's
timestamps are read at millisecond precision, rounded, as Athena engine version 3 reads them; an
Iceberg table's keep their microseconds (docs/data-contract.md, "Timestamps").
"""

from __future__ import annotations

import gzip
import json
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from signals.sql import projection
from signals.sql.errors import SYSTEM, QueryCancelled, QueryError
from signals.sql.types import HiveTypeError, hive_to_arrow

_PARQUET_MARKERS = ("parquet",)
_JSON_SERDES = ("org.openx.data.jsonserde.jsonserde", "org.apache.hive.hcatalog.data.jsonserde")
_READ_THREADS = 8


@dataclass
class Scan:
    table: Any  # pyarrow.Table
    bytes_scanned: int
    files: int


def iceberg_catalog(session: Any, endpoint_url: str | None, *, name: str = "glue") -> Any:
    """pyiceberg's Glue catalog on `session` (and the embedded endpoint when given)."""
    from shared.iceberg import glue_catalog  # noqa: PLC0415

    return glue_catalog(name, region=session.region_name, endpoint_url=endpoint_url,
                        credentials=session.get_credentials())


def is_iceberg(table: Mapping[str, Any]) -> bool:
    return str((table.get("Parameters") or {}).get("table_type", "")).upper() == "ICEBERG"


def split_s3_url(location: str) -> tuple[str, str]:
    """`s3://bucket/prefix` -> (bucket, `prefix/`)."""
    without_scheme = re.sub(r"^s3a?://", "", location)
    bucket, _, prefix = without_scheme.partition("/")
    return bucket, prefix if not prefix or prefix.endswith("/") else prefix + "/"


class GlueCatalog:
    def __init__(self, session: Any, endpoint_url: str | None = None) -> None:
        self._session = session
        self._endpoint_url = endpoint_url
        self.glue = session.client("glue", endpoint_url=endpoint_url)
        self.s3 = session.client("s3", endpoint_url=endpoint_url)
        self._iceberg: Any = None
        self._iceberg_lock = threading.Lock()

    # --- what the catalog holds ----------------------------------------------------------------

    def databases(self) -> list[str]:
        pages = self.glue.get_paginator("get_databases").paginate()
        return sorted(db["Name"] for page in pages for db in page["DatabaseList"])

    def tables(self, database: str) -> list[dict[str, Any]]:
        try:
            pages = self.glue.get_paginator("get_tables").paginate(DatabaseName=database)
            return [t for page in pages for t in page["TableList"]]
        except self.glue.exceptions.EntityNotFoundException:
            raise QueryError("SCHEMA_NOT_FOUND", f"Schema '{database}' does not exist") from None

    def table(self, database: str, name: str) -> dict[str, Any]:
        try:
            table: dict[str, Any] = self.glue.get_table(DatabaseName=database, Name=name)["Table"]
        except self.glue.exceptions.EntityNotFoundException:
            if database not in self.databases():
                raise QueryError("SCHEMA_NOT_FOUND", f"Schema '{database}' does not exist") from None
            raise QueryError("TABLE_NOT_FOUND", f"Table 'awsdatacatalog.{database}.{name}' does not exist") from None
        return table

    def glue_partitions(self, database: str, name: str) -> list[dict[str, Any]]:
        pages = self.glue.get_paginator("get_partitions").paginate(DatabaseName=database, TableName=name)
        return [p for page in pages for p in page["Partitions"]]

    def iceberg_table(self, database: str, name: str) -> Any:
        with self._iceberg_lock:
            if self._iceberg is None:
                self._iceberg = iceberg_catalog(self._session, self._endpoint_url)
            catalog = self._iceberg
        try:
            return catalog.load_table((database, name))
        except Exception as exc:
            raise QueryError("ICEBERG_BAD_DATA", f"cannot load Iceberg table {database}.{name}: {exc}") from None

    # --- reading -------------------------------------------------------------------------------

    def read(self, database: str, name: str, *, injected: Mapping[str, frozenset[str]] | None = None,
             constraints: Sequence[Constraint] = (), cancelled: Callable[[], bool] = lambda: False) -> Scan:
        """The table's rows; `constraints` (the query's own conditions on partition columns) prune
        partitions as Athena does: the query still applies its WHERE to what is read."""
        if "$" in name:
            return self._read_metadata(database, name)
        table = self.table(database, name)
        if is_iceberg(table):
            return self._read_iceberg(database, name, constraints)
        return self._read_hive(database, table, injected or {}, constraints, cancelled)

    def _read_metadata(self, database: str, name: str) -> Scan:
        """An Iceberg metadata table, `"t$files"`, `$partitions`, `$snapshots` or `$history`, with the
        columns Athena engine version 3 answers with (`signals.sql.metadata` names its source)."""
        from signals.sql import metadata  # noqa: PLC0415

        base, kind = name.split("$", 1)
        if not is_iceberg(self.table(database, base)):
            raise QueryError("NOT_SUPPORTED", f"{database}.{name}: metadata tables exist for Iceberg tables only")
        if kind not in metadata.SUPPORTED:
            raise QueryError("NOT_SUPPORTED", f"{database}.{name}: the local engine has the metadata tables "
                             f"{', '.join('$' + k for k in metadata.SUPPORTED)}")
        return Scan(metadata.metadata_table(self.iceberg_table(database, base), kind), 0, 0)

    def _read_iceberg(self, database: str, name: str, constraints: Sequence[Constraint]) -> Scan:
        loaded = self.iceberg_table(database, name)
        partition_columns = {loaded.schema().find_field(f.source_id).name for f in loaded.spec().fields}
        row_filter = iceberg_filter([c for c in constraints if c.column in partition_columns])
        scan = loaded.scan(row_filter=row_filter) if row_filter is not None else loaded.scan()
        tasks = list(scan.plan_files())
        arrow = scan.to_arrow()
        return Scan(_without_zones(arrow), sum(task.file.file_size_in_bytes for task in tasks), len(tasks))

    def _read_hive(self, database: str, table: Mapping[str, Any], injected: Mapping[str, frozenset[str]],
                   constraints: Sequence[Constraint], cancelled: Callable[[], bool]) -> Scan:
        import pyarrow as pa  # noqa: PLC0415 (heavy: the engine only)

        name = table["Name"]
        descriptor = table.get("StorageDescriptor") or {}
        parameters = {str(k): str(v) for k, v in (table.get("Parameters") or {}).items()}
        partition_keys = [key["Name"].lower() for key in table.get("PartitionKeys") or []]
        schema = _schema(descriptor.get("Columns") or [], name)
        reader = _reader_for(descriptor, parameters, name)
        symlink = "symlinktextinputformat" in str(descriptor.get("InputFormat", "")).lower()

        partitions: list[tuple[tuple[str, ...], str]]
        if partition_keys and projection.is_projected(parameters):
            try:
                projected = projection.enumerate_partitions(
                    parameters, descriptor.get("Location", ""), partition_keys, self._list_keys,
                    now=datetime.now(UTC), injected=injected)
            except projection.ProjectionError as exc:
                raise QueryError("HIVE_METASTORE_ERROR", f"{database}.{name}: {exc}") from None
            partitions = [(p.values, p.location) for p in projected]
        elif partition_keys:
            partitions = [(tuple(p["Values"]), p["StorageDescriptor"]["Location"])
                          for p in self.glue_partitions(database, name)]
        else:
            partitions = [((), descriptor.get("Location", ""))]
        if partition_keys and constraints:
            partitions = [p for p in partitions if all(
                c.admits(dict(zip(partition_keys, p[0], strict=False)).get(c.column)) for c in constraints)]

        def list_one(partition: tuple[tuple[str, ...], str]) -> list[tuple[str, str, tuple[str, ...]]]:
            if cancelled():
                raise QueryCancelled()
            values, location = partition
            bucket, prefix = split_s3_url(location)
            found: list[tuple[str, str, tuple[str, ...]]] = []
            for key in self._data_keys(bucket, prefix):
                if symlink:
                    found.extend((*_bucket_and_key(target), values) for target in self._symlink_targets(bucket, key))
                else:
                    found.append((bucket, key, values))
            return found

        with ThreadPoolExecutor(max_workers=_READ_THREADS) as pool:  # one listing per partition, in parallel
            jobs = [job for listed in pool.map(list_one, partitions) for job in listed]

        def read_one(job: tuple[str, str, tuple[str, ...]]) -> tuple[Any, int]:
            if cancelled():
                raise QueryCancelled()
            body = self.s3.get_object(Bucket=job[0], Key=job[1])["Body"].read()
            return reader(body, schema, f"s3://{job[0]}/{job[1]}"), len(body)

        with ThreadPoolExecutor(max_workers=_READ_THREADS) as pool:
            pieces = list(pool.map(read_one, jobs))
        string_type = pa.string()
        tables = []
        for (_, _, values), (piece, _size) in zip(jobs, pieces, strict=True):
            with_keys = piece
            for key_name, value in zip(partition_keys, values, strict=False):
                column = pa.array([value] * piece.num_rows, string_type)
                with_keys = with_keys.append_column(pa.field(key_name, string_type), column)
            tables.append(with_keys)
        if tables:
            arrow = _hive_millis(pa.concat_tables(tables))
        else:
            empty = schema
            for key_name in partition_keys:
                empty = empty.append(pa.field(key_name, string_type))
            arrow = empty.empty_table()
        return Scan(arrow, sum(size for _, size in pieces), len(jobs))

    def _list_keys(self, bucket: str, prefix: str) -> Iterator[str]:
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                yield item["Key"]

    def _data_keys(self, bucket: str, prefix: str) -> list[str]:
        """Objects Athena reads under a location: not directory markers, not `_`/`.` hidden files."""
        keys = []
        try:
            pages = list(self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix))
        except self.s3.exceptions.NoSuchBucket:
            raise QueryError("HIVE_FILESYSTEM_ERROR", f"bucket {bucket} does not exist", category=SYSTEM) from None
        for page in pages:
            for item in page.get("Contents", []):
                name = item["Key"].rsplit("/", 1)[-1]
                if item["Key"].endswith("/") or not name or name[0] in "._" or item.get("Size", 0) == 0:
                    continue
                keys.append(item["Key"])
        return keys

    def _symlink_targets(self, bucket: str, key: str) -> list[str]:
        text = self.s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8")
        return [line.strip() for line in text.splitlines() if line.strip()]


@dataclass(frozen=True)
class Constraint:
    """A condition of the query on one column: `op` is =, <, <=, >, >= or IN, against string literals."""

    column: str
    op: str
    values: tuple[str, ...]

    def admits(self, value: str | None) -> bool:
        if value is None:
            return True  # not a partition column of this table: nothing to prune on
        first = self.values[0]
        return {
            "=": lambda: value == first, "IN": lambda: value in self.values, "<": lambda: value < first,
            "<=": lambda: value <= first, ">": lambda: value > first, ">=": lambda: value >= first,
        }[self.op]()


def iceberg_filter(constraints: Sequence[Constraint]) -> str | None:
    """The constraints as a pyiceberg row filter (its SQL-like string form)."""

    def literal(value: str) -> str:
        return "'" + value.replace("'", "''") + "'"

    terms = [f"{c.column} IN ({', '.join(literal(v) for v in c.values)})" if c.op == "IN"
             else f"{c.column} {c.op} {literal(c.values[0])}" for c in constraints]
    return " AND ".join(terms) if terms else None


def _bucket_and_key(url: str) -> tuple[str, str]:
    match = re.match(r"^s3a?://([^/]+)/(.+)$", url)
    if match is None:
        raise QueryError("HIVE_BAD_DATA", f"symlink manifest entry {url!r} is not an s3:// object URL")
    return match[1], match[2]


def _schema(columns: list[Mapping[str, Any]], table_name: str) -> Any:
    import pyarrow as pa  # noqa: PLC0415

    fields = []
    for column in columns:
        try:
            fields.append(pa.field(column["Name"].lower(), hive_to_arrow(column.get("Type", "string"))))
        except HiveTypeError as exc:
            raise QueryError("NOT_SUPPORTED", f"{table_name}.{column['Name']}: {exc}") from None
    return pa.schema(fields)


Reader = Callable[[bytes, Any, str], Any]


def _reader_for(descriptor: Mapping[str, Any], parameters: Mapping[str, str], table_name: str) -> Reader:
    serde = descriptor.get("SerdeInfo") or {}
    library = str(serde.get("SerializationLibrary", "")).lower()
    input_format = str(descriptor.get("InputFormat", "")).lower()
    classification = parameters.get("classification", "").lower()
    if any(m in library or m in input_format for m in _PARQUET_MARKERS) or classification == "parquet":
        return _read_parquet
    if library in _JSON_SERDES or classification == "json":
        ignore_malformed = str((serde.get("Parameters") or {}).get("ignore.malformed.json", "")).lower() == "true"
        return lambda body, schema, url: _read_json(body, schema, url, ignore_malformed=ignore_malformed)
    raise QueryError(
        "NOT_SUPPORTED",
        f"table {table_name}: the local engine reads Parquet, JSON and Iceberg tables, not "
        f"{library or input_format or 'this format'}",
    )


def _read_parquet(body: bytes, schema: Any, url: str) -> Any:
    """One Parquet object as the table's schema: columns by name (any case), missing ones NULL."""
    import pyarrow as pa  # noqa: PLC0415
    import pyarrow.parquet as pq  # noqa: PLC0415

    from shared.arrow import parquet_input  # noqa: PLC0415

    try:
        table = pq.read_table(parquet_input(body))
    except Exception as exc:
        raise QueryError("HIVE_CANNOT_OPEN_SPLIT", f"Error opening Hive split {url}: {exc}", category=SYSTEM) from None
    by_name = {name.lower(): index for index, name in enumerate(table.column_names)}
    columns = []
    for field in schema:
        index = by_name.get(field.name)
        if index is None:
            columns.append(pa.nulls(table.num_rows, field.type))
            continue
        column = table.column(index)
        try:
            if pa.types.is_timestamp(column.type) and pa.types.is_timestamp(field.type):
                column = column.cast(pa.timestamp(column.type.unit)).cast(field.type)
            else:
                column = column.cast(field.type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise QueryError(
                "HIVE_BAD_DATA",
                f"Field {field.name}'s type {column.type} in parquet file {url} is incompatible with type "
                f"{field.type} defined in table schema ({exc})",
            ) from None
        columns.append(column)
    return pa.Table.from_arrays(columns, schema=schema)


def _read_json(body: bytes, schema: Any, url: str, *, ignore_malformed: bool) -> Any:
    """JSON lines (gzip or plain) as the table's schema, the way the OpenX SerDe reads them."""
    import pyarrow as pa  # noqa: PLC0415

    if body[:2] == b"\x1f\x8b":
        try:
            body = gzip.decompress(body)
        except (OSError, EOFError) as exc:
            raise QueryError("HIVE_CURSOR_ERROR", f"{url}: {exc}") from None
    columns: dict[str, list[Any]] = {field.name: [] for field in schema}
    for number, line in enumerate(body.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError("not an object")
        except ValueError as exc:
            if ignore_malformed:
                for values in columns.values():
                    values.append(None)
                continue
            raise QueryError("HIVE_CURSOR_ERROR",
                             f"Row is not a valid JSON Object - {url} line {number}: {exc}") from None
        lowered = {str(k).lower(): v for k, v in record.items()}
        for field in schema:
            try:
                columns[field.name].append(_coerce(lowered.get(field.name), field.type))
            except (TypeError, ValueError) as exc:
                raise QueryError("HIVE_BAD_DATA",
                                 f"Error parsing field {field.name} in {url} line {number}: {exc}") from None
    return pa.Table.from_pydict(columns, schema=schema)


def _coerce(value: Any, arrow_type: Any) -> Any:
    import pyarrow as pa  # noqa: PLC0415

    if value is None:
        return None
    if pa.types.is_string(arrow_type):
        return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    if pa.types.is_boolean(arrow_type):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise ValueError(f"{value!r} is not a boolean")
    if pa.types.is_integer(arrow_type):
        if isinstance(value, bool):
            raise ValueError(f"{value!r} is not an integer")
        if isinstance(value, float) and value.is_integer():
            return int(value)
        return int(value)
    if pa.types.is_floating(arrow_type):
        if isinstance(value, bool):
            raise ValueError(f"{value!r} is not a number")
        return float(value)
    if pa.types.is_timestamp(arrow_type):
        if isinstance(value, int | float) and not isinstance(value, bool):
            return datetime.fromtimestamp(value / 1000, UTC).replace(tzinfo=None)
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        return parsed.astimezone(UTC).replace(tzinfo=None) if parsed.tzinfo else parsed
    if pa.types.is_list(arrow_type):
        if not isinstance(value, list):
            raise ValueError(f"{value!r} is not an array")
        return [_coerce(item, arrow_type.value_type) for item in value]
    if pa.types.is_map(arrow_type):
        if not isinstance(value, dict):
            raise ValueError(f"{value!r} is not an object")
        return [(str(k), _coerce(v, arrow_type.item_type)) for k, v in value.items()]
    if pa.types.is_struct(arrow_type):
        if not isinstance(value, dict):
            raise ValueError(f"{value!r} is not an object")
        lowered = {str(k).lower(): v for k, v in value.items()}
        return {f.name: _coerce(lowered.get(f.name.lower()), f.type) for f in arrow_type}
    return value


def _hive_millis(table: Any) -> Any:
    """Hive `timestamp` columns at the precision Athena reads them: milliseconds, rounded
    (`shared.arrow.hive_timestamp_millis`). Iceberg tables keep their microseconds."""
    import pyarrow as pa  # noqa: PLC0415

    from shared.arrow import hive_timestamp_millis  # noqa: PLC0415

    for index, field in enumerate(table.schema):
        if pa.types.is_timestamp(field.type):
            # Rounded, then held in milliseconds: the engine knows a Hive timestamp(3) by its unit
            # (DuckDB's TIMESTAMP_MS), an Iceberg timestamp(6) by microseconds, and prints each as Trino.
            millis = field.with_type(pa.timestamp("ms", tz=field.type.tz))
            table = table.set_column(index, millis, hive_timestamp_millis(table.column(index)).cast(millis.type))
    return table


def _without_zones(table: Any) -> Any:
    """Timestamps as Athena's zone-less `timestamp` (values stay UTC)."""
    import pyarrow as pa  # noqa: PLC0415

    fields = [pa.field(f.name, pa.timestamp(f.type.unit)) if pa.types.is_timestamp(f.type) and f.type.tz else f
              for f in table.schema]
    return table.cast(pa.schema(fields)) if fields != list(table.schema) else table
