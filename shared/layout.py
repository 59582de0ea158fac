"""Where things live in S3: partitions, deterministic output names, object metadata.

The verified and quarantine layouts are part of the data contract (docs/data-contract.md); Glue
table locations, S3 notification filters and the parser's writes all come from here.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

VERIFIED_ROOT: Final = "telemetry_flat/"
QUARANTINE_ROOT: Final = "quarantine/"
#: Schema drift counts (parser.drift), in the quarantine bucket beside the quarantine records.
DRIFT_ROOT: Final = "schema_drift/"
RAW_ROOT: Final = "raw/"
VERIFIED_SUFFIX: Final = ".parquet"
QUARANTINE_SUFFIX: Final = ".jsonl.gz"

# User metadata on every verified object (S3 returns them lower-cased without `x-amz-meta-`), so the
# registry learns what a file holds from a HEAD, without reading Parquet.
META_ROWS: Final = "rows"
META_SCHEMA_VERSION: Final = "schema-version"
META_SOURCE_KEY: Final = "source-key"
META_SOURCE_ETAG: Final = "source-etag"
META_TYPE: Final = "type"


@dataclass(frozen=True, order=True)
class Partition:
    """An hour partition in UTC: `day=YYYY-MM-DD/hour=HH`."""

    day: str
    hour: str

    @classmethod
    def from_epoch_ms(cls, epoch_ms: int) -> Partition:
        return cls.from_datetime(datetime.fromtimestamp(epoch_ms // 1000, tz=UTC))

    @classmethod
    def from_datetime(cls, moment: datetime) -> Partition:
        if moment.tzinfo is None:
            raise ValueError("partition time must be timezone-aware")
        utc = moment.astimezone(UTC)
        return cls(utc.strftime("%Y-%m-%d"), utc.strftime("%H"))

    @property
    def path(self) -> str:
        return f"day={self.day}/hour={self.hour}"

    @property
    def values(self) -> list[str]:
        """Glue partition values, in PartitionKeys order."""
        return [self.day, self.hour]

    @property
    def start(self) -> datetime:
        return datetime.strptime(f"{self.day}T{self.hour}", "%Y-%m-%dT%H").replace(tzinfo=UTC)


def output_name(bucket: str, key: str, etag: str) -> str:
    """Deterministic name of everything produced from one raw object version.

    Reprocessing the same object (redelivery, redrive) yields the same names, so it overwrites its
    own output instead of adding duplicates; a new version (new etag) gets new names.
    """
    digest = hashlib.sha256(f"{bucket}\0{key}\0{etag.strip(chr(34))}".encode()).hexdigest()
    return digest[:32]


def local_output_name(path: str, content_digest: str) -> str:
    """`output_name` for a local file (`signals parse-file`): its path and content digest."""
    return output_name("local", path, content_digest)


def verified_key(type_value: str, partition: Partition, name: str) -> str:
    return f"{VERIFIED_ROOT}type={type_value}/{partition.path}/{name}{VERIFIED_SUFFIX}"


def quarantine_key(source: str, partition: Partition, name: str) -> str:
    return f"{QUARANTINE_ROOT}source={source}/{partition.path}/{name}{QUARANTINE_SUFFIX}"


def drift_key(partition: Partition, name: str) -> str:
    """`schema_drift/day=/hour=/{name}.jsonl.gz`: one raw object's drift lines (its arrival hour)."""
    return f"{DRIFT_ROOT}{partition.path}/{name}{QUARANTINE_SUFFIX}"


def raw_prefix(source: str) -> str:
    return f"{RAW_ROOT}{source}/"


_VERIFIED_KEY: Final = re.compile(
    r"telemetry_flat/type=(?P<type>[a-z][a-z0-9_]*)/day=(?P<day>\d{4}-\d{2}-\d{2})/hour=(?P<hour>\d{2})/"
    r"(?P<name>[^/]+)\.parquet"
)


@dataclass(frozen=True)
class VerifiedKey:
    type_value: str
    partition: Partition
    name: str


def parse_verified_key(key: str) -> VerifiedKey | None:
    """The parts of a verified object key, or None when the key is not one."""
    match = _VERIFIED_KEY.fullmatch(key)
    if match is None:
        return None
    return VerifiedKey(match["type"], Partition(match["day"], match["hour"]), match["name"])


def source_of_raw_key(key: str) -> str | None:
    """`json_telemetry` / `otlp_logs` for a key under `raw/{source}/`, else None."""
    if not key.startswith(RAW_ROOT):
        return None
    source = key[len(RAW_ROOT):].split("/", 1)[0]
    return source or None
