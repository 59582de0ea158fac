"""`TrinoEngine`: Athena statements answered by a real Trino server (`signals local --athena-engine trino`).

The same interface as `signals.sql.engine.LocalEngine` (DuckDB): `execute(sql, database=...,
parameters=..., cancellation=..., bytes_scanned_cutoff=...)` -> `Result`, failures as `QueryError`
named by Trino's error name (Athena's are Trino's: `COLUMN_NOT_FOUND`, `TABLE_NOT_FOUND`, ...).
The server (`signals.sql.trino_server`) has the stack's Glue catalog as `awsdatacatalog` (Hive,
redirecting Iceberg tables to the `iceberg` catalog), so Athena's names resolve unchanged.

What Athena accepts and Trino does not is translated in `translate` (one place), each case citing
both pages:

- `OPTIMIZE t REWRITE DATA USING BIN_PACK [WHERE p]`
  (https://docs.aws.amazon.com/athena/latest/ug/optimize-statement.html) ->
  `ALTER TABLE t EXECUTE optimize [WHERE p]` (https://trino.io/docs/476/connector/iceberg.html#optimize).
- `VACUUM t` (https://docs.aws.amazon.com/athena/latest/ug/vacuum-statement.html: snapshot expiry
  by the table's `vacuum_max_snapshot_age_seconds` (default 432000 s) and orphan-file removal) ->
  `ALTER TABLE t EXECUTE expire_snapshots(retention_threshold => 'Ns')` then
  `ALTER TABLE t EXECUTE remove_orphan_files(retention_threshold => 'Ns')`
  (https://trino.io/docs/476/connector/iceberg.html#expire-snapshots, #remove-orphan-files), N read
  from the table's `$properties`.
- `SHOW DATABASES|TABLES|PARTITIONS|COLUMNS`, `DESCRIBE t`: Athena prints these Hive-style from the
  Glue catalog (https://docs.aws.amazon.com/athena/latest/ug/describe-table.html,
  https://docs.aws.amazon.com/athena/latest/ug/show-tables.html): Hive type names (`string`,
  `map<string,string>`), a `# Partition Information` block; Trino's own `DESCRIBE` prints Trino
  types in four columns. They are answered by the same Glue formatter as the DuckDB engine's.
- Athena's catalog `AwsDataCatalog` (any case) is the Trino catalog `awsdatacatalog`; the request's
  `QueryExecutionContext.Database` is the session schema.
- `ExecutionParameters` fill `?` through Trino's `PREPARE` / `EXECUTE ... USING`
  (https://docs.aws.amazon.com/athena/latest/ug/querying-with-prepared-statements.html).
- The workgroup's `BytesScannedCutoffPerQuery` is Trino's `query_max_scan_physical_bytes` session
  property; its `EXCEEDED_SCAN_LIMIT` is reported as Athena's `EXCEEDED_BYTES_SCANNED_LIMIT`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from signals.sql.engine import (
    _DESCRIBE,
    _OPTIMIZE,
    _SHOW_COLUMNS,
    _SHOW_DATABASES,
    _SHOW_PARTITIONS,
    _SHOW_TABLES,
    _VACUUM,
    VACUUM_MAX_SNAPSHOT_AGE_SECONDS,
    Cancellation,
    LocalEngine,
    Result,
    _strip,
    statement_text,
)
from signals.sql.errors import SYSTEM, USER, QueryCancelled, QueryError
from signals.sql.types import _PRECISION, AthenaType

CATALOG: Final = "awsdatacatalog"
USER_NAME: Final = "signals"
_UTILITY_PATTERNS: Final = (_SHOW_DATABASES, _SHOW_TABLES, _SHOW_PARTITIONS, _SHOW_COLUMNS, _DESCRIBE)
_CATALOG_NAME = re.compile(r'(?<![\w."])"?awsdatacatalog"?(?=\s*\.)', re.IGNORECASE)
# Trino's error names that differ from Athena's for the same failure.
_ERROR_NAMES: Final = {"EXCEEDED_SCAN_LIMIT": "EXCEEDED_BYTES_SCANNED_LIMIT"}


@dataclass(frozen=True)
class Statement:
    """One statement for Trino; `vacuum` marks the two-step VACUUM (its table, quoted)."""

    sql: str
    vacuum_table: str | None = None


def translate(sql: str) -> Statement:
    """Athena's SQL as Trino takes it (see the module docstring for each case and its pages)."""
    text = _CATALOG_NAME.sub(CATALOG, _strip(sql))
    if (match := _OPTIMIZE.fullmatch(text)) is not None:
        where = f" WHERE {match['where']}" if match["where"] else ""
        return Statement(f"ALTER TABLE {match['table']} EXECUTE optimize{where}")
    if (match := _VACUUM.fullmatch(text)) is not None:
        return Statement("", vacuum_table=match["table"])
    return Statement(text)


