"""`LocalEngine`: one Athena (Trino) statement over the Glue catalog, run by DuckDB.

    engine = LocalEngine(session, endpoint_url, database="telemetry-parser-db")
    result = engine.execute("SELECT device_type, count(*) FROM telemetry_lock_flat GROUP BY 1")

What it answers:

- Queries (`SELECT`, `WITH`, `VALUES`, set operations): parsed as Trino SQL with sqlglot; every
  table they name (`t`, `db.t`, `"db-with-dashes".t`, `awsdatacatalog.db.t`; unqualified names are in
  `database`) is read from Glue by `signals.sql.catalog` and bound to the statement under a private
  name (the original name stays the alias, so `t.col` still works); the statement is transpiled to
  DuckDB and run in a fresh in-memory connection in UTC. Unnamed result columns are `_col0`,
  `_col1`, ... as in Athena. `?` placeholders take `parameters` (Athena's ExecutionParameters).
- `SHOW DATABASES|SCHEMAS ['pattern']`, `SHOW TABLES [IN db] ['pattern']`, `SHOW PARTITIONS t`,
  `SHOW COLUMNS IN t`, `DESCRIBE t`: answered from Glue (statement type UTILITY).
- Anything else (CREATE / CTAS, INSERT, MERGE, UPDATE, DELETE, DROP, ALTER, UNLOAD, MSCK, EXPLAIN,
  SHOW CREATE TABLE, more than one statement) fails with `NOT_SUPPORTED`: never an empty success.

Failures raise `QueryError` named like Athena's (`SYNTAX_ERROR`, `COLUMN_NOT_FOUND`,
`TABLE_NOT_FOUND`, `SCHEMA_NOT_FOUND`, `FUNCTION_NOT_FOUND`, `INVALID_CAST_ARGUMENT`, ...) with the
`line L:C` of the original statement where one is known.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, NoReturn, Protocol

from signals.sql.catalog import Constraint, GlueCatalog, iceberg_filter, is_iceberg
from signals.sql.errors import SYSTEM, USER, QueryCancelled, QueryError, position
from signals.sql.functions import trino_function_names
from signals.sql.typecheck import check_comparisons
from signals.sql.types import AthenaType, athena_type

DEFAULT_CATALOG: Final = "awsdatacatalog"
UTILITY_TYPE: Final = AthenaType("string")


@dataclass
class Result:
    columns: list[str]
    types: list[AthenaType]
    rows: list[tuple[Any, ...]]
    statement_type: str = "DML"  # DML (queries) or UTILITY (SHOW, DESCRIBE)
    bytes_scanned: int = 0
    files_read: int = 0
    update_count: int | None = None  # rows an INSERT or MERGE added
    arrow: Any = None  # the rows as a pyarrow Table, when asked for

    @property
    def athena_types(self) -> list[str]:
        return [t.name for t in self.types]


@dataclass
class Cancellation:
    """Lets another thread stop a running `execute` (StopQueryExecution).

    DuckDB forgets an interrupt that arrives before its query starts executing, so `cancel` keeps
    interrupting the attached connection until the query lets go of it.
    """

    event: threading.Event = field(default_factory=threading.Event)
    _connection: Any = None
    _finished: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def cancel(self, *, give_up_after: float = 30.0) -> None:
        if self.event.is_set():
            return
        self.event.set()
        threading.Thread(target=self._interrupt_until_done, args=(give_up_after,), name="query-cancel",
                         daemon=True).start()

    def _interrupt_until_done(self, give_up_after: float) -> None:
        deadline = time.monotonic() + give_up_after
        while time.monotonic() < deadline:
            with self._lock:
                if self._finished:
                    return
                if self._connection is not None:
                    self._connection.interrupt()
            time.sleep(0.05)

    def attach(self, connection: Any) -> None:
        with self._lock:
            self._connection = connection

    def detach(self) -> None:
        with self._lock:
            self._connection = None

    def finish(self) -> None:
        with self._lock:
            self._connection = None
            self._finished = True

    def is_cancelled(self) -> bool:
        return self.event.is_set()


_NAME = r'(?:`[^`]+`|"[^"]+"|[\w-]+)'
_QUALIFIED = rf"{_NAME}(?:\s*\.\s*{_NAME})?"
_PATTERN = r"(?:\s+(?:LIKE\s+)?'(?P<pattern>[^']*)')?"
_SHOW_DATABASES = re.compile(rf"SHOW\s+(?:DATABASES|SCHEMAS){_PATTERN}", re.IGNORECASE)
_SHOW_TABLES = re.compile(rf"SHOW\s+TABLES(?:\s+(?:IN|FROM)\s+(?P<db>{_NAME}))?{_PATTERN}", re.IGNORECASE)
_SHOW_PARTITIONS = re.compile(rf"SHOW\s+PARTITIONS\s+(?P<table>{_QUALIFIED})", re.IGNORECASE)
_SHOW_COLUMNS = re.compile(
    rf"SHOW\s+COLUMNS\s+(?:IN|FROM)\s+(?P<table>{_QUALIFIED})(?:\s+(?:IN|FROM)\s+(?P<db>{_NAME}))?", re.IGNORECASE)
_DESCRIBE = re.compile(
    rf"(?:DESCRIBE|DESC)\s+(?:EXTENDED\s+|FORMATTED\s+)?(?P<table>{_QUALIFIED})(?:\s+(?P<column>{_NAME}))?",
    re.IGNORECASE)
_OPTIMIZE = re.compile(rf"OPTIMIZE\s+(?P<table>{_QUALIFIED})\s+REWRITE\s+DATA\s+USING\s+BIN_PACK"
                       r"(?:\s+WHERE\s+(?P<where>.+))?", re.IGNORECASE | re.DOTALL)
_VACUUM = re.compile(rf"VACUUM\s+(?P<table>{_QUALIFIED})", re.IGNORECASE)
#: Athena's default for an Iceberg table's `vacuum_max_snapshot_age_seconds` (5 days).
VACUUM_MAX_SNAPSHOT_AGE_SECONDS: Final = 432_000
_UNSUPPORTED_WORDS: Final = {
    "create": "CREATE (and CREATE TABLE AS)", "update": "UPDATE",
    "delete": "DELETE", "drop": "DROP", "alter": "ALTER", "unload": "UNLOAD", "msck": "MSCK REPAIR TABLE",
    "explain": "EXPLAIN", "optimize": "this OPTIMIZE", "vacuum": "this VACUUM", "show": "this SHOW statement",
    "prepare": "PREPARE", "execute": "EXECUTE", "deallocate": "DEALLOCATE", "use": "USE", "grant": "GRANT",
    "revoke": "REVOKE", "call": "CALL", "set": "SET", "reset": "RESET", "start": "START TRANSACTION",
    "commit": "COMMIT", "rollback": "ROLLBACK", "analyze": "ANALYZE", "refresh": "REFRESH", "comment": "COMMENT",
}
#: Trino functions sqlglot does not transpile, as DuckDB macros in every connection (Athena's output:
#: timestamps are timestamp(3) on Hive tables, so `to_iso8601` prints milliseconds).
_TRINO_MACROS: Final = (
    "CREATE MACRO to_iso8601(x) AS CASE WHEN typeof(x) = 'DATE' THEN strftime(x, '%Y-%m-%d') "
    "ELSE strftime(x, '%Y-%m-%dT%H:%M:%S.%g') END",
)
#: `CAST(x AS varchar)`: Trino prints a timestamp with every digit of its precision (timestamp(3) of a
#: Hive table `.450`, timestamp(6) of an Iceberg table `.450000`); DuckDB's cast drops trailing zeros
#: (`.45`, none at all on a whole second). A Hive timestamp is DuckDB's TIMESTAMP_MS here (catalog).
_VARCHAR: Final = "__signals_varchar"
_VARCHAR_MACRO: Final = (
    f"CREATE MACRO {_VARCHAR}(x) AS CASE "
    "WHEN typeof(x) = 'TIMESTAMP_MS' THEN strftime(TRY_CAST(x AS TIMESTAMP), '%Y-%m-%d %H:%M:%S.%g') "
    "WHEN typeof(x) = 'TIMESTAMP' THEN strftime(TRY_CAST(x AS TIMESTAMP), '%Y-%m-%d %H:%M:%S.%f') "
    "ELSE CAST(x AS VARCHAR) END"
)
#: `typeof(x)`: Trino's type names (`bigint`, `timestamp(3)`, `map(varchar, varchar)`, `array(varchar)`,
#: `row(...)`, `real`), not DuckDB's (`BIGINT`, `TIMESTAMP_MS`, `MAP(VARCHAR, VARCHAR)`, `VARCHAR[]`).
#: A string literal is `varchar`, where Trino says `varchar(N)`: DuckDB keeps no literal lengths.
_TYPEOF: Final = "__signals_typeof"
_TYPEOF_MACRO: Final = (
    f"CREATE MACRO {_TYPEOF}(x) AS "
    "regexp_replace(regexp_replace(regexp_replace(regexp_replace(regexp_replace("
    "lower(typeof(x)), 'timestamp_ms', 'timestamp(3)', 'g'), "
    "'timestamp($|[^_(a-z])', 'timestamp(6)\\1', 'g'), "
    "'struct\\(', 'row(', 'g'), "
    "'(^|[^a-z_])float($|[^a-z_])', '\\1real\\2', 'g'), "
    "'([a-z0-9]+(\\([0-9, ]+\\))?)\\[\\]', 'array(\\1)', 'g')"
)
#: `m['k']` on a map: Trino fails on an absent key (`element_at` is the NULL-returning form).
_MAP_SUBSCRIPT: Final = "__signals_map_subscript"
_MAP_SUBSCRIPT_MACRO: Final = (f"CREATE MACRO {_MAP_SUBSCRIPT}(m, k) AS CASE WHEN map_contains(m, k) THEN m[k] "
                                "ELSE error('Key not present in map: ' || k) END")
#: Each connection's settings and macros. `integer_division`: `/` of two integers is Trino's integer
#: division (truncated toward zero, `DIVISION_BY_ZERO` on 0), not DuckDB's double division.
_TRINO_SESSION: Final = ("SET integer_division=true", *_TRINO_MACROS, _MAP_SUBSCRIPT_MACRO, _VARCHAR_MACRO,
                          _TYPEOF_MACRO)
SUPPORTED: Final = ("SELECT, WITH, VALUES, SHOW DATABASES/TABLES/PARTITIONS/COLUMNS, DESCRIBE, and INSERT INTO, "
                    "MERGE INTO, OPTIMIZE ... REWRITE DATA USING BIN_PACK and VACUUM on Iceberg tables")


class QueryEngine(Protocol):
    """What the embedded Athena runs statements on: `LocalEngine` (DuckDB) or `signals.sql.trino.TrinoEngine`."""

    def execute(self, sql: str, *, database: str | None = None, parameters: Sequence[str] | None = None,
                cancellation: Cancellation | None = None, bytes_scanned_cutoff: int | None = None) -> Result: ...


class LocalEngine:
    def __init__(self, session: Any, endpoint_url: str | None = None, *, database: str = "default",
                 bytes_scanned_cutoff: int | None = None) -> None:
        self.catalog = GlueCatalog(session, endpoint_url)
        self.database = database
        self.bytes_scanned_cutoff = bytes_scanned_cutoff

    def execute(self, sql: str, *, database: str | None = None, parameters: Sequence[str] | None = None,
                cancellation: Cancellation | None = None, bytes_scanned_cutoff: int | None = None) -> Result:
        """Run one statement; raises `QueryError` (failed) or `QueryCancelled` (stopped)."""
        cancel = cancellation or Cancellation()
        database = (database or self.database).lower()
        text = statement_text(sql)
        try:
            utility = self._utility(text, database)
            if utility is not None:
                return utility
            cutoff = bytes_scanned_cutoff if bytes_scanned_cutoff is not None else self.bytes_scanned_cutoff
            if text.split(None, 1)[0].lower() in ("insert", "merge"):
                return self._write(text, database, parameters, cancel, cutoff)
            if (match := _OPTIMIZE.fullmatch(text)) is not None:
                return self._optimize(match, text, database, cancel)
            if (match := _VACUUM.fullmatch(text)) is not None:
                return self._vacuum(match, database)
            return self._query(text, database, parameters, cancel, cutoff)
        finally:
            cancel.finish()

    # --- SHOW and DESCRIBE, from Glue ----------------------------------------------------------

    def _utility(self, text: str, database: str) -> Result | None:
        if (match := _SHOW_DATABASES.fullmatch(text)) is not None:
            names = [n for n in self.catalog.databases() if _hive_like(n, match["pattern"])]
            return _utility_result(["database_name"], [(n,) for n in names])
        if (match := _SHOW_TABLES.fullmatch(text)) is not None:
            db = _unquote(match["db"]) if match["db"] else database
            names = sorted(t["Name"] for t in self.catalog.tables(db) if _hive_like(t["Name"], match["pattern"]))
            return _utility_result(["tab_name"], [(n,) for n in names])
        if (match := _SHOW_PARTITIONS.fullmatch(text)) is not None:
            db, name = _split_name(match["table"], database)
            table = self.catalog.table(db, name)
            if is_iceberg(table):
                raise QueryError("NOT_SUPPORTED", f"SHOW PARTITIONS is not supported for Iceberg table {db}.{name}; "
                                 f'query "{db}"."{name}$partitions" on Athena instead')
            keys = [k["Name"] for k in table.get("PartitionKeys") or []]
            if not keys:
                raise QueryError("NOT_SUPPORTED", f"Table {db}.{name} is not partitioned")
            rows = sorted("/".join(f"{k}={v}" for k, v in zip(keys, p["Values"], strict=False))
                          for p in self.catalog.glue_partitions(db, name))
            return _utility_result(["partition"], [(r,) for r in rows])
        if (match := _SHOW_COLUMNS.fullmatch(text)) is not None:
            db, name = _split_name(match["table"], _unquote(match["db"]) if match["db"] else database)
            columns = _all_columns(self.catalog.table(db, name))
            return _utility_result(["field"], [(c["Name"],) for c in columns])
        if (match := _DESCRIBE.fullmatch(text)) is not None:
            db, name = _split_name(match["table"], database)
            return _utility_result(["col_name"], [(line,) for line in self._describe(db, name, match["column"])])
        return None

    def _describe(self, database: str, name: str, column: str | None) -> list[str]:
        table = self.catalog.table(database, name)
        keys = table.get("PartitionKeys") or []
        columns = _all_columns(table)
        if column is not None:
            wanted = _unquote(column).lower()
            columns = [c for c in columns if c["Name"].lower() == wanted]
            if not columns:
                raise QueryError("COLUMN_NOT_FOUND", f"Column '{wanted}' does not exist in {database}.{name}")
            keys = []
        lines = [_describe_line(c) for c in columns]
        if keys:
            lines += ["", "# Partition Information", _describe_line({"Name": "# col_name", "Type": "data_type",
                                                                      "Comment": "comment"}), ""]
            lines += [_describe_line(k) for k in keys]
        return lines

    # --- queries -------------------------------------------------------------------------------

    def _query(self, text: str, database: str, parameters: Sequence[str] | None, cancel: Cancellation,
               cutoff: int | None) -> Result:
        from sqlglot import exp  # noqa: PLC0415

        statement = _parse(text)
        if parameters is not None or any(True for _ in statement.find_all(exp.Placeholder)):
            statement = _bind(statement, list(parameters or []))
        _name_columns(statement)
        return self._run(statement, text, database, cancel, cutoff)

    def _columns_getter(self, database: str, name: str) -> Callable[[], dict[str, str]]:
        """A table's Glue columns and partition keys, name -> Hive type, read when first asked for
        (a missing table reads as none: the scan reports it, with its position)."""
        def columns() -> dict[str, str]:
            try:
                table = self.catalog.table(database, name)
            except QueryError:
                return {}
            return {str(c["Name"]).lower(): str(c.get("Type", "")) for c in _all_columns(table)}
        return columns

    def _run(self, statement: Any, text: str, database: str, cancel: Cancellation, cutoff: int | None, *,
             as_arrow: bool = False) -> Result:
        """Bind the statement's tables, transpile it and run it in DuckDB (`as_arrow`: rows in `arrow`)."""
        import duckdb  # noqa: PLC0415 (heavy: loaded when a query runs)
        from sqlglot import exp  # noqa: PLC0415

        references = _references(statement, text, database)
        check_comparisons(statement, text, {id(node): self._columns_getter(db, name)
                                            for node, (db, name, _) in references if "$" not in name})
        connection = duckdb.connect()
        scanned = files = 0
        arrow: Any = None
        rows: list[tuple[Any, ...]] = []
        try:
            connection.execute("SET TimeZone='UTC'")
            for macro in _TRINO_SESSION:
                connection.execute(macro)
            bound: dict[tuple[str, str], str] = {}
            for table_node, (db, name, offset) in references:
                if cancel.is_cancelled():
                    raise QueryCancelled()
                key = (db, name)
                if key not in bound:
                    try:
                        scan = self.catalog.read(db, name, injected=_injected_values(statement, self.catalog, db, name),
                                                 constraints=_constraints(table_node, key, references),
                                                 cancelled=cancel.is_cancelled)
                    except QueryError as error:
                        if error.name in ("TABLE_NOT_FOUND", "SCHEMA_NOT_FOUND"):
                            raise QueryError(error.name, f"{position(text, offset)}: {error.message}") from None
                        raise
                    scanned += scan.bytes_scanned
                    files += scan.files
                    if cutoff is not None and scanned > cutoff:
                        raise QueryError("EXCEEDED_BYTES_SCANNED_LIMIT",
                                         f"Query cancelled! Bytes scanned limit was exceeded ({scanned} > {cutoff})")
                    bound[key] = f"__signals_t{len(bound)}"
                    connection.register(bound[key], scan.table)
                # Rebound in place (joins, TABLESAMPLE and the rest of the node stay as written).
                if table_node.args.get("alias") is None:
                    table_node.set("alias", exp.TableAlias(this=exp.to_identifier(name, quoted=True)))
                table_node.set("this", exp.to_identifier(bound[key]))
                table_node.set("db", None)
                table_node.set("catalog", None)
            duck_sql = _duckdb_shims(statement).sql(dialect="duckdb")
            cancel.attach(connection)
            try:
                relation = connection.sql(duck_sql)
                if relation is None:
                    raise QueryError("NOT_SUPPORTED",
                                     f"the statement returns no rows; the local engine runs {SUPPORTED}")
                columns = [c.lower() for c in relation.columns]  # Trino folds every identifier to lower case
                types = [athena_type(t) for t in relation.types]
                if as_arrow:
                    arrow = relation.to_arrow_table()
                else:
                    rows = relation.fetchall()
                if cancel.is_cancelled():
                    raise QueryCancelled()
            except duckdb.InterruptException:
                raise QueryCancelled() from None
            except duckdb.Error as error:
                if cancel.is_cancelled():
                    raise QueryCancelled() from None
                raise _translate(error, text) from None
            finally:
                cancel.detach()
        finally:
            connection.close()
        return Result(columns=columns, types=types, rows=rows, statement_type="DML",
                      bytes_scanned=scanned, files_read=files, arrow=arrow)

    # --- writes into Iceberg tables ------------------------------------------------------------

    def _vacuum(self, match: re.Match[str], database: str) -> Result:
        """`VACUUM t`: snapshots older than the table's `vacuum_max_snapshot_age_seconds` (Athena's default
        5 days) expire, the current one never (Athena also deletes orphan files; not done locally)."""
        db, name = _split_name(match["table"], database)
        if not is_iceberg(self.catalog.table(db, name)):
            raise QueryError("NOT_SUPPORTED", f"VACUUM {db}.{name}: only Iceberg tables can be vacuumed")
        iceberg = self.catalog.iceberg_table(db, name)
        age = int(iceberg.properties.get("vacuum_max_snapshot_age_seconds", VACUUM_MAX_SNAPSHOT_AGE_SECONDS))
        cutoff_ms = int((time.time() - age) * 1000)
        current = iceberg.current_snapshot()
        old = [snapshot.snapshot_id for snapshot in iceberg.snapshots() if snapshot.timestamp_ms < cutoff_ms
               and (current is None or snapshot.snapshot_id != current.snapshot_id)]
        if old:
            try:
                iceberg.maintenance.expire_snapshots().by_ids(old).commit()
            except Exception as exc:
                raise QueryError("ICEBERG_COMMIT_ERROR", f"VACUUM {db}.{name}: {exc}", category=SYSTEM,
                                 retryable=True) from None
        return Result(columns=[], types=[], rows=[], statement_type="DML", update_count=len(old))

    def _merge_matched(self, merge: Any, text: str, database: str, cancel: Cancellation,
                       cutoff: int | None) -> Result:
        """A MERGE with WHEN MATCHED [AND p] THEN UPDATE SET ... | DELETE clauses (and at most one WHEN
        NOT MATCHED THEN INSERT): the target's affected partitions are recomputed in DuckDB and
        replaced in one Iceberg commit (pyiceberg overwrite of those partitions)."""
        import duckdb  # noqa: PLC0415
        import pyarrow as pa  # noqa: PLC0415
        from sqlglot import exp  # noqa: PLC0415

        target_node = merge.this
        db, name = (target_node.db or database).lower(), target_node.name.lower()
        if not is_iceberg(self.catalog.table(db, name)):
            raise QueryError("NOT_SUPPORTED", f"MERGE INTO {db}.{name}: only Iceberg tables can be written")
        whens = list(merge.args["whens"].expressions)
        matched = [w for w in whens if w.args.get("matched")]
        not_matched = [w for w in whens if not w.args.get("matched")]
        if any(w.args.get("source") for w in whens) or len(not_matched) > 1:
            raise QueryError("NOT_SUPPORTED", "MERGE locally takes WHEN MATCHED clauses and at most one WHEN NOT "
                             "MATCHED THEN INSERT (no WHEN NOT MATCHED BY SOURCE)")
        iceberg = self.catalog.iceberg_table(db, name)
        schema = iceberg.schema().as_arrow()
        target = self.catalog.read(db, name).table
        rid = "__signals_rid"
        target = target.append_column(rid, pa.array(range(target.num_rows), pa.int64()))
        using = merge.args["using"]
        source_alias = using.alias_or_name
        target_alias = target_node.alias_or_name
        source = self._run(exp.select("*").from_(using.copy()), text, database, cancel, cutoff, as_arrow=True)

        def sql(node: Any) -> str:
            return str(node.sql(dialect="duckdb"))

        conditions = [sql(w.args["condition"]) if w.args.get("condition") is not None else "TRUE" for w in matched]
        clause = "CASE " + " ".join(f"WHEN {c} THEN {i}" for i, c in enumerate(conditions)) + " END"
        outputs = []
        for target_field in schema:
            column = f'{quote_duck(target_alias)}.{quote_duck(target_field.name)}'
            branches = []
            for condition, when in zip(conditions, matched, strict=True):
                then = when.args.get("then")
                value = column
                if isinstance(then, exp.Update):
                    for assignment in then.expressions:
                        if assignment.this.name.lower() == target_field.name:
                            value = sql(assignment.expression)
                elif not (isinstance(then, exp.Var) and then.name.upper() == "DELETE"):
                    raise QueryError("NOT_SUPPORTED", "WHEN MATCHED takes UPDATE SET ... or DELETE")
                branches.append(f"WHEN {condition} THEN {value}")
            outputs.append(f"CASE {' '.join(branches)} ELSE {column} END AS {quote_duck(target_field.name)}")
        query = (f"SELECT {quote_duck(target_alias)}.{rid} AS {rid}, {clause} AS __signals_clause, "
                 f"{', '.join(outputs)} "
                 f"FROM __signals_target AS {quote_duck(target_alias)} JOIN __signals_source AS "
                 f"{quote_duck(source_alias)} ON {sql(merge.args['on'])}")
        connection = duckdb.connect()
        try:
            connection.execute("SET TimeZone='UTC'")
            for macro in _TRINO_SESSION:
                connection.execute(macro)
            connection.register("__signals_target", target)
            connection.register("__signals_source", source.arrow)
            try:
                hits = connection.sql(f"SELECT * FROM ({query}) WHERE __signals_clause IS NOT NULL").to_arrow_table()
            except duckdb.Error as error:
                raise _translate(error, text) from None
        finally:
            connection.close()
        rids = hits.column(rid).to_pylist()
        if len(rids) != len(set(rids)):
            raise QueryError("MERGE_TARGET_ROW_MULTIPLE_MATCHES",
                             "One MERGE target table row matched more than one source row")
        deletes = {i for i, w in enumerate(matched) if not isinstance(w.args.get("then"), exp.Update)}
        clauses = hits.column("__signals_clause").to_pylist()
        updated = hits.filter(pa.array([c not in deletes for c in clauses], pa.bool_()))
        inserted = None
        if not_matched:
            insert_merge = merge.copy()
            insert_merge.set("whens", exp.Whens(expressions=[not_matched[0].copy()]))
            select, columns = _merge_as_select(insert_merge)
            ran = self._run(select, text, database, cancel, cutoff, as_arrow=True)
            inserted = _conform(ran.arrow, iceberg, columns, ran.columns, f"{db}.{name}")
        if cancel.is_cancelled():
            raise QueryCancelled()
        names = [f.name for f in schema]
        changed = _conform(updated.select(names), iceberg, names, names, f"{db}.{name}")
        added = inserted.num_rows if inserted is not None else 0
        if not rids and not added:
            return Result(columns=[], types=[], rows=[], statement_type="DML", update_count=0)
        partition_columns = [iceberg.schema().find_field(f.source_id).name for f in iceberg.spec().fields]
        touched = set(rids)
        keep_mask = pa.array([i not in touched for i in range(target.num_rows)], pa.bool_())
        affected: dict[str, set[str]] = {column: set() for column in partition_columns}
        for column in partition_columns:
            touched_rows = target.filter(pa.array([i in touched for i in range(target.num_rows)], pa.bool_()))
            for piece in (touched_rows, inserted):
                if piece is not None and piece.num_rows:
                    affected[column].update(str(v) for v in piece.column(column).to_pylist() if v is not None)
        constraints = [Constraint(column, "IN", tuple(sorted(values))) for column, values in affected.items() if values]
        kept = target.filter(keep_mask)
        for constraint in constraints:
            values = kept.column(constraint.column).to_pylist()
            kept = kept.filter(pa.array([str(v) in constraint.values for v in values], pa.bool_()))
        kept = _conform(kept.select(names), iceberg, names, names, f"{db}.{name}")
        parts = [kept, changed] + ([inserted] if inserted is not None else [])
        try:
            iceberg.overwrite(pa.concat_tables(parts), overwrite_filter=iceberg_filter(constraints) or "true")
        except Exception as exc:
            raise QueryError("ICEBERG_COMMIT_ERROR", f"MERGE INTO {db}.{name}: {exc}", category=SYSTEM,
                             retryable=True) from None
        return Result(columns=[], types=[], rows=[], statement_type="DML", bytes_scanned=source.bytes_scanned,
                      files_read=source.files_read, update_count=len(rids) + added)

    def _optimize(self, match: re.Match[str], text: str, database: str, cancel: Cancellation) -> Result:
        """`OPTIMIZE t REWRITE DATA USING BIN_PACK [WHERE partition conditions]`: the matching rows are
        rewritten as few files in one commit (pyiceberg overwrite), as Athena's bin packing does."""
        import sqlglot  # noqa: PLC0415
        from sqlglot import exp  # noqa: PLC0415

        db, name = _split_name(match["table"], database)
        if not is_iceberg(self.catalog.table(db, name)):
            raise QueryError("NOT_SUPPORTED", f"OPTIMIZE {db}.{name}: only Iceberg tables can be optimized")
        iceberg = self.catalog.iceberg_table(db, name)
        partition_columns = {iceberg.schema().find_field(f.source_id).name for f in iceberg.spec().fields}
        constraints: list[Constraint] = []
        if match["where"]:
            condition = sqlglot.parse_one(match["where"], read="trino")
            terms = list(condition.flatten()) if isinstance(condition, exp.And) else [condition]
            for term in terms:
                found = _constraint(term)
                if found is None or found[1].column not in partition_columns or isinstance(term, exp.Between):
                    raise QueryError("NOT_SUPPORTED", "OPTIMIZE's WHERE takes conditions on partition columns "
                                     f"({', '.join(sorted(partition_columns))}) against literals, joined by AND")
                constraints.append(found[1])
        row_filter = iceberg_filter(constraints) or "true"
        scan = iceberg.scan(row_filter=row_filter)
        tasks = list(scan.plan_files())
        if len(tasks) <= 1:
            return Result(columns=[], types=[], rows=[], statement_type="DML", files_read=len(tasks))
        rows = scan.to_arrow()
        if cancel.is_cancelled():
            raise QueryCancelled()
        try:
            iceberg.overwrite(rows, overwrite_filter=row_filter)
        except Exception as exc:
            raise QueryError("ICEBERG_COMMIT_ERROR", f"OPTIMIZE {db}.{name}: {exc}", category=SYSTEM,
                             retryable=True) from None
        return Result(columns=[], types=[], rows=[], statement_type="DML", files_read=len(tasks),
                      bytes_scanned=sum(t.file.file_size_in_bytes for t in tasks))

    def _write(self, text: str, database: str, parameters: Sequence[str] | None, cancel: Cancellation,
               cutoff: int | None) -> Result:
        """`INSERT INTO iceberg_table [(cols)] query` and `MERGE INTO iceberg_table USING ... WHEN NOT
        MATCHED THEN INSERT`: the rows to add are computed by DuckDB and appended in one Iceberg commit."""
        import sqlglot  # noqa: PLC0415
        from sqlglot import exp  # noqa: PLC0415
        from sqlglot.errors import ParseError  # noqa: PLC0415

        try:
            statements = [s for s in sqlglot.parse(text, read="trino") if s is not None]
        except ParseError as error:
            first = error.errors[0] if error.errors else {}
            raise QueryError("SYNTAX_ERROR", f"line {first.get('line', 1)}:{first.get('col', 1)}: "
                             f"{first.get('description', str(error))}") from None
        if len(statements) != 1:
            raise QueryError("", f"Only one sql statement is allowed. Got: {text}")
        statement = statements[0]
        _reject_unknown_functions(text, statement)
        if parameters is not None or any(True for _ in statement.find_all(exp.Placeholder)):
            statement = _bind(statement, list(parameters or []))
        if isinstance(statement, exp.Insert):
            target_node = statement.this.this if isinstance(statement.this, exp.Schema) else statement.this
            columns = ([c.name.lower() for c in statement.this.expressions]
                       if isinstance(statement.this, exp.Schema) else None)
            source = statement.expression
            if isinstance(source, exp.Values):
                source = exp.select("*").from_(source)
            if not isinstance(source, exp.Query) or statement.args.get("overwrite"):
                raise QueryError("NOT_SUPPORTED", "only INSERT INTO ... SELECT/VALUES is supported locally")
            select = source
        elif isinstance(statement, exp.Merge):
            whens = statement.args.get("whens")
            if whens is not None and any(w.args.get("matched") for w in whens.expressions):
                return self._merge_matched(statement, text, database, cancel, cutoff)
            target_node = statement.this
            select, columns = _merge_as_select(statement)
        else:
            _unsupported(text.split(None, 1)[0].lower())
        target_db = (target_node.db or database).lower()
        target_name = target_node.name.lower()
        table = self.catalog.table(target_db, target_name)
        if not is_iceberg(table):
            raise QueryError("NOT_SUPPORTED", f"{type(statement).__name__.upper()} INTO {target_db}.{target_name}: "
                             "only Iceberg tables can be written (as in Athena; Hive tables locally not at all)")
        ran = self._run(select, text, database, cancel, cutoff, as_arrow=True)
        iceberg = self.catalog.iceberg_table(target_db, target_name)
        rows = _conform(ran.arrow, iceberg, columns, ran.columns, f"{target_db}.{target_name}")
        if cancel.is_cancelled():
            raise QueryCancelled()
        if rows.num_rows:
            try:
                iceberg.append(rows)
            except Exception as exc:
                raise QueryError("ICEBERG_COMMIT_ERROR", f"{target_db}.{target_name}: {exc}", category=SYSTEM,
                                 retryable=True) from None
        return Result(columns=[], types=[], rows=[], statement_type="DML", bytes_scanned=ran.bytes_scanned,
                      files_read=ran.files_read, update_count=rows.num_rows)


