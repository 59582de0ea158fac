"""Comparisons Trino refuses when it plans a query, refused before DuckDB runs it.

Trino has no implicit cast between character and numeric types: `device_id = 1` (a varchar column,
an integer) and `battery_pct = 'full'` (a bigint column, a varchar) fail with
`TYPE_MISMATCH: line 1:N: Cannot apply operator: varchar = integer` whatever the rows hold
(https://trino.io/docs/current/language/types.html, "Type conversions" in
https://trino.io/docs/current/functions/conversion.html). DuckDB casts one side implicitly and
answers whenever the values happen to cast, so the local engine would run SQL that Athena rejects.

Checked here, where the types are certain: a comparison (`=`, `<>`, `<`, `<=`, `>`, `>=`, `IN (...)`,
`BETWEEN`) of a catalog table's column (qualified by its table's name or alias, or unqualified and
found in exactly one of the SELECT's tables when every source of that SELECT is a catalog table) with
a literal. The column's type is its Glue type; everything else (expressions, subqueries, dates and
timestamps against strings) is left to the engine.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from signals.sql.errors import QueryError, position

# Hive type -> (class, Trino's name for it). Only the two classes Trino never casts between.
_STRING = "string"
_NUMBER = "number"
_HIVE_NUMBERS = {"tinyint": "tinyint", "smallint": "smallint", "int": "integer", "integer": "integer",
                 "bigint": "bigint", "float": "real", "double": "double"}
_DECIMAL = re.compile(r"decimal\s*\(\s*\d+\s*,\s*\d+\s*\)|decimal", re.IGNORECASE)
_CHARACTER = re.compile(r"(string|varchar(\s*\(\s*\d+\s*\))?|char\s*\(\s*\d+\s*\))", re.IGNORECASE)
_INT_MAX = 2**31 - 1

Columns = Mapping[str, str]  # lowercase column name -> Glue (Hive) type


def hive_class(hive_type: str) -> tuple[str, str] | None:
    """(class, Trino type name) of a Glue column type, or None when neither character nor numeric."""
    text = hive_type.strip().lower()
    if text in _HIVE_NUMBERS:
        return _NUMBER, _HIVE_NUMBERS[text]
    if _DECIMAL.fullmatch(text):
        return _NUMBER, text.replace(" ", "")
    if _CHARACTER.fullmatch(text):
        return _STRING, "varchar" if text == "string" else text.replace(" ", "")
    return None


def literal_class(node: Any) -> tuple[str, str] | None:
    """(class, Trino type name) of a literal operand (a string, or a number with an optional sign)."""
    from sqlglot import exp  # noqa: PLC0415

    if isinstance(node, exp.Neg):
        node = node.this
    if not isinstance(node, exp.Literal):
        return None
    value = str(node.this)
    if node.is_string:
        return _STRING, f"varchar({len(value)})"
    if "e" in value.lower():
        return _NUMBER, "double"
    if "." in value:
        whole, fraction = value.split(".", 1)
        digits = len(whole.lstrip("0")) + len(fraction)
        return _NUMBER, f"decimal({max(digits, 1)},{len(fraction)})"
    return _NUMBER, "integer" if abs(int(value)) <= _INT_MAX else "bigint"


def check_comparisons(statement: Any, text: str, catalog_tables: Mapping[int, Callable[[], Columns]]) -> None:
    """Raise TYPE_MISMATCH for the first comparison of a character column with a numeric literal (or
    the reverse). `catalog_tables` maps the id() of each catalog table node the statement reads to a
    function giving that table's columns (called only when a comparison needs them)."""
    from sqlglot import exp  # noqa: PLC0415

    cache: dict[int, Columns] = {}

    def columns_of(node: Any) -> Columns:
        key = id(node)
        if key not in cache:
            cache[key] = catalog_tables[key]()
        return cache[key]

    for comparison in statement.find_all(exp.EQ, exp.NEQ, exp.LT, exp.LTE, exp.GT, exp.GTE, exp.In, exp.Between):
        for column, other, operator in _pairs(comparison):
            column_type = _column_type(column, comparison, catalog_tables, columns_of)
            if column_type is None:
                continue
            literal = literal_class(other)
            if literal is None or literal[0] == column_type[0]:
                continue
            left, right = (column_type[1], literal[1]) if column is comparison.this else (literal[1], column_type[1])
            where = _offset(column, text)
            prefix = f"{position(text, where)}: " if where is not None else ""
            if operator == "IN":
                message = f"IN value and list items must be the same type: {column_type[1]}"
            elif operator == "BETWEEN":
                message = f"Cannot check if {column_type[1]} is BETWEEN {literal[1]} and {literal[1]}"
            else:
                message = f"Cannot apply operator: {left} {operator} {right}"
            raise QueryError("TYPE_MISMATCH", prefix + message)


