"""The differential corpus's comparison (tests/e2e/corpus/harness.py): what counts as agreeing."""

from __future__ import annotations

from tests.e2e.corpus.harness import Outcome, Query, compare, load_corpus

COLUMNS = [("device", "varchar", 2147483647, 0), ("mean", "double", 17, 0)]


def ok(rows: list[list[str | None]], columns: list[tuple[str, str, int, int]] = COLUMNS) -> Outcome:
    text = "".join(",".join(f'"{v}"' if v is not None else "" for v in row) + "\n"
                   for row in [[c[0] for c in columns], *rows])
    return Outcome("SUCCEEDED", 0.1, columns=columns, rows=rows, result_text=text)


def failed(name: str, category: int = 2) -> Outcome:
    return Outcome("FAILED", 0.1, error_name=name, error_category=category, reason=f"{name}: line 1:8: ...")


def test_unordered_rows_agree_as_multisets_and_floats_within_the_tolerance() -> None:
    query = Query(id="q", sql="SELECT 1")
    left = ok([["a", "0.30000000000000004"], ["b", "1.5"]])
    right = ok([["b", "1.5"], ["a", "0.3"]])
    assert compare(query, left, right) == []
    assert compare(Query(id="q", sql="SELECT 1", ordered=True), left, right) != []


def test_a_float_written_another_way_or_off_by_more_differs() -> None:
    query = Query(id="q", sql="SELECT 1")
    assert compare(query, ok([["a", "1.0E7"]]), ok([["a", "10000000.0"]])) != []
    assert compare(query, ok([["a", "1.5"]]), ok([["a", "1.5000001"]])) != []


def test_types_nulls_and_error_classes() -> None:
    query = Query(id="q", sql="SELECT 1")
    assert compare(query, ok([["a", "1.5"]]), ok([["a", "1.5"]], [COLUMNS[0], ("mean", "real", 7, 0)])) != []
    assert compare(query, ok([["a", None]]), ok([["a", ""]])) != []  # NULL is not ''
    must_fail = Query(id="f", sql="SELECT nope", error="COLUMN_NOT_FOUND")
    assert compare(must_fail, failed("COLUMN_NOT_FOUND"), failed("COLUMN_NOT_FOUND")) == []
    assert compare(must_fail, failed("TYPE_MISMATCH"), failed("COLUMN_NOT_FOUND")) != []
    assert compare(must_fail, ok([["a", "1.5"]]), failed("COLUMN_NOT_FOUND")) != []
    assert compare(query, failed("SYNTAX_ERROR"), ok([["a", "1.5"]])) != []


def test_the_corpus_is_well_formed() -> None:
    queries = load_corpus()
    assert len(queries) >= 60
    assert all(q.difference is None or q.difference.strip() for q in queries)
    assert sum(1 for q in queries if q.error) >= 10
