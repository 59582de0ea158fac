"""What `signals verify` and `signals demo` need of the compacted layer: run the compactor now, read
what a compacted table holds.

Running it: on `local` the template's CompactorFunction is built in this process the way the local
stack builds it (its own environment from template.yaml for Environment=local, clients bound to the
embedded AWS, its output routed to the stack's log directory); the compactor's lease keeps it from
overlapping the stack's scheduled run. On a deployed env the function is invoked (RequestResponse).

Reading: locally pyiceberg reads the table's current snapshot from the embedded Glue catalog; on a
deployed env Athena answers (`signals.query`).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from shared.schema import COMPACTED_BY_TYPE, OTLP_TYPE
from signals.env import Environment, Output

#: A run that found the lease held (the scheduled run is busy) is retried this often, this long.
LEASE_RETRY_S: Final = 1.0
LEASE_WAIT_S: Final = 60.0


class CompactionFailed(RuntimeError):
    pass


def run_compactor(env: Environment, request: Mapping[str, Any] | None = None, *,
                  wait_for_lease_s: float = LEASE_WAIT_S) -> dict[str, Any]:
    """One compactor run now (`request`: the function's event, e.g. {"days": [...]}); its result."""
    event = dict(request or {})
    deadline = time.monotonic() + wait_for_lease_s
    while True:
        result = _invoke_local(env, event) if env.endpoint_url is not None else _invoke_deployed(env, event)
        if not result.get("skipped") or time.monotonic() >= deadline:
            break
        time.sleep(LEASE_RETRY_S)
    if result.get("skipped"):
        raise CompactionFailed(f"compactor run skipped: {result['skipped']}")
    return result


def _invoke_deployed(env: Environment, event: dict[str, Any]) -> dict[str, Any]:
    response = env.client("lambda").invoke(FunctionName=env.output(Output.COMPACTOR_FUNCTION),
                                           InvocationType="RequestResponse", Payload=json.dumps(event).encode())
    payload = json.loads(response["Payload"].read() or b"{}")
    if response.get("FunctionError"):
        raise CompactionFailed(f"compactor failed: {payload.get('errorMessage', payload)}")
    return payload if isinstance(payload, dict) else {}


def _invoke_local(env: Environment, event: dict[str, Any]) -> dict[str, Any]:
    # The local stack's own machinery (moto loads with it): template, wiring, in-process runtime.
    from signals.env import stack_name  # noqa: PLC0415
    from signals.local.runtime import LocalFunction, install_routed_stdout, uninstall_routed_stdout  # noqa: PLC0415
    from signals.local.stack import EndpointClients  # noqa: PLC0415
    from signals.local.template import ResolvedTemplate, find_template, load_template  # noqa: PLC0415
    from signals.local.wiring import read_wiring  # noqa: PLC0415

    assert env.endpoint_url is not None
    template = ResolvedTemplate(load_template(find_template()), parameters={"Environment": "local"},
                                stack_name=stack_name("local"), endpoint=env.endpoint_url)
    spec = read_wiring(template).function_by_module("compactor.app")
    clients = EndpointClients(env.session, {}, env.endpoint_url)
    log_dir = env.extra.get("log_dir")
    streams = _handler_streams()
    routed = install_routed_stdout(Path(str(log_dir))) if log_dir else None
    try:
        result = LocalFunction(spec, clients, routed).invoke(event)
    finally:
        if routed is not None:
            uninstall_routed_stdout(routed)
        _restore_handler_streams(streams)
    return result if isinstance(result, dict) else {}


def _handler_streams() -> dict[logging.StreamHandler[Any], Any]:
    """Every logging stream handler and where it writes (Powertools loggers' own handlers included)."""
    loggers = [logging.getLogger(), *(item for item in logging.Logger.manager.loggerDict.values()
                                     if isinstance(item, logging.Logger))]
    return {handler: handler.stream for lg in loggers for handler in lg.handlers
            if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler)}


