"""Lambda artifacts for python3.13 on arm64, whatever Python and CPU build them.

    python -m deploy.build lock                      # resolve exact versions -> deploy/locks/<function>.txt
    python -m deploy.build build parser --out DIR    # one function's code + dependencies into DIR (sam build)
    python -m deploy.build all --out build/lambda    # all five, zipped, with a size report

Dependencies come from pyproject.toml: the core list plus the function's extra (the ingester's and
the compactor's have no pyarrow; the compactor's Athena engine needs the core list alone). `lock`
resolves them for the Lambda platform (CPython 3.13, manylinux aarch64 wheels only)
into per-function requirement files with exact versions and hashes; `build` installs exactly those,
copies the first-party packages the handler can reach, trims what pyarrow ships that the functions
never load, and checks the result: every import the code can make resolves inside the artifact,
every shared library a kept extension module links against is present, and the unzipped size is
under Lambda's 250 MB limit. Standard library only (SAM's makefile build runs it with any Python 3.11+).
"""

from __future__ import annotations

import argparse
import ast
import fnmatch
import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

ROOT: Final = Path(__file__).resolve().parent.parent
LOCK_DIR: Final = Path(__file__).resolve().parent / "locks"
PYTHON_VERSION: Final = "3.13"
# Lambda's python3.13 runtime is Amazon Linux 2023 (glibc 2.34); pip takes each tag literally.
PLATFORMS: Final = ("manylinux_2_34_aarch64", "manylinux_2_28_aarch64", "manylinux2014_aarch64")
FIRST_PARTY: Final = ("shared", "ingester", "parser", "registry", "reconciler", "compactor")
MiB: Final = 1024 * 1024
LAMBDA_UNZIPPED_LIMIT: Final = 250 * MiB


@dataclass(frozen=True)
class Function:
    name: str  # the package, and the pyproject extra
    logical_id: str  # template.yaml resource
    #: Modules of the package that only the local stack runs (imported lazily behind a setting the
    #: template never sets on AWS): not followed for dependencies and left out of the artifact, so
    #: importing one in Lambda fails loudly instead of pulling DuckDB and pyiceberg in.
    local_only: tuple[str, ...] = ()

    @property
    def handler_module(self) -> str:
        return f"{self.name}.app"


FUNCTIONS: Final = {
    f.name: f
    for f in (
        Function("ingester", "IngesterFunction"),
        Function("parser", "ParserFunction"),
        Function("registry", "RegistryFunction"),
        Function("reconciler", "ReconcilerFunction"),
        # The Athena engine only: the local engine (DuckDB + pyiceberg) is for COMPACTOR_ENGINE=local.
        Function("compactor", "CompactorFunction", local_only=("compactor.local_engine",)),
    )
}

# What pyarrow ships that no function loads: Arrow Flight (RPC), the C++ test module, headers and
# Cython sources. Everything else stays (parquet, dataset/acero/substrait are linked by pyarrow.lib).
TRIM_TOP_LEVEL: Final = ("bin",)  # console scripts of the wheels (jp.py); nothing runs them in Lambda
TRIM_PATTERNS: Final = (
    "pyarrow/tests",
    "pyarrow/include",
    "pyarrow/src",
    "pyarrow/flight.py",
    "pyarrow/_flight.*",
    "pyarrow/libarrow_flight.so*",
    "pyarrow/libarrow_python_flight.so*",
    "pyarrow/_pyarrow_cpp_tests.*",
    "*.pyx",
    "*.pxd",
    "*.pxi",
    "*.h",
    "__pycache__",
)


class BuildError(RuntimeError):
    pass


# --- requirements --------------------------------------------------------------------------------


def requirements(function: Function, pyproject: Path = ROOT / "pyproject.toml") -> list[str]:
    """The core dependencies plus the function's extra, as pyproject.toml declares them."""
    project = tomllib.loads(pyproject.read_text())["project"]
    extra = project.get("optional-dependencies", {}).get(function.name)
    if extra is None:
        raise BuildError(f"pyproject.toml has no extra [{function.name}]")
    return [*project["dependencies"], *extra]


def requirements_digest(reqs: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(sorted(reqs)).encode()).hexdigest()[:16]


def lock_path(function: Function) -> Path:
    return LOCK_DIR / f"{function.name}.txt"


def _platform_args() -> list[str]:
    args = ["--implementation", "cp", "--python-version", PYTHON_VERSION, "--only-binary=:all:"]
    for platform in PLATFORMS:
        args += ["--platform", platform]
    return args


