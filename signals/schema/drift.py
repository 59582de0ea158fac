"""`signals schema drift --env E`: the unknown keys devices send, from the `schema_drift` table.

The parser writes one line per raw object, device type, key and inferred kind (parser.drift); this
command reads the last `--days` (by arrival) through `signals query`'s engine (the local SQL engine,
or Athena on a deployed env) and sums them per device type and key:

- `kind`: the kind most rows had (`kinds` lists every kind with its rows; an int key that also came
  as a float is suggested as float);
- `share`: rows carrying the key / rows of the device type received in the same window (the
  verified table's `count(*)` filtered on `received_at`, so objects without drift count too);
- first and last seen (`received_at`), and the firmware versions that sent it.

Device types the schema does not know (events parked in quarantine as `unknown_device_type`) are
listed after the keys, with their event counts: `signals schema suggest TYPE` proposes them.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from shared.schema import QUARANTINE_RECORDS_TABLE, SCHEMA_DRIFT_TABLE, TABLES_BY_TYPE, Reason
from signals.env import Environment, Output
from signals.ops.common import environment_from_args

DEFAULT_DAYS: Final = 30
#: Kinds that can become a column; objects and arrays stay in `extra`.
SCALAR_KINDS: Final = ("int", "float", "bool", "string")


@dataclass
class KeyDrift:
    device_type: str
    key: str
    kinds: Counter[str] = field(default_factory=Counter)
    first_seen: str | None = None
    last_seen: str | None = None
    firmware_versions: set[str] = field(default_factory=set)
    type_rows: int = 0

    @property
    def rows(self) -> int:
        return sum(self.kinds.values())

    @property
    def kind(self) -> str:
        """The kind to suggest: the commonest; int widened to float when floats came too."""
        if set(self.kinds) <= {"int", "float"} and "float" in self.kinds:
            return "float"
        return self.kinds.most_common(1)[0][0]

    @property
    def share(self) -> float:
        return self.rows / self.type_rows if self.type_rows else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"device_type": self.device_type, "key": self.key, "kind": self.kind, "kinds": dict(self.kinds),
                "rows": self.rows, "type_rows": self.type_rows, "share": round(self.share, 4),
                "first_seen": self.first_seen, "last_seen": self.last_seen,
                "firmware_versions": sorted(self.firmware_versions)}


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def window_start(days: int, now: datetime | None = None) -> datetime:
    return (now or datetime.now(UTC)) - timedelta(days=days)


def key_drift(env: Environment, *, days: int = DEFAULT_DAYS, device_type: str | None = None) -> list[KeyDrift]:
    from signals.query import query  # noqa: PLC0415

    start = window_start(days)
    table = f'"{env.output(Output.AUDIT_DATABASE)}"."{SCHEMA_DRIFT_TABLE}"'
    where = f"day >= {_quote(start.strftime('%Y-%m-%d'))}"
    if device_type:
        where += f" AND device_type = {_quote(device_type)}"
    result = query(env, f"SELECT device_type, key, kind, rows, first_seen, last_seen, firmware_versions "
                        f"FROM {table} WHERE {where}")
    found: dict[tuple[str, str], KeyDrift] = {}
    for row in result.rows:
        record = dict(zip(result.columns, row, strict=True))
        drift = found.setdefault((str(record["device_type"]), str(record["key"])),
                                 KeyDrift(str(record["device_type"]), str(record["key"])))
        drift.kinds[str(record["kind"])] += int(record["rows"] or 0)
        for moment, pick in ((record["first_seen"], min), (record["last_seen"], max)):
            if moment:
                current = drift.first_seen if pick is min else drift.last_seen
                chosen = pick(str(moment), current) if current else str(moment)
                if pick is min:
                    drift.first_seen = chosen
                else:
                    drift.last_seen = chosen
        drift.firmware_versions.update(str(v) for v in _array(record["firmware_versions"]))
    totals = _type_rows(env, {d.device_type for d in found.values()}, start)
    for drift in found.values():
        drift.type_rows = totals.get(drift.device_type, 0)
    return sorted(found.values(), key=lambda d: (d.device_type, -d.rows, d.key))


def _array(value: Any) -> Iterable[Any]:
    if value is None:
        return ()
    if isinstance(value, str):  # Athena returns an array as its text: [a, b]
        text = value.strip()
        return [part.strip() for part in text.strip("[]").split(",") if part.strip()] if text else ()
    return list(value)


def _type_rows(env: Environment, types: Iterable[str], start: datetime) -> dict[str, int]:
    """Verified rows of each type received since `start` (the share's denominator)."""
    from signals.query import query  # noqa: PLC0415

    totals = {}
    database = env.output(Output.GLUE_DATABASE)
    for type_value in sorted(types):
        table = TABLES_BY_TYPE.get(type_value)
        if table is None:
            continue
        first_day = (start - timedelta(days=1)).strftime("%Y-%m-%d")  # event days lag arrival a little
        result = query(env, f'SELECT count(*) AS n FROM "{database}"."{table.name}" WHERE day >= {_quote(first_day)} '
                            f"AND received_at >= TIMESTAMP {_quote(start.strftime('%Y-%m-%d %H:%M:%S'))}")
        totals[type_value] = int(result.rows[0][0]) if result.rows else 0
    return totals


def parked_events(env: Environment, *, days: int = DEFAULT_DAYS, device_type: str | None = None
                  ) -> list[dict[str, Any]]:
    """The original events parked as `unknown_device_type` (of one type, when given), parsed."""
    from signals.query import query  # noqa: PLC0415

    start = window_start(days)
    table = f'"{env.output(Output.AUDIT_DATABASE)}"."{QUARANTINE_RECORDS_TABLE}"'
    result = query(env, f"SELECT original FROM {table} WHERE reason = {_quote(Reason.UNKNOWN_DEVICE_TYPE.value)} "
                        f"AND day >= {_quote(start.strftime('%Y-%m-%d'))}")
    events = []
    for (original,) in result.rows:
        try:
            event = json.loads(original)
        except (TypeError, ValueError):
            continue
        if isinstance(event, dict) and (device_type is None or event.get("device_type") == device_type):
            events.append(event)
    return events


def parked_types(events: Iterable[Mapping[str, Any]]) -> Counter[str]:
    return Counter(str(e.get("device_type")) for e in events)


def main(args: argparse.Namespace) -> int:
    env = environment_from_args(args)
    if env is None:
        return 2
    from signals.query import QueryFailed  # noqa: PLC0415

    try:
        drift = key_drift(env, days=args.days, device_type=args.device_type)
        parked = parked_types(parked_events(env, days=args.days, device_type=args.device_type))
    except QueryFailed as exc:
        print(f"signals schema drift: {exc}", file=sys.stderr)
        return 1
    if args.json:
        for item in drift:
            print(json.dumps(item.as_dict()))
        for type_value, events in sorted(parked.items()):
            print(json.dumps({"device_type": type_value, "key": None, "parked_events": events}))
        return 0
    if not drift and not parked:
        print(f"no drift in the last {args.days} days: every key devices sent is in the schema")
        return 0
    header = ("type", "key", "kind", "share", "rows", "first seen", "last seen", "firmware")
    lines = [header]
    for item in drift:
        kinds = item.kind if len(item.kinds) == 1 else ", ".join(f"{k} {n}" for k, n in item.kinds.most_common())
        lines.append((item.device_type, item.key, kinds, f"{item.share:.1%}", f"{item.rows}/{item.type_rows}",
                      item.first_seen or "", item.last_seen or "", ", ".join(sorted(item.firmware_versions))))
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(header))]
    for line in lines:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())
    for type_value, events in sorted(parked.items()):
        print(f"unknown device type {type_value!r}: {events} parked event(s) "
              f"(`signals schema suggest {type_value}` proposes it)")
    suggestions = [f"{d.device_type}.{d.key}" for d in drift if d.kind in SCALAR_KINDS]
    if suggestions:
        print(f"`signals schema suggest {suggestions[0]}` prints the patch that adds a key as a column")
    return 0