def _restore_handler_streams(before: Mapping[logging.StreamHandler[Any], Any]) -> None:
    """Put every handler back where it wrote before the run, without flushing what it writes to now.

    The run re-points the compactor's loggers at a router on this process's stdout; left there, a
    handler would write to a stream its owner closes later (pytest's capture, a finished router).
    Handlers made during the run (the compactor imported for the first time) go to the real stdout.
    """
    for handler in _handler_streams():
        handler.stream = before.get(handler, sys.__stdout__)


def key_column(type_value: str) -> str:
    """Where a canary's marker is in its compacted row: the event id, or an OTLP record's body."""
    return "body" if type_value == OTLP_TYPE else "event_id"


def compacted_count(env: Environment, type_value: str, *, day: str | None = None,
                    equals: tuple[str, str] | None = None) -> int:
    """Rows of the type's compacted table (of one day; where a column equals a value)."""
    table = COMPACTED_BY_TYPE[type_value]
    database = env.output(Output.ALERTS_DATABASE)
    conditions = [(("day", day))] if day is not None else []
    if equals is not None:
        conditions.append(equals)
    if env.endpoint_url is not None:
        return _count_local(env, database, table.name, conditions)
    return _count_athena(env, database, table.name, conditions)


def _count_local(env: Environment, database: str, table_name: str, conditions: Sequence[tuple[str, str]]) -> int:
    from signals.local.provision import iceberg_catalog  # noqa: PLC0415

    assert env.endpoint_url is not None
    table = iceberg_catalog(env.endpoint_url, glue=env.client("glue")).load_table((database, table_name))
    for _, value in conditions:
        if "'" in value:
            raise ValueError(f"{value!r}: a quote cannot be matched in a local row filter")
    row_filter = " AND ".join(f"{column} = '{value}'" for column, value in conditions) or "true"
    columns = tuple(dict.fromkeys(["day", *(column for column, _ in conditions)]))
    return int(table.scan(row_filter=row_filter, selected_fields=columns).to_arrow().num_rows)


def _count_athena(env: Environment, database: str, table_name: str, conditions: Sequence[tuple[str, str]]) -> int:
    from signals.query import query  # noqa: PLC0415

    where = " AND ".join(f'"{column}" = \'{value.replace(chr(39), chr(39) * 2)}\'' for column, value in conditions)
    sql = f'SELECT count(*) AS n FROM "{database}"."{table_name}"' + (f" WHERE {where}" if where else "")
    result = query(env, sql)
    return int(result.rows[0][0]) if result.rows else 0


def compacted_rows_by_day(env: Environment, type_value: str) -> dict[str, int]:
    """Rows per day of the type's compacted table (local: the current snapshot)."""
    if env.endpoint_url is None:
        raise NotImplementedError("rows by day of a deployed env's compacted table: use signals query")
    from pyiceberg.expressions import AlwaysTrue  # noqa: PLC0415

    from signals.local.provision import iceberg_catalog  # noqa: PLC0415

    table = iceberg_catalog(env.endpoint_url, glue=env.client("glue")).load_table(
        (env.output(Output.ALERTS_DATABASE), COMPACTED_BY_TYPE[type_value].name))
    days = table.scan(row_filter=AlwaysTrue(), selected_fields=("day",)).to_arrow().column("day").to_pylist()
    counts: dict[str, int] = {}
    for day in days:
        counts[str(day)] = counts.get(str(day), 0) + 1
    return counts


def audit_rows(env: Environment, table_name: str) -> list[dict[str, Any]]:
    """Every row of a dq_audit Iceberg table (local only; small tables)."""
    if env.endpoint_url is None:
        raise NotImplementedError("read a deployed env's audit tables with signals query")
    from signals.local.provision import iceberg_catalog  # noqa: PLC0415

    table = iceberg_catalog(env.endpoint_url, glue=env.client("glue")).load_table(
        (env.output(Output.AUDIT_DATABASE), table_name))
    rows: list[dict[str, Any]] = table.scan().to_arrow().to_pylist()
    return rows
