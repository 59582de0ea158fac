"""Blocks of device lines into Arrow tables, one read per block where the data allows.

A block is read by Arrow's JSON reader as one chunk with an explicit read schema (every envelope
and typed field declared; `attributes` and unknown fields inferred). Arrow cannot skip a line it
refuses (invalid JSON, not an object, a declared field of the wrong JSON type), and its error says
only `in row N`, which counts from the start of what it was given. So:

- a clean block is one read;
- a block with refused lines has them located by a regex pre-scan over its lines (RE2 through
  pyarrow.compute: lines that are not `{...}`, declared fields holding a value of another JSON
  type), then is read once with them replaced by `{}` (rows keep matching lines); a refusal the
  pre-scan missed is located by probing on from it with a cheaper read that ignores undeclared
  fields; the refused lines go to the per-line path;
- blank, whitespace-led and top-level `null` lines (Arrow skips the first, which shifts its row
  numbers, and can crash with a segfault on the last) and failures without a row (invalid UTF-8,
  an integer that overflows, two objects on one line) take a careful loop that splits the block
  around them, bisecting when nothing says where;
- no line that might nest `ARROW_SAFE_DEPTH` levels reaches Arrow (its recursive reader crashes
  the whole process near 20,000 levels; 15,000 measured safe): only a line at least that many bytes
  long can, and a block has one only if some aligned window of half that size holds no newline
  (`_has_long_line`, a few hundred `bytes.find` per 8 MiB block). Such a block is pre-scanned (one
  `bytes.translate` keeping `{`, `[` and newlines) and, if a line has more than
  `shared.jsondepth.MAX_DEPTH` opening brackets, takes the careful loop, which hands those lines to
  the per-line path. Shorter lines nested deeper than MAX_DEPTH are read by Arrow like any other;
  their rows take `extra` from their own line, and `parser.device` sends those to the per-line
  path too, so every line deeper than MAX_DEPTH is `too_deep`, on either path.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Final

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

from parser.device_lines import BlockResult, too_large
from parser.records import JSON_SPACE, MAX_LINE_BYTES
from shared.jsondepth import MAX_DEPTH
from shared.schema import DEVICE_FIELDS, ENVELOPE, FieldSpec, Kind

_ROW_IN_ERROR: Final = re.compile(r" in row (\d+)")
_SUSPICIOUS_LINE: Final = re.compile(rb"\n(?:[ \t\r\n]|null)")
#: Arrow's JSON reader survives a line nested this deep (measured: 15,000; it crashes near 20,000).
ARROW_SAFE_DEPTH: Final = 8192
_NOT_OPENING_OR_NEWLINE: Final = bytes(sorted(set(range(256)) - set(b"{[\n")))
_MANY_OPENINGS: Final = re.compile(rb"[^\n]{%d}" % (MAX_DEPTH + 1))
#: A segment that fails without telling where is bisected down to this many lines, then read per line.
_PER_LINE_BELOW: Final = 16


# --- the read schema -----------------------------------------------------------------------------


def _read_type(spec: FieldSpec) -> pa.DataType:
    if spec.kind in (Kind.INT, Kind.INT32, Kind.FLOAT):
        return pa.float64()  # integers too: a float read never fails, integrality is checked after
    if spec.kind == Kind.BOOL:
        return pa.bool_()
    return pa.string()  # strings, and timestamps as RFC 3339 text (see _EPOCH_PARSE_OPTIONS for numbers)


def _typed_union() -> dict[str, FieldSpec]:
    union: dict[str, FieldSpec] = {}
    for specs in DEVICE_FIELDS.values():
        for spec in specs:
            known = union.setdefault(spec.name, spec)
            if known.kind != spec.kind:
                raise AssertionError(f"{spec.name} has two kinds across device types")
    return union


ENVELOPE_READ: Final = tuple(spec for spec in ENVELOPE if spec.name != "attributes")
TYPED_UNION: Final = _typed_union()
#: Declared columns; `attributes` and unknown fields are left to Arrow's inference.
READ_SCHEMA: Final = pa.schema(
    [pa.field(spec.name, _read_type(spec)) for spec in (*ENVELOPE_READ, *TYPED_UNION.values())]
)
DECLARED_COLUMNS: Final = frozenset(READ_SCHEMA.names)
_PARSE_OPTIONS: Final = pa_json.ParseOptions(explicit_schema=READ_SCHEMA, unexpected_field_behavior="infer")
#: For blocks whose event times are epoch milliseconds (JSON numbers) rather than RFC 3339 strings.
_EPOCH_PARSE_OPTIONS: Final = pa_json.ParseOptions(
    explicit_schema=pa.schema([pa.field(f.name, pa.float64()) if f.name == "event_time" else f for f in READ_SCHEMA]),
    unexpected_field_behavior="infer",
)
_EPOCH_EVENT_TIME_ERROR: Final = "Column(/event_time) changed from string to number"
#: Refused lines per block beyond which the rest of the block goes per line (each refusal costs a read).
_MAX_REFUSALS: Final = 256
_PROBE_OPTIONS: Final = pa_json.ParseOptions(explicit_schema=READ_SCHEMA, unexpected_field_behavior="ignore")
_PATCH_ATTEMPTS: Final = 4


def _names(read_type: pa.DataType) -> str:
    return "|".join(re.escape(column.name) for column in READ_SCHEMA if column.type == read_type)


_GAP: Final = r"[ \t\r]*"
#: What makes Arrow refuse a line under `_PARSE_OPTIONS`, as far as a regex can tell: a line not
#: starting with `{` or not ending with `}` (truncated, not an object), or a declared field followed
#: by a value of another JSON type (a number field by neither a number nor null, and so on). RE2
#: syntax, matched per line; a field name inside a string or a nested object only gives a false alarm.
_LIKELY_REFUSED: Final = (
    rf"^[^{{]|[^}}\s]\s*$"
    rf'|"(?:{_names(pa.float64())})"{_GAP}:{_GAP}[^-0-9n\s]'
    rf'|"(?:{_names(pa.string())})"{_GAP}:{_GAP}[^"n\s]'
    rf'|"(?:{_names(pa.bool_())})"{_GAP}:{_GAP}[^tfn\s]'
)


# --- blocks to Arrow segments --------------------------------------------------------------------


class Lines:
    """Line access for a block, built only when something needs it."""

    def __init__(self, block: bytes) -> None:
        self.block = block
        parts = block.split(b"\n")
        if parts and parts[-1] == b"":
            parts.pop()
        self.items = parts
        self._lengths: list[int] | None = None  # cumulative lengths without newlines, from 0

    def start(self, index: int) -> int:
        if self._lengths is None:
            self._lengths = list(accumulate(map(len, self.items), initial=0))
        return self._lengths[index] + index  # plus one newline per line before it

    def span(self, first: int, stop: int, data: bytes | bytearray | None = None) -> memoryview:
        """Lines `first` to `stop` of the block, or of `data` (the block with some lines patched, same offsets)."""
        end = min(self.start(stop), len(self.block))
        return memoryview(self.block if data is None else data)[self.start(first):end]

    def array(self) -> pa.LargeBinaryArray:
        """The lines as an Arrow array over the block's bytes (no copy), each with its newline."""
        self.start(0)
        assert self._lengths is not None
        offsets = [length + index for index, length in enumerate(self._lengths)]
        offsets[-1] = min(offsets[-1], len(self.block))
        buffers = [None, pa.array(offsets, pa.int64()).buffers()[1], pa.py_buffer(self.block)]
        return pa.LargeBinaryArray.from_buffers(pa.large_binary(), len(self.items), buffers)

    def line_at_offset(self, offset: int) -> int:
        return bisect.bisect_right(range(len(self.items) + 1), offset, key=self.start) - 1