# --- parsing and rewriting -----------------------------------------------------------------------


def _strip(sql: str) -> str:
    text = sql.strip()
    while text.endswith(";"):
        text = text[:-1].rstrip()
    return text


def statement_text(sql: str) -> str:
    """The statement without its surrounding blanks and trailing semicolons (both engines take it so);
    an empty one fails as Athena fails it."""
    text = _strip(sql)
    if not text:
        raise QueryError("SYNTAX_ERROR", "line 1:1: the statement is empty")
    return text


def _parse(text: str) -> Any:
    import sqlglot  # noqa: PLC0415
    from sqlglot import exp  # noqa: PLC0415
    from sqlglot.errors import ParseError, TokenError  # noqa: PLC0415

    word = text.split(None, 1)[0].lower().lstrip("(")
    if word in _UNSUPPORTED_WORDS:
        _unsupported(word)
    try:
        statements = [s for s in sqlglot.parse(text, read="trino") if s is not None]
    except ParseError as error:
        first = error.errors[0] if error.errors else {}
        where = f"line {first.get('line', 1)}:{first.get('col', 1)}: " if first else ""
        raise QueryError("SYNTAX_ERROR", f"{where}{first.get('description', str(error))}") from None
    except TokenError as error:
        raise QueryError("SYNTAX_ERROR", str(error)) from None
    if len(statements) != 1:
        raise QueryError("", f"Only one sql statement is allowed. Got: {text}")
    statement = statements[0]
    _reject_non_trino(text, statement)
    if isinstance(statement, exp.Query) and not isinstance(statement, exp.Command):
        return statement
    _unsupported(word)


