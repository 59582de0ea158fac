"""The dedup rule, written once, rendered for Athena (Trino SQL) and for DuckDB (the local engine).

The rule (docs/data-contract.md, "Compacted tables"): copies with the same key in the same table
and day are one event. The key is (`device_id`, `event_id`) for device tables (`key_sql`; an event
id is unique per device only) and, for OTLP logs, a fingerprint of a versioned, pinned set of
identity columns (`fingerprint_sql`, `shared.schema.OTLP_FINGERPRINT_COLUMNS`), so a column added
later never changes a stored record's key. The copy kept is the earliest by (`received_at`,
`source_key`, `source_line`), so recomputing a day keeps the same row. A dropped copy whose content
columns all equal the kept one's is a natural duplicate; any other is a conflicting duplicate,
recorded in `duplicate_conflicts` with both lineages and the differing columns.

Every query is built from the same CTE chain over one day of the verified table:

    source_rows  the day's verified rows with their key (`event_key`)
    ranked       + `copy_rank` (row_number over the key, in the rule's order)
    kept         copy_rank = 1: the dedup select, one row per key
    dropped      copy_rank > 1, joined to the kept copy: the differing columns, `conflicting`
    plan         kept joined to the compacted table's day: `action` insert | replace | refresh | keep
                 (refresh: the same copy, re-derived with other content, e.g. by `signals backfill`)

`Dialect` holds the few spellings the two engines disagree on (hashing, a map's canonical text,
JSON of a row); everything else is SQL both accept. The Athena rendering parses as Trino SQL, and
its dedup select transpiled to DuckDB (sqlglot) returns the same rows as the DuckDB rendering: the
unit tests prove both. This module is plain Python (no sqlglot), so the Lambda can carry it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from shared.schema import CompactedTableSpec, FieldSpec, Kind

#: The rule's order of copies of one key: the first is kept.
COPY_ORDER: Final[tuple[str, ...]] = ("received_at", "source_key", "source_line")

_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
_NAME = re.compile(r"[A-Za-z0-9_\-]+")


def quote(name: str) -> str:
    """A double-quoted identifier (both engines); names come from shared.schema and config only."""
    if not _NAME.fullmatch(name):
        raise ValueError(f"not a safe identifier: {name!r}")
    return f'"{name}"'


def relation(database: str | None, table: str) -> str:
    return f"{quote(database)}.{quote(table)}" if database else quote(table)


def literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def check_day(day: str) -> str:
    if not _DAY.fullmatch(day):
        raise ValueError(f"not a day (YYYY-MM-DD): {day!r}")
    return day


@dataclass(frozen=True)
class Dialect:
    name: str  # "athena" (Trino) or "duckdb"

    @property
    def athena(self) -> bool:
        return self.name == "athena"

    @property
    def materialize_ctes(self) -> bool:
        return not self.athena

    def sha256_hex(self, text_sql: str) -> str:
        """Lowercase hex SHA-256 of a varchar's UTF-8 bytes."""
        if self.athena:
            return f"lower(to_hex(sha256(to_utf8({text_sql}))))"
        return f"sha256({text_sql})"

    def map_text(self, map_sql: str) -> str:
        """A map<string,string>'s canonical text: `hash(key):hash(value)|n` entries, sorted, comma-joined."""
        entry_key = self.sha256_hex("entry_key")
        if self.athena:
            entry_value = f"coalesce({self.sha256_hex(f'element_at({map_sql}, entry_key)')}, 'n')"
            return (f"array_join(array_sort(transform(map_keys({map_sql}), "
                    f"entry_key -> {entry_key} || ':' || {entry_value})), ',')")
        entry_value = f"coalesce({self.sha256_hex(f'{map_sql}[entry_key]')}, 'n')"
        return (f"array_to_string(list_sort(list_transform(map_keys({map_sql}), "
                f"lambda entry_key: {entry_key} || ':' || {entry_value})), ',')")

    def row_json(self, columns: Sequence[FieldSpec], alias: str) -> str:
        """A JSON object of these columns of `alias` (for the audit's `conflicting_row`)."""
        if self.athena:
            values = []
            for spec in columns:
                column = f"{alias}.{quote(spec.name)}"
                if spec.kind in (Kind.TIMESTAMP_MS, Kind.TIMESTAMP_US):
                    column = f"to_iso8601({column})"
                values.append(f"CAST({column} AS JSON)")
            names = ", ".join(literal(spec.name) for spec in columns)
            return f"json_format(CAST(MAP(ARRAY[{names}], ARRAY[{', '.join(values)}]) AS JSON))"
        fields = ", ".join(f"{quote(spec.name)} := {alias}.{quote(spec.name)}" for spec in columns)
        return f"CAST(to_json(struct_pack({fields})) AS VARCHAR)"


