"""Raw objects as a stream of line blocks: gzip (one or many members) or plain, never whole in memory.

`iter_blocks(stream)` reads fixed-size chunks, decompresses them, and yields blocks of complete
lines of about `block_bytes` each, numbered from 1. Damage (a corrupt or truncated gzip) ends the
stream with a `Damage` item: every complete line before it has been yielded, and the partial line
at the point of damage is what the caller quarantines as `corrupt_input`.

A gzip member's lines can only be trusted once its CRC-32 and length trailer checked out, which is
after they were read: a flipped bit can change what a member inflates to long before the check
fails. So `Damage` also says where the failed member began (`member_first_line`) and can give back
that member's lines as far as they can be inflated again (`recover()`, from the member's
compressed bytes, which are kept while it is read: in memory up to `SPOOL_MEMORY_BYTES`, then in a
temporary file). The caller withdraws whatever it made of those lines and quarantines each as
`corrupt_input`; members before it stand.

A UTF-8 byte order mark before the first line is dropped, and an object whose first chunk has
carriage returns but no newline (old Mac line ends) has every CR read as a line end.
"""

from __future__ import annotations

import os
import tempfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
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
SPOOL_MEMORY_BYTES: Final = 2 << 20
_BOM: Final = b"\xef\xbb\xbf"


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


@dataclass(frozen=True)
class Block:
    data: bytes  # complete lines; the last one may lack its newline at the end of the object
    first_line: int
    line_count: int


def _nothing() -> Iterator[bytes]:
    return iter(())


@dataclass(frozen=True)
class Damage:
    """The object cannot be read past this point, and the gzip member it is in failed its check."""

    line: int  # number the partial line would have had
    partial: bytes  # start of that line (at most QUARANTINE_PREVIEW_BYTES)
    message: str
    #: First line (partly) inflated from the failed member; every line from here on is untrusted.
    member_first_line: int = 0
    #: That member's lines from `member_first_line` on, inflated again as far as possible (the last
    #: one is the partial line, if any). Lazy: a damaged member can be large.
    recover: Callable[[], Iterator[bytes]] = field(default=_nothing, compare=False)


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


class _Spool:
    """The compressed bytes of one gzip member: in memory up to SPOOL_MEMORY_BYTES, then in a temporary file."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._size = 0
        self._file: tuple[int, str] | None = None

    def write(self, data: bytes) -> None:
        if self._file is None and self._size + len(data) > SPOOL_MEMORY_BYTES:
            self._file = tempfile.mkstemp(prefix="gzip-member-")
            for chunk in self._chunks:
                os.write(self._file[0], chunk)
            self._chunks = []
        if self._file is not None:
            os.write(self._file[0], data)
        else:
            self._chunks.append(data)
        self._size += len(data)

    def chunks(self) -> Iterator[bytes]:
        if self._file is None:
            yield from self._chunks
            return
        os.lseek(self._file[0], 0, os.SEEK_SET)
        while chunk := os.read(self._file[0], READ_BYTES):
            yield chunk

    def close(self) -> None:
        self._chunks, self._size = [], 0
        if self._file is not None:
            fd, path = self._file
            self._file = None
            os.close(fd)
            os.unlink(path)


class _Inflater:
    """Decompresses gzip members one after another; plain input passes through.

    `boundaries` lists where, in the output of the last `feed`, a new member began; the compressed
    bytes of the member being read are kept in `spool` until it ends (see the module docstring).
    """

    def __init__(self, first: bytes) -> None:
        self.gzip = first.startswith(GZIP_MAGIC)
        self._decompressor: Any = _decompressobj(zlib.MAX_WBITS | 16) if self.gzip else None
        self._member_fed = False  # the current member has received bytes (so it must reach its end)
        self.error: str | None = None
        self.boundaries: list[int] = []
        self.spool: _Spool | None = _Spool() if self.gzip else None

    def feed(self, data: bytes) -> bytes:
        self.boundaries = []
        if self._decompressor is None:
            return data
        out: list[bytes] = []
        produced = 0
        while data:
            self._member_fed = True
            assert self.spool is not None
            self.spool.write(data)
            checkpoint = self._decompressor.copy()
            try:
                chunk = self._decompressor.decompress(data)
            except _InflateError as exc:
                self.error = f"corrupt gzip data: {exc}"
                out.append(_salvage(checkpoint, data)[0])
                break
            out.append(chunk)
            produced += len(chunk)
            if not self._decompressor.eof:
                break
            data = self._decompressor.unused_data
            self._decompressor = _decompressobj(zlib.MAX_WBITS | 16)
            self._member_fed = False
            self.spool.close()
            self.boundaries.append(produced)
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

    def recover(self, prefix: bytes) -> Iterator[bytes]:
        """The current (failed) member's lines, `prefix` being the start of its first line."""
        spool, self.spool = self.spool, None
        if spool is None:
            return
        try:
            decompressor = _decompressobj(zlib.MAX_WBITS | 16)
            carry = prefix
            for data in spool.chunks():
                out, failed = _salvage(decompressor, data)
                carry += out
                *complete, carry = carry.split(b"\n")
                yield from complete
                if failed or decompressor.eof:
                    break
            if carry:
                yield carry
        finally:
            spool.close()


