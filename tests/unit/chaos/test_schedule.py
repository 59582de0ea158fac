"""The fault schedule is a function of the seed: reproducible, every fault at least once, inside the run."""

from __future__ import annotations

import pytest

from signals.chaos.schedule import FAULTS, MARGIN, UnknownFault, counts, draw, parse_faults


def test_the_same_seed_gives_the_same_schedule() -> None:
    assert draw(7, 120) == draw(7, 120)
    assert [i.describe() for i in draw(7, 120)] == [i.describe() for i in draw(7, 120)]


def test_another_seed_gives_another_schedule() -> None:
    assert draw(7, 120) != draw(8, 120)


def test_every_fault_is_injected_at_least_once_inside_the_sending_phase() -> None:
    for seed in range(20):
        schedule = draw(seed, 120)
        assert set(counts(schedule)) == set(FAULTS)
        assert all(120 * MARGIN <= i.at_s <= 120 * (1 - MARGIN) for i in schedule)
        assert [i.at_s for i in schedule] == sorted(i.at_s for i in schedule)


def test_longer_runs_inject_more_often() -> None:
    assert all(n == 1 for n in counts(draw(3, 30)).values())
    assert all(n == 11 for n in counts(draw(3, 600)).values())


def test_only_the_named_faults_and_a_clear_error_for_an_unknown_one() -> None:
    schedule = draw(7, 120, ["glue_error", "response_lost"])
    assert set(counts(schedule)) == {"glue_error", "response_lost"}
    assert parse_faults(None) == FAULTS == parse_faults("all")
    with pytest.raises(UnknownFault, match="no_such_fault"):
        parse_faults("glue_error,no_such_fault")


def test_parameters_stay_in_their_ranges() -> None:
    for injection in draw(11, 600):
        if injection.fault == "firehose_outage":
            assert 3.5 <= injection.params["seconds"] <= 7.0  # longer than the ingester's local 3 s budget
        if injection.fault == "response_lost":
            assert injection.params["how"] in ("dropped", "timed_out")
