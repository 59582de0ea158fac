"""Request bodies: media types, `Content-Encoding`, and bounded decompression.

Decompression is checked while inflating: `zlib.decompressobj(...).decompress(chunk, max_length)`
never produces more than the bytes still allowed, so a gzip bomb stops after `limit + 1` bytes of
output, in a fraction of the time (and memory) a full inflate would take.

API Gateway may already have inflated a body (its content-encoding support), while the
`Content-Encoding: gzip` header is still there: bytes without the gzip magic number are taken as
they are.
"""

from __future__ import annotations

import zlib
from typing import Final

GZIP_MAGIC: Final = b"\x1f\x8b"
_CHUNK: Final = 256 * 1024
_IDENTITY: Final = frozenset({"", "identity"})
_GZIP: Final = frozenset({"gzip", "x-gzip"})
_DEFLATE: Final = frozenset({"deflate"})


class BodyError(ValueError):
    """A body the ingester cannot read; `status` is the HTTP status to answer with."""

    status = 400


class BodyTooLarge(BodyError):
    status = 413


class UnsupportedEncoding(BodyError):
    status = 415


class CorruptBody(BodyError):
    status = 400


def media_type(content_type: str | None) -> str:
    """`application/json; charset=utf-8` -> `application/json` (lower case, parameters dropped)."""
    if not content_type:
        return ""
    return content_type.split(";", 1)[0].strip().lower()


def supported_encoding(content_encoding: str | None) -> bool:
    name = (content_encoding or "").strip().lower()
    return name in _IDENTITY or name in _GZIP or name in _DEFLATE


def decode_body(body: bytes, content_encoding: str | None, limit: int) -> bytes:
    """The request body as the client meant it, at most `limit` bytes after decompression.

    Raises `UnsupportedEncoding` (415), `BodyTooLarge` (413) or `CorruptBody` (400).
    """
    name = (content_encoding or "").strip().lower()
    if name in _IDENTITY:
        result = body
    elif name in _GZIP:
        # No gzip magic: API Gateway (or a proxy) inflated it already.
        result = _inflate(body, wbits=31, limit=limit) if body[:2] == GZIP_MAGIC else body
    elif name in _DEFLATE:
        result = _inflate_deflate(body, limit)
    else:
        raise UnsupportedEncoding(f"unsupported Content-Encoding {name[:40]!r}; use gzip, deflate or none")
    if len(result) > limit:
        raise BodyTooLarge(f"body is larger than {limit} bytes")
    return result


def _inflate_deflate(body: bytes, limit: int) -> bytes:
    """HTTP `deflate` is zlib-wrapped (RFC 9110); some clients send raw deflate. Neither: already inflated."""
    if _looks_like_zlib(body):
        return _inflate(body, wbits=15, limit=limit)
    try:
        return _inflate(body, wbits=-15, limit=limit)
    except CorruptBody:
        return body


def _looks_like_zlib(body: bytes) -> bool:
    if len(body) < 2:
        return False
    cmf, flg = body[0], body[1]
    return cmf & 0x0F == 8 and (cmf >> 4) <= 7 and (cmf * 256 + flg) % 31 == 0


def _inflate(body: bytes, *, wbits: int, limit: int) -> bytes:
    """Inflate every member (concatenated gzip members are one body), stopping past `limit`.

    `max_length` caps each call's output at what is still allowed, so output stops at `limit + 1`
    bytes; an output shorter than the cap means the call consumed all of its input.
    """
    kind = "gzip" if wbits == 31 else "deflate"
    out: list[bytes] = []
    produced = 0
    data = memoryview(body)
    position = 0
    while position < len(data):
        inflater = zlib.decompressobj(wbits)
        fed_to = position
        try:
            while not inflater.eof:
                if fed_to >= len(data):
                    raise CorruptBody(f"{kind} body is truncated")
                chunk_end = min(fed_to + _CHUNK, len(data))
                chunk = inflater.decompress(data[fed_to:chunk_end], limit + 1 - produced)
                fed_to = chunk_end
                produced += len(chunk)
                if produced > limit:
                    raise BodyTooLarge(f"body inflates to more than {limit} bytes")
                out.append(chunk)
        except zlib.error as exc:
            raise CorruptBody(f"body is not valid {kind} data") from exc
        unused = inflater.unused_data
        if wbits != 31 or not unused.strip(b"\x00"):
            break  # trailing zero padding after the last gzip member is common and harmless
        position = fed_to - len(unused)
    return b"".join(out)
