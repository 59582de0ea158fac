"""Each fault, injected where the real service fails; none of them touches the code under test.

- firehose_partial (Firehose stand-in): the next N records fail (`FailedPutCount`, per-record
  ServiceUnavailableException);
- firehose_outage (Firehose stand-in): every call fails for S seconds (ServiceUnavailableException);
- firehose_duplicate_object (Firehose stand-in): the next object is delivered twice, under two names;
- notification_lost (moto's S3 notifications): the next N ObjectCreated notifications of the raw or
  the verified bucket are never sent;
- sqs_duplicate (SQS API): DeleteMessageBatch answers success for N messages it did not delete, so
  they are back after their visibility timeout and delivered again;
- crash_parser (embedded AWS + local runtime): the parser is killed once K outputs are written, or
  at its processing record (that PutItem never reaches the table);
- crash_registry (embedded AWS + local runtime): the registry is killed after Glue created a
  partition (before DynamoDB records it), or after a file item (before the others);
- crash_compactor (embedded AWS + local runtime): the compactor is killed after its Iceberg commit,
  before its watermark;
- glue_error (Glue API): the next N Glue calls of a function fail (InternalServiceException), then
  S seconds of ThrottlingException;
- dynamodb_throttling (DynamoDB API): for S seconds, a share of the functions' calls get
  ProvisionedThroughputExceededException;
- athena_error (Athena API): the next N StartQueryExecution calls of a reader get
  TooManyRequestsException (locally the readers of the compacted layer: signals.chaos.readers);
- response_lost (the tap, the network): the next N answers never reach their client (dropped, or
  held past its timeout).

A fault counts as injected when it met its target (a record failed, a notification swallowed, an
invocation killed), not when it was armed; `Faults.injected` is what the report lists.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from botocore.config import Config
from werkzeug.wrappers import Response

from shared.schema import alerts_database
from signals.chaos.notifications import NotificationTap
from signals.chaos.schedule import Injection
from signals.chaos.tap import IngestTap
from signals.env import Output
from signals.local.gateway import AwsRequest
from signals.local.runtime import LocalFunction, function_of_user_agent

#: The campaign's own AWS calls carry this in their user agent; no fault ever answers them.
INTERNAL_AGENT: Final = "signals-chaos-internal"
#: The campaign's clients for its own reads (no fault touches them).
INTERNAL_CONFIG: Final = Config(user_agent_extra=INTERNAL_AGENT, retries={"mode": "standard", "max_attempts": 8})


@dataclass
class _Armed:
    params: dict[str, Any]
    hits: int = 0
    until: float | None = None


@dataclass
class Faults:
    """Arms the scheduled faults on a running stack; `injected` counts those that met their target."""

    stack: Any
    tap: IngestTap
    seed: int
    injected: Counter[str] = field(default_factory=Counter)
    details: Counter[str] = field(default_factory=Counter)
    notifications: NotificationTap = field(default_factory=NotificationTap)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._rng = random.Random(self.seed ^ 0x5EED)
        self._removers: list[Callable[[], None]] = []
        self._armed: dict[str, list[_Armed]] = {}
        self._invocation_outputs: dict[str, tuple[int, int]] = {}  # function -> (invocation number, outputs seen)
        self._internal_sqs: Any = None
        self._firehose_failed_before = 0
        self.active = False

    # --- set-up ----------------------------------------------------------------------------------

    def install(self) -> None:
        gateway = self.stack.gateway
        self.notifications.install()
        self._removers += [
            gateway.intercept("dynamodb", self._dynamodb),
            gateway.intercept("s3", self._s3),
            gateway.intercept("glue", self._glue),
            gateway.intercept("sqs", self._sqs_delete, operation="DeleteMessageBatch"),
            gateway.intercept("athena", self._athena),
        ]
        self._internal_sqs = self.stack.session().client(
            "sqs", endpoint_url=self.stack.aws_endpoint_url, config=INTERNAL_CONFIG
        )
        self._firehose_failed_before = self._firehose_failed()
        self.active = True

    def stop(self) -> None:
        """Stop every fault: disarm, remove the interceptors, put moto's notifications back."""
        self.active = False
        with self._lock:
            self._armed.clear()
        for remove in self._removers:
            remove()
        self._removers.clear()
        self.notifications.clear()
        self.notifications.uninstall()
        self.stack.firehose.clear_faults()
        self.tap.clear()
        self.details["firehose_records_failed"] = self._firehose_failed() - self._firehose_failed_before
        self.details["notifications_swallowed"] = len(self.notifications.dropped)
        self.details["answers_dropped"] = self.tap.lost["dropped"]
        self.details["answers_timed_out"] = self.tap.lost["timed_out"]

    def _firehose_failed(self) -> int:
        return sum(s.records_failed for s in self.stack.firehose.stats.values())

    # --- arming ----------------------------------------------------------------------------------

    def inject(self, injection: Injection) -> None:
        fault, params = injection.fault, injection.params
        if fault == "firehose_partial":
            self.stack.firehose.fail_next_records(int(params["records"]))
            self._hit(fault)
        elif fault == "firehose_outage":
            self.stack.firehose.fail_calls_for(float(params["seconds"]))
            self._hit(fault)
        elif fault == "firehose_duplicate_object":
            self.stack.firehose.duplicate_next_objects(int(params["objects"]))
            self._hit(fault)
        elif fault == "notification_lost":
            output = Output.RAW_BUCKET if params["bucket"] == "raw" else Output.VERIFIED_BUCKET
            self.notifications.drop_next(self.stack.outputs[output], int(params["notifications"]))
            self._hit(fault)  # swallowed at the next object: the buckets are written all the time
        elif fault == "response_lost":
            self.tap.lose_next(int(params["responses"]), str(params["how"]))
            self._hit(fault)
        else:
            armed = _Armed(dict(params))
            if fault == "dynamodb_throttling":
                armed.until = time.monotonic() + float(params["seconds"])
            with self._lock:
                self._armed.setdefault(fault, []).append(armed)

    def _hit(self, fault: str, detail: str | None = None) -> None:
        with self._lock:
            self.injected[fault] += 1
            if detail:
                self.details[detail] += 1

    def _take(self, fault: str) -> _Armed | None:
        """The oldest armed injection of `fault` (still armed), or None."""
        with self._lock:
            queue = self._armed.get(fault) or []
            now = time.monotonic()
            while queue and queue[0].until is not None and now >= queue[0].until:
                queue.pop(0)
            return queue[0] if queue else None

    def _done(self, fault: str, armed: _Armed) -> None:
        with self._lock:
            queue = self._armed.get(fault) or []
            if armed in queue:
                queue.remove(armed)

    # --- who is calling --------------------------------------------------------------------------

    def _caller(self, request: AwsRequest) -> LocalFunction | None:
        agent = request.headers.get("User-Agent", "")
        if INTERNAL_AGENT in agent:
            return None
        name = function_of_user_agent(agent)
        if name is None:
            return None
        try:
            found: LocalFunction = self.stack.function(name)
        except KeyError:
            return None
        return found

    def _is(self, function: LocalFunction | None, module: str) -> bool:
        return function is not None and function.spec.module == module

    def _outputs_so_far(self, function: LocalFunction) -> int:
        """Counts this invocation's outputs (one more each call)."""
        with self._lock:
            number, seen = self._invocation_outputs.get(function.name, (-1, 0))
            if number != function.invocations:
                number, seen = function.invocations, 0
            seen += 1
            self._invocation_outputs[function.name] = (number, seen)
            return seen

    # --- interceptors ----------------------------------------------------------------------------

    def _dynamodb(self, request: AwsRequest) -> Response | None:
        caller = self._caller(request)
        if caller is None:
            return None
        if request.operation == "PutItem":
            item_type = (request.params.get("Item") or {}).get("item_type", {}).get("S")
            if item_type == "raw" and self._is(caller, "parser.app"):
                armed = self._take("crash_parser")
                if armed is not None and caller.kill("crash_parser: before its processing record"):
                    self._done("crash_parser", armed)
                    self._hit("crash_parser", "crash_parser_before_record")
                    return request.error(500, "InternalServerError", "the invocation was killed")
            if item_type == "file" and self._is(caller, "registry.app"):
                armed = self._take("crash_registry")
                if armed is not None and caller.kill("crash_registry: after a file item, before the rest"):
                    self._done("crash_registry", armed)
                    self._hit("crash_registry", "crash_registry_after_file_item")
                    return None  # this item is written; the invocation dies as the answer comes back
        armed = self._take("dynamodb_throttling")
        if armed is not None and self._rng.random() < float(armed.params["share"]):
            if not armed.hits:
                self._hit("dynamodb_throttling")
            armed.hits += 1
            self.details["dynamodb_calls_throttled"] += 1
            return request.error(400, "ProvisionedThroughputExceededException",
                              "The level of configured provisioned throughput for the table was exceeded.")
        return None

    def _s3(self, request: AwsRequest) -> Response | None:
        caller = self._caller(request)
        if request.method != "PUT" or not self._is(caller, "parser.app"):
            return None
        assert caller is not None
        bucket = request.path.lstrip("/").split("/", 1)[0]
        if bucket not in (self.stack.outputs[Output.VERIFIED_BUCKET], self.stack.outputs[Output.QUARANTINE_BUCKET]):
            return None
        armed = self._take("crash_parser")
        if armed is None:
            return None
        enough = self._outputs_so_far(caller) >= int(armed.params.get("after_outputs", 1))
        if enough and caller.kill("crash_parser: after some outputs, before its processing record"):
            self._done("crash_parser", armed)
            self._hit("crash_parser", "crash_parser_after_outputs")
        return None  # the object is written; a killed invocation dies as the answer comes back

    def _glue(self, request: AwsRequest) -> Response | None:
        caller = self._caller(request)
        if caller is None:
            return None
        if request.operation == "UpdateTable" and self._is(caller, "compactor.app"):
            database = str(request.params.get("DatabaseName", ""))
            armed = self._take("crash_compactor")
            if armed is not None and database == alerts_database("local") and caller.kill(
                "crash_compactor: after the Iceberg commit, before the watermark"
            ):
                self._done("crash_compactor", armed)
                self._hit("crash_compactor")
                return None  # the commit (the table's new metadata location) goes through; the run dies after it
        if request.operation == "BatchCreatePartition" and self._is(caller, "registry.app"):
            armed = self._take("crash_registry")
            if armed is not None and caller.kill("crash_registry: after Glue, before DynamoDB"):
                self._done("crash_registry", armed)
                self._hit("crash_registry", "crash_registry_after_glue")
                return None  # Glue creates the partition; the registry never records it
        armed = self._take("glue_error")
        if armed is None:
            return None
        if armed.hits < int(armed.params["errors"]):
            armed.hits += 1
            if armed.hits == 1:
                self._hit("glue_error")
            self.details["glue_calls_failed"] += 1
            if armed.hits == int(armed.params["errors"]):
                armed.until = time.monotonic() + float(armed.params["outage_seconds"])
            return request.error(500, "InternalServiceException", "Internal service error")
        self.details["glue_calls_failed"] += 1
        return request.error(400, "ThrottlingException", "Rate exceeded")

    def _sqs_delete(self, request: AwsRequest) -> Response | None:
        if INTERNAL_AGENT in request.headers.get("User-Agent", ""):
            return None
        body = request.params  # the same from SQS's json and query protocols
        queue_url = str(body.get("QueueUrl", ""))
        entries = list(body.get("Entries") or [])
        kept: list[dict[str, Any]] = []
        first_hits = 0
        with self._lock:
            for armed in list(self._armed.get("sqs_duplicate") or []):
                if not queue_url.endswith("/" + str(armed.params["queue"])):
                    continue
                first_hits += int(armed.hits == 0 and bool(entries))
                while entries and armed.hits < int(armed.params["messages"]):
                    kept.append(entries.pop())
                    armed.hits += 1
                if armed.hits >= int(armed.params["messages"]):
                    self._armed["sqs_duplicate"].remove(armed)
        if not kept:
            return None
        for _ in range(first_hits):
            self._hit("sqs_duplicate")
        self.details["sqs_messages_redelivered"] += len(kept)
        failed: list[dict[str, Any]] = []
        if entries:
            response = self._internal_sqs.delete_message_batch(QueueUrl=queue_url, Entries=entries)
            failed = list(response.get("Failed") or [])
        failed_ids = {f["Id"] for f in failed}
        successful = [{"Id": e["Id"]} for e in entries + kept if e["Id"] not in failed_ids]
        return request.answer({"Successful": successful, "Failed": failed})

    def _athena(self, request: AwsRequest) -> Response | None:
        # Any reader but the campaign's own: locally no function calls Athena (see signals.chaos.readers),
        # unless a real engine is behind it (`athena_engine="trino"`), where the compactor runs its
        # athena engine and meets athena_error too.
        if INTERNAL_AGENT in request.headers.get("User-Agent", "") or request.operation != "StartQueryExecution":
            return None
        caller = self._caller(request)
        if self._is(caller, "compactor.app") and "$partitions" in str(request.json().get("QueryString", "")):
            # The athena engine's commit is Trino's, not a Glue call of the function: the file count
            # (`$partitions`, compactor.dedup) is the step after the compacted table's MERGE succeeded,
            # before the watermark.
            assert caller is not None
            crash = self._take("crash_compactor")
            if crash is not None and caller.kill("crash_compactor: after the MERGE committed, before the watermark"):
                self._done("crash_compactor", crash)
                self._hit("crash_compactor")
                return None
        armed = self._take("athena_error")
        if armed is None:
            return None
        armed.hits += 1
        if armed.hits == 1:
            self._hit("athena_error")
        if armed.hits >= int(armed.params["errors"]):
            self._done("athena_error", armed)
        self.details["athena_calls_failed"] += 1
        return request.error(400, "TooManyRequestsException", "Rate exceeded")

    def pending(self) -> dict[str, int]:
        """Faults armed that have not met their target yet."""
        with self._lock:
            return {name: len(queue) for name, queue in self._armed.items() if queue}