def _reject_non_trino(text: str, statement: Any) -> None:
    """sqlglot reads some syntax Trino's parser refuses (found by the differential corpus): refuse it too."""
    import sqlglot  # noqa: PLC0415
    from sqlglot import exp  # noqa: PLC0415
    from sqlglot.tokenizer_core import TokenType  # noqa: PLC0415

    depth, limits = 0, set()
    for token in sqlglot.tokenize(text, read="trino"):
        if token.token_type == TokenType.DCOLON:  # DuckDB's and PostgreSQL's `x::type`
            raise QueryError("SYNTAX_ERROR", f"line {token.line}:{token.col - 1}: mismatched input '::'")
        if token.token_type == TokenType.R_PAREN:
            limits.discard(depth)
        depth += {TokenType.L_PAREN: 1, TokenType.R_PAREN: -1}.get(token.token_type, 0)
        if token.token_type == TokenType.LIMIT:
            limits.add(depth)
        elif token.token_type == TokenType.OFFSET and depth in limits:  # Trino: OFFSET n, then LIMIT m
            raise QueryError("SYNTAX_ERROR", f"line {token.line}:{token.col - 5}: mismatched input 'OFFSET'. "
                             "Expecting: <EOF>")
    if statement.find(exp.ILike) is not None:
        raise QueryError("SYNTAX_ERROR", f"{_where(text, 'ILIKE')}mismatched input 'ILIKE'")
    _reject_unknown_functions(text, statement)


