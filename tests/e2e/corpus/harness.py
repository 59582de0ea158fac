"""The differential corpus: each query of `queries.yaml` through the Athena API on two engines, compared.

    with LocalStack(LocalSettings(athena_engine="trino", ...)) as stack:
        seeded = seed(stack)                      # devices, OTLP logs, bad lines; drained and compacted
        duckdb = DuckDBAthena(stack)              # a second embedded Athena, on DuckDB, switched in per pass
        report = run_corpus(stack, seeded, load_corpus(), duckdb=duckdb.switched_in, trino=own_engine)
        print(report.agree_line())                # agree N / M; report.differing: id -> what differs

Everything goes through boto3 against the stack's Athena endpoint (StartQueryExecution,
GetQueryExecution, GetQueryResults, and the result file Athena writes to the output location), never
the engine directly. What is compared, per query:

- the outcome: both SUCCEEDED, or both FAILED with the same error class: `AthenaError.ErrorCategory`
  and the error name that starts `StateChangeReason` (`COLUMN_NOT_FOUND`, `TYPE_MISMATCH`, ...);
  a query marked `error: NAME` must fail with that name on both;
- the column names and types (`ResultSetMetadata.ColumnInfo`: Name, Type, Precision, Scale);
- the rows (`GetQueryResults`' text values, every page), in order when the query is `ordered`, else
  as multisets;
- the result file's text (`<id>.csv` for queries, `<id>.txt` for SHOW and DESCRIBE), line by line
  (as multisets when unordered).

Floats (columns typed double or real) match when both texts parse as numbers of the same written shape
(exponent or not) and agree within FLOAT_RELATIVE_TOLERANCE: sums and averages of doubles depend on
the order the engine adds them in.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import random
import re
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import yaml

from shared.schema import DeviceType
from signals.env import Output

CORPUS: Final = Path(__file__).with_name("queries.yaml")
#: Relative tolerance for double and real values (sums and averages depend on the order of addition).
FLOAT_RELATIVE_TOLERANCE: Final = 1e-9
FLOAT_TYPES: Final = ("double", "real")
POLL_SECONDS: Final = 0.02
QUERY_TIMEOUT_SECONDS: Final = 120.0
_ERROR_NAME = re.compile(r"^([A-Z][A-Z0-9_]+):")
_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")


# --- the corpus ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Query:
    id: str
    sql: str = ""  # with {{placeholders}}, or empty when `render` builds it
    ordered: bool = False
    error: str | None = None  # the error name both engines must fail with
    database: str = "parser"  # the QueryExecutionContext database: parser | alerts | audit
    render: str | None = None  # a compactor statement built by compactor.dedup (e.g. lock.stats_select)
    source: str = ""  # where the query comes from (README, signals verify, the compactor...)
    note: str = ""
    #: Why the engines differ on it, when they do and the DuckDB path is not fixed: each is listed
    #: in docs/local-stack.md ("Known differences from Athena").
    difference: str | None = None

    @property
    def expects_error(self) -> bool:
        return self.error is not None


def load_corpus(path: Path = CORPUS) -> list[Query]:
    entries = yaml.safe_load(path.read_text())["queries"]
    queries = [Query(**entry) for entry in entries]
    ids = [q.id for q in queries]
    duplicated = sorted({i for i in ids if ids.count(i) > 1})
    if duplicated:
        raise ValueError(f"duplicate query ids in {path}: {duplicated}")
    for query in queries:
        if bool(query.sql) == bool(query.render):
            raise ValueError(f"{query.id}: give either sql or render")
    return queries


# --- seeding one stack -----------------------------------------------------------------------------


@dataclass
class Seeded:
    databases: dict[str, str]  # parser | alerts | audit -> Glue database
    values: dict[str, str]  # placeholders: day, yesterday, today, lock_event, ...
    accepted: int = 0
    logs: int = 0
    compaction: dict[str, Any] = field(default_factory=dict)


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _post(stack: Any, path: str, body: Any) -> dict[str, Any]:
    request = urllib.request.Request(f"{stack.api_url}{path}", data=json.dumps(body).encode(), method="POST",
                                     headers={"x-api-key": stack.api_key, "content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        answer: dict[str, Any] = json.loads(response.read() or b"{}")
    return answer


def device_events(now: datetime, rng: random.Random) -> list[dict[str, Any]]:
    """Events of all three types over the last 30 hours, with NULLs, unknown fields and map values."""
    from signals.local.simulate import device_event  # noqa: PLC0415

    events: list[dict[str, Any]] = []
    types = list(DeviceType)
    for index in range(240):
        device_type = types[index % len(types)]
        device_id = f"corpus-{device_type.value}-{index % 7}"
        moment = now - timedelta(minutes=7 * index + rng.randint(0, 5), milliseconds=rng.randint(0, 999))
        event = device_event(device_type, device_id, rng, moment)
        event["event_id"] = f"corpus-{index:04d}"
        if index % 11 == 0:
            event.pop("battery_pct", None)  # NULLs to order and count
            event.pop("temperature_c", None)
        if index % 8 == 1:
            event["beta"] = {"level": index % 4, "tags": ["a", f"t{index % 3}"], "ratio": index / 8}
        if index % 13 == 0:
            event["attributes"]["retries"] = index % 5
            event["attributes"].pop("app_version")
        events.append(event)
    return events


def bad_lines(now: datetime) -> list[Any]:
    """Events the parser quarantines (`original` then holds each as sent)."""
    stamp = _rfc3339(now - timedelta(minutes=3))
    base = {"device_id": "corpus-bad", "device_type": "lock", "event_name": "bolt_changed", "event_time": stamp}
    return [
        {**base, "event_id": "corpus-bad-1", "battery_pct": 140},
        {**base, "event_id": "corpus-bad-2", "battery_pct": -3, "firmware_version": "9.9.9"},
        {**base, "event_id": "corpus-bad-3", "event_time": _rfc3339(now - timedelta(days=90))},
        {k: v for k, v in base.items() if k != "event_name"} | {"event_id": "corpus-bad-4"},
        {**base, "device_type": "bridge", "event_id": "corpus-bad-5", "cpu_pct": 180.5},
    ]


def otlp_logs(now: datetime) -> dict[str, Any]:
    records = []
    for index in range(40):
        # A fixed sub-second part, .700623: its microseconds round up to the next millisecond, as a
        # millisecond reading of the Hive timestamp does on Trino (and Athena), so every run meets
        # the same case (compactor_stats_select_otlp).
        nanos = (int(now.timestamp()) - 60 * index) * 1_000_000_000 + 700_623_000 + index
        record: dict[str, Any] = {
            "timeUnixNano": str(nanos), "observedTimeUnixNano": str(nanos + 1500),
            "severityNumber": (9, 13, 17, 5)[index % 4], "severityText": ("INFO", "WARN", "ERROR", "DEBUG")[index % 4],
            "body": {"stringValue": f"corpus log line {index}"},
            "attributes": [{"key": "http.status_code", "value": {"intValue": str(200 + (index % 3) * 100)}},
                           {"key": "route", "value": {"stringValue": f"/v1/item/{index % 5}"}}],
        }
        if index % 3 == 0:
            record["traceId"] = f"{index:032x}"
            record["spanId"] = f"{index:016x}"
        records.append(record)
    return {"resourceLogs": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "corpus-app"}},
                                    {"key": "device.id", "value": {"stringValue": "corpus-lock-1"}}]},
        "scopeLogs": [{"scope": {"name": "corpus", "version": "1.2.3"}, "logRecords": records}],
    }]}


def seed(stack: Any, *, now: datetime | None = None) -> Seeded:
    """Send the corpus's data through the ingest API, drain the pipeline, run the compactor once."""
    from signals.compact import compact  # noqa: PLC0415
    from signals.local.demo import local_env  # noqa: PLC0415

    now = now or datetime.now(UTC)
    rng = random.Random(20)
    events = device_events(now, rng)
    accepted = 0
    for start in range(0, len(events), 40):
        accepted += int(_post(stack, "/v1/telemetry", events[start:start + 40]).get("accepted", 0))
    # A client retrying (the same body again) and one conflicting copy: natural and conflicting duplicates.
    accepted += int(_post(stack, "/v1/telemetry", events[:12]).get("accepted", 0))
    accepted += int(_post(stack, "/v1/telemetry", [dict(events[3], battery_pct=1)]).get("accepted", 0))
    _post(stack, "/v1/telemetry", bad_lines(now))
    logs = otlp_logs(now)
    _post(stack, "/v1/logs", logs)
    _post(stack, "/v1/logs", logs)  # an exporter resending after a 503
    if not stack.wait_until_drained(120, flush_firehose=True):
        raise RuntimeError("the pipeline did not drain in 120 s")
    compaction = compact(local_env(stack), {})
    if compaction.get("days_failed"):
        raise RuntimeError(f"compaction failed: {compaction}")
    day = (now - timedelta(minutes=10)).strftime("%Y-%m-%d")
    values = {
        "parser": stack.outputs[Output.GLUE_DATABASE],
        "alerts": stack.outputs[Output.ALERTS_DATABASE],
        "audit": stack.outputs[Output.AUDIT_DATABASE],
        "day": day,
        "today": now.strftime("%Y-%m-%d"),
        "yesterday": (now - timedelta(days=1)).strftime("%Y-%m-%d"),
        "run_id": "corpus-run",
        "detected_at": _rfc3339(now),
    }
    databases = {key: values[key] for key in ("parser", "alerts", "audit")}
    return Seeded(databases=databases, values=values, accepted=accepted,
                  logs=2 * len(logs["resourceLogs"][0]["scopeLogs"][0]["logRecords"]), compaction=compaction)