def _looks_plain(block: bytes) -> bool:
    """No line near the size limit. (Blank lines show as fewer rows than lines, checked after the read.)"""
    window = MAX_LINE_BYTES // 2
    # A line of MAX_LINE_BYTES or more covers a whole aligned window without a newline.
    return all(block.find(b"\n", start, start + window) != -1 for start in range(0, len(block) - window, window))


def _suspicious(block: bytes) -> bool:
    """A blank or whitespace-led line (Arrow skips blank lines, which shifts its row numbers) or a
    top-level `null` line (pyarrow's JSON reader can crash with a segfault on one)."""
    return (block[:1] in (b"\n", b" ", b"\t", b"\r") or block.startswith(b"null")
            or _SUSPICIOUS_LINE.search(block) is not None)


def _has_long_line(block: bytes, size: int) -> bool:
    """Some line is `size` bytes or longer (then it covers a whole aligned window of half that size)."""
    window = size // 2
    find = block.find
    return not all(find(b"\n", start, start + window) != -1 for start in range(0, len(block) - window + 1, window))


def _maybe_deep(block: bytes) -> bool:
    """Some line might nest too deeply for Arrow: it is long, and has more than MAX_DEPTH opening brackets."""
    return (_has_long_line(block, ARROW_SAFE_DEPTH)
            and _MANY_OPENINGS.search(block.translate(None, _NOT_OPENING_OR_NEWLINE)) is not None)


