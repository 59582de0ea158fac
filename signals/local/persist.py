"""A local stack's data directory: the embedded AWS's state kept across restarts (`signals local --data-dir`).

moto keeps everything in memory and has no persistence of its own; its recorder (`/moto-api/recorder`)
journals requests for replay, but a replay re-runs them with new ids, receipt handles and clocks, so
it cannot give back the same state. What moto does offer is that its backends pickle (S3's keys
define `__getstate__` for exactly that). So the state is kept as snapshots of the backends:

- `snapshot.pickle`: the backends of the services that hold data (S3, SQS, DynamoDB, Glue: objects
  and versions, queues with their messages, the registry table, the catalog with its partitions and
  the Iceberg tables' `metadata_location` pointers), plus the Firehose stand-in's buffers. It is
  written whole, to a temporary file renamed over the old one, every `interval` seconds while
  something changed, and on a clean stop. While it is taken, requests that change those services wait
  (a read-write gate in the gateway), so a snapshot is one consistent moment.
- `blobs/`: S3 object bodies, one file per content (sha256), written once; the snapshot refers to
  them, so a snapshot costs the metadata, not the lake. Blobs no snapshot refers to are removed on a
  clean stop.
- `journal.jsonl`: every changing request since the last snapshot (service, operation, S3 key), and
  every record Firehose accepted, in full. After a `kill -9` the next start restores the snapshot,
  puts the journaled Firehose records back into their buffers (the ingester had answered 200 for
  them: they are never lost) and says which other requests it lost: the pipeline redoes those itself
  (SQS delivers again the messages whose processing was lost, and outputs have deterministic names).
- `meta.json`: format, the template's digest, when the stack started and stopped, and whether it
  stopped cleanly.

The services whose state is configuration (IAM, Lambda, API Gateway, EventBridge, SNS, CloudWatch
and its logs, Athena's workgroups) are created from the template on every start, not kept.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import logging
import os
import pickle
import shutil
import threading
import time
import weakref
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

log = logging.getLogger("signals.local.persist")

FORMAT: Final = 1
#: Services whose state is data; the others are re-created from the template on every start.
PERSISTED_SERVICES: Final = ("s3", "sqs", "dynamodb", "glue")
#: Operation name prefixes that only read (everything else changes state, ReceiveMessage included).
_READ_PREFIXES: Final = ("Get", "List", "Describe", "Head", "BatchGet", "Query", "Scan", "Search")
DEFAULT_INTERVAL_S: Final = 1.0

SNAPSHOT: Final = "snapshot.pickle"
JOURNAL: Final = "journal.jsonl"
META: Final = "meta.json"
BLOBS: Final = "blobs"


#: Changes not worth a snapshot: a receive only hides messages for their visibility timeout, and a
#: long poll would hold every snapshot back for its wait. A message received after the last snapshot
#: and deleted before the kill is in the restored queue again and is delivered again (at least once,
#: as SQS itself is); the consumers are idempotent.
_TRANSIENT: Final = frozenset({("sqs", "ReceiveMessage")})


def is_mutating(service: str, operation: str | None, method: str) -> bool:
    """Whether a request changes state a snapshot keeps (conservative: an unknown operation does)."""
    if operation is None:  # REST (S3): the method says it
        return method.upper() not in ("GET", "HEAD", "OPTIONS")
    if (service, operation) in _TRANSIENT:
        return False
    return not operation.startswith(_READ_PREFIXES)


# --- the gate: changing requests share it, a snapshot takes it alone ------------------------------

class Gate:
    """A read-write lock: many changing requests at once, or one snapshot (which new requests wait for)."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._active = 0
        self._closed = False

    @contextlib.contextmanager
    def shared(self) -> Iterator[None]:
        with self._condition:
            while self._closed:
                self._condition.wait()
            self._active += 1
        try:
            yield
        finally:
            with self._condition:
                self._active -= 1
                self._condition.notify_all()

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._condition:
            while self._closed:
                self._condition.wait()
            self._closed = True
            while self._active:
                self._condition.wait()
        try:
            yield
        finally:
            with self._condition:
                self._closed = False
                self._condition.notify_all()


# --- the journal ----------------------------------------------------------------------------------