def _pip(args: Sequence[str]) -> None:
    command = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", *args]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        noise = "is ignored: it is neither a file nor a directory"
        stderr = "\n".join(line for line in result.stderr.splitlines() if noise not in line)
        raise BuildError(f"pip {' '.join(args[:2])} failed:\n{stderr[-4000:]}")


def lock(function: Function) -> Path:
    """Resolve the function's dependencies for the Lambda platform into exact, hashed pins."""
    reqs = requirements(function)
    with tempfile.TemporaryDirectory() as scratch:
        report = Path(scratch) / "report.json"
        _pip(["install", "--dry-run", "--ignore-installed", "--quiet", "--report", str(report),
              "--target", str(Path(scratch) / "target"), *_platform_args(), *reqs])
        installs = json.loads(report.read_text())["install"]
    lines = [
        f"# {function.name}: exact pins for python{PYTHON_VERSION} manylinux aarch64 (Lambda arm64).",
        "# Generated by `python -m deploy.build lock` from pyproject.toml; do not edit by hand.",
        f"# requirements-digest: {requirements_digest(reqs)}",
    ]
    for item in sorted(installs, key=lambda i: i["metadata"]["name"].lower()):
        name, version = item["metadata"]["name"], item["metadata"]["version"]
        hashes = item["download_info"].get("archive_info", {}).get("hashes", {})
        if "sha256" not in hashes:
            raise BuildError(f"no sha256 for {name} {version}")
        lines.append(f"{name}=={version} --hash=sha256:{hashes['sha256']}")
    path = lock_path(function)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def locked_digest(function: Function) -> str | None:
    try:
        text = lock_path(function).read_text()
    except FileNotFoundError:
        return None
    for line in text.splitlines():
        if line.startswith("# requirements-digest: "):
            return line.split(": ", 1)[1].strip()
    return None


def locked_packages(function: Function) -> dict[str, str]:
    """name (normalised) -> version of the function's lock file."""
    pins: dict[str, str] = {}
    for line in lock_path(function).read_text().splitlines():
        if line and not line.startswith("#"):
            spec = line.split()[0]
            name, version = spec.split("==")
            pins[_normalise(name)] = version
    return pins