def _too_many_openings(line: bytes) -> bool:
    return line.count(b"{") + line.count(b"[") > MAX_DEPTH


def _read(data: bytes | memoryview, options: pa_json.ParseOptions = _PARSE_OPTIONS) -> pa.Table:
    """One Arrow read as a single chunk, so `in row N` in an error counts from the start of `data`.

    Arrow does not check that object keys are UTF-8: a key with invalid bytes becomes a field whose
    name cannot be read back. Every field name is read here, so that shows as the UnicodeDecodeError
    the callers already handle (the careful path finds the line), not later, outside them.
    """
    read_options = pa_json.ReadOptions(use_threads=False, block_size=max(len(data) + 1, 1 << 16))
    table = pa_json.read_json(pa.BufferReader(pa.py_buffer(data)), read_options=read_options, parse_options=options)
    _field_names(table.schema)
    return table


def _field_names(schema: pa.Schema) -> list[str]:
    """Every field name, nested ones too (raises UnicodeDecodeError for a key that is not UTF-8).

    Iterative: an inferred type can nest thousands of levels."""
    names: list[str] = []
    pending: list[pa.Schema | pa.StructType] = [schema]
    while pending:
        for item in pending.pop():
            names.append(item.name)
            child: pa.DataType = item.type
            while pa.types.is_list(child) or pa.types.is_large_list(child):
                child = child.value_type
            if pa.types.is_struct(child):
                pending.append(child)
    return names


@dataclass
class Segments:
    """Arrow tables read from a block, each with the block-relative index of its first line."""

    tables: list[tuple[int, pa.Table]] = field(default_factory=list)
    per_line: list[int] = field(default_factory=list)  # block-relative line indexes