class Journal:
    """Append-only lines since the last snapshot, each with a sequence number."""

    def __init__(self, path: Path, start_seq: int = 0) -> None:
        self.path = path
        self.seq = start_seq
        self._lock = threading.Lock()
        self._file = path.open("a", encoding="utf-8")
        self.dirty: set[str] = set()

    def note(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self.seq += 1
            self._file.write(json.dumps({"seq": self.seq, "t": round(time.time(), 3), **entry}) + "\n")
            self._file.flush()  # in the OS's hands: a killed process loses nothing written here
            service = entry.get("service")
            if isinstance(service, str):
                self.dirty.add(service)

    def request(self, service: str, operation: str | None, method: str, path: str) -> None:
        entry: dict[str, Any] = {"service": service, "op": operation or method}
        if service == "s3":
            entry["path"] = path
        self.note(entry)

    def firehose(self, stream: str, records: list[bytes]) -> None:
        self.note({"service": "firehose", "op": "PutRecordBatch", "stream": stream,
                   "records": [base64.b64encode(r).decode("ascii") for r in records]})

    def take_dirty(self) -> tuple[int, set[str]]:
        with self._lock:
            dirty, self.dirty = self.dirty, set()
            return self.seq, dirty

    def truncate(self, through_seq: int) -> None:
        """Drop the lines a snapshot now holds (those up to `through_seq`); later lines stay."""
        with self._lock:
            self._file.close()
            kept = [line for line in read_journal(self.path) if line["seq"] > through_seq]
            temporary = self.path.with_suffix(".tmp")
            temporary.write_text("".join(json.dumps(line) + "\n" for line in kept), encoding="utf-8")
            temporary.replace(self.path)
            self._file = self.path.open("a", encoding="utf-8")

    def close(self) -> None:
        with self._lock:
            self._file.close()


def read_journal(path: Path) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    if not path.exists():
        return entries
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entries.append(json.loads(line))
        except ValueError:  # the last line, cut by the kill
            continue
    return entries


# --- pickling moto's backends -------------------------------------------------------------------

_LOCK_TYPES: Final = (type(threading.Lock()), type(threading.RLock()))
#: The blob directory of the snapshot being loaded (`_restore_key` runs inside pickle.load).
_LOADING: dict[str, Path] = {}
#: The keys `_restore_key` made and their blobs' digests, so the first snapshot after a start does
#: not read and hash every body again.
_RESTORED: list[tuple[Any, str]] = []


def _blob_path(root: Path, digest: str) -> Path:
    return root / digest[:2] / digest


def _restore_key(cls: Any, digest: str, state: dict[str, Any]) -> Any:
    """A moto S3 key from its state and its body's blob (the inverse of `_Pickler` for keys)."""
    key = cls.__new__(cls)
    key.__setstate__({**state, "value": _blob_path(_LOADING["blobs"], digest).read_bytes()})
    _RESTORED.append((key, digest))
    return key


def _restore_versions(cls: Any, pairs: list[tuple[str, list[Any]]]) -> Any:
    """moto's versioned key store from every version of every key (see `_Pickler`)."""
    store = cls()
    for name, versions in pairs:
        dict.__setitem__(store, name, versions)
    return store


class _Pickler(pickle.Pickler):
    """Locks as new locks, S3 object bodies as blob files (written once per content), every S3 version."""

    def __init__(self, file: io.BytesIO, blobs: Path, cache: dict[int, tuple[Any, str]],
                 referenced: set[str]) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self._blobs = blobs
        self._cache = cache
        self._referenced = referenced
        from moto.s3.models import FakeKey  # noqa: PLC0415
        from moto.s3.utils import _VersionedKeyStore  # noqa: PLC0415

        self._key_type = FakeKey
        self._versions_type = _VersionedKeyStore

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, _LOCK_TYPES):
            return (threading.RLock if "RLock" in type(obj).__name__ else threading.Lock), ()
        if isinstance(obj, weakref.WeakValueDictionary):  # a cache (Lambda's): not state
            return weakref.WeakValueDictionary, ()
        if isinstance(obj, self._versions_type):
            # A dict whose items() yields only each key's latest version: pickled as a dict, a bucket
            # would come back without its older versions. Every version's list is kept instead.
            return _restore_versions, (type(obj), [(name, dict.__getitem__(obj, name)) for name in dict.keys(obj)])
        if isinstance(obj, self._key_type):
            state = obj.__dict__.copy()
            state.pop("_value_buffer", None)
            state.pop("lock", None)
            digest = self._digest(obj)
            self._referenced.add(digest)
            return _restore_key, (type(obj), digest, state)
        return NotImplemented

    def _digest(self, key: Any) -> str:
        cached = self._cache.get(id(key))
        if cached is not None and cached[0]() is key:
            return cached[1]
        try:
            value = key.value
        except ValueError:  # a disposed key (deleted or overwritten): its buffer is closed, as moto's own pickling
            value = b""
        digest = hashlib.sha256(value).hexdigest()
        path = _blob_path(self._blobs, digest)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary = path.with_suffix(".tmp")
            temporary.write_bytes(value)
            temporary.replace(path)
        self._cache[id(key)] = (weakref.ref(key), digest)
        return digest


