from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from shared import layout
from shared.layout import Partition


def test_partition_is_utc_hour() -> None:
    local = datetime(2026, 11, 25, 23, 30, tzinfo=timezone(timedelta(hours=-5)))
    assert Partition.from_datetime(local).path == "day=2026-11-26/hour=04"
    assert Partition.from_epoch_ms(1764099000123).path == "day=2025-11-25/hour=19"
    with pytest.raises(ValueError, match="timezone"):
        Partition.from_datetime(datetime(2026, 1, 1))


def test_output_names_are_deterministic_per_object_version() -> None:
    name = layout.output_name("raw", "raw/json_telemetry/a.gz", '"abc"')
    assert name == layout.output_name("raw", "raw/json_telemetry/a.gz", "abc")
    assert name != layout.output_name("raw", "raw/json_telemetry/a.gz", "abd")
    assert name != layout.output_name("raw", "raw/json_telemetry/b.gz", "abc")
    assert len(name) == 32


def test_keys_round_trip() -> None:
    partition = Partition("2026-11-25", "07")
    key = layout.verified_key("video_doorbell", partition, "n1")
    assert key == "telemetry_flat/type=video_doorbell/day=2026-11-25/hour=07/n1.parquet"
    parsed = layout.parse_verified_key(key)
    assert parsed == layout.VerifiedKey("video_doorbell", partition, "n1")
    assert layout.parse_verified_key("telemetry_flat/type=lock/day=2026-11-25/x.parquet") is None
    assert layout.quarantine_key("otlp_logs", partition, "n1") == (
        "quarantine/source=otlp_logs/day=2026-11-25/hour=07/n1.jsonl.gz"
    )
    assert partition.start == datetime(2026, 11, 25, 7, tzinfo=UTC)


def test_source_of_raw_key() -> None:
    assert layout.source_of_raw_key("raw/otlp_logs/2026/11/25/07/x.gz") == "otlp_logs"
    assert layout.source_of_raw_key("other/x") is None