def _is_date(node: Any) -> bool:
    """A date by its syntax: `DATE '...'`, `CAST(x AS date)`, `current_date`, `date(x)`."""
    from sqlglot import exp  # noqa: PLC0415

    if isinstance(node, exp.Cast):
        return bool(node.to.is_type("date"))
    return isinstance(node, exp.CurrentDate | exp.Date | exp.TsOrDsToDate)


def _reject_unknown_functions(text: str, statement: Any) -> None:
    """A call sqlglot does not know passes through to DuckDB as written: one Trino lacks (DuckDB's
    `strftime`, `list_value`, ...) is FUNCTION_NOT_FOUND here, as on Athena (signals.sql.functions)."""
    from sqlglot import exp  # noqa: PLC0415

    known = trino_function_names()
    for node in statement.find_all(exp.Anonymous):
        name = str(node.name)
        if name.lower() not in known:
            raise QueryError("FUNCTION_NOT_FOUND", f"{_where(text, name)}Function '{name.lower()}' not registered")


def _duckdb_shims(statement: Any) -> Any:
    """Trino functions whose sqlglot rendering means something else in DuckDB, rewritten in place:

    - `cardinality(x)`: sqlglot writes DuckDB's `array_length`, which refuses a map; DuckDB's own
      `cardinality` takes maps and lists, as Trino's does.
    - `CAST(x AS JSON)`: Trino makes a JSON value of x (a varchar becomes a JSON string); DuckDB's
      cast parses x as JSON text. `to_json(x)` is Trino's meaning.
    - `grouping(...)`: Trino's is an integer, DuckDB's a bigint.
    - `slice(a, start, length)`: sqlglot passes the length as DuckDB's inclusive end.
    - `m['key']` (a string key: a map): an absent key fails, as in Trino, where DuckDB returns NULL.
    - `json_extract(x, path)`: Trino's is of type json (DuckDB's of x's type, varchar here).
    - `CAST(x AS varchar)` of a timestamp: every digit of its precision, as Trino prints it.
    - `typeof(x)`: Trino's type names.
    - `ROW(a, b)`: its anonymous fields are `field0`, `field1`, as Athena prints them
      (https://docs.aws.amazon.com/athena/latest/ug/creating-row.html); sqlglot named them `_0`, `_1`.
    - a date plus or minus an interval is a date in Trino (DuckDB's is a timestamp): cast back where
      the operand is a date by its syntax (a literal, a cast, `current_date`, `date(x)`).

    Nodes are rewritten innermost first, so an outer rewrite copies the inner ones' results.
    """
    from sqlglot import exp  # noqa: PLC0415

    for node in reversed(list(statement.find_all(exp.ArraySize))):
        node.replace(exp.Anonymous(this="cardinality", expressions=[node.this.copy()]))
    for node in reversed(list(statement.find_all(exp.Struct))):
        cast_to_row = isinstance(node.parent, exp.Cast) and node.parent.to.is_type("struct")
        if not cast_to_row and not any(isinstance(e, exp.PropertyEQ) for e in node.expressions):
            node.set("expressions", [exp.PropertyEQ(this=exp.to_identifier(f"field{i}"), expression=e.copy())
                                     for i, e in enumerate(node.expressions)])
    for node in reversed(list(statement.find_all(exp.Typeof))):
        node.replace(exp.Anonymous(this=_TYPEOF, expressions=[node.this.copy()]))
    for node in reversed(list(statement.find_all(exp.Add, exp.Sub))):
        operands = (node.this, node.expression)
        if any(isinstance(o, exp.Interval) for o in operands) and any(_is_date(o) for o in operands):
            node.replace(exp.Cast(this=node.copy(), to=exp.DataType.build("date")))
    for node in reversed(list(statement.find_all(exp.Cast))):
        if node.to.is_type("json"):
            node.replace(exp.Anonymous(this="to_json", expressions=[node.this.copy()]))
        elif node.to.is_type("varchar") and not node.to.expressions and not isinstance(node, exp.TryCast):
            node.replace(exp.Anonymous(this=_VARCHAR, expressions=[node.this.copy()]))
    for node in reversed(list(statement.find_all(exp.Grouping))):
        node.replace(exp.cast(node.copy(), "INTEGER"))
    for node in reversed(list(statement.find_all(exp.Bracket))):
        keys = node.expressions
        if not node.args.get("safe") and len(keys) == 1 and isinstance(keys[0], exp.Literal) and keys[0].is_string:
            node.replace(exp.Anonymous(this=_MAP_SUBSCRIPT, expressions=[node.this.copy(), keys[0].copy()]))
    for node in reversed(list(statement.find_all(exp.JSONExtract))):
        if not isinstance(node.parent, exp.Cast):
            node.replace(exp.Cast(this=node.copy(), to=exp.DataType.build("JSON")))
    for node in reversed(list(statement.find_all(exp.ArraySlice))):
        start, length = node.args.get("start"), node.args.get("end")
        if start is not None and length is not None:
            end = exp.Sub(this=exp.Add(this=start.copy(), expression=length.copy()), expression=exp.Literal.number(1))
            node.replace(exp.Anonymous(this="list_slice", expressions=[node.this.copy(), start.copy(), end]))
    return statement


