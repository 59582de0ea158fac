"""JSON bodies as text: the events' own bytes, for when a parse and re-serialization would not do.

orjson reads integers within 64 bits exactly and every other number as a float64, so an integer
beyond 64 bits (`18446744073709551616`) or a decimal with more digits than a double holds
(`9007199254740993.0`) would come back rounded; and it reads up to 1,024 nested levels, so one
event nested deeper makes the whole body unreadable. In both cases the ingester works from the text:

- `may_round(body)`: a cheap scan (one `bytes.translate` and one `find`, about 0.3 ms per 400 KB)
  for a run of 17 or more digits and dots: a number with 16 or more significant digits, which is
  what a double cannot always hold (`9007199254740993.0`) and what every integer beyond 64 bits
  has (`18446744073709551616`). With fewer digits a double prints back the same decimal value,
  whatever the exponent, except below the normal range (`1e-400` reads as 0.0, `4.9e-324` as
  5e-324): that one case is not looked for (it would cost as much again on every body) and raw then
  holds the double orjson read. A long digit run inside a string gives a false alarm, which only
  costs the exact path (much slower per event, still correct).
- `event_texts(body)`: the events of one JSON document as their own texts (the elements of a
  top-level array or of `{"events": [...]}`, or the whole object), found by a scan of strings and
  brackets that never recurses, so nesting depth costs it nothing.
- `stamped(text, key, value)`: an object's text, whitespace outside strings removed (a raw line
  holds no newline), with `"key": value` set, replacing any top-level member of that name.
"""

from __future__ import annotations

import re
from typing import Final

import orjson

#: Digits and dots -> `0`, anything else -> space.
_SHAPE_TABLE: Final = bytes(ord("0") if byte in b"0123456789." else ord(" ") for byte in range(256))
_LONG_RUN: Final = b"0" * 17

#: A string (escapes included), a run of opening or of closing brackets, or a comma.
_TOKEN: Final = re.compile(rb'"(?:[^"\\]++|\\.)*+"|[\[{]++|[\]}]++|,', re.DOTALL)
_OPENING: Final = frozenset(b"[{")
_STRING_OR_SPACE: Final = re.compile(rb'("(?:[^"\\]++|\\.)*+")|[ \t\r\n]+', re.DOTALL)
_SPACE: Final = b" \t\r\n"


def may_round(body: bytes) -> bool:
    """True when `body` may hold a number that orjson would not give back exactly."""
    return _LONG_RUN in body.translate(_SHAPE_TABLE)


def minified(text: bytes) -> bytes:
    """`text` without whitespace outside strings (valid JSON never needs it)."""
    return _STRING_OR_SPACE.sub(rb"\1", text)


def _members(text: bytes, start: int) -> tuple[list[tuple[int, int]], int] | None:
    """Spans of the items of the array or object opening at `start`, and the index after its close.

    For an object, each span is a whole `"key": value` member. None when brackets do not match or
    an item is empty (`[1,,2]`, `[1,]`). Runs of brackets are one token each, so a deeply nested
    item costs a few tokens, not two per level.
    """
    closer = ord("]") if text[start] == ord("[") else ord("}")
    spans: list[tuple[int, int]] = []
    depth = 0
    item_start = start + 1
    for match in _TOKEN.finditer(text, start):
        token = match.group()
        first = token[0]
        if first in _OPENING:
            depth += len(token)
        elif first == ord('"'):
            continue
        elif first == ord(","):
            if depth == 1:
                if not text[item_start:match.start()].strip(_SPACE):
                    return None
                spans.append((item_start, match.start()))
                item_start = match.end()
        else:
            if len(token) < depth:
                depth -= len(token)
                continue
            end = match.start() + depth  # the bracket that closes `start`
            if text[end - 1] != closer:
                return None
            last = text[item_start:end - 1]
            if last.strip(_SPACE):
                spans.append((item_start, end - 1))
            elif spans:
                return None  # a trailing comma
            return spans, end
    return None


def _key(text: bytes, span: tuple[int, int]) -> str | None:
    """The key of an object member's span."""
    match = _TOKEN.search(text, span[0], span[1])
    if match is None or not match.group().startswith(b'"'):
        return None
    try:
        key = orjson.loads(match.group())
    except orjson.JSONDecodeError:
        return None
    return key if isinstance(key, str) else None


def event_texts(body: bytes) -> list[bytes] | None:
    """The texts of the events in one JSON document, or None when `body` is not one array or object."""
    start = len(body) - len(body.lstrip(_SPACE))
    if body[start:start + 1] not in (b"[", b"{"):
        return None
    found = _members(body, start)
    if found is None or body[found[1]:].strip(_SPACE):
        return None
    spans, _ = found
    if body[start:start + 1] == b"{":
        keys = [_key(body, span) for span in spans]
        if "device_type" in keys or "events" not in keys:
            return [body[start:found[1]]]
        span = spans[len(keys) - 1 - keys[::-1].index("events")]  # the last one wins, as in a parse
        colon = _colon_after_key(body, span)
        value_start = colon + 1 + len(body[colon + 1:span[1]]) - len(body[colon + 1:span[1]].lstrip(_SPACE))
        if body[value_start:value_start + 1] != b"[":
            return [body[start:found[1]]]
        inner = _members(body, value_start)
        if inner is None:
            return None
        spans = inner[0]
    return [body[a:b].strip(_SPACE) for a, b in spans]


def _colon_after_key(text: bytes, span: tuple[int, int]) -> int:
    key = _TOKEN.search(text, span[0], span[1])
    if key is None:
        return span[1]
    colon = text.find(b":", key.end(), span[1])
    return span[1] if colon == -1 else colon


def stamped(text: bytes, key: str, value: str, *, replace: bool) -> bytes:
    """The object `text` on one line with `key` set to the string `value` (appended; any old one dropped)."""
    compact = minified(text)
    member = orjson.dumps({key: value})[1:-1]
    if replace:
        found = _members(compact, 0)
        if found is not None:
            kept = [compact[a:b] for a, b in found[0] if _key(compact, (a, b)) != key]
            return b"{" + b",".join([*kept, member]) + b"}"
    body = compact[1:-1]
    return b"{" + (body + b"," if body else b"") + member + b"}"
