"""The differential corpus (issue 20): every query of queries.yaml through the local stack's Athena API,
on DuckDB and on Trino over the same data, compared row by row, type by type, and by error class.

One stack runs with `athena_engine="trino"` (a real Trino server on the embedded Glue and S3); a
second embedded Athena answered by DuckDB is switched in on the same gateway for the other half of
each pair. Prints `agree N / M` and each disagreement. A query may differ only when queries.yaml says
why (`difference`) and docs/local-stack.md lists it; one that is listed and agrees fails the test too,
so the list stays true.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from signals.local.stack import LocalSettings, LocalStack
from signals.local.wiring import LocalTimings
from tests.e2e.corpus.harness import DuckDBAthena, Report, load_corpus, own_engine, run_corpus, seed

pytestmark = pytest.mark.slow

DOCS = Path(__file__).resolve().parents[3] / "docs" / "local-stack.md"


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Report]:
    home = tmp_path_factory.mktemp("corpus-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SIGNALS_HOME", str(home))
        settings = LocalSettings(
            port=0, aws_port=0, write_state=False, run_schedules=False, drain_on_stop_seconds=0,
            timings=LocalTimings(buffer_seconds=0.5, visibility_seconds=1, reconcile_seconds=3.0),
            athena_engine="trino",
        )
        with LocalStack(settings) as stack:
            seeded = seed(stack)
            duckdb = DuckDBAthena(stack)
            try:
                # Two at a time: each engine's Athena runs two queries at once (its worker pool).
                yield run_corpus(stack, seeded, load_corpus(), duckdb=duckdb.switched_in, trino=own_engine,
                                 log=lambda line: print(line, flush=True), threads=2)
            finally:
                duckdb.close()


def test_the_corpus_agrees_or_differs_only_as_documented(report: Report, capsys: Any) -> None:
    with capsys.disabled():
        print(f"\ncorpus: {report.agree_line()} (latencies: bench/corpus_engines.py)")
        for query_id, problems in report.differing.items():
            print(f"  differs: {query_id}: {problems[0]}")
    documented = {query.id: query.difference for query, *_ in report.results if query.difference}
    differing = set(report.differing)
    assert differing - set(documented) == set(), "disagreements queries.yaml does not explain"
    assert set(documented) - differing == set(), "listed as differing, but the engines agree: update the list"
    text = DOCS.read_text()
    assert [query_id for query_id in documented if f"`{query_id}`" not in text] == [], (
        "known differences missing from docs/local-stack.md")


def test_the_corpus_is_the_size_the_issue_asks_for(report: Report) -> None:
    assert len(report.results) >= 60
    failing = [q.id for q, *_ in report.results if q.expects_error]
    assert {"fail_unknown_column", "fail_type_mismatch_compare"} <= set(failing)