def _unsupported(word: str) -> NoReturn:
    kind = _UNSUPPORTED_WORDS.get(word, word.upper())
    raise QueryError(
        "NOT_SUPPORTED",
        f"{kind} is not supported by the local Athena engine, which runs {SUPPORTED} (docs/local-stack.md)",
    )


def _bind(statement: Any, parameters: list[str]) -> Any:
    import sqlglot  # noqa: PLC0415
    from sqlglot import exp  # noqa: PLC0415

    placeholders = list(statement.find_all(exp.Placeholder))
    if len(placeholders) != len(parameters):
        raise QueryError("INVALID_PARAMETER_USAGE",
                         f"Incorrect number of parameters: expected {len(placeholders)} but found {len(parameters)}")
    for placeholder, value in zip(placeholders, parameters, strict=True):
        placeholder.replace(sqlglot.parse_one(value, read="trino"))
    return statement


def _name_columns(statement: Any) -> None:
    """Unnamed output columns are `_col0`, `_col1`, ... as Trino names them."""
    from sqlglot import exp  # noqa: PLC0415

    select = statement
    while isinstance(select, exp.SetOperation):
        select = select.this
    if not isinstance(select, exp.Select):
        return
    for index, expression in enumerate(select.expressions):
        if isinstance(expression, exp.Alias | exp.Column | exp.Star):
            continue
        expression.replace(exp.alias_(expression.copy(), f"_col{index}"))