class _CursorInterrupt:
    """What `Cancellation.attach` expects (`interrupt()`), for a Trino cursor."""

    def __init__(self, cursor: Any) -> None:
        self._cursor = cursor

    def interrupt(self) -> None:
        try:
            self._cursor.cancel()
        except Exception:
            return


class TrinoEngine:
    """Athena's query engine on a Trino server at `host:port` (see `signals.sql.trino_server`)."""

    def __init__(self, session: Any, endpoint_url: str | None, *, host: str = "127.0.0.1", port: int,
                 database: str = "default") -> None:
        self.host = host
        self.port = port
        self.database = database
        self._glue = LocalEngine(session, endpoint_url, database=database)  # SHOW / DESCRIBE, Athena-style

    def _connect(self, database: str, cutoff: int | None) -> Any:
        import trino.dbapi  # noqa: PLC0415

        connect: Any = trino.dbapi.connect  # the client's DB API (untyped)
        properties = {"query_max_scan_physical_bytes": f"{cutoff}B"} if cutoff is not None else {}
        return connect(host=self.host, port=self.port, user=USER_NAME, catalog=CATALOG,
                                   schema=database, http_scheme="http", session_properties=properties,
                                   timezone="UTC")

    def execute(self, sql: str, *, database: str | None = None, parameters: Sequence[str] | None = None,
                cancellation: Cancellation | None = None, bytes_scanned_cutoff: int | None = None) -> Result:
        cancel = cancellation or Cancellation()
        database = (database or self.database).lower()
        text = statement_text(sql)
        try:
            if any(pattern.fullmatch(text) for pattern in _UTILITY_PATTERNS):
                return self._glue.execute(text, database=database)
            statement = translate(text)
            if statement.vacuum_table is not None:
                return self._vacuum(statement.vacuum_table, database, cancel)
            return self._run(statement.sql, database, parameters, cancel, bytes_scanned_cutoff)
        finally:
            cancel.finish()

    def _vacuum(self, table: str, database: str, cancel: Cancellation) -> Result:
        properties = self._run(f'SELECT key, value FROM {_metadata_table(table, "properties")}', database, None,
                               cancel, None)
        values = {str(k): str(v) for k, v in properties.rows}
        age = int(values.get("vacuum_max_snapshot_age_seconds", VACUUM_MAX_SNAPSHOT_AGE_SECONDS))
        expired = self._run(f"ALTER TABLE {table} EXECUTE expire_snapshots(retention_threshold => '{age}s')",
                            database, None, cancel, None)
        self._run(f"ALTER TABLE {table} EXECUTE remove_orphan_files(retention_threshold => '{age}s')",
                  database, None, cancel, None)
        return Result(columns=[], types=[], rows=[], statement_type="DML", update_count=expired.update_count)

    def _run(self, sql: str, database: str, parameters: Sequence[str] | None, cancel: Cancellation,
             cutoff: int | None) -> Result:
        import trino  # noqa: PLC0415

        if cancel.is_cancelled():
            raise QueryCancelled()
        connection = self._connect(database, cutoff)
        cursor = connection.cursor()
        cancel.attach(_CursorInterrupt(cursor))
        try:
            if parameters:
                cursor.execute(f"PREPARE signals_statement FROM {sql}")
                cursor.fetchall()
                cursor.execute(f"EXECUTE signals_statement USING {', '.join(parameters)}")
            else:
                cursor.execute(sql)
            rows = [tuple(_value(v) for v in row) for row in cursor.fetchall()]
            description = cursor.description or []
            update_type = cursor.update_type
            stats = cursor.stats or {}
        except trino.exceptions.TrinoQueryError as error:
            if cancel.is_cancelled() or error.error_name in ("USER_CANCELED", "ADMINISTRATIVELY_KILLED"):
                raise QueryCancelled() from None
            name = _ERROR_NAMES.get(error.error_name or "", error.error_name or "GENERIC_INTERNAL_ERROR")
            category = USER if error.error_type == "USER_ERROR" else SYSTEM
            message = error.message or str(error)
            raise QueryError(name, message, category=category,
                             retryable=error.error_type in ("INTERNAL_ERROR", "EXTERNAL")) from None
        except (trino.exceptions.HttpError, OSError) as error:
            if cancel.is_cancelled():
                raise QueryCancelled() from None
            raise QueryError("GENERIC_INTERNAL_ERROR", f"the Trino server did not answer: {error}", category=SYSTEM,
                             retryable=True) from None
        finally:
            cancel.detach()
            connection.close()
        if cancel.is_cancelled():
            raise QueryCancelled()
        scanned = int(stats.get("physicalInputBytes") or stats.get("processedBytes") or 0)
        if update_type is not None and update_type not in ("SELECT",):
            count = int(rows[0][0]) if rows and rows[0] and isinstance(rows[0][0], int) else None
            return Result(columns=[], types=[], rows=[], statement_type="DML", bytes_scanned=scanned,
                          update_count=count)
        columns = [str(column[0]).lower() for column in description]
        types = [trino_type(str(column[1])) for column in description]
        first = sql.split(None, 1)[0].lower() if sql.split() else ""
        kind = "UTILITY" if first in ("show", "describe", "desc", "explain") else "DML"
        return Result(columns=columns, types=types, rows=rows, statement_type=kind, bytes_scanned=scanned)


