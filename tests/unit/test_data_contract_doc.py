"""docs/data-contract.md lists every column of every table with its Glue type, as the schema has it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from shared import schema

DOC = Path(__file__).resolve().parents[2] / "docs" / "data-contract.md"
ROW = re.compile(r"^\| `(?P<name>[a-z_]+)` \| `(?P<type>[^`]+)`")


def documented_columns(table_name: str) -> list[tuple[str, str]]:
    text = DOC.read_text()
    start = text.index(f"### `{table_name}`")
    end = text.find("\n### ", start + 1)
    section = text[start:end if end != -1 else None]
    return [(m["name"], m["type"]) for line in section.splitlines() if (m := ROW.match(line))]


@pytest.mark.parametrize("table", schema.TABLES, ids=lambda t: t.name)
def test_doc_lists_the_schema(table: schema.TableSpec) -> None:
    expected = [(c["Name"], c["Type"]) for c in schema.glue_columns(table)]
    assert documented_columns(table.name) == expected


@pytest.mark.parametrize("table", schema.AUDIT_TABLES, ids=lambda t: t.name)
def test_doc_lists_the_audit_tables(table: schema.AuditTableSpec) -> None:
    expected = [(c["Name"], c["Type"]) for c in schema.compacted_glue_columns(table)]
    assert documented_columns(table.name) == expected


def test_doc_lists_what_the_compacted_tables_add_to_the_verified_columns() -> None:
    for table in schema.COMPACTED_TABLES:
        added = [(c["Name"], c["Type"]) for c in schema.compacted_glue_columns(table)
                 if c["Name"] not in table.source.column_names]
        assert documented_columns("int_{type}_compacted_daily") == added, table.name
        assert f"| `{table.name}` | `{table.source.name}` |" in DOC.read_text()
