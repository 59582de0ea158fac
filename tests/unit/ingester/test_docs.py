"""docs/ingest-api.md stays true to the code: its JSON Schema and its configuration table."""

from __future__ import annotations

from ingester.api_schema import DOC, with_schema
from shared.config import IngesterConfig


def test_json_schema_block_is_current() -> None:
    document = DOC.read_text()
    assert document == with_schema(document), "run `python -m ingester.api_schema` to refresh docs/ingest-api.md"


def test_every_ingester_variable_is_documented_with_its_default() -> None:
    document = DOC.read_text()
    for name, field in IngesterConfig.model_fields.items():
        row = next((line for line in document.splitlines() if line.startswith(f"| `{name.upper()}` |")), None)
        assert row is not None, name
        if not field.is_required():
            default = field.default
            assert f"| {int(default) if float(default).is_integer() else default} " in row, row
