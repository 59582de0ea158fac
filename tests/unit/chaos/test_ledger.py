"""The ledger's arithmetic: accepted, lost, duplicated, counted the way the report promises."""

from __future__ import annotations

from collections import Counter

from shared.schema import device_event_key
from signals.chaos.clients import answered
from signals.chaos.ledger import QUARANTINE, REJECT, ROW, LakeView, Ledger, event_key_of, reconcile
from signals.local.simulate import encode_batch


def ledger_with(*events: tuple[str, str, str]) -> Ledger:
    ledger = Ledger()
    for event_id, kind, expected in events:
        ledger.predicted(event_id, kind, expected)
    return ledger


def test_an_event_accepted_once_and_compacted_once_is_neither_lost_nor_doubled() -> None:
    ledger = ledger_with(("a", "lock", ROW), ("b", "lock", ROW), ("q", "lock", QUARANTINE), ("r", "lock", REJECT))
    ledger.sent(["a", "b", "q", "r"])
    ledger.api_answer("telemetry", 200, ["a", "b", "q"], {"r": "unknown_device_type"}, at=1.0)
    ledger.sent(["a", "b", "q"])  # the answer was lost: the client sent them again
    ledger.api_answer("telemetry", 200, ["a", "b", "q"], {}, at=2.0, kept_from_client=False)
    lake = LakeView(verified=Counter({"a": 2, "b": 2}), quarantined=Counter({"q": 2}),
                    compacted=Counter({"a": 1, "b": 1}))
    report = reconcile(ledger.snapshot(), lake)
    assert (report.events_sent, report.accepted, report.rejected) == (4, 3, 1)
    assert (report.verified_rows, report.compacted_rows, report.quarantined) == (4, 2, 1)
    assert (report.lost, report.duplicated_verified, report.duplicated_compacted) == (0, 2, 0)
    assert report.ok


def test_an_accepted_event_missing_from_the_compacted_layer_is_lost_and_named_with_where_it_was_seen() -> None:
    ledger = ledger_with(("a", "lock", ROW), ("b", "bridge", ROW), ("c", "bridge", ROW))
    ledger.sent(["a", "b", "c"])
    ledger.api_answer("telemetry", 200, ["a", "b", "c"], {}, at=1.0)
    lake = LakeView(verified=Counter({"a": 1, "b": 1}), verified_keys={"b": "telemetry_flat/type=bridge/x.parquet"},
                    compacted=Counter({"a": 1}), raw_keys={"c": "raw/json_telemetry/2026/obj.gz"},
                    registered_keys=set())
    report = reconcile(ledger.snapshot(), lake)
    assert report.lost == 2
    assert not report.ok
    assert [entry["event_id"] for entry in report.lost_ids] == ["b", "c"]
    assert "telemetry_flat/type=bridge/x.parquet (no registry item" in report.lost_ids[0]["last_seen"]
    assert report.lost_ids[1]["last_seen"].startswith("raw s3 object raw/json_telemetry/2026/obj.gz")


def test_a_second_compacted_copy_fails_the_run_and_an_unanswered_event_is_not_lost() -> None:
    ledger = ledger_with(("a", "otlp_logs", ROW), ("never", "otlp_logs", ROW))
    ledger.sent(["a", "never"])
    ledger.api_answer("logs", 200, ["a"], {}, at=1.0)
    lake = LakeView(verified=Counter({"a": 2, "never": 1}), compacted=Counter({"a": 2, "never": 1}))
    report = reconcile(ledger.snapshot(), lake)
    assert report.lost == 0  # "never" was never accepted: finding it is fine, missing it would be too
    assert report.landed_unacknowledged == 1
    assert report.duplicated_compacted == 2 - 1 + 0
    assert report.duplicated_ids[0]["event_id"] == "a"
    assert not report.ok


def test_without_a_compacted_layer_loss_is_counted_against_the_verified_layer() -> None:
    ledger = ledger_with(("a", "lock", ROW), ("b", "lock", ROW))
    ledger.sent(["a", "b"])
    ledger.api_answer("telemetry", 200, ["a", "b"], {}, at=1.0)
    report = reconcile(ledger.snapshot(), LakeView(verified=Counter({"a": 3})))
    assert (report.lost_basis, report.lost, report.compacted_rows, report.duplicated_compacted) == (
        "verified", 1, None, None)


def test_a_good_event_in_quarantine_is_misjudged() -> None:
    ledger = ledger_with(("a", "lock", ROW))
    ledger.sent(["a"])
    ledger.api_answer("telemetry", 200, ["a"], {}, at=1.0)
    report = reconcile(ledger.snapshot(), LakeView(quarantined=Counter({"a": 1}), compacted=Counter()))
    assert (report.lost, report.misjudged) == (0, 1)


def test_the_api_answer_is_read_per_event_position() -> None:
    events = [{"event_id": "a", "device_id": "d1"}, {"event_id": "b", "device_id": "d1"},
              {"event_id": "c", "device_id": "d1"}, {"event_id": "d", "device_id": "d1"}]
    a, b, c, d = (device_event_key("d1", x) for x in "abcd")
    for style in range(3):
        body, headers = encode_batch(events, style, gzipped=style == 1)
        route, ids, accepted, rejected = answered(
            "/v1/telemetry", body, headers, 503,
            b'{"accepted": 2, "rejected": [{"index": 1, "reason": "unknown_device_type"}], "not_written": [3]}')
        assert (route, ids) == ("telemetry", [a, b, c, d])
        assert accepted == [a, c]  # b rejected, d not written: the client resends d only
        assert rejected == {b: "unknown_device_type"}
        assert answered("/v1/telemetry", body, headers, 200, b'{"accepted": 4, "rejected": []}')[2] == [a, b, c, d]
        assert answered("/v1/telemetry", body, headers, 400, b'{"message": "x"}')[2] == []


def test_two_devices_sending_the_same_event_id_are_two_ledger_events() -> None:
    """The ledger keys device events as the compacted layer does, (device_id, event_id): one row each
    for two devices numbering their events alike is no duplicate, and a missing one is a loss."""
    body, headers = encode_batch([{"event_id": "1", "device_id": "lock-1"}, {"event_id": "1", "device_id": "lock-2"}],
                                 0, gzipped=False)
    ids = answered("/v1/telemetry", body, headers, 200, b'{"accepted": 2, "rejected": []}')[2]
    assert ids == [event_key_of({"device_id": "lock-1", "event_id": "1"}),
                   event_key_of({"device_id": "lock-2", "event_id": "1"})]
    ledger = ledger_with(*((i, "lock", ROW) for i in ids))
    ledger.sent(ids)
    ledger.api_answer("telemetry", 200, ids, {}, at=1.0)
    report = reconcile(ledger.snapshot(), LakeView(verified=Counter(ids), compacted=Counter(ids[:1])))
    assert (report.lost, report.duplicated_compacted) == (1, 0)
    assert report.lost_ids[0]["event_id"] == ids[1]
