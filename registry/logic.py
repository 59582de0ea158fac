"""Registering verified files: one registry item per file, one Glue partition per hour.

A whole SQS batch is handled at once: every object is HEADed (its user metadata says what it
holds), the batch's partitions are made sure of together (known ones from an in-process cache or
the registry table, the rest with one `BatchCreatePartition` per table), then each file item is
written once with its final status. So 50 files in 2 partitions cost at most 2 Glue calls, and a
partition already on record costs none, even after a cold start.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, TypeVar

from botocore.exceptions import ClientError

from registry.dal import (
    GlueCatalog,
    GlueUnavailable,
    Objects,
    RegistryTable,
    TableMissing,
    error_code,
)
from shared import registry_keys as rk
from shared.layout import (
    META_ROWS,
    META_SCHEMA_VERSION,
    META_SOURCE_ETAG,
    META_SOURCE_KEY,
    META_TYPE,
    Partition,
    parse_verified_key,
)
from shared.s3events import NotAnS3Event, S3ObjectRef, parse_s3_notification
from shared.schema import TABLES_BY_TYPE
from shared.timeparse import format_rfc3339_ms

Clock = Callable[[], datetime]
PartitionRef = tuple[str, Partition]  # (Glue table name, partition)

DEFAULT_WORKERS: Final = 8
_log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


def utc_now() -> datetime:
    return datetime.now(UTC)


def rfc3339(moment: datetime) -> str:
    return format_rfc3339_ms(int(moment.timestamp() * 1000))


@dataclass(frozen=True)
class VerifiedFile:
    bucket: str
    key: str
    type_value: str
    table: str
    partition: Partition
    rows: int
    size: int
    etag: str
    source_key: str | None
    source_etag: str | None
    schema_version: int | None
    metadata_source: str  # "head" or "footer"

    @property
    def partition_ref(self) -> PartitionRef:
        return (self.table, self.partition)


@dataclass(frozen=True)
class PartitionOutcome:
    status: str  # one of shared.registry_keys.FILE_STATUSES
    error: str | None = None


REGISTERED: Final = PartitionOutcome(rk.STATUS_REGISTERED)


@dataclass
class BatchReport:
    """What one batch did: per-message failures (retried by SQS) and counts (metrics)."""

    failures: dict[str, str] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)


class Registrar:
    """Registers verified files; shared by the registry handler and the reconciler.

    `known` partitions (on record in the table, hence in Glue) are cached for the life of the
    instance, which is one Lambda execution environment.
    """

    def __init__(
        self,
        store: RegistryTable,
        catalog: GlueCatalog,
        objects: Objects,
        *,
        clock: Clock = utc_now,
        workers: int = DEFAULT_WORKERS,
        logger: Any = None,
    ) -> None:
        self.store = store
        self.catalog = catalog
        self.objects = objects
        self._clock = clock
        self._workers = workers
        self._log = logger or _log
        self._known: set[PartitionRef] = set()

    # -- the SQS batch ---------------------------------------------------------------------------

    def register_messages(self, messages: Sequence[tuple[str, str]]) -> BatchReport:
        """Register every verified object the (message id, body) pairs announce."""
        report = BatchReport()
        wanted: list[tuple[str, S3ObjectRef]] = []
        for message_id, body in messages:
            try:
                refs = parse_s3_notification(body)
            except NotAnS3Event as exc:
                report.failures[message_id] = f"not an S3 notification: {exc}"
                report.counts["poison_messages"] += 1
                continue
            if not refs:
                report.counts["test_events"] += 1
            for ref in refs:
                if self._accepts(ref.key):
                    wanted.append((message_id, ref))
                else:
                    self._log.info("ignoring object outside the verified tables", extra={"key": ref.key})
                    report.counts["ignored"] += 1
        files = self._describe_all(wanted, report)
        self._register_files(files, report)
        return report

    def register_objects(self, bucket: str, keys: Sequence[str]) -> BatchReport:
        """Register objects found by listing (the reconciler); failures are keyed by object key."""
        report = BatchReport()
        refs = [(key, S3ObjectRef(bucket, key, "", None, "reconciler", None)) for key in keys if self._accepts(key)]
        files = self._describe_all(refs, report)
        self._register_files(files, report)
        return report

    @staticmethod
    def _accepts(key: str) -> bool:
        parsed = parse_verified_key(key)
        return parsed is not None and parsed.type_value in TABLES_BY_TYPE

    def _describe_all(
        self, wanted: Sequence[tuple[str, S3ObjectRef]], report: BatchReport
    ) -> list[tuple[str, VerifiedFile]]:
        files: list[tuple[str, VerifiedFile]] = []
        results = self._map(lambda item: self.describe(item[1].bucket, item[1].key), wanted)
        for (owner, ref), result in zip(wanted, results, strict=True):
            if isinstance(result, Exception):
                report.failures[owner] = f"describe {ref.key}: {error_code(result)}: {result}"
                report.counts["errors"] += 1
            elif result is None:
                # Deleted since the notification (or a stale one): nothing to register.
                self._log.warning("verified object no longer exists", extra={"key": ref.key})
                report.counts["missing_objects"] += 1
            else:
                files.append((owner, result))
        return files

    def _register_files(self, files: Sequence[tuple[str, VerifiedFile]], report: BatchReport) -> None:
        if not files:
            return
        try:
            outcomes = self.ensure_partitions({file.partition_ref for _, file in files}, report.counts)
        except Exception as exc:  # the registry table itself failed: retry these messages
            self._log.exception("could not make sure of partitions")
            for owner, _ in files:
                report.failures[owner] = f"partitions: {error_code(exc)}: {exc}"
            report.counts["errors"] += len(files)
            return
        results = self._map(lambda item: self.record(item[1], outcomes[item[1].partition_ref]), files)
        for (owner, file), result in zip(files, results, strict=True):
            if isinstance(result, Exception):
                report.failures[owner] = f"record {file.key}: {error_code(result)}: {result}"
                report.counts["errors"] += 1
            elif result:
                report.counts[f"files_{outcomes[file.partition_ref].status}"] += 1
            else:
                report.counts["duplicates"] += 1

    def _map(self, function: Callable[[T], R], items: Sequence[T]) -> list[R | Exception]:
        def guarded(item: T) -> R | Exception:
            try:
                return function(item)
            except Exception as exc:
                return exc

        if len(items) <= 1:
            return [guarded(item) for item in items]
        with ThreadPoolExecutor(max_workers=min(self._workers, len(items))) as pool:
            return list(pool.map(guarded, items))

    # -- one file --------------------------------------------------------------------------------

    def describe(self, bucket: str, key: str) -> VerifiedFile | None:
        """What a verified object holds, from its HEAD (Parquet footer when the metadata is missing)."""
        parsed = parse_verified_key(key)
        if parsed is None or parsed.type_value not in TABLES_BY_TYPE:
            raise ValueError(f"not a verified table key: {key}")
        head = self.objects.head(bucket, key)
        if head is None:
            return None
        rows = _int_or_none(head.metadata.get(META_ROWS))
        source_key = head.metadata.get(META_SOURCE_KEY)
        metadata_source = "head"
        if rows is None or source_key is None:
            footer = self.objects.parquet_footer(bucket, key, head.etag)
            rows, source_key, metadata_source = footer.rows, source_key or footer.source_key, "footer"
        type_value = head.metadata.get(META_TYPE) or parsed.type_value
        if type_value != parsed.type_value:
            self._log.warning("type metadata disagrees with the key; using the key", extra={"key": key})
        return VerifiedFile(
            bucket=bucket,
            key=key,
            type_value=parsed.type_value,
            table=TABLES_BY_TYPE[parsed.type_value].name,
            partition=parsed.partition,
            rows=rows,
            size=head.size,
            etag=head.etag,
            source_key=source_key,
            source_etag=head.metadata.get(META_SOURCE_ETAG),
            schema_version=_int_or_none(head.metadata.get(META_SCHEMA_VERSION)),
            metadata_source=metadata_source,
        )

    def record(self, file: VerifiedFile, outcome: PartitionOutcome) -> bool:
        """Write the file's item; False when this version was already on record (redelivery)."""
        now = rfc3339(self._clock())
        item = {
            **rk.file_key(file.key),
            "item_type": "file",
            "verified_key": file.key,
            "bucket": file.bucket,
            "type": file.type_value,
            "table": file.table,
            "day": file.partition.day,
            "hour": file.partition.hour,
            "rows": file.rows,
            "size": file.size,
            "etag": file.etag,
            "source_key": file.source_key,
            "source_etag": file.source_etag,
            "schema_version": file.schema_version,
            rk.STATUS_ATTR: outcome.status,
            "attempts": 1,
            "last_error": outcome.error,
            "created_at": now,
            rk.STATUS_SORT_ATTR: now,
        }
        return self.store.put_file_item(item)

    # -- partitions ------------------------------------------------------------------------------

    def ensure_partitions(
        self, wanted: Iterable[PartitionRef], counts: Counter[str] | None = None, *, trust_records: bool = True
    ) -> dict[PartitionRef, PartitionOutcome]:
        """Make sure each partition exists in Glue, calling Glue only for ones not on record.

        `trust_records=False` (the reconciler's Glue check) skips the cache and the table lookup.
        """
        counts = Counter() if counts is None else counts
        wanted = set(wanted)
        outcomes: dict[PartitionRef, PartitionOutcome] = {}
        unknown = sorted(wanted - self._known) if trust_records else sorted(wanted)
        outcomes.update({ref: REGISTERED for ref in wanted if ref not in unknown})
        if trust_records and unknown:
            on_record = self.store.batch_get([rk.partition_key(t, p.day, p.hour) for t, p in unknown], ["created_at"])
            for ref in unknown:
                if rk.partition_key(ref[0], ref[1].day, ref[1].hour)[rk.PK] in on_record:
                    self._known.add(ref)
                    outcomes[ref] = REGISTERED
            unknown = [ref for ref in unknown if ref not in outcomes]
        by_table: dict[str, list[Partition]] = {}
        for table, partition in unknown:
            by_table.setdefault(table, []).append(partition)
        created: list[PartitionRef] = []
        for table, partitions in by_table.items():
            table_outcomes = self._create_in_glue(table, partitions)
            for partition, outcome in table_outcomes.items():
                outcomes[(table, partition)] = outcome
                counts[f"partitions_{outcome.status}"] += 1
                if outcome.status == rk.STATUS_REGISTERED:
                    created.append((table, partition))
        if created:
            now = rfc3339(self._clock())
            items = [
                {**rk.partition_key(t, p.day, p.hour), "item_type": "partition", "table": t, "day": p.day,
                 "hour": p.hour, "created_at": now}
                for t, p in created
            ]
            left_over = self.store.batch_put(items)
            if left_over:
                # Harmless: Glue has them; the next cold start asks Glue again and gets AlreadyExists.
                self._log.warning("partition records not written", extra={"count": left_over})
            self._known.update(created)
        return outcomes

    def _create_in_glue(self, table: str, partitions: Sequence[Partition]) -> dict[Partition, PartitionOutcome]:
        try:
            errors = self.catalog.create_partitions(table, partitions)
        except GlueUnavailable as exc:
            self._log.warning("Glue unavailable; files stay pending", extra={"table": table, "error": str(exc)})
            return dict.fromkeys(partitions, PartitionOutcome(rk.STATUS_PARTITION_PENDING, f"glue unavailable: {exc}"))
        except TableMissing as exc:
            self.catalog.forget_table(table)  # read it again once the reconciler has recreated it
            return dict.fromkeys(partitions, PartitionOutcome(rk.STATUS_PARTITION_FAILED, f"table missing: {exc}"))
        except (ClientError, ValueError) as exc:
            message = f"{error_code(exc)}: {exc}"
            return dict.fromkeys(partitions, PartitionOutcome(rk.STATUS_PARTITION_FAILED, message))
        outcomes = dict.fromkeys(partitions, REGISTERED)
        for error in errors:
            outcomes[error.partition] = PartitionOutcome(rk.STATUS_PARTITION_FAILED, f"{error.code}: {error.message}")
        return outcomes


def _int_or_none(text: str | None) -> int | None:
    if text is None or text == "":
        return None
    try:
        return int(text)
    except ValueError:
        return None


def counts_as_metrics(counts: Mapping[str, int]) -> dict[str, int]:
    """Counts with stable names for EMF (zero counts dropped)."""
    return {name: value for name, value in sorted(counts.items()) if value}