def render_sql(query: Query, seeded: Seeded) -> str:
    """The query's text: placeholders filled, or the compactor's own statement built by compactor.dedup."""
    if query.render:
        return _render_compactor(query.render, seeded)

    def fill(match: re.Match[str]) -> str:
        return seeded.values[match[1]]

    return _PLACEHOLDER.sub(fill, query.sql)


def _render_compactor(render: str, seeded: Seeded) -> str:
    """`lock.stats_select`: the statement the compactor's Athena engine sends for (table, day)."""
    from compactor.dedup import ATHENA, DayQuery, Relations, relation  # noqa: PLC0415
    from shared.schema import COMPACTED_BY_TYPE, COMPACTION_RUNS, DUPLICATE_CONFLICTS  # noqa: PLC0415

    type_value, method = render.split(".", 1)
    table = COMPACTED_BY_TYPE[type_value]
    relations = Relations(
        verified=relation(seeded.databases["parser"], table.source.name),
        compacted=relation(seeded.databases["alerts"], table.name),
        conflicts=relation(seeded.databases["audit"], DUPLICATE_CONFLICTS.name),
        runs=relation(seeded.databases["audit"], COMPACTION_RUNS.name),
    )
    day_query = DayQuery(ATHENA, table, seeded.values["day"], relations)
    if method == "stats_select":
        return day_query.stats_select(seeded.values["run_id"])
    if method == "conflicts_select":
        return day_query.conflicts_select(seeded.values["run_id"], seeded.values["detected_at"])
    if method == "data_files_select":
        return day_query.data_files_select(seeded.databases["alerts"])
    if method in ("dedup_select", "plan_select", "ranked_select"):
        return str(getattr(day_query, method)())
    raise ValueError(f"unknown compactor statement {render!r}")


