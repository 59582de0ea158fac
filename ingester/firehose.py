"""Firehose writer: pack lines into records, batch them to the service limits, retry only failures.

Firehose bills each record in 5 KB steps, so many newline-terminated lines share one record (up
to the 1,000 KiB record limit). `PutRecordBatch` takes at most 500 records and 4 MiB per call.
A call can partly fail (`FailedPutCount`, an `ErrorCode` per record): only the failed records are
sent again, with exponential backoff and full jitter, until they are in or the time budget is
spent. The caller gets back the positions of the lines not written, so a client can resend exactly
those and nothing is written twice by this side.

AWS access sits behind `RecordSink`: `FirehoseSink` wraps a boto3 client; tests and the local
stack pass their own.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import botocore.session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

KiB: Final = 1024
MAX_RECORD_BYTES: Final = 1000 * KiB
MAX_BATCH_RECORDS: Final = 500
MAX_BATCH_BYTES: Final = 4 * 1024 * KiB
#: The largest line a record can hold with its newline.
MAX_LINE_BYTES: Final = MAX_RECORD_BYTES - 1
BILLING_UNIT_BYTES: Final = 5 * KiB


class SinkUnavailable(Exception):
    """The whole call failed (throttled, unreachable, service error): every record in it failed."""


class RecordSink(Protocol):
    def put_record_batch(self, stream_name: str, records: Sequence[bytes]) -> list[str | None]:
        """Send one batch; return, per record in order, None if written or its error code.

        Raises `SinkUnavailable` when the call as a whole failed.
        """
        ...


def firehose_client(config: Config) -> Any:
    """A Firehose client from botocore: the same credentials, region and `AWS_ENDPOINT_URL` as boto3."""
    return botocore.session.get_session().create_client("firehose", config=config)


class FirehoseSink:
    """`RecordSink` over a boto3 Firehose client."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def put_record_batch(self, stream_name: str, records: Sequence[bytes]) -> list[str | None]:
        try:
            response = self._client.put_record_batch(
                DeliveryStreamName=stream_name, Records=[{"Data": data} for data in records]
            )
        except (ClientError, BotoCoreError) as exc:
            raise SinkUnavailable(_error_name(exc)) from exc
        if not response.get("FailedPutCount"):
            return [None] * len(records)
        results = response["RequestResponses"]
        return [entry.get("ErrorCode") or None for entry in results]


def _error_name(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code") or type(exc).__name__)
    return type(exc).__name__


@dataclass(frozen=True)
class Record:
    data: bytes
    first: int  # position of its first line
    end: int  # one past its last line


@dataclass
class WriteResult:
    not_written: list[int] = field(default_factory=list)  # positions of the lines that are not in Firehose
    records_sent: int = 0  # records Firehose accepted
    bytes_sent: int = 0
    calls: int = 0
    retries: int = 0  # records sent again after a failure
    failed_records: int = 0  # record failures seen, retried or not
    error_codes: dict[str, int] = field(default_factory=dict)  # failures by error code

    @property
    def complete(self) -> bool:
        return not self.not_written


def pack(lines: Sequence[bytes], max_record_bytes: int = MAX_RECORD_BYTES) -> list[Record]:
    """Consecutive lines into newline-terminated records of at most `max_record_bytes`."""
    if lines and sum(map(len, lines)) + len(lines) <= max_record_bytes:
        return [_record(lines, 0, len(lines))]  # the common case: the whole request fits one record
    records: list[Record] = []
    first = 0
    size = 0
    for position, line in enumerate(lines):
        needed = len(line) + 1
        if needed > max_record_bytes:
            raise ValueError(f"line {position} is {len(line)} bytes; a record holds {max_record_bytes - 1}")
        if size + needed > max_record_bytes:
            records.append(_record(lines, first, position))
            first, size = position, 0
        size += needed
    if first < len(lines):
        records.append(_record(lines, first, len(lines)))
    return records


def _record(lines: Sequence[bytes], first: int, end: int) -> Record:
    return Record(b"\n".join(lines[first:end]) + b"\n", first, end)


def batches(records: Sequence[Record], max_records: int = MAX_BATCH_RECORDS,
            max_bytes: int = MAX_BATCH_BYTES) -> list[list[Record]]:
    """Records into `PutRecordBatch` calls of at most `max_records` and `max_bytes`."""
    result: list[list[Record]] = []
    current: list[Record] = []
    size = 0
    for record in records:
        if current and (len(current) == max_records or size + len(record.data) > max_bytes):
            result.append(current)
            current, size = [], 0
        current.append(record)
        size += len(record.data)
    if current:
        result.append(current)
    return result


def billing_units(records: Sequence[bytes]) -> int:
    """Firehose's 5 KB billing steps for these records (each record rounds up on its own)."""
    return sum(-(-len(data) // BILLING_UNIT_BYTES) for data in records)


class FirehoseWriter:
    """Writes lines to a stream within a deadline; see the module docstring."""

    def __init__(
        self,
        sink: RecordSink,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
        base_delay_s: float = 0.05,
        max_delay_s: float = 2.0,
    ) -> None:
        self._sink = sink
        self._clock = clock
        self._sleep = sleep
        self._jitter = jitter
        self._base_delay_s = base_delay_s
        self._max_delay_s = max_delay_s

    def write(self, stream_name: str, lines: Sequence[bytes], budget_s: float) -> WriteResult:
        """Send every line, retrying for at most `budget_s` seconds. The first call is always made."""
        deadline = self._clock() + budget_s
        result = WriteResult()
        pending = pack(lines)
        attempt = 0
        while pending:
            failed = self._attempt(stream_name, pending, deadline, result)
            if not failed:
                break
            attempt += 1
            delay = self._jitter() * min(self._max_delay_s, self._base_delay_s * 2**attempt)
            if self._clock() + delay >= deadline:
                result.not_written = sorted(pos for record in failed for pos in range(record.first, record.end))
                break
            self._sleep(delay)
            result.retries += len(failed)
            pending = failed
        return result

    def _attempt(self, stream_name: str, records: list[Record], deadline: float, result: WriteResult) -> list[Record]:
        """One pass over `records`; returns those not written (calls not made once the deadline passed)."""
        failed: list[Record] = []
        for batch in batches(records):
            if result.calls and self._clock() >= deadline:
                failed.extend(batch)
            else:
                failed.extend(self._send(stream_name, batch, result))
        return failed

    def _send(self, stream_name: str, batch: list[Record], result: WriteResult) -> list[Record]:
        result.calls += 1
        codes = result.error_codes
        try:
            outcomes = self._sink.put_record_batch(stream_name, [record.data for record in batch])
        except SinkUnavailable as exc:
            codes[str(exc)] = codes.get(str(exc), 0) + len(batch)
            result.failed_records += len(batch)
            return list(batch)
        failed: list[Record] = []
        for record, error_code in zip(batch, outcomes, strict=True):
            if error_code is None:
                result.records_sent += 1
                result.bytes_sent += len(record.data)
            else:
                codes[error_code] = codes.get(error_code, 0) + 1
                failed.append(record)
        result.failed_records += len(failed)
        return failed