def _salvage(decompressor: Any, data: bytes) -> tuple[bytes, bool]:
    """What `data` decompresses to before the byte where it fails, and whether it failed (only on damage).

    Steps of 4 KiB; a step that fails is retried from its start in halves, down to the one byte
    that fails, so finding it costs a few dozen calls rather than one per byte.
    """
    out: list[bytes] = []
    step = 4096
    position = 0
    while position < len(data) and not decompressor.eof:
        checkpoint = decompressor.copy()
        try:
            out.append(decompressor.decompress(data[position:position + step]))
        except _InflateError:
            if step == 1:
                return b"".join(out), True
            decompressor = checkpoint
            step //= 2
            continue
        position += step
    return b"".join(out), False


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
    member_line, member_prefix = 1, b""  # where the gzip member being read began
    started = False  # the first bytes of the object were seen (BOM and line-end checks)
    cr_line_ends = False

    def pieces() -> Iterator[bytes]:
        yield inflater.feed(first)
        for chunk in chunks:
            if inflater.error is not None:
                return
            yield inflater.feed(chunk)

    for decompressed in pieces():
        piece = decompressed
        boundaries = inflater.boundaries
        if not started and piece:
            started = True
            if piece.startswith(_BOM):
                piece = piece[len(_BOM):]
                boundaries = [max(0, offset - len(_BOM)) for offset in boundaries]
            cr_line_ends = b"\n" not in piece and b"\r" in piece
        if cr_line_ends:
            piece = piece.replace(b"\r", b"\n")
        if boundaries:  # a member ended in this piece: note where (which line) the next one begins
            offset = boundaries[-1]
            before = piece.count(b"\n", 0, offset)
            if before:
                member_line = (skipping.line if skipping is not None else next_line + pending.count(b"\n")) + before
                member_prefix = piece[piece.rfind(b"\n", 0, offset) + 1:offset]
            elif skipping is not None:
                member_line, member_prefix = skipping.line, skipping.preview
            else:
                tail = pending.rfind(b"\n") + 1
                member_line = next_line + pending.count(b"\n")
                member_prefix = bytes(pending[tail:]) + piece[:offset]
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

    def damage(line: int, partial: bytes, message: str) -> Damage:
        prefix = member_prefix

        def recover() -> Iterator[bytes]:
            for item in inflater.recover(prefix):
                if cr_line_ends:
                    yield from item.replace(b"\r", b"\n").split(b"\n")
                else:
                    yield item

        return Damage(line, partial, message, member_line, recover)

    if skipping is not None:
        if inflater_error is not None:
            yield damage(skipping.line, skipping.preview, inflater_error)
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
        yield damage(next_line, bytes(pending[cut:cut + QUARANTINE_PREVIEW_BYTES]), inflater_error)
        return
    if pending:
        yield Block(bytes(pending), next_line, pending.count(b"\n") + (0 if pending.endswith(b"\n") else 1))
