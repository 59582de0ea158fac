"""JSON bodies as text: the events' own bytes, for when a parse and re-serialization would not do.

orjson reads up to 1,024 nested levels, so one event nested deeper makes a whole body unreadable;
and it rounds numbers a double cannot hold (`shared.jsontext`). In both cases the ingester works
from the text:

- `event_texts(body)`: the events of one JSON document as their own texts (the elements of a
  top-level array or of `{"events": [...]}`, or the whole object), found by a scan of strings and
  brackets that never recurses, so nesting depth costs it nothing.
- `stamped(text, key, value)`: an object's text, whitespace outside strings removed (a raw line
  holds no newline), with `"key": value` set, replacing any top-level member of that name.
"""

from __future__ import annotations

import orjson

from shared.jsontext import SPACE, colon_after_key, may_round, member_key, members, minified

__all__ = ["event_texts", "may_round", "stamped"]


def event_texts(body: bytes) -> list[bytes] | None:
    """The texts of the events in one JSON document, or None when `body` is not one array or object."""
    start = len(body) - len(body.lstrip(SPACE))
    if body[start:start + 1] not in (b"[", b"{"):
        return None
    found = members(body, start)
    if found is None or body[found[1]:].strip(SPACE):
        return None
    spans, _ = found
    if body[start:start + 1] == b"{":
        keys = [member_key(body, span) for span in spans]
        if "device_type" in keys or "events" not in keys:
            return [body[start:found[1]]]
        span = spans[len(keys) - 1 - keys[::-1].index("events")]  # the last one wins, as in a parse
        colon = colon_after_key(body, span)
        value_start = colon + 1 + len(body[colon + 1:span[1]]) - len(body[colon + 1:span[1]].lstrip(SPACE))
        if body[value_start:value_start + 1] != b"[":
            return [body[start:found[1]]]
        inner = members(body, value_start)
        if inner is None:
            return None
        spans = inner[0]
    return [body[a:b].strip(SPACE) for a, b in spans]


def stamped(text: bytes, key: str, value: str, *, replace: bool) -> bytes:
    """The object `text` on one line with `key` set to the string `value` (appended; any old one dropped)."""
    compact = minified(text)
    member = orjson.dumps({key: value})[1:-1]
    if replace:
        found = members(compact, 0)
        if found is not None:
            kept = [compact[a:b] for a, b in found[0] if member_key(compact, (a, b)) != key]
            return b"{" + b",".join([*kept, member]) + b"}"
    body = compact[1:-1]
    return b"{" + (body + b"," if body else b"") + member + b"}"
