"""Firehose writer: packing, call limits, billing, retrying only failed records within the budget."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from ingester.firehose import (
    MAX_BATCH_BYTES,
    MAX_BATCH_RECORDS,
    MAX_LINE_BYTES,
    MAX_RECORD_BYTES,
    FirehoseSink,
    FirehoseWriter,
    RecordSink,
    SinkUnavailable,
    batches,
    billing_units,
    pack,
)
from tests.unit.ingester.fakes import ManualClock, RecordingSink


def lines(count: int, size: int = 400) -> list[bytes]:
    return [(f"{index:08d}".encode() + b"x" * size)[:size] for index in range(count)]


def split_records(records: Sequence[bytes]) -> list[bytes]:
    result: list[bytes] = []
    for data in records:
        assert data.endswith(b"\n")
        result.extend(data[:-1].split(b"\n"))
    return result


def writer(sink: RecordSink, clock: ManualClock | None = None) -> FirehoseWriter:
    clock = clock or ManualClock()
    return FirehoseWriter(sink, clock=clock, sleep=clock.sleep, jitter=lambda: 1.0)


# --- packing and limits --------------------------------------------------------------------------


def test_pack_keeps_order_newline_terminates_and_fills_records() -> None:
    data = lines(6000, 400)
    records = pack(data)
    assert all(len(r.data) <= MAX_RECORD_BYTES for r in records)
    assert split_records([r.data for r in records]) == data
    assert len(records) == -(-6000 * 401 // MAX_RECORD_BYTES)  # as few records as fit
    assert next((r.first, r.end) for r in records) == (0, MAX_RECORD_BYTES // 401)


def test_a_line_of_exactly_the_record_limit_fits_alone() -> None:
    records = pack([b"a", b"y" * MAX_LINE_BYTES, b"b"])
    assert [len(r.data) for r in records] == [2, MAX_RECORD_BYTES, 2]
    with pytest.raises(ValueError, match="a record holds"):
        pack([b"y" * (MAX_LINE_BYTES + 1)])


def test_batches_hold_at_most_500_records() -> None:
    records = pack(lines(1200, 10), max_record_bytes=11)  # one line per record
    calls = batches(records)
    assert [len(call) for call in calls] == [MAX_BATCH_RECORDS, MAX_BATCH_RECORDS, 200]


def test_batches_hold_at_most_4_mib() -> None:
    records = pack(lines(30_000, 700))
    calls = batches(records)
    assert len(calls) > 1
    assert all(sum(len(r.data) for r in call) <= MAX_BATCH_BYTES for call in calls)
    assert [r for call in calls for r in call] == records


def test_packing_bills_a_fraction_of_one_event_per_record() -> None:
    data = lines(1000, 400)
    packed = billing_units([r.data for r in pack(data)])
    one_each = billing_units([line + b"\n" for line in data])
    assert one_each == 1000
    assert packed <= one_each / 5


# --- retries -------------------------------------------------------------------------------------


def test_only_failed_records_are_sent_again_and_nothing_is_lost_or_doubled() -> None:
    data = lines(3000, 2000)  # 6 MB: several records and two calls

    def fail_every_other_on_first_call(number: int, records: Sequence[bytes]) -> list[str | None]:
        if number == 0:
            return ["ServiceUnavailableException" if i % 2 else None for i in range(len(records))]
        return [None] * len(records)

    sink = RecordingSink(failures=fail_every_other_on_first_call)
    result = writer(sink).write("s", data, budget_s=1000.0)
    assert result.complete
    assert result.not_written == []
    assert sorted(split_records(sink.written)) == sorted(data)  # each line exactly once
    first_call = sink.calls[0][1]
    resent = [record for _stream, records in sink.calls[2:] for record in records]
    assert resent == [r for i, r in enumerate(first_call) if i % 2]
    assert result.retries == len(resent)
    assert result.failed_records == len(resent)
    assert result.error_codes == {"ServiceUnavailableException": len(resent)}


def test_whole_call_failures_are_retried_with_growing_delays() -> None:
    sink = RecordingSink(unavailable_calls={0, 1, 2})
    clock = ManualClock()
    result = writer(sink, clock).write("s", lines(10), budget_s=10)
    assert result.complete
    assert len(sink.calls) == 4
    assert clock.sleeps == [0.1, 0.2, 0.4]  # base 0.05 * 2**attempt (jitter fixed at 1.0 here)
    assert split_records(sink.written) == lines(10)


def test_budget_runs_out_reports_the_lines_not_written() -> None:
    data = lines(5000, 1000)  # ~5 MB: several records

    def always_fail_records_after_the_first(number: int, records: Sequence[bytes]) -> list[str | None]:
        return [None if (number == 0 and i == 0) else "ServiceUnavailableException" for i in range(len(records))]

    sink = RecordingSink(failures=always_fail_records_after_the_first)
    clock = ManualClock()
    result = writer(sink, clock).write("s", data, budget_s=3)
    written = split_records(sink.written)
    assert result.not_written == sorted(set(range(len(data))) - {data.index(line) for line in written})
    assert len(written) + len(result.not_written) == len(data)
    assert clock.now <= 1000 + 3  # never slept past the deadline
    assert result.failed_records > 0


def test_first_call_is_made_even_with_no_time_left() -> None:
    sink = RecordingSink()
    clock = ManualClock()
    result = writer(sink, clock).write("s", lines(3), budget_s=0)
    assert result.complete
    assert len(sink.calls) == 1


def test_calls_not_made_after_the_deadline_count_as_not_written() -> None:
    clock = ManualClock()

    class SlowSink(RecordingSink):
        def put_record_batch(self, stream_name: str, records: Sequence[bytes]) -> list[str | None]:
            clock.now += 5  # each call takes 5 s
            return super().put_record_batch(stream_name, records)

    sink = SlowSink()
    data = lines(12_000, 1000)  # ~12 MB: three or more calls
    result = writer(sink, clock).write("s", data, budget_s=4)
    assert len(sink.calls) == 1
    assert result.not_written == list(range(len(split_records(sink.written)), len(data)))


# --- the boto3 adapter ---------------------------------------------------------------------------


@pytest.fixture
def firehose_client() -> Any:
    return boto3.client("firehose", region_name="us-west-2")


def test_firehose_sink_reports_per_record_error_codes(firehose_client: Any) -> None:
    with Stubber(firehose_client) as stub:
        stub.add_response(
            "put_record_batch",
            {"FailedPutCount": 1, "Encrypted": False, "RequestResponses": [
                {"RecordId": "a" * 20}, {"ErrorCode": "ServiceUnavailableException", "ErrorMessage": "slow down"},
                {"RecordId": "b" * 20}]},
            {"DeliveryStreamName": "s", "Records": [{"Data": b"1\n"}, {"Data": b"2\n"}, {"Data": b"3\n"}]},
        )
        outcome = FirehoseSink(firehose_client).put_record_batch("s", [b"1\n", b"2\n", b"3\n"])
    assert outcome == [None, "ServiceUnavailableException", None]


def test_firehose_sink_turns_client_errors_into_unavailable(firehose_client: Any) -> None:
    with Stubber(firehose_client) as stub:
        stub.add_client_error("put_record_batch", service_error_code="ServiceUnavailableException",
                              http_status_code=503)
        with pytest.raises(SinkUnavailable, match="ServiceUnavailableException"):
            FirehoseSink(firehose_client).put_record_batch("s", [b"1\n"])


def test_writer_over_stubbed_client_resends_only_the_failed_record(firehose_client: Any) -> None:
    with Stubber(firehose_client) as stub:
        stub.add_response("put_record_batch", {"FailedPutCount": 1, "RequestResponses": [
            {"ErrorCode": "InternalFailure", "ErrorMessage": "x"}]},
            {"DeliveryStreamName": "s", "Records": [{"Data": b"a\nb\n"}]})
        stub.add_response("put_record_batch", {"FailedPutCount": 0, "RequestResponses": [{"RecordId": "r"}]},
                          {"DeliveryStreamName": "s", "Records": [{"Data": b"a\nb\n"}]})
        clock = ManualClock()
        result = FirehoseWriter(FirehoseSink(firehose_client), clock=clock, sleep=clock.sleep,
                                jitter=lambda: 0.5).write("s", [b"a", b"b"], budget_s=10)
        stub.assert_no_pending_responses()
    assert result.complete
    assert result.retries == 1
    assert result.records_sent == 1