def _references(statement: Any, text: str, database: str) -> list[tuple[Any, tuple[str, str, int]]]:
    """Every catalog table the statement reads: (node, (database, table, offset in the text))."""
    from sqlglot import exp  # noqa: PLC0415

    ctes = {cte.alias_or_name.lower() for cte in statement.find_all(exp.CTE)}
    found = []
    for table in list(statement.find_all(exp.Table)):
        if not isinstance(table.this, exp.Identifier):
            continue  # UNNEST(...), table functions
        name = table.name.lower()
        db = table.db.lower() if table.db else None
        if db is None and name in ctes:
            continue
        catalog = table.catalog.lower() if table.catalog else DEFAULT_CATALOG
        starts = [part.meta.get("start") for part in table.parts if isinstance(part, exp.Identifier)]
        offset = min((int(start) for start in starts if start is not None), default=0)
        if catalog != DEFAULT_CATALOG:
            raise QueryError("CATALOG_NOT_FOUND", f"{position(text, offset)}: Catalog '{catalog}' does not exist")
        if table.args.get("version") is not None:
            raise QueryError("NOT_SUPPORTED", f"{position(text, offset)}: time travel (FOR ... AS OF) on {name} "
                             "is not supported by the local engine")
        found.append((table, (db or database, name, offset)))
    return found