def _value(value: Any) -> Any:
    """A result value as the DuckDB path gives it: a ROW (the client's `NamedRowTuple`) is a dict of its
    fields, an anonymous field named `field<i>` as Athena prints it
    (https://docs.aws.amazon.com/athena/latest/ug/creating-row.html), at any depth."""
    names = getattr(value, "_names", None)
    if isinstance(value, tuple) and names is not None:
        return {(name if name is not None else f"field{i}"): _value(v)
                for i, (name, v) in enumerate(zip(names, value, strict=True))}
    if isinstance(value, list):
        return [_value(v) for v in value]
    if isinstance(value, dict):
        return {k: _value(v) for k, v in value.items()}
    return value


def _metadata_table(table: str, kind: str) -> str:
    """`db.t` / `"db-x"."t"` -> the same with the table part as `"t$kind"`."""
    parts = re.findall(r'"[^"]+"|`[^`]+`|[\w-]+', table)
    last = parts[-1].strip('"`')
    qualified = [p if p.startswith('"') else f'"{p.strip("`")}"' for p in parts[:-1]]
    return ".".join([*qualified, f'"{last}${kind}"'])


def trino_type(type_text: str) -> AthenaType:
    """A Trino result type (`varchar(12)`, `timestamp(6) with time zone`, `decimal(10,2)`, `array(bigint)`)
    as Athena's ColumnInfo type: the name without its parameters, decimal's precision and scale."""
    text = type_text.strip().lower()
    base = re.sub(r"\(.*?\)", "", text.split("(", 1)[0] if text.startswith(("array", "map", "row")) else text)
    base = re.sub(r"\s+", " ", base).strip()
    if base == "decimal":
        match = re.search(r"\((\d+)\s*,\s*(\d+)\)", text)
        if match:
            return AthenaType("decimal", int(match[1]), int(match[2]))
    return AthenaType(base, _PRECISION.get(base, 0), 0)
