"""Partition projection as Athena computes it, enumerated from listed S3 keys."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from signals.sql.projection import ProjectionError, enumerate_partitions

NOW = datetime(2026, 11, 25, 19, 30, tzinfo=UTC)


def lister(keys: list[str]) -> object:
    def list_keys(bucket: str, prefix: str) -> Iterator[str]:
        assert bucket == "b"
        return iter(k for k in keys if k.startswith(prefix))
    return list_keys


def partitions(parameters: dict[str, str], keys: list[str], columns: list[str],
               injected: dict[str, frozenset[str]] | None = None) -> list[tuple[str, ...]]:
    found = enumerate_partitions({"projection.enabled": "true", **parameters}, "s3://b/t/", columns, lister(keys),
                                 now=NOW, injected=injected)
    return [p.values for p in found]


def test_enum_date_and_integer_with_a_location_template() -> None:
    parameters = {
        "projection.source.type": "enum", "projection.source.values": "json_telemetry,otlp_logs",
        "projection.day.type": "date", "projection.day.format": "yyyy-MM-dd", "projection.day.range": "NOW-2DAYS,NOW",
        "projection.hour.type": "integer", "projection.hour.range": "0,23", "projection.hour.digits": "2",
        "storage.location.template": "s3://b/q/source=${source}/day=${day}/hour=${hour}/",
    }
    keys = [
        "q/source=json_telemetry/day=2026-11-25/hour=19/a.gz",
        "q/source=json_telemetry/day=2026-11-25/hour=19/b.gz",  # same partition
        "q/source=otlp_logs/day=2026-11-23/hour=00/c.gz",  # the range's first day (NOW-2DAYS, as formatted)
        "q/source=other/day=2026-11-25/hour=19/d.gz",  # not an enum value
        "q/source=json_telemetry/day=2026-11-22/hour=19/e.gz",  # before the range
        "q/source=json_telemetry/day=2026-11-26/hour=19/f.gz",  # after NOW
        "q/source=json_telemetry/day=2026-11-25/hour=7/g.gz",  # not zero-padded to 2 digits
        "q/source=json_telemetry/day=2026-11-25/hour=24/h.gz",  # outside 0..23
        "q/source=json_telemetry/day=2026-11-25/hour=19/",  # the folder itself, no file
    ]
    assert partitions(parameters, keys, ["source", "day", "hour"]) == [
        ("json_telemetry", "2026-11-25", "19"), ("otlp_logs", "2026-11-23", "00")]


def test_hive_layout_by_default_and_an_hourly_date_grid() -> None:
    parameters = {"projection.dt.type": "date", "projection.dt.format": "yyyy-MM-dd-HH-mm",
                  "projection.dt.range": "2022-01-01-00-00,NOW", "projection.dt.interval": "1",
                  "projection.dt.interval.unit": "HOURS"}
    keys = ["t/dt=2026-11-25-01-00/symlink.txt", "t/dt=2026-11-25-01-30/symlink.txt",  # off the hourly grid
            "t/dt=2026-11-25-20-00/symlink.txt"]  # after NOW
    assert partitions(parameters, keys, ["dt"]) == [("2026-11-25-01-00",)]


def test_injected_values_come_from_the_query() -> None:
    parameters = {"projection.device.type": "injected"}
    keys = ["t/device=a/1.json", "t/device=b/1.json"]
    assert partitions(parameters, keys, ["device"], {"device": frozenset({"b"})}) == [("b",)]
    assert partitions(parameters, keys, ["device"]) == []


def test_bad_settings_fail_loudly() -> None:
    with pytest.raises(ProjectionError, match=r"projection.day.type"):
        partitions({}, [], ["day"])
    with pytest.raises(ProjectionError, match="not supported"):
        partitions({"projection.day.type": "geohash"}, [], ["day"])
    with pytest.raises(ProjectionError, match="lacks partition columns"):
        partitions({"projection.a.type": "injected", "projection.b.type": "injected",
                    "storage.location.template": "s3://b/t/${a}/"}, [], ["a", "b"])
