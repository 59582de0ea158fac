"""Iceberg table properties of every compacted and audit table: written into template.yaml by
`deploy.glue_columns`, compared with the live tables by `signals status`.

Athena reads its Iceberg maintenance settings from table properties: VACUUM expires snapshots older
than `vacuum_max_snapshot_age_seconds` (default 432000 s, 5 days), keeps at least
`vacuum_min_snapshots_to_keep` (default 1) and `vacuum_max_metadata_files_to_keep` old metadata
files (default 100), and removes orphan files older than the same age
(https://docs.aws.amazon.com/athena/latest/ug/vacuum-statement.html). Leaving a property unset
means Athena's default, not the compactor's configuration: the snapshot age is therefore derived
here from the same setting the compactor uses (`CompactorConfig.snapshot_retention_hours`,
SNAPSHOT_RETENTION_HOURS), so VACUUM on Athena and the local engine's expiry keep the same history.
"""

from __future__ import annotations

from typing import Final

from shared.config import CompactorConfig

#: The compactor's snapshot retention (hours) when SNAPSHOT_RETENTION_HOURS is not set.
DEFAULT_RETENTION_HOURS: Final[float] = float(CompactorConfig.model_fields["snapshot_retention_hours"].default)


def iceberg_table_properties(retention_hours: float = DEFAULT_RETENTION_HOURS) -> dict[str, str]:
    """The properties each compacted and audit table is declared with (all strings, as Glue keeps them)."""
    return {
        "write.format.default": "parquet",
        "write.parquet.compression-codec": "zstd",
        "vacuum_max_snapshot_age_seconds": str(int(retention_hours * 3600)),
        "vacuum_min_snapshots_to_keep": "1",
        "vacuum_max_metadata_files_to_keep": "100",
    }


def property_drift(declared: dict[str, str], live: dict[str, str]) -> list[str]:
    """What differs between the declared properties and a live table's: one readable line each."""
    lines = []
    for key, value in sorted(declared.items()):
        if key not in live:
            lines.append(f"{key} is not set (declared {value})")
        elif str(live[key]) != value:
            lines.append(f"{key} is {live[key]} (declared {value})")
    return lines
