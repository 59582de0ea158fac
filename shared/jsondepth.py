"""How deeply a JSON text nests, judged from its bytes before any parser recurses into it.

An event nested more than `MAX_DEPTH` levels (the event object itself is level 1; every object or
array inside another adds one) is `too_deep`: the ingester rejects it and the parser quarantines
it. 254 is what orjson can write back (it refuses deeper values), and far below what recursive
readers survive (Python's json stops near 1,000 levels; pyarrow 26's JSON reader crashes the
process near 20,000).

`too_deep` costs two `bytes.count` calls for a normal line: a text with at most `MAX_DEPTH` opening
brackets cannot nest deeper. Only a text with more is scanned (strings removed, brackets counted).
"""

from __future__ import annotations

import re
from itertools import accumulate
from typing import Final

MAX_DEPTH: Final = 254

_STRING: Final = re.compile(rb'"(?:[^"\\]++|\\.)*+"', re.DOTALL)
_NOT_BRACKETS: Final = bytes(sorted(set(range(256)) - set(b"{}[]")))
_STEP: Final = {ord("{"): 1, ord("["): 1, ord("}"): -1, ord("]"): -1}


def nesting_depth(text: bytes) -> int:
    """The deepest level of `{`/`[` outside strings (for invalid JSON, an estimate)."""
    brackets = _STRING.sub(b"", text).translate(None, _NOT_BRACKETS)
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0)


def too_deep(text: bytes, limit: int = MAX_DEPTH) -> bool:
    """True when `text` nests more than `limit` levels."""
    if text.count(b"{") + text.count(b"[") <= limit:
        return False
    return nesting_depth(text) > limit


def depth_message(limit: int = MAX_DEPTH) -> str:
    return f"nested more than {limit} levels deep (objects and arrays inside each other)"
