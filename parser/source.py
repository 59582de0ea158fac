"""Raw objects as a stream of line blocks: gzip (one or many members) or plain, never whole in memory.

`iter_blocks(stream)` reads fixed-size chunks, decompresses them, and yields blocks of complete
lines of about `block_bytes` each, numbered from 1. Damage (a corrupt or truncated gzip) ends the
stream with a `Damage` item: every complete line before it has been yielded, and the partial line
at the point of damage is what the caller quarantines as `corrupt_input`.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Final, Protocol

from parser.records import MAX_LINE_BYTES, QUARANTINE_PREVIEW_BYTES

_decompressobj: Callable[[int], Any]
_InflateError: type[Exception]
try:  # zlib-ng inflates the same streams at about twice zlib's speed, with the same API
    from zlib_ng import zlib_ng

    _decompressobj = zlib_ng.decompressobj
    _InflateError = zlib_ng.error  # type: ignore[assignment]  # its stub declares an instance, it is the class
except ImportError:  # pragma: no cover - the parser extra installs it
    _decompressobj = zlib.decompressobj
    _InflateError = zlib.error

GZIP_MAGIC: Final = b"\x1f\x8b"
READ_BYTES: Final = 1 << 20
DEFAULT_BLOCK_BYTES: Final = 8 << 20


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


@dataclass(frozen=True)
class Block:
    data: bytes  # complete lines; the last one may lack its newline at the end of the object
    first_line: int
    line_count: int


@dataclass(frozen=True)
class Damage:
    """The object cannot be read past this point."""

    line: int  # number the partial line would have had
    partial: bytes  # start of that line (at most QUARANTINE_PREVIEW_BYTES)
    message: str


@dataclass(frozen=True)
class OversizedLine:
    """A line longer than MAX_LINE_BYTES, skipped while streaming (only a preview is kept)."""

    line: int
    preview: bytes
    size: int


def _chunks(stream: Readable) -> Iterator[bytes]:
    while True:
        chunk = stream.read(READ_BYTES)
        if not chunk:
            return
        yield chunk


class _Inflater:
    """Decompresses gzip members one after another; plain input passes through."""

    def __init__(self, first: bytes) -> None:
        self.gzip = first.startswith(GZIP_MAGIC)
        self._decompressor: Any = _decompressobj(zlib.MAX_WBITS | 16) if self.gzip else None
        self._member_fed = False  # the current member has received bytes (so it must reach its end)
        self.error: str | None = None

    def feed(self, data: bytes) -> bytes:
        if self._decompressor is None:
            return data
        out: list[bytes] = []
        while data:
            self._member_fed = True
            checkpoint = self._decompressor.copy()
            try:
                out.append(self._decompressor.decompress(data))
            except _InflateError as exc:
                self.error = f"corrupt gzip data: {exc}"
                out.append(_salvage(checkpoint, data))
                break
            if not self._decompressor.eof:
                break
            data = self._decompressor.unused_data
            self._decompressor = _decompressobj(zlib.MAX_WBITS | 16)
            self._member_fed = False
            if data and not data.startswith(GZIP_MAGIC[:1]):
                if data.strip(b"\0"):
                    self.error = "data after the last gzip member is not gzip"
                data = b""  # zero padding after the last member is common and harmless
        return b"".join(out)

    def end_error(self) -> str | None:
        """The error that ends the stream, if any, once the input is exhausted."""
        if self.error is not None:
            return self.error
        if self._decompressor is not None and self._member_fed and not self._decompressor.eof:
            return "gzip stream is truncated"
        return None


def _salvage(decompressor: Any, data: bytes) -> bytes:
    """Everything `data` decompresses to before the byte where it fails (slow, only on damage)."""
    out: list[bytes] = []
    step = 4096
    position = 0
    while position < len(data):
        checkpoint = decompressor.copy()
        try:
            out.append(decompressor.decompress(data[position:position + step]))
        except _InflateError:
            if step == 1:
                break
            decompressor = checkpoint
            step = 1
            continue
        position += step
    return b"".join(out)


def iter_blocks(stream: Readable, block_bytes: int = DEFAULT_BLOCK_BYTES) -> Iterator[Block | Damage | OversizedLine]:
    """Blocks of complete lines in order; then a Damage item if the object is corrupt or truncated."""
    chunks = _chunks(stream)
    first = next(chunks, b"")
    if not first:
        return
    inflater = _Inflater(first)
    pending = bytearray()
    next_line = 1
    skipping: OversizedLine | None = None  # inside an oversized line: count it, keep its start

    def pieces() -> Iterator[bytes]:
        yield inflater.feed(first)
        for chunk in chunks:
            if inflater.error is not None:
                return
            yield inflater.feed(chunk)

    for decompressed in pieces():
        piece = decompressed
        if skipping is not None:
            newline = piece.find(b"\n")
            if newline == -1:
                skipping = OversizedLine(skipping.line, skipping.preview, skipping.size + len(piece))
                continue
            yield OversizedLine(skipping.line, skipping.preview, skipping.size + newline)
            next_line += 1
            skipping = None
            piece = piece[newline + 1:]
        pending += piece
        while len(pending) >= block_bytes:
            cut = pending.rfind(b"\n", 0, block_bytes) + 1 or pending.find(b"\n", block_bytes) + 1
            if cut == 0:
                break
            data = bytes(pending[:cut])
            del pending[:cut]
            count = data.count(b"\n")
            yield Block(data, next_line, count)
            next_line += count
        if len(pending) > MAX_LINE_BYTES and b"\n" not in pending:
            skipping = OversizedLine(next_line, bytes(pending[:QUARANTINE_PREVIEW_BYTES]), len(pending))
            pending.clear()

    inflater_error = inflater.end_error()
    if skipping is not None:
        if inflater_error is not None:
            yield Damage(skipping.line, skipping.preview, inflater_error)
            return
        yield skipping
        return
    if inflater_error is not None:
        cut = pending.rfind(b"\n") + 1
        if cut:
            data = bytes(pending[:cut])
            count = data.count(b"\n")
            yield Block(data, next_line, count)
            next_line += count
        yield Damage(next_line, bytes(pending[cut:cut + QUARANTINE_PREVIEW_BYTES]), inflater_error)
        return
    if pending:
        yield Block(bytes(pending), next_line, pending.count(b"\n") + (0 if pending.endswith(b"\n") else 1))