def _normalise(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


# --- first-party code and its imports ------------------------------------------------------------


def _module_file(module: str, root: Path = ROOT) -> Path | None:
    base = root.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


class _Imports(ast.NodeVisitor):
    """Absolute imports of a module, lazy ones too; those guarded by `except ImportError` are optional."""

    def __init__(self, module: str, is_package: bool) -> None:
        self.package = module if is_package else module.rpartition(".")[0]
        self.required: set[str] = set()
        self.optional: set[str] = set()
        self._optional_depth = 0

    def _add(self, name: str) -> None:
        (self.optional if self._optional_depth else self.required).add(name)

    def visit_Try(self, node: ast.Try) -> None:
        guarded = any(
            handler.type is None
            or any(isinstance(n, ast.Name) and n.id in {"ImportError", "ModuleNotFoundError"}
                   for n in ast.walk(handler.type))
            for handler in node.handlers
        )
        self._optional_depth += guarded
        for statement in node.body:
            self.visit(statement)
        self._optional_depth -= guarded
        for part in (*node.handlers, *node.orelse, *node.finalbody):
            self.visit(part)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            parts = self.package.split(".")
            base = ".".join(parts[: len(parts) - node.level + 1])
            module = f"{base}.{node.module}" if node.module else base
        else:
            module = node.module or ""
        self._add(module)
        for alias in node.names:
            self._add(f"{module}.{alias.name}")  # may be a submodule; filtered by existence below


def reachable(handler_module: str, root: Path = ROOT, exclude: Iterable[str] = ()) -> tuple[set[str], set[str]]:
    """First-party modules reachable from the handler, and the third-party top-level names they import
    (`exclude`: modules not followed, e.g. a function's `local_only` ones)."""
    excluded = set(exclude)
    seen: set[str] = set()
    third_party: set[str] = set()
    pending = [handler_module]
    while pending:
        module = pending.pop()
        if module in seen:
            continue
        path = _module_file(module, root)
        if path is None:
            raise BuildError(f"first-party module {module} not found under {root}")
        seen.add(module)
        visitor = _Imports(module, path.name == "__init__.py")
        visitor.visit(ast.parse(path.read_text(), str(path)))
        for name in visitor.required:
            top = name.split(".")[0]
            if top in FIRST_PARTY:
                # `from pkg import name`: follow `pkg.name` only when it is a module of its own.
                for candidate in _parents_and_self(name):
                    if candidate in excluded:
                        break
                    if candidate not in seen and _module_file(candidate, root) is not None:
                        pending.append(candidate)
            elif top not in sys.stdlib_module_names and top != "__future__":
                third_party.add(top)
    return seen, third_party


def _parents_and_self(module: str) -> Iterator[str]:
    parts = module.split(".")
    for end in range(1, len(parts) + 1):
        yield ".".join(parts[:end])


# --- trimming and checks -------------------------------------------------------------------------


def _matches(relative: Path) -> bool:
    text = relative.as_posix()
    if text in TRIM_TOP_LEVEL:
        return True
    return any(fnmatch.fnmatch(text, pattern) or fnmatch.fnmatch(relative.name, pattern) for pattern in TRIM_PATTERNS)


def trim(target: Path) -> int:
    """Delete what no function loads; returns the bytes removed."""
    removed = 0
    for path in sorted(target.rglob("*"), key=lambda p: len(p.parts)):
        if not path.exists() and not path.is_symlink():
            continue  # inside a directory already removed
        if _matches(path.relative_to(target)):
            removed += tree_size(path)
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
    removed += _drop_duplicate_sonames(target)
    return removed


def _drop_duplicate_sonames(target: Path) -> int:
    """Wheels cannot hold symlinks, so `libX.so` and `libX.so.N.M.P` arrive as full copies of the
    `libX.so.N` the loader uses; keep only the latter (the ELF check below proves nothing needs them)."""
    removed = 0
    for lib in list(target.rglob("lib*.so.*")):
        stem, _, version = lib.name.partition(".so.")
        if lib.is_file() and version.count(".") == 0:  # libX.so.N: the runtime name
            for copy in (lib.with_name(f"{stem}.so"), *lib.parent.glob(f"{stem}.so.{version}.*")):
                if copy.is_file():
                    removed += copy.stat().st_size
                    copy.unlink()
    return removed


def elf_needed(path: Path) -> list[str]:
    """DT_NEEDED entries of a 64-bit little-endian ELF shared object (enough for manylinux aarch64)."""
    data = path.read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        return []
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
    dynamic = next((s for s in sections if s[1] == 6), None)  # SHT_DYNAMIC
    if dynamic is None:
        return []
    strtab = sections[dynamic[6]]  # sh_link -> .dynstr
    needed: list[str] = []
    for offset in range(dynamic[4], dynamic[4] + dynamic[5], 16):
        tag, value = struct.unpack_from("<qQ", data, offset)
        if tag == 0:
            break
        if tag == 1:  # DT_NEEDED
            start = strtab[4] + value
            needed.append(data[start : data.index(b"\0", start)].decode())
    return needed


def check_shared_libraries(target: Path) -> None:
    """Every library a kept .so needs is either bundled next to it or part of the system."""
    bundled = {p.name for p in target.rglob("*.so*")}
    missing: list[str] = []
    for library in target.rglob("*.so*"):
        for name in elf_needed(library):
            if name in bundled:
                continue
            if name.startswith(("libarrow", "libparquet")):
                missing.append(f"{library.relative_to(target)} needs {name}")
    if missing:
        raise BuildError("trimmed too much:\n  " + "\n  ".join(missing))


def check_imports(target: Path, third_party: Iterable[str]) -> None:
    missing = sorted(
        name for name in third_party
        if not ((target / name).is_dir() or (target / f"{name}.py").is_file() or any(target.glob(f"{name}.*.so")))
    )
    if missing:
        raise BuildError(f"imported but not in the artifact: {', '.join(missing)} (add to the function's extra)")


def tree_size(path: Path) -> int:
    if path.is_file() or path.is_symlink():
        return path.lstat().st_size
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() or p.is_symlink())


# --- build ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Artifact:
    function: str
    directory: Path
    unzipped_bytes: int
    trimmed_bytes: int
    packages: dict[str, str]
    zip_path: Path | None = None
    zipped_bytes: int | None = None

    def line(self) -> str:
        zipped = f"{self.zipped_bytes / MiB:8.1f} MiB" if self.zipped_bytes is not None else "           -"
        room = (LAMBDA_UNZIPPED_LIMIT - self.unzipped_bytes) / MiB
        return (f"{self.function:<11} unzipped {self.unzipped_bytes / MiB:7.1f} MiB  zipped {zipped}  "
                f"room to 250 MB {room:6.1f} MiB  trimmed {self.trimmed_bytes / MiB:5.1f} MiB  "
                f"pyarrow {'yes' if 'pyarrow' in self.packages else 'no'}")


