"""The campaign's ledger: every event sent, every answer the API gave, and what the lake holds.

Clients write to it as they send (`sent`); the network tap in front of the ingest API writes the
API's answer to every request, including the answers it then kept from the client
(`api_answer`), so "accepted" means what the API really said, not what a client happened to hear.
After the settle phase `reconcile(ledger, lake)` compares it with a `LakeView` (rows per event id in
the verified and compacted tables, quarantine records, raw objects) and returns the `Report`.

Event ids: a device event is known by its dedup key, (`device_id`, `event_id`) as
`shared.schema.device_event_key` writes it (`event_key_of`), the key the compacted layer keeps one
row per (an event id is unique per device only); the OpenTelemetry app puts a `chaos.id` attribute
on each log record (the compacted layer keys OTLP rows by content, and the id is part of it, so two
copies of one record are one key, two records are two).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from shared.schema import device_event_key

ROW: Final = "row"
QUARANTINE: Final = "quarantine"
REJECT: Final = "reject"

def event_key_of(document: Mapping[str, Any]) -> str:
    """The ledger id of a device event (a JSON object or a row): its (device_id, event_id) key. An
    event without a device_id (one made to be rejected) keys on an empty device id."""
    device = document.get("device_id")
    return device_event_key("" if device is None else str(device), str(document["event_id"]))


#: How many lost or doubled ids a report names.
NAMED_IDS: Final = 10


@dataclass
class EventEntry:
    kind: str  # device type or "otlp_logs"
    expected: str  # ROW | QUARANTINE | REJECT, as the client predicted when it made the event
    sends: int = 0  # times it went out in a request
    accepted: int = 0  # times the API answered that it was written
    rejected: str | None = None  # the ingester's reason, when it rejected the event
    first_accepted_at: float | None = None


class Ledger:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.events: dict[str, EventEntry] = {}
        self.answers: Counter[str] = Counter()  # "route status" -> requests
        self.answers_kept_from_client: int = 0
        self.requests = 0

    def predicted(self, event_id: str, kind: str, expected: str) -> None:
        """A client made this event (before it is sent: its fate is predicted once)."""
        with self._lock:
            self.events.setdefault(event_id, EventEntry(kind, expected))

    def sent(self, event_ids: Iterable[str]) -> None:
        with self._lock:
            self.requests += 1
            for event_id in event_ids:
                entry = self.events.get(event_id)
                if entry is not None:
                    entry.sends += 1

    def api_answer(self, route: str, status: int, accepted: Iterable[str], rejected: Mapping[str, str],
                   *, at: float, kept_from_client: bool = False) -> None:
        """What the API answered for one request: the ids it wrote and the ids it rejected."""
        with self._lock:
            self.answers[f"{route} {status}"] += 1
            if kept_from_client:
                self.answers_kept_from_client += 1
            for event_id in accepted:
                entry = self.events.get(event_id)
                if entry is not None:
                    entry.accepted += 1
                    if entry.first_accepted_at is None:
                        entry.first_accepted_at = at
            for event_id, reason in rejected.items():
                entry = self.events.get(event_id)
                if entry is not None:
                    entry.rejected = reason

    def snapshot(self) -> dict[str, EventEntry]:
        with self._lock:
            return dict(self.events)


@dataclass
class LakeView:
    """Where each event id was found after the settle phase."""

    verified: Counter[str] = field(default_factory=Counter)  # id -> verified rows
    verified_keys: dict[str, str] = field(default_factory=dict)  # id -> a verified object holding it
    quarantined: Counter[str] = field(default_factory=Counter)  # id -> quarantine records
    compacted: Counter[str] | None = None  # id -> compacted rows; None: no compacted layer read
    raw_keys: dict[str, str] = field(default_factory=dict)  # id -> a raw object holding it (lost ids only)
    registered_keys: set[str] = field(default_factory=set)  # verified keys with a registry item
    unknown_rows: int = 0  # rows whose id no client sent


@dataclass
class Report:
    events_sent: int
    accepted: int
    rejected: int
    verified_rows: int
    compacted_rows: int | None
    quarantined: int
    lost: int
    lost_basis: str  # "compacted" or "verified" (no compacted layer to read)
    duplicated_verified: int
    duplicated_compacted: int | None
    misjudged: int  # an event in the wrong place (a good one quarantined, a bad one as a row)
    landed_unacknowledged: int  # never accepted per the API, found in the lake anyway (a 503 partly written)
    unknown_rows: int
    lost_ids: list[dict[str, str]] = field(default_factory=list)
    duplicated_ids: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)  # faults, repairs, settle_seconds, ...

    @property
    def ok(self) -> bool:
        via_athena = self.extra.get("compacted_rows_via_athena")
        athena_agrees = via_athena is None or via_athena == self.compacted_rows
        return self.lost == 0 and not self.duplicated_compacted and self.unknown_rows == 0 and athena_agrees

    def as_dict(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "events_sent": self.events_sent,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "verified_rows": self.verified_rows,
            "compacted_rows": self.compacted_rows,
            "quarantined": self.quarantined,
            "lost": self.lost,
            "lost_basis": self.lost_basis,
            "duplicated_verified": self.duplicated_verified,
            "duplicated_compacted": self.duplicated_compacted,
            "misjudged": self.misjudged,
            "landed_unacknowledged": self.landed_unacknowledged,
            "unknown_rows": self.unknown_rows,
        }
        document.update(self.extra)
        document["lost_ids"] = self.lost_ids
        document["duplicated_ids"] = self.duplicated_ids
        document["ok"] = self.ok
        return document


def last_seen(event_id: str, entry: EventEntry, lake: LakeView) -> str:
    """The furthest place an event reached (for a lost one: where to look)."""
    if lake.compacted is not None and lake.compacted.get(event_id):
        return "compacted"
    verified_key = lake.verified_keys.get(event_id)
    if verified_key is not None:
        registered = "registered" if verified_key in lake.registered_keys else "no registry item"
        return f"verified s3 object {verified_key} ({registered}; not in the compacted table)"
    raw_key = lake.raw_keys.get(event_id)
    if raw_key is not None:
        return f"raw s3 object {raw_key} (no verified row, no quarantine record)"
    if entry.accepted:
        return f"accepted by the API {entry.accepted} time(s); in no raw object"
    return "sent, never accepted"


def _extra_copies(counts: Mapping[str, int]) -> int:
    return sum(n - 1 for n in counts.values() if n > 1)


def reconcile(events: Mapping[str, EventEntry], lake: LakeView) -> Report:
    sent = {i: e for i, e in events.items() if e.sends}
    accepted = {i: e for i, e in sent.items() if e.accepted}
    rejected = [i for i, e in sent.items() if e.rejected is not None and not e.accepted]
    basis = "compacted" if lake.compacted is not None else "verified"
    landed_rows = lake.compacted if lake.compacted is not None else lake.verified
    lost_ids = sorted(
        (i for i in accepted if not landed_rows.get(i) and not lake.quarantined.get(i)),
        key=lambda i: (accepted[i].first_accepted_at or 0.0, i),
    )
    misjudged = sum(
        1 for i, e in accepted.items()
        if (e.expected == ROW and lake.quarantined.get(i)) or (e.expected == QUARANTINE and lake.verified.get(i))
    )
    landed_unacknowledged = sum(
        1 for i, e in sent.items() if not e.accepted and (lake.verified.get(i) or lake.quarantined.get(i))
    )
    doubled = lake.compacted if lake.compacted is not None else Counter[str]()
    duplicated = sorted(i for i, n in doubled.items() if n > 1)
    return Report(
        events_sent=len(sent),
        accepted=len(accepted),
        rejected=len(rejected),
        verified_rows=sum(lake.verified.values()),
        compacted_rows=sum(lake.compacted.values()) if lake.compacted is not None else None,
        quarantined=sum(1 for i in accepted if lake.quarantined.get(i)),
        lost=len(lost_ids),
        lost_basis=basis,
        duplicated_verified=_extra_copies(lake.verified),
        duplicated_compacted=_extra_copies(lake.compacted) if lake.compacted is not None else None,
        misjudged=misjudged,
        landed_unacknowledged=landed_unacknowledged,
        unknown_rows=lake.unknown_rows,
        lost_ids=[{"event_id": i, "kind": accepted[i].kind, "last_seen": last_seen(i, accepted[i], lake)}
                  for i in lost_ids[:NAMED_IDS]],
        duplicated_ids=[{"event_id": i, "copies": doubled[i], "verified_key": lake.verified_keys.get(i, "")}
                        for i in duplicated[:NAMED_IDS]],
    )
