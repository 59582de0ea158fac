"""A short fault campaign (slow tier): every fault injected, duplicates in verified, none compacted twice, none lost."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from signals.chaos.campaign import CampaignSettings, run_campaign
from signals.chaos.schedule import FAULTS


@pytest.mark.slow
def test_a_short_campaign_loses_nothing_and_compacts_every_event_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIGNALS_HOME", str(tmp_path / "home"))
    check(run_campaign(CampaignSettings(minutes=0.9, seed=7, rate=100.0)))


@pytest.mark.slow
def test_a_short_campaign_on_trino_loses_nothing_and_compacts_every_event_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same campaign with Trino behind the embedded Athena: the compactor runs its athena engine (the
    code that runs in AWS) there, so its MERGE, OPTIMIZE and VACUUM meet athena_error and crash_compactor."""
    monkeypatch.setenv("SIGNALS_HOME", str(tmp_path / "home"))
    report = run_campaign(CampaignSettings(minutes=0.9, seed=7, rate=100.0, athena_engine="trino"))
    assert report.as_dict()["compactor"]["days_compacted"] > 0
    check(report)


def check(report: Any) -> None:
    document = report.as_dict()
    print(json.dumps(document, indent=2))  # shown by pytest when the test fails
    assert document["settled"], "the pipeline did not settle"
    # athena_error's target is the Athena reader of the compacted layer (signals.chaos.readers): the
    # embedded Athena executes its queries, so it must be there and count what pyiceberg counts.
    assert document["athena_reader"]["available"], "the embedded Athena did not answer the reader"
    missed = {name for name in FAULTS if document["faults"][name] < 1}
    assert not missed, f"faults never injected: {missed}"
    assert document["compacted_rows_via_athena"] == report.compacted_rows
    assert document["fault_details"]["crash_parser_after_outputs"] + document["fault_details"].get(
        "crash_parser_before_record", 0) >= 1
    assert report.accepted > 3000
    assert report.duplicated_verified > 0, "the faults should have put second copies into the verified layer"
    assert report.lost == 0, document["lost_ids"]
    assert report.duplicated_compacted == 0, document["duplicated_ids"]
    assert report.lost_basis == "compacted"
    assert report.compacted_rows is not None
    assert report.compacted_rows + report.quarantined == report.accepted - report.misjudged
    assert report.unknown_rows == 0
    assert document["clients"]["exchanges_the_ledger_could_not_read"] == 0
    assert not document["dlq_messages"]
    assert report.ok