def _backend(service: str) -> Any:
    from moto.backends import get_backend  # noqa: PLC0415

    return get_backend(service)  # type: ignore[call-overload]


# --- the data directory ---------------------------------------------------------------------------

@dataclass
class RestoreReport:
    """What a start found in the data directory."""

    restored: bool = False
    saved_at: float | None = None
    clean_stop: bool = True
    previous_pid: int | None = None
    lost: Counter[str] = field(default_factory=Counter)  # "s3 PutObject" -> count
    lost_s3_keys: list[str] = field(default_factory=list)
    firehose_replayed: int = 0  # journaled records put back into the buffers
    firehose_buffered: int = 0  # records that were in the buffers at the snapshot
    lines_replayed: int = 0  # raw lines (events, OTLP requests) in the replayed records
    lines_buffered: int = 0
    template_changed: bool = False

    def lines(self) -> list[str]:
        if not self.restored:
            return []
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.saved_at or 0))
        out = [f"restored the state saved at {when}"]
        if not self.clean_stop:
            pid = f" (pid {self.previous_pid})" if self.previous_pid else ""
            out.append(f"the previous stack{pid} did not stop cleanly (killed?): what it did after that snapshot "
                       "is lost except Firehose's records, which the journal kept")
            if self.lost:
                parts = ", ".join(f"{name} {count}" for name, count in sorted(self.lost.items()))
                out.append(f"  lost requests: {parts}")
                for key in self.lost_s3_keys[:10]:
                    out.append(f"    s3 {key}")
                if len(self.lost_s3_keys) > 10:
                    out.append(f"    ... and {len(self.lost_s3_keys) - 10} more S3 writes")
                out.append("  the pipeline redoes its part: messages whose processing was lost are delivered again, "
                           "and outputs have deterministic names")
            else:
                out.append("  lost requests: none")
        if self.firehose_replayed:
            out.append(f"  Firehose records accepted after the snapshot, put back in the buffers: "
                       f"{self.firehose_replayed} ({self.lines_replayed} lines)")
        if self.firehose_buffered:
            out.append(f"  Firehose records still buffered at the snapshot: {self.firehose_buffered} "
                       f"({self.lines_buffered} lines)")
        return out


