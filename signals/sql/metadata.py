"""Iceberg metadata tables (`"t$files"`, `"t$partitions"`, `"t$snapshots"`, `"t$history"`) with the
columns Athena engine version 3 answers with.

Athena documents these tables by name only, not their columns
(https://docs.aws.amazon.com/athena/latest/ug/querying-iceberg-table-metadata.html). Athena engine
version 3 is built on Trino (https://docs.aws.amazon.com/athena/latest/ug/engine-versions-reference-0003.html),
so where Athena is silent the columns here are those of Trino's Iceberg connector system tables
(io.trino.plugin.iceberg.FilesTable, PartitionTable, SnapshotsTable, HistoryTable) as they were
before trinodb/trino#24102 (merged November 2024) added a `partition` column to `$files`:
Athena's own published `$files` output has no `partition` column (content, file_path, file_format,
record_count, ...), so counting the files of one partition goes through `$partitions`. A column
that is not listed here does not exist: a query naming it fails with COLUMN_NOT_FOUND, as on Athena.

The rows come from pyiceberg (`Table.inspect`) and are reshaped to those columns, data files of the
current snapshot only (Trino plans the scan of the current snapshot). `$snapshots.committed_at` and
`$history.made_current_at` are `timestamp(3) with time zone` in Trino, and are kept zoned (UTC).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

#: Trino's FilesTable columns before trinodb/trino#24102 (the order of `SELECT *`).
FILES_COLUMNS: Final = (
    "content", "file_path", "file_format", "record_count", "file_size_in_bytes", "column_sizes", "value_counts",
    "null_value_counts", "nan_value_counts", "lower_bounds", "upper_bounds", "key_metadata", "split_offsets",
    "equality_ids",
)
#: Trino's PartitionTable: `partition` (a row of the partition fields), the metrics, and `data` (a row with
#: min, max, null_count, nan_count for each primitive column that is not an identity partition source).
PARTITIONS_COLUMNS: Final = ("partition", "record_count", "file_count", "total_size", "data")
#: Trino's SnapshotsTable.
SNAPSHOTS_COLUMNS: Final = ("committed_at", "snapshot_id", "parent_id", "operation", "manifest_list", "summary")
#: Trino's HistoryTable.
HISTORY_COLUMNS: Final = ("made_current_at", "snapshot_id", "parent_id", "is_current_ancestor")

_DATA: Final = 0  # DataFile content id: data (1 and 2 are position and equality deletes)


def metadata_table(table: Any, kind: str) -> Any | None:
    """The Arrow table of `"<table>$<kind>"`, or None when the engine has no such metadata table."""
    readers: Mapping[str, Callable[[Any], Any]] = {
        "files": files, "partitions": partitions, "snapshots": snapshots, "history": history}
    reader = readers.get(kind)
    return None if reader is None else reader(table)


#: What the local engine answers; `$manifests` and `$refs` (Athena has them) fail with NOT_SUPPORTED.
SUPPORTED: Final = ("files", "partitions", "snapshots", "history")


def files(table: Any) -> Any:
    import pyarrow as pa  # noqa: PLC0415
    import pyarrow.compute as pc  # noqa: PLC0415

    raw = table.inspect.files()
    raw = raw.filter(pc.equal(raw["content"], _DATA))
    schema = table.schema()
    bounds_type = pa.map_(pa.int32(), pa.string())
    columns = {
        "content": raw["content"].cast(pa.int32()),
        "file_path": raw["file_path"].cast(pa.string()),
        "file_format": raw["file_format"].cast(pa.string()),
        "record_count": raw["record_count"],
        "file_size_in_bytes": raw["file_size_in_bytes"],
        "column_sizes": raw["column_sizes"],
        "value_counts": raw["value_counts"],
        "null_value_counts": raw["null_value_counts"],
        "nan_value_counts": raw["nan_value_counts"],
        "lower_bounds": pa.array([_human_bounds(schema, v) for v in raw["lower_bounds"].to_pylist()], bounds_type),
        "upper_bounds": pa.array([_human_bounds(schema, v) for v in raw["upper_bounds"].to_pylist()], bounds_type),
        "key_metadata": raw["key_metadata"],
        "split_offsets": raw["split_offsets"],
        "equality_ids": raw["equality_ids"],
    }
    return pa.table(columns)


def _human_bounds(schema: Any, bounds: list[tuple[int, bytes]] | None) -> list[tuple[int, str]] | None:
    """A bounds map as Trino shows it: field id -> the value's human string (identity transform)."""
    if bounds is None:
        return None
    from pyiceberg.conversions import from_bytes  # noqa: PLC0415
    from pyiceberg.schema import index_by_id  # noqa: PLC0415
    from pyiceberg.transforms import IdentityTransform  # noqa: PLC0415
    from pyiceberg.types import PrimitiveType  # noqa: PLC0415

    by_id = index_by_id(schema)
    shown = []
    human: Any = IdentityTransform()
    for field_id, raw in bounds:
        field = by_id.get(field_id)
        if field is None or not isinstance(field.field_type, PrimitiveType):
            continue  # Trino keeps the ids of the schema's fields only
        value = from_bytes(field.field_type, raw)
        shown.append((field_id, str(human.to_human_string(field.field_type, value))))
    return shown