ATHENA: Final = Dialect("athena")
DUCKDB: Final = Dialect("duckdb")


def column_text(dialect: Dialect, spec: FieldSpec, column_sql: str) -> str:
    """The canonical text of one non-null value, the same in both engines."""
    if spec.kind is Kind.STRING:
        return column_sql
    if spec.kind in (Kind.INT, Kind.INT32, Kind.BOOL):
        return f"CAST({column_sql} AS VARCHAR)"
    if spec.kind in (Kind.TIMESTAMP_MS, Kind.TIMESTAMP_US):
        # Epoch milliseconds: Athena reads Hive timestamps at millisecond precision.
        return f"CAST(date_diff('millisecond', TIMESTAMP '1970-01-01 00:00:00', {column_sql}) AS VARCHAR)"
    if spec.kind is Kind.STRING_MAP:
        return dialect.map_text(column_sql)
    # Trino and DuckDB print doubles differently (1.5E0 / 1.5): a fingerprint over one would differ.
    raise ValueError(f"no engine-independent text for {spec.kind.value} column {spec.name}")


def fingerprint_sql(dialect: Dialect, table: CompactedTableSpec, alias: str | None = None) -> str:
    """SHA-256 (hex) over the pinned identity columns (`table.identity_columns`, one versioned list):
    per column `n` (null) or the hash of its text, comma-joined."""
    prefix = f"{alias}." if alias else ""
    parts = []
    for name in table.identity_columns:
        spec = table.source.field(name)
        column = f"{prefix}{quote(name)}"
        value_hash = dialect.sha256_hex(column_text(dialect, spec, column))
        parts.append(f"CASE WHEN {column} IS NULL THEN 'n' ELSE {value_hash} END")
    return dialect.sha256_hex(" || ',' || ".join(parts))


def key_sql(dialect: Dialect, table: CompactedTableSpec, alias: str | None = None) -> str:
    """The row's dedup key as text: for a device table `shared.schema.device_event_key` of
    (`device_id`, `event_id`), `<length of device_id>:<device_id>:<event_id>`; for OTLP the fingerprint."""
    if table.key_columns:
        prefix = f"{alias}." if alias else ""
        device, event = (f"{prefix}{quote(name)}" for name in table.key_columns)
        return f"(CAST(length({device}) AS VARCHAR) || ':' || {device} || ':' || {event})"
    return fingerprint_sql(dialect, table, alias)


def earlier_sql(left: str, right: str) -> str:
    """`left` comes before `right` in the rule's copy order (both non-null on every column)."""
    received, source_key, source_line = (quote(name) for name in COPY_ORDER)
    return (f"({left}.{received} < {right}.{received} OR ({left}.{received} = {right}.{received} AND "
            f"({left}.{source_key} < {right}.{source_key} OR ({left}.{source_key} = {right}.{source_key} AND "
            f"{left}.{source_line} < {right}.{source_line}))))")


def late_sql(alias: str) -> str:
    """The row's event day is before the day it was received (merged into its own day, counted)."""
    return f"CAST(CAST({alias}.{quote('received_at')} AS DATE) AS VARCHAR) > {alias}.{quote('day')}"


@dataclass(frozen=True)
class Relations:
    """Where a rendering reads and writes (quoted, database-qualified on Athena)."""

    verified: str
    compacted: str
    conflicts: str
    runs: str
    #: A relation already holding `ranked_select()`'s rows: the local engine computes the window once
    #: per day and runs the other queries over it.
    ranked: str | None = None