def build(function: Function, out: Path, *, for_host: bool = False) -> Artifact:
    """The function's artifact in `out`. `for_host` installs the same pinned versions for the Python
    running this (wheels differ, so without hashes): a smoke test can then import the trimmed
    artifact here, which an arm64 one cannot be on another CPU."""
    reqs = requirements(function)
    if locked_digest(function) != requirements_digest(reqs):
        raise BuildError(f"{lock_path(function)} is out of date with pyproject.toml; run python -m deploy.build lock")
    modules, third_party = reachable(function.handler_module, exclude=function.local_only)
    out.mkdir(parents=True, exist_ok=True)
    for entry in out.iterdir():  # sam build reuses ARTIFACTS_DIR; start clean
        shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
    if for_host:
        with tempfile.TemporaryDirectory() as scratch:
            pins = Path(scratch) / "pins.txt"
            pins.write_text("".join(f"{name}=={version}\n" for name, version in locked_packages(function).items()))
            _pip(["install", "--quiet", "--no-deps", "--no-compile", "--only-binary=:all:", "--target", str(out),
                  "-r", str(pins)])
    else:
        _pip(["install", "--quiet", "--no-deps", "--no-compile", "--require-hashes", "--target", str(out),
              *_platform_args(), "-r", str(lock_path(function))])
    for package in sorted({m.split(".")[0] for m in modules}):
        shutil.copytree(ROOT / package, out / package, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for module in function.local_only:
        local_file = _module_file(module, out)
        if local_file is not None:
            local_file.unlink()
    trimmed = trim(out)
    check_shared_libraries(out)
    check_imports(out, third_party)
    size = tree_size(out)
    if size >= LAMBDA_UNZIPPED_LIMIT:
        raise BuildError(f"{function.name}: {size / MiB:.1f} MiB unzipped, over Lambda's 250 MB limit")
    return Artifact(function.name, out, size, trimmed, locked_packages(function))


def zip_artifact(artifact: Artifact, zip_path: Path) -> Artifact:
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        for path in sorted(artifact.directory.rglob("*")):
            if path.is_file():
                info = zipfile.ZipInfo(path.relative_to(artifact.directory).as_posix(), date_time=(1980, 1, 1, 0, 0, 0))
                info.external_attr = (0o755 if os.access(path, os.X_OK) else 0o644) << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, path.read_bytes())
    return Artifact(artifact.function, artifact.directory, artifact.unzipped_bytes, artifact.trimmed_bytes,
                    artifact.packages, zip_path, zip_path.stat().st_size)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.build", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    lock_cmd = commands.add_parser("lock", help="resolve exact pins per function into deploy/locks/")
    lock_cmd.add_argument("functions", nargs="*", metavar="FUNCTION", help=f"default: all of {', '.join(FUNCTIONS)}")
    build_cmd = commands.add_parser("build", help="one function's artifact directory (what sam build zips)")
    build_cmd.add_argument("function", choices=list(FUNCTIONS))
    build_cmd.add_argument("--out", type=Path, required=True)
    all_cmd = commands.add_parser("all", help="every function, zipped, with a size report")
    all_cmd.add_argument("--out", type=Path, default=ROOT / "build" / "lambda")
    all_cmd.add_argument("--json", type=Path, help="also write the size report as JSON here")
    args = parser.parse_args(argv)
    try:
        if args.command == "lock":
            unknown = set(args.functions) - set(FUNCTIONS)
            if unknown:
                raise BuildError(f"unknown function(s): {', '.join(sorted(unknown))}")
            for name in args.functions or list(FUNCTIONS):
                path = lock(FUNCTIONS[name])
                print(f"{path.relative_to(ROOT)}: {len(locked_packages(FUNCTIONS[name]))} pinned packages")
        elif args.command == "build":
            print(build(FUNCTIONS[args.function], args.out).line())
        else:
            artifacts = []
            for function in FUNCTIONS.values():
                artifact = build(function, args.out / function.name)
                artifacts.append(zip_artifact(artifact, args.out / f"{function.name}.zip"))
                print(artifacts[-1].line(), flush=True)
            if args.json:
                args.json.write_text(json.dumps([
                    {"function": a.function, "unzipped_bytes": a.unzipped_bytes, "zipped_bytes": a.zipped_bytes,
                     "trimmed_bytes": a.trimmed_bytes, "packages": a.packages} for a in artifacts], indent=2))
    except BuildError as exc:
        print(f"deploy.build: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