def _constraints(table: Any, key: tuple[str, str], references: list[Any]) -> list[Constraint]:
    """The query's conditions that prune this table's partitions, as Athena prunes them: top-level AND
    terms of the WHERE of every SELECT reading the table (`col = 'v'`, `IN`, `<`, `<=`, `>`, `>=`,
    `BETWEEN`, a string literal on one side), the column qualified by the table's name or alias, or
    unqualified when the SELECT reads nothing else. When the table is read in several places, only
    what holds in all of them prunes (none, unless each is constrained)."""
    from sqlglot import exp  # noqa: PLC0415

    readers = [node for node, (db, name, _) in references if (db, name) == key]
    found: list[list[Constraint]] = []
    for node in readers:
        select = node.parent_select
        if select is None or node.find_ancestor(exp.Join, exp.From) is None:
            return []
        if node.find_ancestor(exp.Select) is not select:
            return []
        sources = [t for t in select.find_all(exp.Table) if t.parent_select is select]
        names = {node.alias_or_name.lower(), node.name.lower()}
        where = select.args.get("where")
        terms = list(where.this.flatten()) if where is not None and isinstance(where.this, exp.And) else (
            [where.this] if where is not None else [])
        here = []
        for term in terms:
            constraint = _constraint(term)
            if constraint is None:
                continue
            column, found_constraint = constraint
            qualifier = column.table.lower() if column.table else None
            if (qualifier is None and len(sources) == 1) or qualifier in names:
                here.append(found_constraint)
        found.append(here)
    if not found or any(not f for f in found):
        return []
    common = [c for c in found[0] if all(c in other for other in found[1:])]
    return common


def _constraint(term: Any) -> tuple[Any, Constraint] | None:
    from sqlglot import exp  # noqa: PLC0415

    def string(node: Any) -> str | None:
        return str(node.this) if isinstance(node, exp.Literal) and node.is_string else None

    flipped = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "=": "="}
    ops = {exp.EQ: "=", exp.LT: "<", exp.LTE: "<=", exp.GT: ">", exp.GTE: ">="}
    for kind, op in ops.items():
        if isinstance(term, kind):
            if isinstance(term.this, exp.Column) and string(term.expression) is not None:
                return term.this, Constraint(term.this.name.lower(), op, (str(string(term.expression)),))
            if isinstance(term.expression, exp.Column) and string(term.this) is not None:
                return term.expression, Constraint(term.expression.name.lower(), flipped[op],
                                                   (str(string(term.this)),))
            return None
    if isinstance(term, exp.In) and isinstance(term.this, exp.Column) and term.expressions:
        values = [string(e) for e in term.expressions]
        if all(v is not None for v in values) and not term.args.get("query"):
            return term.this, Constraint(term.this.name.lower(), "IN", tuple(str(v) for v in values))
    if isinstance(term, exp.Between) and isinstance(term.this, exp.Column):
        low, high = string(term.args.get("low")), string(term.args.get("high"))
        if low is not None and high is not None:
            # Two constraints are one term here: keep the lower bound, the upper is applied by the WHERE.
            return term.this, Constraint(term.this.name.lower(), ">=", (low,))
    return None


def _injected_values(statement: Any, catalog: GlueCatalog, database: str, name: str) -> dict[str, frozenset[str]]:
    """Literal values the WHERE gives injected projection columns (`col = 'x'`, `col IN ('x', 'y')`)."""
    from sqlglot import exp  # noqa: PLC0415

    if "$" in name:
        return {}  # an Iceberg metadata table
    table = catalog.table(database, name)
    parameters = table.get("Parameters") or {}
    injected = [k["Name"].lower() for k in table.get("PartitionKeys") or []
                if str(parameters.get(f"projection.{k['Name']}.type", "")).lower() == "injected"]
    values: dict[str, set[str]] = {column: set() for column in injected}
    for node in statement.find_all(exp.EQ, exp.In):
        left = node.this
        if not isinstance(left, exp.Column) or left.name.lower() not in values:
            continue
        if isinstance(node, exp.EQ) and isinstance(node.expression, exp.Literal):
            values[left.name.lower()].add(node.expression.name)
        elif isinstance(node, exp.In):
            values[left.name.lower()].update(e.name for e in node.expressions if isinstance(e, exp.Literal))
    for column, found in values.items():
        if not found:
            raise QueryError(
                "CONSTRAINT_VIOLATION",
                f"For the injected projected partition column {column}, the WHERE clause must contain only static "
                "equality conditions, and at least one such condition must be present.",
            )
    return {column: frozenset(found) for column, found in values.items()}