@dataclass(frozen=True)
class DayQuery:
    """The queries of one (table, day) in one dialect."""

    dialect: Dialect
    table: CompactedTableSpec
    day: str
    relations: Relations

    def __post_init__(self) -> None:
        check_day(self.day)

    # -- the CTE chain -----------------------------------------------------------------------------

    @property
    def _columns(self) -> list[str]:
        return [quote(name) for name in self.table.column_names]

    def _ctes(self, *, with_dropped: bool = False, with_plan: bool = False) -> str:
        order = ", ".join(f"{quote(name)} ASC NULLS LAST" for name in COPY_ORDER)
        content = self._content
        distinct = {s.name: f"{self._comparable(s, 'd')} IS DISTINCT FROM {self._comparable(s, 'k')}" for s in content}
        differs = " OR ".join(distinct.values())
        differing = ", ".join(f"CASE WHEN {test} THEN {literal(name)} END" for name, test in distinct.items())
        kept_lineage = ", ".join(f"k.{quote(name)} AS {quote('kept_' + name)}" for name in COPY_ORDER)
        if self.relations.ranked:
            ctes = [f"ranked AS (SELECT * FROM {self.relations.ranked})"]
        else:
            ctes = [
                f"source_rows AS (SELECT {', '.join(self._columns)}, {key_sql(self.dialect, self.table)} AS event_key "
                f"FROM {self.relations.verified} WHERE {quote('day')} = {literal(self.day)})",
                f"ranked AS (SELECT source_rows.*, row_number() OVER (PARTITION BY event_key ORDER BY {order}) "
                f"AS copy_rank FROM source_rows)",
            ]
        ctes.append("kept AS (SELECT * FROM ranked WHERE copy_rank = 1)")
        if with_dropped:
            ctes.append(
                f"dropped AS (SELECT d.*, {kept_lineage}, ({differs}) AS conflicting, "
                f"concat_ws(',', {differing}) AS differing_columns "
                f"FROM ranked d JOIN kept k ON d.event_key = k.event_key WHERE d.copy_rank > 1)"
            )
        if with_plan:
            target_key = key_sql(self.dialect, self.table, "t")
            ctes.append(
                f"target_rows AS (SELECT t.*, {target_key} AS event_key FROM {self.relations.compacted} t "
                f"WHERE t.{quote('day')} = {literal(self.day)})"
            )
            ctes.append(
                f"plan AS (SELECT k.*, CASE WHEN t.event_key IS NULL THEN 'insert' "
                f"WHEN {earlier_sql('k', 't')} THEN 'replace' "
                f"WHEN {self._rederived('k', 't')} THEN 'refresh' ELSE 'keep' END AS action "
                f"FROM kept k LEFT JOIN target_rows t ON k.event_key = t.event_key)"
            )
        if self.dialect.materialize_ctes:
            # DuckDB inlines a CTE into every reference: compute the window and the joins once (the
            # simple projection and filter stay inline, where copying them would cost more).
            inline = ("source_rows ", "kept ", "ranked AS (SELECT * FROM")
            ctes = [cte if cte.startswith(inline) else cte.replace(" AS (", " AS MATERIALIZED (", 1) for cte in ctes]
        return "WITH " + ",\n".join(ctes) + "\n"

    @property
    def _content(self) -> list[FieldSpec]:
        return [self.table.source.field(name) for name in self.table.content_columns]

    def _rederived(self, kept: str, target: str) -> str:
        """`kept` is the compacted row's own copy (same lineage) with other content: its verified file was
        rewritten (`signals backfill`, a raw object parsed again), so the compacted row takes the new
        derivation. Without this a re-derived copy would be neither earlier nor absent and never reach
        the compacted table; with it, a rerun finds equal content and changes nothing."""
        same_lineage = " AND ".join(f"{kept}.{quote(name)} = {target}.{quote(name)}" for name in COPY_ORDER)
        differs = " OR ".join(f"{self._comparable(spec, kept)} IS DISTINCT FROM {self._comparable(spec, target)}"
                              for spec in self._content)
        return f"({same_lineage} AND ({differs}))"

    def _comparable(self, spec: FieldSpec, alias: str) -> str:
        # Map equality is order-sensitive in DuckDB and not in Trino: compare maps by their canonical text.
        column = f"{alias}.{quote(spec.name)}"
        return self.dialect.map_text(column) if spec.kind is Kind.STRING_MAP else column

    # -- selects -----------------------------------------------------------------------------------

    def ranked_select(self) -> str:
        """Every verified row of the day with its `event_key` and `copy_rank` (1 = the copy kept)."""
        return self._ctes() + "SELECT * FROM ranked"

    def dedup_select(self) -> str:
        """One row per key: the compacted table's columns plus `event_key`."""
        return self._ctes() + f"SELECT {', '.join(self._columns)}, event_key FROM kept"

    def plan_select(self) -> str:
        """The kept rows the compacted table lacks (`insert`), holds a later copy of (`replace`) or holds an
        older derivation of (`refresh`: same lineage, other content)."""
        return (self._ctes(with_plan=True)
                + f"SELECT {', '.join(self._columns)}, event_key, action FROM plan WHERE action <> 'keep'")

    def conflicts_select(self, run_id: str, detected_at: str) -> str:
        """The rows `duplicate_conflicts` takes for this day (columns in the audit table's order)."""
        return self._ctes(with_dropped=True) + self._conflict_rows(run_id, detected_at)

    def _conflict_rows(self, run_id: str, detected_at: str) -> str:
        return (
            f"SELECT {literal(run_id)} AS run_id, {timestamp_literal(detected_at)} AS detected_at, "
            f"{literal(self.table.name)} AS table_name, {literal(self.day)} AS {quote('day')}, event_key, "
            "kept_source_key, kept_source_line, kept_received_at, "
            "source_key AS conflicting_source_key, source_line AS conflicting_source_line, "
            "received_at AS conflicting_received_at, differing_columns, "
            f"{self.dialect.row_json(self._content, 'd')} AS conflicting_row "
            "FROM dropped d WHERE d.conflicting"
        )

    def stats_select(self, run_id: str) -> str:
        """One row: what the day holds and what a MERGE would change (read before the MERGE)."""
        new_conflicts = (
            "SELECT count(*) FROM dropped d WHERE d.conflicting AND NOT EXISTS "
            f"(SELECT 1 FROM {self.relations.conflicts} a "
            f"WHERE a.table_name = {literal(self.table.name)} AND a.{quote('day')} = {literal(self.day)} "
            "AND a.event_key = d.event_key AND a.conflicting_source_key = d.source_key "
            "AND a.conflicting_source_line = d.source_line)"
        )
        return self._ctes(with_dropped=True, with_plan=True) + (
            "SELECT (SELECT count(*) FROM ranked) AS verified_rows, "
            "(SELECT count(*) FROM plan WHERE action = 'insert') AS inserted, "
            "(SELECT count(*) FROM plan WHERE action = 'replace') AS replaced, "
            "(SELECT count(*) FROM plan WHERE action = 'refresh') AS refreshed, "
            "(SELECT count(*) FROM dropped WHERE NOT conflicting) AS natural_duplicates, "
            "(SELECT count(*) FROM dropped WHERE conflicting) AS conflicting_duplicates, "
            f"({new_conflicts}) AS conflicts_recorded, "
            f"(SELECT count(*) FROM plan p WHERE p.action IN ('insert', 'replace') AND {late_sql('p')}) AS late_rows"
        )

    # -- Athena statements -------------------------------------------------------------------------

    def merge(self) -> str:
        """The compacted table's MERGE: absent keys inserted, a later copy replaced by an earlier one."""
        columns = self._columns
        # The partition column is the same on both sides (the ON clause pins the day): never rewritten.
        assignments = ", ".join(f"{c} = s.{c}" for c in columns if c != quote("day"))
        return (
            f"MERGE INTO {self.relations.compacted} AS t\nUSING (\n{self.dedup_select()}\n) AS s\n"
            f"ON t.{quote('day')} = {literal(self.day)} AND {key_sql(self.dialect, self.table, 't')} = s.event_key\n"
            f"WHEN MATCHED AND ({earlier_sql('s', 't')} OR {self._rederived('s', 't')}) "
            f"THEN UPDATE SET {assignments}\n"
            f"WHEN NOT MATCHED THEN INSERT ({', '.join(columns)}) VALUES ({', '.join('s.' + c for c in columns)})"
        )

    def conflicts_merge(self, run_id: str, detected_at: str, audit_columns: Sequence[str]) -> str:
        """Record this day's conflicting copies once (a recompute finds them on record)."""
        columns = [quote(name) for name in audit_columns]
        match = " AND ".join(
            f"a.{quote(name)} = c.{quote(name)}"
            for name in ("table_name", "day", "event_key", "conflicting_source_key", "conflicting_source_line")
        )
        return (
            f"MERGE INTO {self.relations.conflicts} AS a\n"
            f"USING (\n{self.conflicts_select(run_id, detected_at)}\n) AS c\n"
            f"ON {match}\nWHEN NOT MATCHED THEN INSERT ({', '.join(columns)}) "
            f"VALUES ({', '.join('c.' + c for c in columns)})"
        )

    def optimize(self) -> str:
        return (f"OPTIMIZE {self.relations.compacted} REWRITE DATA USING BIN_PACK "
                f"WHERE {quote('day')} = {literal(self.day)}")

    def data_files_select(self, database: str) -> str:
        """How many data files the day has, from the Iceberg `$partitions` metadata table.

        `$partitions` has one row per partition with its `file_count`. `$files` has no `partition`
        column on Athena engine version 3: Athena's published `$files` output lists content,
        file_path, file_format, record_count, ... (Trino added the column in November 2024,
        trinodb/trino#24102), so a per-day count over `$files` would fail with COLUMN_NOT_FOUND
        after every MERGE. A day with no data file has no row: the count is 0.
        """
        partitions = f"{quote(database)}.\"{self.table.name}$partitions\""
        return (f"SELECT coalesce(sum(file_count), 0) AS data_files FROM {partitions} "
                f"WHERE {quote('partition')}.{quote('day')} = {literal(self.day)}")


def timestamp_literal(rfc3339: str) -> str:
    """`TIMESTAMP 'YYYY-MM-DD HH:MM:SS.ffffff'` (UTC, no zone) from an RFC 3339 UTC string."""
    text = rfc3339.rstrip("Zz").replace("T", " ")
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d{1,6})?", text):
        raise ValueError(f"not a UTC timestamp: {rfc3339!r}")
    return f"TIMESTAMP {literal(text)}"


def vacuum(compacted_relation: str) -> str:
    return f"VACUUM {compacted_relation}"