# --- running one query through the Athena API -------------------------------------------------------


@dataclass
class Outcome:
    state: str
    seconds: float
    error_name: str | None = None
    error_category: int | None = None
    reason: str | None = None
    columns: list[tuple[str, str, int, int]] = field(default_factory=list)  # name, type, precision, scale
    rows: list[list[str | None]] = field(default_factory=list)
    result_text: str = ""
    update_count: int = 0

    @property
    def error_class(self) -> tuple[int | None, str | None]:
        return self.error_category, self.error_name

    def summary(self) -> str:
        if self.state != "SUCCEEDED":
            return f"{self.state} {self.reason}"
        return f"{len(self.rows)} rows, columns {[c[:2] for c in self.columns]}"


class AthenaRunner:
    """StartQueryExecution on the human workgroup, polled to its end, results read back the API's way."""

    def __init__(self, stack: Any, seeded: Seeded) -> None:
        self.athena = stack.client("athena")
        self.s3 = stack.client("s3")
        self.workgroup = stack.outputs[Output.HUMAN_WORKGROUP]
        self.seeded = seeded

    def run(self, query: Query) -> Outcome:
        sql = render_sql(query, self.seeded)
        started = time.perf_counter()
        execution_id = self.athena.start_query_execution(
            QueryString=sql, WorkGroup=self.workgroup,
            QueryExecutionContext={"Database": self.seeded.databases[query.database]})["QueryExecutionId"]
        deadline = time.monotonic() + QUERY_TIMEOUT_SECONDS
        while True:
            execution = self.athena.get_query_execution(QueryExecutionId=execution_id)["QueryExecution"]
            status = execution["Status"]
            if status["State"] in ("SUCCEEDED", "FAILED", "CANCELLED"):
                break
            if time.monotonic() > deadline:
                self.athena.stop_query_execution(QueryExecutionId=execution_id)
                return Outcome("TIMEOUT", time.perf_counter() - started, reason=f"over {QUERY_TIMEOUT_SECONDS} s")
            time.sleep(POLL_SECONDS)
        seconds = time.perf_counter() - started
        if status["State"] != "SUCCEEDED":
            reason = status.get("StateChangeReason") or ""
            error = status.get("AthenaError") or {}
            match = _ERROR_NAME.match(reason)
            return Outcome(status["State"], seconds, error_name=match[1] if match else None,
                           error_category=error.get("ErrorCategory"), reason=reason)
        outcome = Outcome("SUCCEEDED", seconds)
        pages = self.athena.get_paginator("get_query_results").paginate(QueryExecutionId=execution_id)
        rows: list[list[str | None]] = []
        for page in pages:
            if not outcome.columns:
                outcome.columns = [(c["Name"], c["Type"], int(c.get("Precision", 0)), int(c.get("Scale", 0)))
                                   for c in page["ResultSet"]["ResultSetMetadata"]["ColumnInfo"]]
            outcome.update_count = int(page.get("UpdateCount") or 0)
            rows += [[cell.get("VarCharValue") for cell in row["Data"]] for row in page["ResultSet"]["Rows"]]
        if execution.get("StatementType") == "DML" and rows:
            rows = rows[1:]  # the header row
        outcome.rows = rows
        location = execution["ResultConfiguration"]["OutputLocation"]
        bucket, _, key = location.removeprefix("s3://").partition("/")
        outcome.result_text = self.s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8")
        return outcome