class DataDir:
    """Snapshots of the embedded AWS in a directory; see the module docstring for the layout."""

    def __init__(self, path: Path, *, interval: float = DEFAULT_INTERVAL_S) -> None:
        self.path = path
        self.interval = interval
        self.journal: Journal | None = None
        self._gate: Gate | None = None
        self._firehose: Any = None
        self._services: dict[str, bytes] = {}  # last pickle of each service
        self._blob_cache: dict[int, tuple[Any, str]] = {}
        self._s3_blobs: set[str] = set()  # blobs the last S3 pickle refers to
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._snapshot_lock = threading.Lock()
        self.snapshots = 0
        self.last_snapshot_s = 0.0
        self._previous_clean = True

    @property
    def snapshot_path(self) -> Path:
        return self.path / SNAPSHOT

    @property
    def blobs(self) -> Path:
        return self.path / BLOBS

    def has_state(self) -> bool:
        return self.snapshot_path.exists()

    def check_free(self) -> None:
        """Refuse a directory a running stack uses (its pid in meta.json, alive, not stopped)."""
        meta = self.meta()
        other = meta.get("pid")
        if not meta.get("clean_stop", True) and isinstance(other, int) and other != os.getpid():
            from signals.env import pid_alive  # noqa: PLC0415

            if pid_alive(other):
                raise RuntimeError(f"{self.path} is in use by a running local stack (pid {other})")

    def wipe(self) -> None:
        """`--fresh`: remove what an earlier stack kept (only the files this module writes)."""
        self.check_free()
        for name in (SNAPSHOT, JOURNAL, META, SNAPSHOT + ".tmp", JOURNAL.replace(".jsonl", ".tmp")):
            (self.path / name).unlink(missing_ok=True)
        shutil.rmtree(self.blobs, ignore_errors=True)

    def meta(self) -> dict[str, Any]:
        try:
            loaded = json.loads((self.path / META).read_text())
        except (OSError, ValueError):
            return {}
        return loaded if isinstance(loaded, dict) else {}

    def _write_meta(self, **changes: Any) -> None:
        meta = {**self.meta(), **changes, "format": FORMAT}
        temporary = self.path / (META + ".tmp")
        temporary.write_text(json.dumps(meta, indent=2) + "\n")
        temporary.replace(self.path / META)

    # --- start ------------------------------------------------------------------------------------

    def restore(self, template_digest: str) -> tuple[RestoreReport, dict[str, list[tuple[list[bytes], float | None]]]]:
        """Load the snapshot into moto's backends; returns the report and the Firehose buffers to refill.

        Call after the gateway started (moto loaded and reset) and before anything is provisioned.
        """
        self.path.mkdir(parents=True, exist_ok=True)
        report = RestoreReport()
        buffers: dict[str, list[tuple[list[bytes], float | None]]] = {}
        self.check_free()
        meta = self.meta()
        self._previous_clean = bool(meta.get("clean_stop", True))
        seq = 0
        if self.has_state():
            if meta.get("format", FORMAT) != FORMAT:
                raise RuntimeError(f"{self.path}: data directory format {meta.get('format')} is not {FORMAT}; "
                                   "start with --fresh (or another --data-dir)")
            with self.snapshot_path.open("rb") as file:
                snapshot = pickle.load(file)  # our own file, in the user's own directory
            _LOADING["blobs"] = self.blobs
            try:
                for service, data in snapshot["services"].items():
                    loaded = pickle.loads(data)
                    live = _backend(service)
                    for account_id, account_backend in loaded.items():
                        live._create_account_specific_backend(account_id)  # registers it for moto's reset
                        live[account_id] = account_backend
                    self._services[service] = data
            finally:
                _LOADING.clear()
                for key, digest in _RESTORED:
                    self._blob_cache[id(key)] = (weakref.ref(key), digest)
                _RESTORED.clear()
            self._s3_blobs = set(snapshot.get("s3_blobs", ()))
            seq = int(snapshot["seq"])
            report.restored = True
            report.saved_at = float(snapshot["saved_at"])
            report.clean_stop = bool(meta.get("clean_stop", True))
            report.previous_pid = meta.get("pid")
            report.template_changed = meta.get("template_sha256") not in (None, template_digest)
            for stream, (records, first_arrival) in snapshot.get("firehose", {}).items():
                buffers.setdefault(stream, []).append((list(records), first_arrival))
                report.firehose_buffered += len(records)
                report.lines_buffered += sum(r.count(b"\n") for r in records)
        for entry in read_journal(self.path / JOURNAL):
            if entry.get("seq", 0) <= seq:
                continue
            if entry.get("service") == "firehose":
                records = [base64.b64decode(r) for r in entry.get("records", [])]
                buffers.setdefault(str(entry["stream"]), []).append((records, float(entry.get("t", time.time()))))
                report.firehose_replayed += len(records)
                report.lines_replayed += sum(r.count(b"\n") for r in records)
                continue
            if not report.restored and not entry.get("service"):
                continue
            report.lost[f"{entry.get('service')} {entry.get('op')}"] += 1
            if entry.get("service") == "s3" and entry.get("path"):
                report.lost_s3_keys.append(str(entry["path"]).lstrip("/"))
        if not report.restored and (report.lost or report.firehose_replayed):
            report.restored = True  # killed before its first snapshot: the journal is all there is
            report.clean_stop = False
            report.previous_pid = meta.get("pid")
        self.journal = Journal(self.path / JOURNAL, start_seq=max(seq, self._last_journal_seq()))
        self._write_meta(template_sha256=template_digest, pid=os.getpid(), clean_stop=False,
                         started_at=time.time())
        return report, buffers

    def _last_journal_seq(self) -> int:
        entries = read_journal(self.path / JOURNAL)
        return max((int(e.get("seq", 0)) for e in entries), default=0)

    def attach(self, gate: Gate, firehose: Any) -> None:
        """Start snapshotting: `gate` is the gateway's, `firehose` the stand-in (its buffers are state too)."""
        self._gate = gate
        self._firehose = firehose
        assert self.journal is not None
        for service in PERSISTED_SERVICES:  # provisioning changed them: the first snapshot takes all
            self.journal.dirty.add(service)
        self.snapshot(force=True)  # the state as started (restored, refilled, provisioned) before any request
        self._thread = threading.Thread(target=self._run, name="data-dir-snapshots", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        # Every `interval`, or ten times the last snapshot's duration when that is longer: snapshots
        # of a large lake take at most a tenth of the time (Firehose's records are journaled anyway).
        while not self._stop.wait(max(self.interval, 10 * self.last_snapshot_s)):
            try:
                self.snapshot()
            except Exception:
                log.exception("snapshot of the local stack's state into %s failed", self.path)

    # --- snapshots --------------------------------------------------------------------------------

    def snapshot(self, *, force: bool = False) -> bool:
        """Write a snapshot when something changed (always with `force`); True when one was written."""
        assert self.journal is not None
        assert self._gate is not None
        with self._snapshot_lock:
            started = time.perf_counter()
            firehose = self._firehose
            delivery = firehose.delivery_lock if firehose is not None else contextlib.nullcontext()
            with delivery, self._gate.exclusive():
                buffers = firehose.buffered() if firehose is not None else {}
                seq, dirty = self.journal.take_dirty()
                if not dirty and not force and self.has_state():
                    return False
                for service in PERSISTED_SERVICES:
                    if service in dirty or service not in self._services:
                        self._services[service] = self._pickle(service)
            snapshot = {"format": FORMAT, "seq": seq, "saved_at": time.time(), "services": self._services,
                        "firehose": buffers, "s3_blobs": sorted(self._s3_blobs)}
            temporary = self.path / (SNAPSHOT + ".tmp")
            with temporary.open("wb") as file:
                pickle.dump(snapshot, file, protocol=pickle.HIGHEST_PROTOCOL)
                file.flush()
                os.fsync(file.fileno())
            temporary.replace(self.snapshot_path)
            self.journal.truncate(seq)
            self.snapshots += 1
            self.last_snapshot_s = time.perf_counter() - started
            return True

    def _pickle(self, service: str) -> bytes:
        for attempt in range(1, 4):
            try:
                return self._pickle_once(service)
            except RuntimeError:  # a receive changed a queue while it was pickled (receives are not gated)
                if attempt == 3:
                    raise
        raise AssertionError("unreachable")

    def _pickle_once(self, service: str) -> bytes:
        buffer = io.BytesIO()
        referenced: set[str] = set()
        _Pickler(buffer, self.blobs, self._blob_cache, referenced).dump(_backend(service))
        if service == "s3":
            self._s3_blobs = referenced
        return buffer.getvalue()

    def stop(self) -> None:
        """The last snapshot, unused blobs removed, and the stop recorded as clean."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self.journal is None:
            return
        if self._gate is None:  # the start failed before snapshots began: what is on disk stays as it was
            self.journal.close()
            self._write_meta(clean_stop=self._previous_clean)
            return
        self.snapshot(force=True)
        self._collect_blobs()
        self.journal.close()
        self._write_meta(clean_stop=True, stopped_at=time.time())

    def _collect_blobs(self) -> None:
        if not self.blobs.exists():
            return
        for path in self.blobs.glob("*/*"):
            if path.name not in self._s3_blobs:
                path.unlink(missing_ok=True)


def template_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def default_data_dir(home: Path) -> Path:
    """Where `signals local` keeps its state unless told otherwise: `$SIGNALS_HOME/data`."""
    return home / "data"
