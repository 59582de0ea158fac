"""A Trino server for the local stack: fetched once with Maven, started and stopped by the stack.

    from signals.sql.trino_server import TrinoServer, fetch
    home = fetch()                              # ~/.cache/signals/trino/476 (idempotent)
    server = TrinoServer(home, aws_endpoint_url="http://127.0.0.1:4566")
    server.start()                              # waits for /v1/info starting:false
    server.port ... server.stop()

Which release: 476, the newest Trino whose server tarball (`io.trino:trino-server-core`, tar.gz) is on
Maven Central (later releases publish plugins there but not the server). It needs Java 24 or later
(https://trino.io/docs/476/installation/deployment.html): the machine's default Java 17 is too old, so
the server runs on the newest JDK under /usr/lib/jvm that is 24 or later (Temurin 25 on our machines),
or on $SIGNALS_TRINO_JAVA_HOME; JAVA_HOME is set for the server's command only.

Where: $SIGNALS_TRINO_CACHE, else $XDG_CACHE_HOME/signals/trino, else ~/.cache/signals/trino; one
directory per release holding `server/` (the tarball unpacked, with the `iceberg` and `hive` plugins
unzipped into `server/plugin/`) and a `complete` marker written last.

Catalogs (the same Glue catalog and S3 as the stack; https://trino.io/docs/476/object-storage/metastores.html
and https://trino.io/docs/476/object-storage/file-system-s3.html):

- `awsdatacatalog` (Athena's default catalog's name): the Hive connector on Glue, for the verified Hive
  Parquet tables (partition projection as Athena's); it redirects Iceberg tables to `iceberg`
  (`hive.iceberg-catalog-name`, https://trino.io/docs/476/connector/hive.html#table-redirection).
- `iceberg`: the Iceberg connector on the same Glue catalog; its snapshot-retention minimums are set
  to 0 s so VACUUM honours a table's own `vacuum_max_snapshot_age_seconds`.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tarfile
import tempfile
import time
import urllib.request
import uuid
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Final

import orjson

TRINO_VERSION: Final = "476"
MIN_JAVA: Final = 24
PLUGINS: Final = ("iceberg", "hive")
DEFAULT_HEAP: Final = "2G"
JVM_ROOT: Final = Path("/usr/lib/jvm")
REGION: Final = "us-west-2"
#: Start-up is about 45 s on an idle 2-core machine and has taken 3 min on a loaded one (class loading).
START_TIMEOUT_S: Final = 600.0


class TrinoUnavailable(RuntimeError):
    """Trino cannot be fetched or started here (no Maven, no JDK >= 24, not fetched): says what to do."""


def cache_root() -> Path:
    if os.environ.get("SIGNALS_TRINO_CACHE"):
        return Path(os.environ["SIGNALS_TRINO_CACHE"]).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "signals" / "trino"


def trino_home(version: str = TRINO_VERSION) -> Path:
    return cache_root() / version


def is_fetched(version: str = TRINO_VERSION) -> bool:
    return (trino_home(version) / "complete").is_file()


def _java_major(java_home: Path) -> int | None:
    """The feature release of the JDK at `java_home` (from its `release` file), or None."""
    try:
        text = (java_home / "release").read_text()
    except OSError:
        return None
    match = re.search(r'^JAVA_VERSION="(\d+)', text, re.MULTILINE)
    return int(match.group(1)) if match else None


def find_java_home() -> Path:
    """$SIGNALS_TRINO_JAVA_HOME, else the newest JDK >= 24 under /usr/lib/jvm; TrinoUnavailable if none."""
    explicit = os.environ.get("SIGNALS_TRINO_JAVA_HOME")
    if explicit:
        home = Path(explicit)
        major = _java_major(home)
        if major is None or major < MIN_JAVA or not (home / "bin" / "java").exists():
            raise TrinoUnavailable(f"SIGNALS_TRINO_JAVA_HOME={explicit} is not a JDK {MIN_JAVA} or later "
                                   f"(Trino {TRINO_VERSION} needs Java {MIN_JAVA}+)")
        return home
    found: list[tuple[int, Path]] = []
    if JVM_ROOT.is_dir():
        for home in sorted(JVM_ROOT.iterdir()):
            major = _java_major(home)
            if major is not None and major >= MIN_JAVA and (home / "bin" / "java").exists():
                found.append((major, home))
    if not found:
        raise TrinoUnavailable(
            f"Trino {TRINO_VERSION} needs a JDK {MIN_JAVA} or later and none is in {JVM_ROOT} (the default Java 17 "
            f"is too old): install one (e.g. apt-get install temurin-25-jdk) or set SIGNALS_TRINO_JAVA_HOME")
    return max(found)[1]


def fetch(version: str = TRINO_VERSION, *, log: bool = True) -> Path:
    """Fetch Trino's server and plugins with Maven into the cache (once); returns the release directory."""
    home = trino_home(version)
    if (home / "complete").is_file():
        return home
    find_java_home()  # fail before a 500 MB download that could not run
    mvn = shutil.which("mvn")
    if mvn is None:
        raise TrinoUnavailable("`signals trino fetch` needs Maven (`mvn`) to download Trino from Maven Central: "
                               "install it (apt-get install maven)")
    home.mkdir(parents=True, exist_ok=True)
    downloads = home / "downloads"
    downloads.mkdir(exist_ok=True)
    artifacts = [f"io.trino:trino-server-core:{version}:tar.gz"] + [f"io.trino:trino-{p}:{version}:zip"
                                                                     for p in PLUGINS]
    for artifact in artifacts:
        if log:
            print(f"signals trino fetch: mvn dependency:copy {artifact}", flush=True)
        done = subprocess.run([mvn, "-q", "-B", "dependency:copy", f"-Dartifact={artifact}",
                               f"-DoutputDirectory={downloads}"], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise TrinoUnavailable(f"mvn could not fetch {artifact} (exit {done.returncode}):\n"
                                   f"{(done.stdout + done.stderr)[-2000:]}")
    staging = Path(tempfile.mkdtemp(prefix="unpack-", dir=home))
    try:
        with tarfile.open(downloads / f"trino-server-core-{version}.tar.gz") as archive:
            archive.extractall(staging, filter="data")
        server = staging / f"trino-server-core-{version}"
        for plugin in PLUGINS:
            with zipfile.ZipFile(downloads / f"trino-{plugin}-{version}.zip") as archive:
                archive.extractall(staging / "plugins")
            shutil.move(staging / "plugins" / f"trino-{plugin}-{version}", server / "plugin" / plugin)
        if (home / "server").exists():
            shutil.rmtree(home / "server")
        shutil.move(server, home / "server")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    shutil.rmtree(downloads, ignore_errors=True)
    (home / "complete").write_text(f"trino {version}\n")
    return home


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _properties(values: Mapping[str, str]) -> str:
    return "".join(f"{key}={value}\n" for key, value in values.items())


def catalog_properties(aws_endpoint_url: str) -> dict[str, dict[str, str]]:
    """The two catalogs' properties, on the stack's Glue and S3 (fake credentials, us-west-2)."""
    aws = {
        "hive.metastore": "glue",
        "hive.metastore.glue.region": REGION,
        "hive.metastore.glue.endpoint-url": aws_endpoint_url,
        "hive.metastore.glue.aws-access-key": "local",
        "hive.metastore.glue.aws-secret-key": "local",
        "fs.native-s3.enabled": "true",
        "s3.endpoint": aws_endpoint_url,
        "s3.region": REGION,
        "s3.path-style-access": "true",
        "s3.aws-access-key": "local",
        "s3.aws-secret-key": "local",
    }
    hive = {"connector.name": "hive", **aws,
            # Column statistics live in Glue's GetColumnStatisticsForPartition, which moto lacks (each
            # call would fail and be retried); the planner does without them.
            "hive.table-statistics-enabled": "false",
            "hive.collect-column-statistics-on-write": "false",
            "hive.iceberg-catalog-name": "iceberg",
            "hive.partition-projection-enabled": "true",
            "hive.non-managed-table-writes-enabled": "false"}
    iceberg_aws = {k: v for k, v in aws.items() if k != "hive.metastore"}
    iceberg = {"connector.name": "iceberg", "iceberg.catalog.type": "glue", **iceberg_aws,
               "iceberg.hive-catalog-name": "awsdatacatalog",
               # Athena's VACUUM honours the table's own ages: let them be below Trino's 7-day minimums.
               "iceberg.expire-snapshots.min-retention": "0s",
               "iceberg.remove-orphan-files.min-retention": "0s",
               "iceberg.file-format": "PARQUET"}
    return {"awsdatacatalog": hive, "iceberg": iceberg}


class TrinoServer:
    """One single-node Trino (coordinator and worker) on 127.0.0.1, for the life of a local stack."""

    def __init__(self, home: Path | None = None, *, aws_endpoint_url: str, heap: str = DEFAULT_HEAP,
                 port: int | None = None, work_dir: Path | None = None) -> None:
        self.home = home or trino_home()
        if not (self.home / "complete").is_file():
            raise TrinoUnavailable(f"Trino {TRINO_VERSION} is not fetched ({self.home}): run `signals trino fetch` "
                                   "(or `make trino`) first")
        self.java_home = find_java_home()
        self.aws_endpoint_url = aws_endpoint_url
        self.heap = heap
        self.port = port or _free_port()
        self._own_work_dir = work_dir is None
        self.work_dir = work_dir or Path(tempfile.mkdtemp(prefix="signals-trino-"))
        self._process: subprocess.Popen[bytes] | None = None
        self.startup_seconds: float | None = None
        self._launched = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def _write_config(self) -> Path:
        etc = self.work_dir / "etc"
        (etc / "catalog").mkdir(parents=True, exist_ok=True)
        data = self.work_dir / "data"
        data.mkdir(exist_ok=True)
        server = self.home / "server"
        (etc / "node.properties").write_text(_properties({
            "node.environment": "signals_local", "node.id": str(uuid.uuid4()), "node.data-dir": str(data),
            # Bound to and announced on loopback: the coordinator reaches its own worker there (announced on
            # the machine's address, its task and state requests timed out under load).
            "node.bind-ip": "127.0.0.1", "node.internal-address": "127.0.0.1"}))
        (etc / "config.properties").write_text(_properties({
            "coordinator": "true",
            "node-scheduler.include-coordinator": "true",
            "http-server.http.port": str(self.port),
            "discovery.uri": self.url,
            "query.max-memory": "1GB",
            "query.max-memory-per-node": "1GB",
            # Every catalog on every node, known from the first query on. Under the default static catalog
            # management the coordinator schedules a catalog's splits only on nodes in its per-catalog map,
            # which a 5 s timer rebuilds: the last rebuild before "starting: false" can predate the
            # catalogs, and a scan in that window fails with NO_NODES_AVAILABLE (seen in CI). Dynamic
            # management has no such map (`DiscoveryNodeManager.allCatalogsOnAllNodes`); its file store
            # (etc/catalog-store.properties, read from the working directory) is read-only: no CREATE CATALOG.
            "catalog.management": "dynamic",
            "catalog.store": "file",
            "plugin.dir": str(server / "plugin"),
            "task.concurrency": "2",
            "task.max-worker-threads": "4",
        }))
        (etc / "catalog-store.properties").write_text(_properties({
            "catalog.config-dir": str(etc / "catalog"), "catalog.read-only": "true"}))
        (etc / "log.properties").write_text("io.trino=WARN\n")
        for name, values in catalog_properties(self.aws_endpoint_url).items():
            (etc / "catalog" / f"{name}.properties").write_text(_properties(values))
        return etc

    def command(self) -> list[str]:
        etc = self.work_dir / "etc"
        server = self.home / "server"
        node = dict(line.split("=", 1) for line in (etc / "node.properties").read_text().splitlines() if line)
        return [
            str(self.java_home / "bin" / "java"), "-server", f"-Xmx{self.heap}", "-XX:+UseG1GC",
            "-XX:+ExitOnOutOfMemoryError", "-XX:-OmitStackTraceInFastThrow", "-XX:ReservedCodeCacheSize=256M",
            "-Djdk.attach.allowAttachSelf=true", "-Dfile.encoding=UTF-8",
            "--enable-native-access=ALL-UNNAMED", "--sun-misc-unsafe-memory-access=allow",
            *[f"-D{key}={value}" for key, value in node.items()],
            f"-Dconfig={etc / 'config.properties'}", f"-Dlog.levels-file={etc / 'log.properties'}",
            f"-Dlog.output-file={self.work_dir / 'server.log'}", "-Dlog.enable-console=false",
            "-cp", f"{server / 'lib'}/*", "io.trino.server.TrinoServer",
        ]

    def start(self, timeout: float = START_TIMEOUT_S) -> None:
        self.launch()
        self.wait_ready(timeout)

    def launch(self) -> None:
        """Start the server's process and return (`wait_ready` waits for it to take queries)."""
        self._write_config()
        self._launched = time.monotonic()
        environment = {**os.environ, "JAVA_HOME": str(self.java_home)}
        console = open(self.work_dir / "console.log", "wb")  # noqa: SIM115 (the child keeps it)
        try:
            self._process = subprocess.Popen(self.command(), cwd=self.work_dir, env=environment,
                                             stdout=console, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        finally:
            console.close()

    def wait_ready(self, timeout: float = START_TIMEOUT_S) -> None:
        if self._process is None:
            raise TrinoUnavailable("the Trino server was not launched")
        deadline = self._launched + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                tail = self.log_tail()
                self._process = None
                raise TrinoUnavailable(f"the Trino server exited while starting:\n{tail}")
            if self._ready():
                self.startup_seconds = time.monotonic() - self._launched
                return
            time.sleep(0.5)
        tail = self.log_tail()
        self.stop()
        raise TrinoUnavailable(f"the Trino server did not start within {timeout:g} s:\n{tail}")

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/v1/info", timeout=2) as response:
                return not orjson.loads(response.read()).get("starting", True)
        except (OSError, ValueError):
            return False

    def log_tail(self, lines: int = 40) -> str:
        text = ""
        for name in ("console.log", "server.log"):
            path = self.work_dir / name
            if path.exists():
                text += "".join(path.read_text(errors="replace").splitlines(keepends=True)[-lines:])
        return text

    def rss_bytes(self) -> int | None:
        """The server's resident memory now (Linux /proc), or None."""
        if self._process is None:
            return None
        try:
            for line in Path(f"/proc/{self._process.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            return None
        return None

    def peak_rss_bytes(self) -> int | None:
        if self._process is None:
            return None
        try:
            for line in Path(f"/proc/{self._process.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            return None
        return None

    def stop(self, timeout: float = 20.0) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._own_work_dir:
            shutil.rmtree(self.work_dir, ignore_errors=True)

    def __enter__(self) -> TrinoServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