# --- comparing two outcomes -------------------------------------------------------------------------


def compare(query: Query, left: Outcome, right: Outcome) -> list[str]:
    """What differs between two engines' outcomes of one query (empty: they agree)."""
    if query.expects_error:
        problems = [f"{name}: expected {query.error}, got {outcome.summary()}"
                    for name, outcome in (("duckdb", left), ("trino", right))
                    if outcome.state != "FAILED" or outcome.error_name != query.error]
        if not problems and left.error_category != right.error_category:
            problems.append(f"error category {left.error_category} != {right.error_category}")
        return problems
    if left.state != right.state or left.state != "SUCCEEDED":
        if left.state == right.state == "FAILED" and left.error_class == right.error_class:
            return [f"both failed with {left.error_name} (expected rows): {left.reason}"]
        return [f"outcome: duckdb {left.summary()} | trino {right.summary()}"]
    problems = []
    if left.columns != right.columns:
        problems.append(f"columns: duckdb {left.columns} | trino {right.columns}")
        return problems
    floats = [i for i, column in enumerate(left.columns) if column[1] in FLOAT_TYPES]
    if left.update_count != right.update_count:
        problems.append(f"UpdateCount: duckdb {left.update_count} | trino {right.update_count}")
    row_problem = _compare_rows(left.rows, right.rows, floats, ordered=query.ordered)
    if row_problem:
        problems.append(f"rows: {row_problem}")
    text_problem = _compare_text(left.result_text, right.result_text, floats, ordered=query.ordered)
    if text_problem:
        problems.append(f"result file: {text_problem}")
    return problems


def _same_value(a: str | None, b: str | None, is_float: bool) -> bool:
    if a == b:
        return True
    if not is_float or a is None or b is None:
        return False
    if ("E" in a) != ("E" in b) or ("." in a) != ("." in b):
        return False  # written differently (1.0E7 / 10000000.0): the text differs, whatever the value
    try:
        x, y = float(a), float(b)
    except ValueError:
        return False
    return math.isclose(x, y, rel_tol=FLOAT_RELATIVE_TOLERANCE, abs_tol=1e-12)


def _sort_key(row: Sequence[str | None], floats: Sequence[int]) -> tuple[Any, ...]:
    key: list[Any] = []
    for index, value in enumerate(row):
        if index in floats and value is not None:
            with contextlib.suppress(ValueError):
                key.append((1, f"{float(value):.6g}"))
                continue
        key.append((0, "") if value is None else (1, value))
    return tuple(key)


def _compare_rows(left: list[list[str | None]], right: list[list[str | None]], floats: Sequence[int], *,
                  ordered: bool) -> str | None:
    if len(left) != len(right):
        return f"{len(left)} rows on duckdb, {len(right)} on trino; first differing: {_first_diff(left, right)}"
    if not ordered:
        left = sorted(left, key=lambda r: _sort_key(r, floats))
        right = sorted(right, key=lambda r: _sort_key(r, floats))
    for index, (a, b) in enumerate(zip(left, right, strict=True)):
        pairs = list(zip(a, b, strict=False))
        same = len(a) == len(b) and all(_same_value(x, y, i in floats) for i, (x, y) in enumerate(pairs))
        if not same:
            return f"row {index}: duckdb {a} | trino {b}"
    return None


