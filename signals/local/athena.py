"""Athena on the embedded endpoint: queries that really run, on the engine `signals query` uses.

moto's Athena answers SUCCEEDED with no rows to any query, which every client (the aws CLI,
pyathena, awswrangler) takes for a real, empty answer. The local stack answers Athena's query
operations itself (an interceptor on the gateway) and leaves the rest (workgroups, named queries,
data catalogs: created from the template) to moto:

- `StartQueryExecution`: the execution is QUEUED, runs on a worker thread (RUNNING), and ends
  SUCCEEDED, FAILED (`StateChangeReason` and `AthenaError` say why: `COLUMN_NOT_FOUND: line 1:8:
  ...`) or CANCELLED. The workgroup (from moto) must exist and be enabled; its result location wins
  when it enforces its configuration, else the request's does; its `BytesScannedCutoffPerQuery` is
  applied. `ClientRequestToken` makes a start idempotent; `ExecutionParameters` fill `?`.
- On success the result goes where Athena writes it: `<OutputLocation>/<QueryExecutionId>.csv` (every
  field double-quoted, NULL empty, a header row) plus `.csv.metadata` for queries, and
  `<QueryExecutionId>.txt` (rows tab-separated, no header) for SHOW and DESCRIBE.
- `GetQueryExecution`, `BatchGetQueryExecution`, `ListQueryExecutions` (per workgroup, newest
  first), `StopQueryExecution`, `GetQueryRuntimeStatistics`, and `GetQueryResults`: pages of up to
  `MaxResults` (1000) rows with `NextToken`, the header row first for queries, values as Athena's
  text and a typed `ResultSetMetadata.ColumnInfo`.

Executions live in memory for the life of the stack.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Final

import orjson
from werkzeug.wrappers import Response

from signals.local.gateway import AwsGateway, AwsRequest, json_error
from signals.sql.engine import Cancellation, LocalEngine, QueryEngine, Result
from signals.sql.errors import SYSTEM, QueryCancelled, QueryError
from signals.sql.types import athena_text, csv_line

log = logging.getLogger("signals.local.athena")

QUEUED: Final = "QUEUED"
RUNNING: Final = "RUNNING"
SUCCEEDED: Final = "SUCCEEDED"
FAILED: Final = "FAILED"
CANCELLED: Final = "CANCELLED"
TERMINAL: Final = (SUCCEEDED, FAILED, CANCELLED)
ENGINE_VERSION: Final = {"SelectedEngineVersion": "AUTO", "EffectiveEngineVersion": "Athena engine version 3"}
MAX_RESULTS: Final = 1000
# AthenaError.ErrorType (Athena's error catalog): 1000 user error, 1001 data error, 100 internal
# service error, 401 failed to write query results to Amazon S3.
_DATA_ERRORS: Final = ("HIVE_BAD_DATA", "HIVE_CURSOR_ERROR", "HIVE_CANNOT_OPEN_SPLIT", "ICEBERG_BAD_DATA")
_DDL_WORDS: Final = ("create", "drop", "alter", "msck", "comment")
_UTILITY_WORDS: Final = ("show", "describe", "desc", "explain")
_CASE_SENSITIVE: Final = ("varchar", "char", "string")


class AthenaFault(Exception):
    """An API error (HTTP 400): InvalidRequestException, ResourceNotFoundException, ..."""

    def __init__(self, message: str, code: str = "InvalidRequestException") -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Execution:
    id: str
    query: str
    workgroup: str
    database: str
    catalog: str
    output_location: str
    encryption: Mapping[str, Any] | None
    cutoff: int | None
    parameters: list[str] | None
    statement_type: str
    submitted: float = field(default_factory=time.time)
    started: float | None = None
    completed: float | None = None
    state: str = QUEUED
    reason: str | None = None
    error: QueryError | None = None
    error_type: int | None = None
    result: Result | None = None
    texts: list[list[str | None]] = field(default_factory=list)
    cancellation: Cancellation = field(default_factory=Cancellation)
    future: Future[None] | None = None
    context_given: Mapping[str, str] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        status: dict[str, Any] = {"State": self.state, "SubmissionDateTime": self.submitted}
        if self.completed is not None:
            status["CompletionDateTime"] = self.completed
        if self.reason:
            status["StateChangeReason"] = self.reason
        if self.error is not None:
            status["AthenaError"] = {
                "ErrorCategory": self.error.category, "ErrorType": self.error_type or 1000,
                "Retryable": self.error.retryable, "ErrorMessage": self.reason or str(self.error),
            }
        end = self.completed or time.time()
        queued_ms = int(((self.started or end) - self.submitted) * 1000)
        engine_ms = int((end - self.started) * 1000) if self.started is not None else 0
        statistics = {
            "EngineExecutionTimeInMillis": engine_ms,
            "DataScannedInBytes": self.result.bytes_scanned if self.result else 0,
            "TotalExecutionTimeInMillis": queued_ms + engine_ms,
            "QueryQueueTimeInMillis": queued_ms,
            "ServicePreProcessingTimeInMillis": 0,
            "QueryPlanningTimeInMillis": 0,
            "ServiceProcessingTimeInMillis": 0,
            "ResultReuseInformation": {"ReusedPreviousResult": False},
        }
        result_configuration: dict[str, Any] = {"OutputLocation": self.result_url}
        if self.encryption:
            result_configuration["EncryptionConfiguration"] = dict(self.encryption)
        described: dict[str, Any] = {
            "QueryExecutionId": self.id,
            "Query": self.query,
            "StatementType": self.statement_type,
            "ResultConfiguration": result_configuration,
            "ResultReuseConfiguration": {"ResultReuseByAgeConfiguration": {"Enabled": False}},
            "QueryExecutionContext": {**self.context_given, "Catalog": self.catalog},
            "Status": status,
            "Statistics": statistics,
            "WorkGroup": self.workgroup,
            "EngineVersion": dict(ENGINE_VERSION),
        }
        if self.statement_type == "DML":
            word = self.query.strip().lstrip("(").split(None, 1)[0].upper() if self.query.strip() else "SELECT"
            described["SubstatementType"] = "SELECT" if word in ("SELECT", "WITH", "VALUES", "TABLE") else word
        if self.parameters is not None:
            described["ExecutionParameters"] = list(self.parameters)
        return described

    @property
    def result_url(self) -> str:
        suffix = ".txt" if self.statement_type in ("UTILITY", "DDL") else ".csv"
        return f"{self.output_location}{self.id}{suffix}"


class LocalAthena:
    """The query half of Athena's API, answered by `LocalEngine` on the stack's Glue and S3."""

    def __init__(self, session: Any, endpoint_url: str, *, workers: int = 2, engine: QueryEngine | None = None) -> None:
        # The engine is chosen by the stack (`--athena-engine`): DuckDB's by default, or Trino's.
        self._engine: QueryEngine = engine or LocalEngine(session, endpoint_url)
        self._athena = session.client("athena", endpoint_url=endpoint_url)  # moto: workgroups
        self._s3 = session.client("s3", endpoint_url=endpoint_url)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="local-athena")
        self._lock = threading.Lock()
        self._executions: dict[str, Execution] = {}
        self._tokens: dict[str, str] = {}
        self._handlers: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "StartQueryExecution": self.start_query_execution,
            "GetQueryExecution": self.get_query_execution,
            "BatchGetQueryExecution": self.batch_get_query_execution,
            "GetQueryResults": self.get_query_results,
            "StopQueryExecution": self.stop_query_execution,
            "ListQueryExecutions": self.list_query_executions,
            "GetQueryRuntimeStatistics": self.get_query_runtime_statistics,
        }
        self._remove: Callable[[], None] | None = None

    def install(self, gateway: AwsGateway) -> None:
        self._remove = gateway.intercept("athena", self.handle)

    def close(self) -> None:
        if self._remove is not None:
            self._remove()
            self._remove = None
        with self._lock:
            running = [e for e in self._executions.values() if e.state not in TERMINAL]
        for execution in running:
            execution.cancellation.cancel()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def handle(self, request: AwsRequest) -> Response | None:
        handler = self._handlers.get(request.operation or "")
        if handler is None:
            return None  # workgroups, named queries, catalogs...: moto
        try:
            body = handler(request.json())
        except AthenaFault as fault:
            return json_error(400, fault.code, fault.message)
        return Response(orjson.dumps(body), status=200, headers={
            "Content-Type": "application/x-amz-json-1.1", "x-amzn-RequestId": str(uuid.uuid4())})

    # --- operations ----------------------------------------------------------------------------

    def start_query_execution(self, body: dict[str, Any]) -> dict[str, Any]:
        token = body.get("ClientRequestToken")
        if token:
            with self._lock:
                if token in self._tokens:
                    return {"QueryExecutionId": self._tokens[token]}
        query = str(body.get("QueryString", ""))
        workgroup_name = body.get("WorkGroup") or "primary"
        configuration = self._workgroup_configuration(workgroup_name)
        requested = body.get("ResultConfiguration") or {}
        own = configuration.get("ResultConfiguration") or {}
        if configuration.get("EnforceWorkGroupConfiguration", True):
            chosen = {**requested, **own} if own.get("OutputLocation") else requested
        else:
            chosen = {**own, **requested}
        location = chosen.get("OutputLocation")
        if not location:
            raise AthenaFault("No output location provided. An output location is required either through the "
                              "Workgroup result configuration setting or as an API input.")
        if not str(location).startswith("s3://"):
            raise AthenaFault(f"outputLocation is not a valid S3 path: {location}")
        context = {k: v for k, v in (body.get("QueryExecutionContext") or {}).items() if k in ("Database", "Catalog")}
        parameters = body.get("ExecutionParameters")
        execution = Execution(
            id=str(uuid.uuid4()),
            query=query,
            workgroup=workgroup_name,
            database=str(context.get("Database") or "default"),
            catalog=str(context.get("Catalog") or "AwsDataCatalog"),
            output_location=str(location) if str(location).endswith("/") else f"{location}/",
            encryption=chosen.get("EncryptionConfiguration"),
            cutoff=int(configuration["BytesScannedCutoffPerQuery"]) if configuration.get(
                "BytesScannedCutoffPerQuery") is not None else None,
            parameters=[str(p) for p in parameters] if parameters is not None else None,
            statement_type=_statement_type(query),
            context_given={k: str(v) for k, v in context.items() if k == "Database"},
        )
        with self._lock:
            self._executions[execution.id] = execution
            if token:
                self._tokens[token] = execution.id
        execution.future = self._pool.submit(self._run, execution)
        return {"QueryExecutionId": execution.id}

    def get_query_execution(self, body: dict[str, Any]) -> dict[str, Any]:
        execution = self._execution(body.get("QueryExecutionId"))
        with self._lock:
            return {"QueryExecution": execution.describe()}

    def batch_get_query_execution(self, body: dict[str, Any]) -> dict[str, Any]:
        found, missing = [], []
        for execution_id in body.get("QueryExecutionIds") or []:
            with self._lock:
                execution = self._executions.get(execution_id)
                if execution is None:
                    missing.append({"QueryExecutionId": execution_id, "ErrorCode": "INVALID_INPUT",
                                    "ErrorMessage": f"QueryExecution {execution_id} was not found"})
                else:
                    found.append(execution.describe())
        return {"QueryExecutions": found, "UnprocessedQueryExecutionIds": missing}

    def list_query_executions(self, body: dict[str, Any]) -> dict[str, Any]:
        workgroup = body.get("WorkGroup") or "primary"
        self._workgroup_configuration(workgroup)
        limit = int(body.get("MaxResults") or 50)
        start = _offset(body.get("NextToken"))
        with self._lock:
            ids = [e.id for e in sorted(self._executions.values(), key=lambda e: e.submitted, reverse=True)
                   if e.workgroup == workgroup]
        answer: dict[str, Any] = {"QueryExecutionIds": ids[start:start + limit]}
        if start + limit < len(ids):
            answer["NextToken"] = _token(start + limit)
        return answer

    def stop_query_execution(self, body: dict[str, Any]) -> dict[str, Any]:
        execution = self._execution(body.get("QueryExecutionId"))
        with self._lock:
            if execution.state in TERMINAL:
                return {}
            if execution.state == QUEUED and execution.future is not None and execution.future.cancel():
                self._finish(execution, CANCELLED)
                return {}
        execution.cancellation.cancel()
        return {}

    def get_query_results(self, body: dict[str, Any]) -> dict[str, Any]:
        execution = self._execution(body.get("QueryExecutionId"))
        with self._lock:
            state, reason, result = execution.state, execution.reason, execution.result
        if state in (QUEUED, RUNNING):
            raise AthenaFault(f"Query has not yet finished. Current state: {state}")
        if state != SUCCEEDED or result is None:
            raise AthenaFault(f"Query did not finish successfully. Final query state: {state}"
                              + (f"\n{reason}" if reason else ""))
        limit = int(body.get("MaxResults") or MAX_RESULTS)
        if not 1 <= limit <= MAX_RESULTS:
            raise AthenaFault(f"MaxResults must be between 1 and {MAX_RESULTS}")
        start = _offset(body.get("NextToken"))
        rows = execution.texts
        page = rows[start:start + limit]
        answer: dict[str, Any] = {
            "UpdateCount": result.update_count or 0,
            "ResultSet": {
                "Rows": [{"Data": [{"VarCharValue": v} if v is not None else {} for v in row]} for row in page],
                "ResultSetMetadata": {"ColumnInfo": _column_info(result)},
            },
        }
        if start + limit < len(rows):
            answer["NextToken"] = _token(start + limit)
        return answer

    def get_query_runtime_statistics(self, body: dict[str, Any]) -> dict[str, Any]:
        execution = self._execution(body.get("QueryExecutionId"))
        with self._lock:
            described = execution.describe()["Statistics"]
            result = execution.result
        return {"QueryRuntimeStatistics": {
            "Timeline": {key: described[key] for key in (
                "QueryQueueTimeInMillis", "ServicePreProcessingTimeInMillis", "QueryPlanningTimeInMillis",
                "EngineExecutionTimeInMillis", "ServiceProcessingTimeInMillis", "TotalExecutionTimeInMillis")},
            "Rows": {"InputRows": 0, "InputBytes": described["DataScannedInBytes"], "OutputBytes": 0,
                     "OutputRows": len(result.rows) if result else 0},
        }}

    # --- running -------------------------------------------------------------------------------

    def _run(self, execution: Execution) -> None:
        with self._lock:
            if execution.state != QUEUED:
                return
            execution.state = RUNNING
            execution.started = time.time()
        try:
            result = self._engine.execute(
                execution.query, database=execution.database, parameters=execution.parameters,
                cancellation=execution.cancellation, bytes_scanned_cutoff=execution.cutoff)
            texts = _texts(result)
            if execution.cancellation.is_cancelled():
                raise QueryCancelled()
            self._write_result(execution, result, texts)
        except QueryCancelled:
            with self._lock:
                self._finish(execution, CANCELLED)
            return
        except QueryError as error:
            with self._lock:
                execution.error = error
                execution.error_type = 1001 if error.name in _DATA_ERRORS else (100 if error.category == SYSTEM
                                                                                   else 1000)
                self._finish(execution, FAILED, str(error))
            return
        except _ResultWriteError as error:
            with self._lock:
                execution.error = QueryError("", str(error), category=SYSTEM)
                execution.error_type = 401
                self._finish(execution, FAILED, str(error))
            return
        except Exception as error:
            log.exception("local Athena query %s failed inside the engine", execution.id)
            with self._lock:
                execution.error = QueryError("GENERIC_INTERNAL_ERROR", str(error), category=SYSTEM)
                execution.error_type = 100
                self._finish(execution, FAILED, f"GENERIC_INTERNAL_ERROR: {error}")
            return
        with self._lock:
            execution.result = result
            execution.texts = texts
            if execution.state == RUNNING:
                self._finish(execution, SUCCEEDED)

    def _finish(self, execution: Execution, state: str, reason: str | None = None) -> None:
        execution.state = state
        execution.reason = reason if reason is not None else ("Query cancelled by user" if state == CANCELLED
                                                              else None)
        execution.completed = time.time()

    def _write_result(self, execution: Execution, result: Result, texts: list[list[str | None]]) -> None:
        bucket, _, key = execution.result_url.removeprefix("s3://").partition("/")
        extra: dict[str, Any] = {}
        if (execution.encryption or {}).get("EncryptionOption") == "SSE_S3":
            extra["ServerSideEncryption"] = "AES256"
        if execution.statement_type == "DML":
            body = "".join(csv_line(row) for row in texts).encode("utf-8")
            metadata = orjson.dumps({"ColumnInfo": _column_info(result)})
            objects = [(key, body, "text/csv"), (key + ".metadata", metadata, "application/octet-stream")]
        else:
            body = "".join("\t".join(v or "" for v in row) + "\n" for row in texts).encode("utf-8")
            objects = [(key, body, "text/plain")]
        for object_key, data, content_type in objects:
            try:
                self._s3.put_object(Bucket=bucket, Key=object_key, Body=data, ContentType=content_type, **extra)
            except Exception as exc:
                raise _ResultWriteError(
                    f"Unable to write query results to s3://{bucket}/{object_key}: {exc}") from None

    # --- lookups -------------------------------------------------------------------------------

    def _execution(self, execution_id: Any) -> Execution:
        with self._lock:
            execution = self._executions.get(str(execution_id))
        if execution is None:
            raise AthenaFault(f"QueryExecution {execution_id} was not found")
        return execution

    def _workgroup_configuration(self, name: str) -> dict[str, Any]:
        try:
            workgroup = self._athena.get_work_group(WorkGroup=name).get("WorkGroup")  # moto: {} when unknown
        except self._athena.exceptions.InvalidRequestException:
            raise AthenaFault(f"WorkGroup {name} is not found.") from None
        if not workgroup or not workgroup.get("Name"):
            raise AthenaFault(f"WorkGroup {name} is not found.")
        if workgroup.get("State") == "DISABLED":
            raise AthenaFault(f"WorkGroup {name} is disabled.")
        configuration: dict[str, Any] = workgroup.get("Configuration") or {}
        return configuration


class _ResultWriteError(Exception):
    pass


def _statement_type(query: str) -> str:
    words = query.strip().lstrip("(").split(None, 1)
    word = words[0].lower() if words else ""
    if word in _UTILITY_WORDS:
        return "UTILITY"
    if word in _DDL_WORDS:
        return "DDL"
    return "DML"


def _texts(result: Result) -> list[list[str | None]]:
    """Rows as Athena's text; for queries, the header row first (as GetQueryResults and the CSV have it)."""
    names = result.athena_types
    rows = [[athena_text(value, names[i]) for i, value in enumerate(row)] for row in result.rows]
    if result.statement_type == "DML" and result.columns:
        return [list(result.columns), *rows]
    return rows


def _column_info(result: Result) -> list[dict[str, Any]]:
    return [
        {"CatalogName": "hive", "SchemaName": "", "TableName": "", "Name": name, "Label": name,
         "Type": athena.name, "Precision": athena.precision, "Scale": athena.scale, "Nullable": "UNKNOWN",
         "CaseSensitive": athena.name in _CASE_SENSITIVE}
        for name, athena in zip(result.columns, result.types, strict=True)
    ]


def _token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode()


def _offset(token: Any) -> int:
    if not token:
        return 0
    try:
        return int(base64.urlsafe_b64decode(str(token).encode()).decode().removeprefix("offset:"))
    except (ValueError, UnicodeDecodeError):
        raise AthenaFault("Invalid NextToken") from None