def partitions(table: Any) -> Any:
    import pyarrow as pa  # noqa: PLC0415
    import pyarrow.compute as pc  # noqa: PLC0415

    raw = table.inspect.files()
    raw = raw.filter(pc.equal(raw["content"], _DATA))
    schema = table.schema()
    spec = table.spec()
    identity_sources = {f.source_id for f in spec.fields if str(f.transform) == "identity"}
    metric_fields = [f for f in schema.fields if f.field_type.is_primitive and f.field_id not in identity_sources]
    partition_type = raw.schema.field("partition").type
    partition_type = pa.struct([pa.field(f.name, pa.string() if pa.types.is_large_string(f.type) else f.type)
                                for f in partition_type])
    metrics = raw["readable_metrics"].to_pylist() if metric_fields else []
    groups: dict[tuple[Any, ...], dict[str, Any]] = {}
    per_file = zip(raw["partition"].to_pylist(), raw["record_count"].to_pylist(),
                   raw["file_size_in_bytes"].to_pylist(), strict=True)
    for index, (partition, records, size) in enumerate(per_file):
        key = tuple(partition.values())
        group = groups.setdefault(key, {"partition": partition, "record_count": 0, "file_count": 0,
                                        "total_size": 0, "stats": {f.name: _Stat() for f in metric_fields}})
        group["record_count"] += records
        group["file_count"] += 1
        group["total_size"] += size
        for field in metric_fields:
            group["stats"][field.name].accept(metrics[index][field.name])
    metric_types = {f.name: raw.schema.field("readable_metrics").type.field(f.name).type.field("lower_bound").type
                    for f in metric_fields}
    data_type = pa.struct([
        pa.field(f.name, pa.struct([
            pa.field("min", _plain(metric_types[f.name])), pa.field("max", _plain(metric_types[f.name])),
            pa.field("null_count", pa.int64()), pa.field("nan_count", pa.int64())]))
        for f in metric_fields])
    rows = list(groups.values())
    columns: dict[str, Any] = {
        "partition": pa.array([r["partition"] for r in rows], partition_type),
        "record_count": pa.array([r["record_count"] for r in rows], pa.int64()),
        "file_count": pa.array([r["file_count"] for r in rows], pa.int64()),
        "total_size": pa.array([r["total_size"] for r in rows], pa.int64()),
    }
    if metric_fields:
        columns["data"] = pa.array([_data_row(r["stats"]) for r in rows], data_type)
    return pa.table(columns)


def _plain(arrow_type: Any) -> Any:
    import pyarrow as pa  # noqa: PLC0415

    return pa.string() if pa.types.is_large_string(arrow_type) else arrow_type


class _Stat:
    """One column's metrics over a partition's files, as Trino's IcebergStatistics folds them."""

    def __init__(self) -> None:
        self.min: Any = None
        self.max: Any = None
        self.null_count: int | None = 0
        self.nan_count: int | None = None

    def accept(self, metrics: Mapping[str, Any]) -> None:
        lower, upper = metrics.get("lower_bound"), metrics.get("upper_bound")
        nulls, nans = metrics.get("null_value_count"), metrics.get("nan_value_count")
        if lower is not None:
            self.min = lower if self.min is None else min(self.min, lower)
        if upper is not None:
            self.max = upper if self.max is None else max(self.max, upper)
        self.null_count = None if nulls is None or self.null_count is None else self.null_count + nulls
        if nans is not None:
            self.nan_count = nans + (self.nan_count or 0)


def _data_row(stats: Mapping[str, _Stat]) -> dict[str, Any] | None:
    # Trino: a column without any metric makes the whole `data` row NULL.
    if any(s.min is None and s.max is None and s.null_count is None for s in stats.values()):
        return None
    return {name: {"min": s.min, "max": s.max, "null_count": s.null_count, "nan_count": s.nan_count}
            for name, s in stats.items()}


def snapshots(table: Any) -> Any:
    import pyarrow as pa  # noqa: PLC0415

    raw = table.inspect.snapshots()
    return pa.table({
        "committed_at": raw["committed_at"].cast(pa.timestamp("ms", tz="UTC")),
        "snapshot_id": raw["snapshot_id"], "parent_id": raw["parent_id"],
        "operation": raw["operation"], "manifest_list": raw["manifest_list"], "summary": raw["summary"],
    })


def history(table: Any) -> Any:
    import pyarrow as pa  # noqa: PLC0415

    raw = table.inspect.history()
    return pa.table({
        "made_current_at": raw["made_current_at"].cast(pa.timestamp("ms", tz="UTC")),
        "snapshot_id": raw["snapshot_id"], "parent_id": raw["parent_id"],
        "is_current_ancestor": raw["is_current_ancestor"],
    })