def _first_diff(left: list[Any], right: list[Any]) -> str:
    only_left = [r for r in left if r not in right][:2]
    only_right = [r for r in right if r not in left][:2]
    return f"duckdb only {only_left} | trino only {only_right}"


def _csv_rows(text: str) -> list[list[str | None]]:
    """The result CSV's rows (NULL and '' both read as ''; GetQueryResults' rows tell them apart)."""
    return [list(row) for row in csv.reader(io.StringIO(text, newline=""))]


def _compare_text(left: str, right: str, floats: Sequence[int], *, ordered: bool) -> str | None:
    if left == right:
        return None
    if not floats:
        a, b = left.splitlines(), right.splitlines()
        if not ordered:
            a, b = sorted(a), sorted(b)
        if a == b:
            return None
        differing = next(((x, y) for x, y in zip(a, b, strict=False) if x != y), (a[len(b):], b[len(a):]))
        return f"duckdb {differing[0]!r} | trino {differing[1]!r}"
    a_rows, b_rows = _csv_rows(left), _csv_rows(right)
    if a_rows[:1] != b_rows[:1]:
        return f"header: duckdb {a_rows[:1]} | trino {b_rows[:1]}"
    return _compare_rows(a_rows[1:], b_rows[1:], floats, ordered=ordered)


# --- the engine of the stack's Athena ---------------------------------------------------------------

EngineSwitch = Callable[[], contextlib.AbstractContextManager[None]]


@contextlib.contextmanager
def own_engine() -> Iterator[None]:
    """The stack's Athena as it was started (its `athena_engine`)."""
    yield


class DuckDBAthena:
    """A second embedded Athena on the stack's gateway, answered by the DuckDB engine, switched in per query.

    The gateway asks the latest interceptor first, so while `switched_in()` holds, the stack's Athena
    operations (Start, Get, GetQueryResults) are this one's; its executions write their results to the
    same S3 and read the same Glue catalog."""

    def __init__(self, stack: Any) -> None:
        from signals.local.athena import LocalAthena  # noqa: PLC0415

        self.gateway = stack.gateway
        self.athena = LocalAthena(stack.session(), stack.aws_endpoint_url)

    @contextlib.contextmanager
    def switched_in(self) -> Iterator[None]:
        remove = self.gateway.intercept("athena", self.athena.handle)
        try:
            yield
        finally:
            remove()

    def close(self) -> None:
        self.athena.close()


@dataclass
class Report:
    results: list[tuple[Query, Outcome, Outcome, list[str]]] = field(default_factory=list)

    @property
    def agreeing(self) -> int:
        return sum(1 for *_, problems in self.results if not problems)

    @property
    def differing(self) -> dict[str, list[str]]:
        return {query.id: problems for query, _, _, problems in self.results if problems}

    def agree_line(self) -> str:
        return f"agree {self.agreeing} / {len(self.results)}"

    def lines_of(self, query: Query, duck: Outcome, trino: Outcome, problems: list[str]) -> list[str]:
        verdict = "agree" if not problems else "DIFFER"
        head = (f"{verdict:6} {query.id:40} duckdb {duck.seconds * 1000:7.1f} ms  trino {trino.seconds * 1000:7.1f} ms"
                + (f"  (both {query.error})" if query.expects_error and not problems else ""))
        return [head, *(f"         - {problem}" for problem in problems)]

    def lines(self) -> Iterator[str]:
        for result in self.results:
            yield from self.lines_of(*result)


def run_corpus(stack: Any, seeded: Seeded, queries: Sequence[Query], *, duckdb: EngineSwitch, trino: EngineSwitch,
               log: Callable[[str], None] | None = None, threads: int = 1) -> Report:
    """Every query on DuckDB, then every query on Trino, `threads` at a time (1: one after the other,
    for latencies). The corpus only reads and nothing else writes once the stack is seeded (no
    schedules run), so both engines read the same snapshot of every table."""
    runner = AthenaRunner(stack, seeded)
    outcomes: list[list[Outcome]] = []
    for switch in (duckdb, trino):
        with switch(), ThreadPoolExecutor(max_workers=threads, thread_name_prefix="corpus") as pool:
            outcomes.append(list(pool.map(runner.run, queries)))
    report = Report()
    for query, left, right in zip(queries, *outcomes, strict=True):
        result = (query, left, right, compare(query, left, right))
        report.results.append(result)
        if log is not None:
            for line in report.lines_of(*result):
                log(line)
    return report