def _pairs(comparison: Any) -> list[tuple[Any, Any, str]]:
    """(column, the operand it is compared with, operator) for each column-against-operand pair."""
    from sqlglot import exp  # noqa: PLC0415

    if isinstance(comparison, exp.In):
        if comparison.args.get("query") is not None or not isinstance(comparison.this, exp.Column):
            return []
        return [(comparison.this, item, "IN") for item in comparison.expressions]
    if isinstance(comparison, exp.Between):
        if not isinstance(comparison.this, exp.Column):
            return []
        return [(comparison.this, comparison.args.get("low"), "BETWEEN"),
                (comparison.this, comparison.args.get("high"), "BETWEEN")]
    operator = {exp.EQ: "=", exp.NEQ: "<>", exp.LT: "<", exp.LTE: "<=", exp.GT: ">", exp.GTE: ">="}[type(comparison)]
    pairs = []
    if isinstance(comparison.this, exp.Column):
        pairs.append((comparison.this, comparison.expression, operator))
    if isinstance(comparison.expression, exp.Column):
        pairs.append((comparison.expression, comparison.this, operator))
    return pairs


def _column_type(column: Any, comparison: Any, catalog_tables: Mapping[int, Callable[[], Columns]],
                 columns_of: Callable[[Any], Columns]) -> tuple[str, str] | None:
    """The Glue type class of a column reference, when it certainly names a catalog table's column."""
    from sqlglot import exp  # noqa: PLC0415

    select = comparison.find_ancestor(exp.Select)
    if select is None or column.args.get("db") is not None:
        return None
    name = column.name.lower()
    sources = _sources(select)
    if column.table:
        qualifier = column.table.lower()
        owners = [s for s in sources if s.alias_or_name.lower() == qualifier]
        if len(owners) != 1 or not isinstance(owners[0], exp.Table) or id(owners[0]) not in catalog_tables:
            return None
    else:
        if not sources or any(not isinstance(s, exp.Table) or id(s) not in catalog_tables for s in sources):
            return None
        owners = [s for s in sources if name in columns_of(s)]
        if len(owners) != 1:
            return None
    hive_type = columns_of(owners[0]).get(name)
    return hive_class(hive_type) if hive_type is not None else None


def _sources(select: Any) -> list[Any]:
    """What a SELECT's FROM and JOINs read, directly (tables, subqueries, UNNEST, ...)."""
    sources = []
    from_ = select.args.get("from") or select.args.get("from_")
    if from_ is not None:
        sources.append(from_.this)
    for join in select.args.get("joins") or []:
        sources.append(join.this)
    return sources


def _offset(column: Any, text: str) -> int | None:
    """Where the column reference starts in the text (its identifiers' token positions)."""
    from sqlglot import exp  # noqa: PLC0415

    starts = [part.meta.get("start") for part in column.parts if isinstance(part, exp.Identifier)]
    known = [int(s) for s in starts if s is not None]
    return min(known) if known else None
