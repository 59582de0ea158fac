"""What `signals verify` and `signals demo` need of the compacted layer: run the compactor now, read
what a compacted table holds.

Running it: `signals.compact.compact` (on `local` the compactor in this process with its local
engine against the stack's embedded AWS; on a deployed env the Lambda, RequestResponse); the
compactor's lease keeps a run from overlapping the stack's scheduled one, and a run that finds the
lease held is retried for a minute.

Reading: locally pyiceberg reads the table's current snapshot from the embedded Glue catalog; on a
deployed env Athena answers (`signals.query`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
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
    """One compactor run now, as `signals compact` runs it (`request`: the function's event, e.g.
    {"days": [...]}); retried while another run holds the lease. Its result."""
    from signals.compact import compact  # noqa: PLC0415 (the compactor loads with it)

    deadline = time.monotonic() + wait_for_lease_s
    while True:
        result = compact(env, dict(request or {}))
        if not result.get("skipped") or time.monotonic() >= deadline:
            break
        time.sleep(LEASE_RETRY_S)
    if result.get("skipped"):
        raise CompactionFailed(f"compactor run skipped: {result['skipped']}")
    return result


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
    """Rows per day of the type's compacted table (its current snapshot; Athena on a deployed env)."""
    from signals.query import query  # noqa: PLC0415

    table = f'"{env.output(Output.ALERTS_DATABASE)}"."{COMPACTED_BY_TYPE[type_value].name}"'
    result = query(env, f"SELECT day, count(*) AS n FROM {table} GROUP BY day")
    return {str(day): int(rows) for day, rows in result.rows}


def audit_rows(env: Environment, table_name: str) -> list[dict[str, Any]]:
    """Every row of a dq_audit table (small tables; Athena on a deployed env)."""
    from signals.query import query  # noqa: PLC0415

    result = query(env, f'SELECT * FROM "{env.output(Output.AUDIT_DATABASE)}"."{table_name}"')
    return [dict(zip(result.columns, row, strict=True)) for row in result.rows]
