"""One raw object from notification to published output: the parser's logic, free of Lambda.

`ParserService.process(ref)` reads the object named by an S3 notification, parses it with
`parser.core`, puts each verified Parquet file and the quarantine file with one PutObject each,
and then writes the raw processing record (when a reparse quarantines nothing where the previous
parse did, the old quarantine file is deleted: its records are rows now). Bad data never raises;
AWS errors do (the handler fails that message and SQS retries it; output names are deterministic,
so a retry overwrites).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

from parser.core import ParseOutcome, ParseSettings, RawObject, parse_raw
from parser.dal import PARQUET_CONTENT_TYPE, QUARANTINE_CONTENT_TYPE, OutputObjects, ProcessingRecords, RawObjects
from parser.drift import drift_lines, encode
from shared.layout import (
    META_ROWS,
    META_SCHEMA_VERSION,
    META_SOURCE_ETAG,
    META_SOURCE_KEY,
    META_TYPE,
    Partition,
    drift_key,
    output_name,
    quarantine_key,
    source_of_raw_key,
    verified_key,
)
from shared.s3events import S3ObjectRef
from shared.schema import SCHEMA_VERSION, Source
from shared.timeparse import format_rfc3339_ms

_SOURCES = frozenset(source.value for source in Source)


@dataclass(frozen=True)
class ObjectReport:
    """What happened to one raw object (for metrics and logs)."""

    bucket: str
    key: str
    skipped: str | None = None  # why nothing was done (not a raw key)
    source: str | None = None
    outputs: list[str] = field(default_factory=list)
    quarantine_key: str | None = None
    outcome: ParseOutcome | None = None
    lag_s: float | None = None
    duration_s: float = 0.0


@dataclass(frozen=True)
class ParserTargets:
    verified_bucket: str
    quarantine_bucket: str


class ParserService:
    def __init__(self, raw: RawObjects, outputs: OutputObjects, records: ProcessingRecords, *,
                 targets: ParserTargets, settings: ParseSettings, clock: Callable[[], float] = time.time,
                 scratch_root: str | None = None) -> None:
        self._raw = raw
        self._outputs = outputs
        self._records = records
        self._targets = targets
        self._settings = settings
        self._clock = clock
        self._scratch_root = scratch_root

    def process(self, ref: S3ObjectRef) -> ObjectReport:
        started = time.perf_counter()
        source = source_of_raw_key(ref.key)
        if source not in _SOURCES:
            return ObjectReport(ref.bucket, ref.key, skipped="not under raw/json_telemetry/ or raw/otlp_logs/")
        assert source is not None
        body = self._raw.open(ref.bucket, ref.key)
        # Name the output after the version actually read (a newer PUT may follow the notification).
        name = output_name(ref.bucket, ref.key, body.etag or ref.etag)
        arrival_ms = _epoch_ms(body.last_modified)
        with tempfile.TemporaryDirectory(prefix="parser-", dir=self._scratch_root) as scratch:
            outcome = parse_raw(body.stream, RawObject(source, ref.key, arrival_ms), Path(scratch), self._settings)
            outputs: list[str] = []
            for verified in outcome.verified:
                key = verified_key(verified.type_value, verified.partition, name)
                self._outputs.put_file(self._targets.verified_bucket, key, verified.path, PARQUET_CONTENT_TYPE, {
                    META_ROWS: str(verified.rows),
                    META_SCHEMA_VERSION: str(SCHEMA_VERSION),
                    META_SOURCE_KEY: quote(ref.key, safe="/"),  # S3 metadata is ASCII only
                    META_SOURCE_ETAG: body.etag,
                    META_TYPE: verified.type_value,
                })
                outputs.append(key)
            q_key = None
            if outcome.quarantine is not None:
                q_key = quarantine_key(source, Partition.from_epoch_ms(arrival_ms), name)
                self._outputs.put_file(self._targets.quarantine_bucket, q_key, outcome.quarantine.path,
                                       QUARANTINE_CONTENT_TYPE)
            drift = drift_lines(outcome.verified, ref.key)
            if drift:  # unknown keys in `extra`: counted for `signals schema drift` (parser.drift)
                self._outputs.put_bytes(self._targets.quarantine_bucket,
                                        drift_key(Partition.from_epoch_ms(arrival_ms), name), encode(drift),
                                        QUARANTINE_CONTENT_TYPE)
        now_ms = int(self._clock() * 1000)
        record = {
            "item_type": "raw",
            "raw_bucket": ref.bucket,
            "raw_key": ref.key,
            "etag": body.etag,
            "source": source,
            "processed_at": format_rfc3339_ms(now_ms),
            "arrival_time": format_rfc3339_ms(arrival_ms),
            "rows_out": dict(outcome.counts.rows_out),
            "outputs": outputs,
            "quarantined": outcome.quarantined,
            "blank_lines": outcome.counts.blank_lines,
            "bytes_in": outcome.bytes_in,
        }
        if q_key is not None:
            record["quarantine_key"] = q_key
        previous_q_key = self._records.put(ref.bucket, ref.key, record)
        if previous_q_key is not None and previous_q_key != q_key:
            # A reparse (`signals redrive quarantine`, after a schema change) left nothing in quarantine:
            # the old file's records are now rows, and must not be counted or replayed again.
            self._outputs.delete(self._targets.quarantine_bucket, previous_q_key)
        return ObjectReport(
            ref.bucket, ref.key, source=source, outputs=outputs, quarantine_key=q_key, outcome=outcome,
            lag_s=max(0.0, (now_ms - arrival_ms) / 1000), duration_s=time.perf_counter() - started,
        )


def _epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)