def quote_duck(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _merge_as_select(merge: Any) -> tuple[Any, list[str] | None]:
    """`MERGE INTO t USING s ON c WHEN NOT MATCHED [AND p] THEN INSERT (cols) VALUES (v)` as
    `SELECT v FROM s WHERE NOT EXISTS (SELECT 1 FROM t WHERE c) [AND p]`."""
    from sqlglot import exp  # noqa: PLC0415

    whens = merge.args.get("whens")
    clauses = list(whens.expressions) if whens is not None else []
    if len(clauses) != 1 or clauses[0].args.get("matched") or clauses[0].args.get("source"):
        raise QueryError("NOT_SUPPORTED", "MERGE INTO is supported locally with one WHEN NOT MATCHED THEN INSERT "
                         "clause (no WHEN MATCHED UPDATE/DELETE)")
    when = clauses[0]
    insert = when.args.get("then")
    if not isinstance(insert, exp.Insert) or not isinstance(insert.expression, exp.Tuple):
        raise QueryError("NOT_SUPPORTED", "MERGE ... THEN INSERT needs its VALUES (...) locally")
    columns = ([c.name.lower() for c in insert.this.expressions] if isinstance(insert.this, exp.Tuple) else None)
    target = merge.this.copy()
    source = merge.args["using"].copy()
    absent = exp.Exists(this=exp.select("1").from_(target).where(merge.args["on"].copy()))
    condition: Any = exp.Not(this=absent)
    if when.args.get("condition") is not None:
        condition = exp.and_(condition, when.args["condition"].copy())
    select = exp.Select(expressions=[e.copy() for e in insert.expression.expressions]).from_(source).where(condition)
    return select, columns


def _conform(arrow: Any, iceberg: Any, columns: list[str] | None, produced: list[str], name: str) -> Any:
    """The computed rows as the Iceberg table's Arrow schema (named columns by position, the rest NULL)."""
    import pyarrow as pa  # noqa: PLC0415

    schema = iceberg.schema().as_arrow()
    targets = columns if columns is not None else [field.name for field in schema]
    if len(targets) != len(produced):
        raise QueryError("TYPE_MISMATCH", f"Insert query has {len(produced)} columns, {name} expects {len(targets)}")
    unknown = [c for c in targets if c not in schema.names]
    if unknown:
        raise QueryError("COLUMN_NOT_FOUND", f"Insert column name does not exist in target table {name}: {unknown[0]}")
    arrays = []
    for target in schema:
        if target.name not in targets:
            if not target.nullable:
                raise QueryError("CONSTRAINT_VIOLATION", f"NULL value not allowed for NOT NULL column: {target.name}")
            arrays.append(pa.nulls(arrow.num_rows, target.type))
            continue
        column = arrow.column(targets.index(target.name))
        if not target.nullable and column.null_count:
            raise QueryError("CONSTRAINT_VIOLATION", f"NULL value not allowed for NOT NULL column: {target.name}")
        try:
            if pa.types.is_timestamp(column.type) and column.type.tz is not None:
                column = column.cast(pa.timestamp(column.type.unit))
            arrays.append(column.cast(target.type))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise QueryError("TYPE_MISMATCH", f"column {target.name} of {name}: cannot write {column.type} as "
                             f"{target.type} ({exc})") from None
    return pa.Table.from_arrays(arrays, schema=schema)


# --- errors --------------------------------------------------------------------------------------

_NOT_FOUND_COLUMN = re.compile(r'Referenced column "([^"]+)" not found|does not have a column named "([^"]+)"')
#: `a.b` where `a` is neither a relation nor a row column: Trino reports the column unresolved.
_NOT_FOUND_QUALIFIER = re.compile(r'Referenced table "([^"]+)" not found')
_NOT_FOUND_FUNCTION = re.compile(r"(?:Scalar|Aggregate|Table) Function with name \"?([\w.]+)\"? does not exist")


#: DuckDB messages and the Trino error names of the same failures.
_ERROR_NAMES: Final = (
    ("Division by zero", "DIVISION_BY_ZERO"),
    ("must appear in the GROUP BY clause", "EXPRESSION_NOT_AGGREGATE"),
    ("Ambiguous reference to column", "AMBIGUOUS_NAME"),
)


def _translate(error: Exception, text: str) -> QueryError:
    import duckdb  # noqa: PLC0415

    message = str(error)
    first_line = message.splitlines()[0] if message else type(error).__name__
    if (match := _NOT_FOUND_COLUMN.search(message)) is not None:
        column = match[1] or match[2]
        return QueryError("COLUMN_NOT_FOUND", f"{_where(text, column)}Column '{column}' cannot be resolved or "
                          "requester is not authorized to access requested resources")
    if (match := _NOT_FOUND_QUALIFIER.search(message)) is not None:
        return QueryError("COLUMN_NOT_FOUND", f"{_where(text, match[1])}Column '{match[1]}' cannot be resolved or "
                          "requester is not authorized to access requested resources")
    if (match := _NOT_FOUND_FUNCTION.search(message)) is not None:
        return QueryError("FUNCTION_NOT_FOUND", f"{_where(text, match[1])}Function '{match[1]}' not registered")
    for pattern, name in _ERROR_NAMES:
        if pattern in message:
            return QueryError(name, first_line)
    if isinstance(error, duckdb.ParserException):
        return QueryError("SYNTAX_ERROR", f"{first_line} (local engine: DuckDB, after transpiling)")
    if isinstance(error, duckdb.ConversionException):
        return QueryError("INVALID_CAST_ARGUMENT", first_line)
    if isinstance(error, duckdb.BinderException) and "function" in message.lower():
        return QueryError("FUNCTION_NOT_FOUND", first_line)
    if isinstance(error, duckdb.BinderException):
        return QueryError("TYPE_MISMATCH", first_line)
    if isinstance(error, duckdb.OutOfMemoryException):
        return QueryError("EXCEEDED_LOCAL_MEMORY_LIMIT", first_line, category=SYSTEM)
    if isinstance(error, duckdb.InvalidInputException | duckdb.OutOfRangeException):
        return QueryError("INVALID_FUNCTION_ARGUMENT", first_line)
    if isinstance(error, duckdb.NotImplementedException):
        return QueryError("NOT_SUPPORTED", f"{first_line} (local engine: DuckDB)")
    return QueryError("GENERIC_USER_ERROR", f"{first_line} (local engine: DuckDB)", category=USER)


def _where(text: str, identifier: str) -> str:
    match = re.search(rf'(?<![\w"]){re.escape(identifier)}(?![\w"])|"{re.escape(identifier)}"', text, re.IGNORECASE)
    return f"{position(text, match.start())}: " if match else ""


# --- helpers -------------------------------------------------------------------------------------


def _unquote(name: str) -> str:
    name = name.strip()
    if len(name) >= 2 and name[0] == name[-1] and name[0] in "`\"":
        return name[1:-1]
    return name.lower()


def _split_name(qualified: str, database: str) -> tuple[str, str]:
    parts = [_unquote(p) for p in re.findall(_NAME, qualified)]
    return (parts[0].lower(), parts[1].lower()) if len(parts) == 2 else (database, parts[0].lower())


def _hive_like(name: str, pattern: str | None) -> bool:
    """SHOW's pattern: `*` any characters, `|` alternatives, case-insensitive."""
    if not pattern:
        return True
    alternatives = [re.escape(p.strip()).replace(r"\*", ".*") for p in pattern.split("|")]
    return re.fullmatch("|".join(alternatives), name, re.IGNORECASE) is not None


def _all_columns(table: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    columns = list((table.get("StorageDescriptor") or {}).get("Columns") or [])
    names = {c["Name"] for c in columns}
    return columns + [k for k in table.get("PartitionKeys") or [] if k["Name"] not in names]


def _describe_line(column: Mapping[str, Any]) -> str:
    return f"{column['Name']:<20}\t{column.get('Type', ''):<20}\t{column.get('Comment', '') or ''}".rstrip()


def _utility_result(columns: list[str], rows: list[tuple[Any, ...]]) -> Result:
    return Result(columns=columns, types=[UTILITY_TYPE] * len(columns), rows=rows, statement_type="UTILITY")


def transpile(sql: str) -> str:
    """Athena (Trino) SQL as DuckDB runs it (what the engine does to a query, without the catalog)."""
    return str(_duckdb_shims(_parse(_strip(sql))).sql(dialect="duckdb"))