def read_segments(block: bytes, line_count: int, result: BlockResult, first_line: int) -> tuple[
        Segments, Lines | None]:
    segments = Segments()
    lines: Lines | None = None
    pending: list[tuple[int, int]] = []
    deep = _maybe_deep(block)  # before anything hands the block to Arrow
    plain = not deep and _looks_plain(block) and not _suspicious(block)
    if plain:
        try:
            table = _read(block)
        except pa.ArrowInvalid as exc:
            table = None
            if _EPOCH_EVENT_TIME_ERROR in str(exc):  # a fleet sending epoch ms: read the block that way
                try:
                    table = _read(block, _EPOCH_PARSE_OPTIONS)
                except (pa.ArrowInvalid, UnicodeDecodeError):
                    table = None
        except UnicodeDecodeError:
            table = None
        if table is not None and table.num_rows == line_count:
            segments.tables.append((0, table))
            return segments, None
    lines = Lines(block)
    if plain:
        pending.extend(_locate_and_patch(lines, segments))
    else:
        pending.extend(_candidate_runs(lines, result, first_line, segments.per_line, deep=deep))
    while pending:
        start, stop = pending.pop()
        if start >= stop:
            continue
        data = lines.span(start, stop)
        try:
            table = _read(data)
        except pa.ArrowInvalid as exc:
            found = _ROW_IN_ERROR.findall(str(exc))
            row = int(found[-1]) if found else None
            if row is not None and start + row < stop:
                segments.per_line.append(start + row)
                pending.append((start + row + 1, stop))
                pending.append((start, start + row))
            else:
                _bisect(start, stop, pending, segments)
            continue
        except UnicodeDecodeError:
            try:
                bytes(data).decode("utf-8")
            except UnicodeDecodeError as decode_error:
                bad = lines.line_at_offset(lines.start(start) + decode_error.start)
                segments.per_line.append(bad)
                pending.append((bad + 1, stop))
                pending.append((start, bad))
            else:
                _bisect(start, stop, pending, segments)
            continue
        if table.num_rows != stop - start:  # e.g. two objects on one line: find it
            _bisect(start, stop, pending, segments)
            continue
        segments.tables.append((start, table))
    return segments, lines


def _error_row(exc: pa.ArrowInvalid) -> int | None:
    found = _ROW_IN_ERROR.findall(str(exc))
    return int(found[-1]) if found else None


def _likely_refused(lines: Lines) -> list[int]:
    """Lines Arrow would probably refuse, by one RE2 pass over the block's lines (no JSON parsing).

    A miss costs a probe later and a false alarm sends a line Arrow would have read to the per-line
    path, which judges it the same way; neither changes an outcome.
    """
    matches = pc.match_substring_regex(lines.array(), _LIKELY_REFUSED)
    indexes: list[int] = pc.indices_nonzero(matches).to_pylist()
    return indexes


def _locate_and_patch(lines: Lines, segments: Segments) -> list[tuple[int, int]]:
    """Read a block with bad lines once, with the lines Arrow refuses blanked out, instead of two reads per bad line.

    The lines to blank come from a regex pre-scan (`_likely_refused`): truncated lines, lines that
    are not objects, declared fields holding a value of the wrong JSON type. A refused line the
    pre-scan missed shows as an error of the patched read; from there on the block is probed with a
    cheaper read that ignores undeclared fields (it refuses the same lines: syntax, non-objects,
    wrong types of declared fields), then the patched read is retried. Blanked lines become `{}`
    padded with spaces to their length, so rows and byte offsets keep matching lines (their rows
    fail the checks and the lines go per line anyway). A refusal only a read with inference shows
    (an attribute whose type changes between rows) is added the same way.
    Returns the ranges still to read the careful way when this does not work out.
    """
    patch = _Patch(lines, _likely_refused(lines))
    if len(patch.refused) > _MAX_REFUSALS:  # more than a few: let the probes say which
        patch.refused.clear()
    probe_from: int | None = None if patch.refused else 0
    for _ in range(_PATCH_ATTEMPTS):
        if probe_from is not None:
            if not patch.probe(probe_from, segments):
                return _careful(patch.refused, segments, patch.total)
            if patch.total == 0:
                return []
        patch.blank_refused()
        try:
            table = _read(patch.readable())
        except pa.ArrowInvalid as exc:
            row = _error_row(exc)
            if row is None or row >= patch.total or row in patch.blanked:
                break
            bisect.insort(patch.refused, row)
            probe_from = row + 1
            continue
        except UnicodeDecodeError:
            break
        if table.num_rows != patch.total:
            break
        segments.per_line.extend(patch.refused)
        segments.tables.append((0, table))
        return []
    return _careful(patch.refused, segments, patch.total)


