"""JSON as text: spans of an object's members and a cheap test for numbers a double may round.

orjson reads integers within 64 bits exactly and every other number as a float64, so an integer
beyond 64 bits (`18446744073709551616`) or a decimal with more digits than a double holds
(`9007199254740993.0`) comes back rounded. Where a value must stay as sent (the ingester's raw
lines, the parser's `extra`), these work from the text instead:

- `may_round(text)`: a cheap scan (one `bytes.translate` and one `find`, about 0.3 ms per 400 KB)
  for a run of 17 or more digits and dots: a number with 16 or more significant digits, which is
  what a double cannot always hold and what every integer beyond 64 bits has. With fewer digits a
  double prints back the same decimal value, whatever the exponent, except below the normal range
  (`1e-400` reads as 0.0, `4.9e-324` as 5e-324): that one case is not looked for (it would cost as
  much again on every body). A long digit run inside a string gives a false alarm, which only
  costs the slower exact path.
- `members(text, start)`: the spans of the items of the array or object opening at `start`, by a
  scan of strings and brackets that never recurses (nesting depth costs it nothing);
  `member_key` and `member_value` split an object member's span.
- `minified(text)`: the text without whitespace outside strings.
- `json_kind(value)`: the JSON kind of a parsed value (`int`, `float`, `bool`, `string`, `array`,
  `object`; None for null), as schema drift counts keys and `signals schema suggest` infers fields.
"""

from __future__ import annotations

import re
from typing import Any, Final

import orjson

#: Digits and dots -> `0`, anything else -> space.
_SHAPE_TABLE: Final = bytes(ord("0") if byte in b"0123456789." else ord(" ") for byte in range(256))
_LONG_RUN: Final = b"0" * 17

#: A string (escapes included), a run of opening or of closing brackets, or a comma.
_TOKEN: Final = re.compile(rb'"(?:[^"\\]++|\\.)*+"|[\[{]++|[\]}]++|,', re.DOTALL)
_OPENING: Final = frozenset(b"[{")
_STRING_ORSPACE: Final = re.compile(rb'("(?:[^"\\]++|\\.)*+")|[ \t\r\n]+', re.DOTALL)
SPACE: Final = b" \t\r\n"


def may_round(body: bytes) -> bool:
    """True when `body` may hold a number that orjson would not give back exactly."""
    return _LONG_RUN in body.translate(_SHAPE_TABLE)


def minified(text: bytes) -> bytes:
    """`text` without whitespace outside strings (valid JSON never needs it)."""
    return _STRING_ORSPACE.sub(rb"\1", text)


def members(text: bytes, start: int) -> tuple[list[tuple[int, int]], int] | None:
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
                if not text[item_start:match.start()].strip(SPACE):
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
            if last.strip(SPACE):
                spans.append((item_start, end - 1))
            elif spans:
                return None  # a trailing comma
            return spans, end
    return None


def member_key(text: bytes, span: tuple[int, int]) -> str | None:
    """The key of an object member's span."""
    match = _TOKEN.search(text, span[0], span[1])
    if match is None or not match.group().startswith(b'"'):
        return None
    try:
        key = orjson.loads(match.group())
    except orjson.JSONDecodeError:
        return None
    return key if isinstance(key, str) else None


def colon_after_key(text: bytes, span: tuple[int, int]) -> int:
    key = _TOKEN.search(text, span[0], span[1])
    if key is None:
        return span[1]
    colon = text.find(b":", key.end(), span[1])
    return span[1] if colon == -1 else colon


def member_value(text: bytes, span: tuple[int, int]) -> bytes:
    """The value's text of an object member's span (whitespace around it removed)."""
    return text[colon_after_key(text, span) + 1:span[1]].strip(SPACE)


def json_kind(value: Any) -> str | None:
    """The JSON kind of a value orjson parsed: None for null; bool before int (bool is an int)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"
