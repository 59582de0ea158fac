"""The parser core on local files (`signals parse-file`): same output layout, under a directory.

`{name}` comes from the file's path and a digest of its bytes (computed while streaming), the
arrival time is the file's modification time, and files are moved into `DIR/telemetry_flat/...`
and `DIR/quarantine/...` exactly as the Lambda writes them into the buckets.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from parser.core import ParseOutcome, ParseSettings, RawObject, parse_raw
from parser.source import Readable
from shared.layout import Partition, local_output_name, quarantine_key, source_of_raw_key, verified_key
from shared.schema import Source


class _HashingReader:
    def __init__(self, stream: Readable) -> None:
        self._stream = stream
        self.digest = hashlib.sha256()

    def read(self, size: int = -1, /) -> bytes:
        data = self._stream.read(size)
        self.digest.update(data)
        return data


@dataclass(frozen=True)
class LocalResult:
    path: Path
    source: str
    outcome: ParseOutcome
    verified_keys: list[tuple[str, int]]  # (key under DIR, rows)
    quarantine_key: str | None


def infer_source(path: Path) -> str:
    """`otlp_logs` for a path under `raw/otlp_logs/`, else `json_telemetry`."""
    text = path.as_posix()
    marker = text.find("raw/")
    if marker != -1 and source_of_raw_key(text[marker:]) == Source.OTLP_LOGS:
        return Source.OTLP_LOGS.value
    return Source.JSON_TELEMETRY.value


def parse_local_file(path: Path, out_dir: Path, source: str | None = None,
                     settings: ParseSettings | None = None) -> LocalResult:
    source = source or infer_source(path)
    arrival_ms = int(path.stat().st_mtime * 1000)
    source_key = path.as_posix()
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="parse-", dir=out_dir) as scratch, path.open("rb") as stream:
        reader = _HashingReader(stream)
        outcome = parse_raw(reader, RawObject(source, source_key, arrival_ms), Path(scratch), settings)
        name = local_output_name(str(path.resolve()), reader.digest.hexdigest())
        keys: list[tuple[str, int]] = []
        for verified in outcome.verified:
            key = verified_key(verified.type_value, verified.partition, name)
            _move(verified.path, out_dir / key)
            keys.append((key, verified.rows))
        q_key = None
        if outcome.quarantine is not None:
            q_key = quarantine_key(source, Partition.from_epoch_ms(arrival_ms), name)
            _move(outcome.quarantine.path, out_dir / q_key)
    return LocalResult(path, source, outcome, keys, q_key)


def _move(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(source), str(target))