class _Patch:
    """A block's bytes with its refused lines replaced by `{}` and spaces (same offsets as the block).

    A refused line of one byte has no room for `{}`: it stays in `data` (probes step over it) and
    the read is given the lines joined again with `{}` in its place (rows still match lines).
    """

    def __init__(self, lines: Lines, refused: list[int]) -> None:
        self.lines = lines
        self.refused = refused  # sorted block-relative line indexes
        self.data = bytearray(lines.block)
        self.blanked: set[int] = set()
        self.short: set[int] = set()
        self.total = len(lines.items)  # lines to read with Arrow (the rest went per line)

    def blank_refused(self) -> None:
        for index in self.refused:
            if index in self.blanked:
                continue
            start = self.lines.start(index)
            size = len(self.lines.items[index])
            if size < 2:
                self.short.add(index)
            else:
                self.data[start:start + size] = b"{}" + b" " * (size - 2)
            self.blanked.add(index)

    def readable(self) -> bytes | memoryview:
        """The lines to read with Arrow, every refused line blanked."""
        if not self.short:
            return self.lines.span(0, self.total, self.data)
        items = self.lines.items[:self.total]
        for index in self.refused:
            items[index] = b"{}"
        return b"\n".join(items)

    def probe(self, start: int, segments: Segments) -> bool:
        """Add the refused lines from `start` on (blanked lines read fine); False when a refusal has no row."""
        while start < self.total:
            try:
                _read(self.lines.span(start, self.total, self.data), _PROBE_OPTIONS)
            except pa.ArrowInvalid as exc:
                row = _error_row(exc)
                if row is None or start + row >= self.total or (start + row in self.blanked
                                                                and start + row not in self.short):
                    return False
                if start + row not in self.short:
                    bisect.insort(self.refused, start + row)
                start += row + 1
                if len(self.refused) > _MAX_REFUSALS:  # mostly unreadable: the rest is cheaper line by line
                    segments.per_line.extend(range(start, self.total))
                    self.total = start
                    del self.refused[bisect.bisect_left(self.refused, start):]  # pre-scanned ones past it
                    return True
                continue
            except UnicodeDecodeError:
                return False
            break
        return True


def _careful(refused: list[int], segments: Segments, total: int) -> list[tuple[int, int]]:
    """Hand the block to the careful loop: refused lines go per line, the ranges between them are read again."""
    ordered = sorted(set(refused))
    segments.per_line.extend(ordered)
    return [*_between(ordered, 0), (ordered[-1] + 1 if ordered else 0, total)]


def _between(refused: list[int], first: int) -> list[tuple[int, int]]:
    """The ranges of lines between refused ones, from `first` up to the last refused line."""
    ranges: list[tuple[int, int]] = []
    for index in refused:
        ranges.append((first, index))
        first = index + 1
    return ranges


def _bisect(start: int, stop: int, pending: list[tuple[int, int]], segments: Segments) -> None:
    if stop - start <= _PER_LINE_BELOW:
        segments.per_line.extend(range(start, stop))
        return
    middle = (start + stop) // 2
    pending.append((middle, stop))
    pending.append((start, middle))


def _candidate_runs(lines: Lines, result: BlockResult, first_line: int, per_line: list[int], *,
                    deep: bool = False) -> Iterator[tuple[int, int]]:
    """Runs of lines worth giving to Arrow; blank lines are counted, oversized lines rejected, and
    top-level `null` lines and (when the block has any) lines with more than MAX_DEPTH opening
    brackets kept from Arrow (they crash its JSON reader) for the per-line path."""
    run_start: int | None = None
    for index, line in enumerate(lines.items):
        if len(line) > MAX_LINE_BYTES:
            result.rejections.append(too_large(first_line + index, line))
        elif line.lstrip(JSON_SPACE).startswith(b"null") or (deep and _too_many_openings(line)):
            per_line.append(index)
        elif line.strip(JSON_SPACE):
            if run_start is None:
                run_start = index
            continue
        else:
            result.blank_lines += 1
        if run_start is not None:
            yield run_start, index
            run_start = None
    if run_start is not None:
        yield run_start, len(lines.items)


