"""Lambda's event sources, locally: an SQS poller per SQS event and a timer per schedule.

An SQS poller does what Lambda's event source mapping does: long-polls the queue, gathers up to
BatchSize messages within the batching window, invokes the function with an SQS event, and then
deletes what succeeded. With `ReportBatchItemFailures`, only the messages named in
`batchItemFailures` stay on the queue (an invalid list fails the whole batch, as Lambda does); an
unhandled error leaves the whole batch. Messages left on the queue come back after the visibility
timeout, and moto moves them to the DLQ once they were received maxReceiveCount times.

One deviation, on purpose: locally the visibility timeout is seconds while a handler may run longer,
so while an invocation runs the poller keeps its messages invisible (Lambda gets the same guarantee
from the template's rule that VisibilityTimeout >= 6x the function timeout).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from signals.local.runtime import LocalFunction
from signals.local.template import ACCOUNT_ID, REGION
from signals.local.wiring import LocalTimings, QueueSpec, ScheduleSpec, SqsEventSpec

log = logging.getLogger("signals.local.pollers")

_MAX_RECEIVE = 10  # SQS's limit per ReceiveMessage


def sqs_record(message: dict[str, Any], queue: QueueSpec) -> dict[str, Any]:
    """One record of Lambda's SQS event."""
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": dict(message.get("Attributes") or {}),
        "messageAttributes": dict(message.get("MessageAttributes") or {}),
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue.arn,
        "awsRegion": REGION,
    }


def failed_message_ids(response: object, message_ids: set[str]) -> set[str]:
    """Lambda's reading of a partial batch response: the ids to keep, or all of them if it is invalid."""
    if not isinstance(response, dict) or response.get("batchItemFailures") in (None, []):
        return set()
    failures = response["batchItemFailures"]
    if not isinstance(failures, list):
        return set(message_ids)
    ids: set[str] = set()
    for failure in failures:
        identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if not identifier or identifier not in message_ids:
            return set(message_ids)  # Lambda treats a malformed response as a failure of the whole batch
        ids.add(str(identifier))
    return ids


class SqsPoller:
    def __init__(
        self,
        function: LocalFunction,
        event: SqsEventSpec,
        queue: QueueSpec,
        sqs: Any,
        timings: LocalTimings,
    ) -> None:
        self.function = function
        self.event = event
        self.queue = queue
        self._sqs = sqs
        self._visibility = queue.local_visibility(timings)
        self._window = event.local_window(timings)
        self._stop = threading.Event()
        self._paused = threading.Event()
        self._thread: threading.Thread | None = None
        self.holding = False  # messages received and not yet settled
        self.batches = 0
        self.messages_deleted = 0
        self.messages_failed = 0

    @property
    def name(self) -> str:
        return f"{self.function.name}:{self.event.name}"

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"poller-{self.queue.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def join(self) -> None:
        if self._thread is not None:
            self._thread.join()

    def pause(self) -> None:
        """Stop consuming (like disabling the event source mapping); messages stay on the queue."""
        self._paused.set()

    def resume(self) -> None:
        self._paused.clear()

    @property
    def paused(self) -> bool:
        return self._paused.is_set()

    def _run(self) -> None:
        while not self._stop.is_set():
            if self._paused.is_set():
                self._stop.wait(0.1)
                continue
            try:
                messages = self._collect()
                if messages:
                    self._invoke(messages)
            except Exception:
                log.exception("poller %s failed", self.name)
                self._stop.wait(1.0)
            finally:
                self.holding = False

    def _receive(self, count: int, wait_seconds: int) -> list[dict[str, Any]]:
        response = self._sqs.receive_message(
            QueueUrl=self.queue.url,
            MaxNumberOfMessages=min(_MAX_RECEIVE, count),
            WaitTimeSeconds=wait_seconds,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages: list[dict[str, Any]] = response.get("Messages") or []
        return messages

    def _collect(self) -> list[dict[str, Any]]:
        messages = self._receive(self.event.batch_size, wait_seconds=1)
        if not messages:
            return []
        self.holding = True
        deadline = time.monotonic() + self._window
        while len(messages) < self.event.batch_size and not self._stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            more = self._receive(self.event.batch_size - len(messages), wait_seconds=0)
            if more:
                messages.extend(more)
            else:
                time.sleep(min(0.05, remaining))
        return messages

    def _invoke(self, messages: list[dict[str, Any]]) -> None:
        event = {"Records": [sqs_record(m, self.queue) for m in messages]}
        ids = {m["MessageId"] for m in messages}
        keeper = _VisibilityKeeper(self._sqs, self.queue.url, messages, self._visibility)
        keeper.start()
        try:
            response = self.function.invoke(event)
        except Exception:
            failed = set(ids)
        else:
            failed = failed_message_ids(response, ids) if self.event.report_batch_item_failures else set()
        finally:
            keeper.stop()
        self.batches += 1
        done = [m for m in messages if m["MessageId"] not in failed]
        for start in range(0, len(done), _MAX_RECEIVE):
            chunk = done[start : start + _MAX_RECEIVE]
            self._sqs.delete_message_batch(
                QueueUrl=self.queue.url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)],
            )
        self.messages_deleted += len(done)
        self.messages_failed += len(failed)


class _VisibilityKeeper:
    """Keeps a batch invisible while its invocation runs longer than half the visibility timeout."""

    def __init__(self, sqs: Any, queue_url: str, messages: list[dict[str, Any]], visibility: int) -> None:
        self._sqs = sqs
        self._queue_url = queue_url
        self._messages = messages
        self._visibility = max(1, visibility)
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="visibility-keeper", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._done.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._done.wait(self._visibility / 2):
            for start in range(0, len(self._messages), _MAX_RECEIVE):
                chunk = self._messages[start : start + _MAX_RECEIVE]
                try:
                    self._sqs.change_message_visibility_batch(
                        QueueUrl=self._queue_url,
                        Entries=[
                            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": self._visibility}
                            for i, m in enumerate(chunk)
                        ],
                    )
                except Exception:
                    log.exception("could not extend visibility on %s", self._queue_url)


def scheduled_event(rule_arn: str, now: datetime | None = None) -> dict[str, Any]:
    """EventBridge's event for a scheduled rule."""
    moment = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT_ID,
        "time": moment,
        "region": REGION,
        "resources": [rule_arn],
        "detail": {},
    }


class Schedule:
    """A scheduled function, run every `period` seconds (moto's EventBridge never fires schedules)."""

    def __init__(self, function: LocalFunction, spec: ScheduleSpec, period: float) -> None:
        self.function = function
        self.spec = spec
        self.period = period
        self.rule_arn = f"arn:aws:events:{REGION}:{ACCOUNT_ID}:rule/{spec.rule_name}"
        self.runs = 0
        self.last_response: Any = None
        self._stop = threading.Event()
        self._paused = threading.Event()
        self._running = threading.Lock()
        self._thread: threading.Thread | None = None

    def run_now(self) -> Any:
        with self._running:
            try:
                self.last_response = self.function.invoke(scheduled_event(self.rule_arn))
            finally:
                self.runs += 1
            return self.last_response

    def pause(self) -> None:
        """Stop firing (like disabling the rule); returns once a run in flight has finished."""
        self._paused.set()
        with self._running:
            pass

    def resume(self) -> None:
        self._paused.clear()

    @property
    def paused(self) -> bool:
        return self._paused.is_set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"schedule-{self.spec.name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            if self._paused.is_set():
                continue
            try:
                self.run_now()
            except Exception:
                log.debug("scheduled run of %s failed (see its log file)", self.function.name)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
