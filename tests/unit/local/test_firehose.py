"""The Firehose stand-in's core: prefixes, names, buffering, limits and injected failures."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime
from typing import Any

import pytest

from signals.local.firehose import FirehoseError, FirehoseStandIn, expand_prefix, object_name
from signals.local.wiring import StreamSpec

ARRIVAL = datetime(2026, 11, 25, 19, 5, 9, tzinfo=UTC)


def stream(size_mb: float = 1.0, interval: float = 60.0) -> StreamSpec:
    return StreamSpec(logical_id="S", name="s", bucket="raw", prefix="raw/x/!{timestamp:yyyy/MM/dd/HH}/",
                      error_output_prefix="errors/", interval_seconds=interval, size_mb=size_mb, compression="GZIP")


class FakeS3:
    def __init__(self) -> None:
        self.puts: list[dict[str, Any]] = []

    def put_object(self, **kwargs: Any) -> None:
        self.puts.append(kwargs)


class Clock:
    def __init__(self) -> None:
        self.now = ARRIVAL.timestamp()

    def __call__(self) -> float:
        return self.now


def test_prefix_expressions_expand_from_arrival_time() -> None:
    assert expand_prefix("raw/x/!{timestamp:yyyy/MM/dd/HH}/", ARRIVAL) == "raw/x/2026/11/25/19/"
    assert expand_prefix("raw/plain/", ARRIVAL) == "raw/plain/2026/11/25/19/"  # Firehose's default
    assert expand_prefix("e/!{firehose:error-output-type}/", ARRIVAL, error_output_type="processing-failed") == (
        "e/processing-failed/")
    assert object_name("s", ARRIVAL, gzipped=True).startswith("s-1-2026-11-25-19-05-09-")


def test_buffer_is_one_gzip_object_after_the_interval() -> None:
    s3, clock = FakeS3(), Clock()
    standin = FirehoseStandIn({"s": stream()}, s3, interval_override=2.0, clock=clock)
    standin.put_record_batch("s", [b'{"a":1}\n', b'{"a":2}\n'])
    standin.put_record_batch("s", [b'{"a":3}\n'])
    assert standin.flush_due() == 0
    assert standin.pending_records() == 3
    clock.now += 2.0
    assert standin.flush_due() == 1
    (put,) = s3.puts
    assert put["Key"].startswith("raw/x/2026/11/25/19/s-1-2026-11-25-19-05-09-")
    assert gzip.decompress(put["Body"]) == b'{"a":1}\n{"a":2}\n{"a":3}\n'
    assert standin.pending_records() == 0


def test_buffer_size_hint_starts_a_new_object() -> None:
    s3 = FakeS3()
    standin = FirehoseStandIn({"s": stream(size_mb=1.0)}, s3, clock=Clock())
    record = b"x" * (600 * 1024)
    standin.put_record_batch("s", [record])
    standin.put_record_batch("s", [record])  # would pass 1 MiB: the first is delivered on its own
    assert len(s3.puts) == 1
    standin.stop()  # flushes what is left
    assert len(s3.puts) == 2


def test_limits_and_injected_failures() -> None:
    standin = FirehoseStandIn({"s": stream()}, FakeS3(), clock=Clock())
    with pytest.raises(FirehoseError, match="500"):
        standin.put_record_batch("s", [b"x"] * 501)
    with pytest.raises(FirehoseError, match="1024000"):
        standin.put_record_batch("s", [b"x" * (1000 * 1024 + 1)])
    with pytest.raises(FirehoseError, match="4 MiB"):
        standin.put_record_batch("s", [b"x" * 1_000_000] * 5)
    with pytest.raises(FirehoseError) as unknown:
        standin.put_record_batch("nope", [b"x"])
    assert unknown.value.code == "ResourceNotFoundException"

    standin.fail_next_records(2)
    result = standin.put_record_batch("s", [b"1", b"2", b"3"])
    assert result["FailedPutCount"] == 2
    assert [("ErrorCode" in r) for r in result["RequestResponses"]] == [True, True, False]
    assert standin.pending_records() == 1
    standin.fail_next_calls(1)
    with pytest.raises(FirehoseError) as throttled:
        standin.put_record_batch("s", [b"4"])
    assert throttled.value.code == "ServiceUnavailableException"
    assert standin.put_record_batch("s", [b"5"])["FailedPutCount"] == 0
