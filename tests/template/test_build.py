"""Lambda artifacts: pins agree with pyproject, the import graph decides contents, trimming is safe."""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

import pytest

from deploy import build
from deploy.build import FUNCTIONS, MiB

# The parser's artifact must leave room under Lambda's 250 MB for growth (pyarrow upgrades).
PARSER_BUDGET = 200 * MiB


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_lock_file_is_current_with_pyproject(name: str) -> None:
    function = FUNCTIONS[name]
    assert build.locked_digest(function) == build.requirements_digest(build.requirements(function)), (
        "pyproject.toml changed: run python -m deploy.build lock"
    )
    for line in build.lock_path(function).read_text().splitlines():
        if line and not line.startswith("#"):
            spec, hash_option = line.split()
            assert "==" in spec
            assert hash_option.startswith("--hash=sha256:")


# The functions whose artifacts carry pyarrow (they read or write Parquet themselves).
WITH_PYARROW = ("parser", "registry", "reconciler")


def test_only_the_functions_that_read_parquet_pin_pyarrow() -> None:
    for name in FUNCTIONS:
        assert ("pyarrow" in build.locked_packages(FUNCTIONS[name])) is (name in WITH_PYARROW), name


def test_compactor_ships_the_athena_engine_on_the_core_pins_alone() -> None:
    compactor = FUNCTIONS["compactor"]
    modules, third_party = build.reachable("compactor.app", exclude=compactor.local_only)
    assert "compactor.athena_engine" in modules
    assert "compactor.local_engine" not in modules
    assert third_party <= {"aws_lambda_powertools", "boto3", "botocore", "pydantic"}
    # Without the exclusion the local engine (DuckDB, pyiceberg, pyarrow) would be pulled in.
    everything, everything_third_party = build.reachable("compactor.app")
    assert "compactor.local_engine" in everything
    assert {"duckdb", "pyarrow"} <= everything_third_party
    pinned = set(build.locked_packages(compactor))
    assert not pinned & {"pyarrow", "duckdb", "pyiceberg", "pyiceberg-core", "sqlglot"}


def test_ingester_reaches_no_pyarrow_and_no_other_function() -> None:
    ingester_modules, ingester_third_party = build.reachable("ingester.app")
    assert "ingester.app" in ingester_modules
    assert "pyarrow" not in ingester_third_party
    assert not any(module.startswith(("parser", "registry", "reconciler")) for module in ingester_modules)


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_every_third_party_import_is_pinned_for_its_function(name: str) -> None:
    _, third_party = build.reachable(f"{name}.app", exclude=FUNCTIONS[name].local_only)
    pinned = set(build.locked_packages(FUNCTIONS[name]))
    # import name -> distribution where they differ
    distribution = {"google": "protobuf", "dateutil": "python-dateutil", "yaml": "pyyaml",
                    "opentelemetry": "opentelemetry-proto"}
    for module in third_party:
        wanted = distribution.get(module, module).replace("_", "-")
        assert wanted in pinned, f"{name} imports {module}, not in its lock file"


def test_optional_imports_are_not_required(tmp_path: Path) -> None:
    package = tmp_path / "parser"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "app.py").write_text(
        "import orjson\n"
        "try:\n    import isal\nexcept ImportError:\n    isal = None\n"
        "def later():\n    import pyarrow.parquet\n"
    )
    _, third_party = build.reachable("parser.app", root=tmp_path)
    assert third_party == {"orjson", "pyarrow"}


def _fake_pyarrow(root: Path) -> None:
    pyarrow = root / "pyarrow"
    for relative in ("tests/test_x.py", "include/arrow/api.h", "flight.py", "_flight.cpython-313-aarch64-linux-gnu.so",
                     "libarrow_flight.so.2600", "lib.pyx", "parquet/__init__.py", "libarrow_python.so",
                     "libarrow_python.so.2600", "libarrow_python.so.2600.1.0", "__pycache__/x.pyc"):
        path = pyarrow / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * 100)
    (root / "bin").mkdir()
    (root / "bin" / "jp.py").write_text("")


def test_trim_keeps_what_pyarrow_loads_and_drops_the_rest(tmp_path: Path) -> None:
    _fake_pyarrow(tmp_path)
    removed = build.trim(tmp_path)
    kept = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert kept == ["pyarrow/libarrow_python.so.2600", "pyarrow/parquet/__init__.py"]
    assert removed == 9 * 100  # bytes of the nine files removed (the jp.py script is empty)


def _elf_with_needed(names: list[str]) -> bytes:
    """A minimal 64-bit little-endian ELF: null, .dynstr and .dynamic sections."""
    dynstr = b"\0" + b"".join(name.encode() + b"\0" for name in names)
    offsets = [1 + sum(len(n) + 1 for n in names[:i]) for i in range(len(names))]
    dynamic = b"".join(struct.pack("<qQ", 1, offset) for offset in offsets) + struct.pack("<qQ", 0, 0)
    header_size, section_size = 64, 64
    dynstr_at = header_size
    dynamic_at = dynstr_at + len(dynstr)
    sections_at = dynamic_at + len(dynamic)
    header = bytearray(header_size)
    header[:6] = b"\x7fELF\x02\x01"
    struct.pack_into("<Q", header, 0x28, sections_at)
    struct.pack_into("<HH", header, 0x3A, section_size, 3)
    null = bytes(section_size)
    strtab = struct.pack("<IIQQQQIIQQ", 0, 3, 0, 0, dynstr_at, len(dynstr), 0, 0, 1, 0)
    dyn = struct.pack("<IIQQQQIIQQ", 0, 6, 0, 0, dynamic_at, len(dynamic), 1, 0, 8, 16)
    return bytes(header) + dynstr + dynamic + null + strtab + dyn


def test_elf_needed_reads_dt_needed_entries(tmp_path: Path) -> None:
    library = tmp_path / "lib.so"
    library.write_bytes(_elf_with_needed(["libarrow.so.2600", "libc.so.6"]))
    assert build.elf_needed(library) == ["libarrow.so.2600", "libc.so.6"]


def test_trimming_a_library_something_links_against_fails_the_build(tmp_path: Path) -> None:
    (tmp_path / "pyarrow").mkdir()
    (tmp_path / "pyarrow" / "lib.cpython-313-aarch64-linux-gnu.so").write_bytes(
        _elf_with_needed(["libarrow_flight.so.2600", "libc.so.6"])
    )
    with pytest.raises(build.BuildError, match="libarrow_flight"):
        build.check_shared_libraries(tmp_path)


def test_a_missing_import_fails_the_build(tmp_path: Path) -> None:
    (tmp_path / "orjson").mkdir()
    build.check_imports(tmp_path, {"orjson"})
    with pytest.raises(build.BuildError, match="pyarrow"):
        build.check_imports(tmp_path, {"orjson", "pyarrow"})


@pytest.mark.slow
def test_artifacts_build_for_lambda_arm64_within_size(tmp_path: Path) -> None:
    """Installs the pinned manylinux aarch64 wheels (pip's cache or the registry) for all five functions."""
    sizes = {}
    for name, function in FUNCTIONS.items():
        artifact = build.build(function, tmp_path / name)
        sizes[name] = artifact.unzipped_bytes
        print(artifact.line())
        assert (tmp_path / name / name / "app.py").is_file()
        assert (tmp_path / name / "shared" / "schema.py").is_file()
        assert list((tmp_path / name / "pydantic_core").glob("*aarch64-linux-gnu.so")), "not an arm64 build"
        assert not list((tmp_path / name).rglob("__pycache__"))
    assert not (tmp_path / "ingester" / "pyarrow").exists()
    assert (tmp_path / "parser" / "pyarrow" / "parquet").is_dir()
    assert not list((tmp_path / "parser" / "pyarrow").glob("*flight*"))
    assert sizes["parser"] < PARSER_BUDGET
    assert all(size < build.LAMBDA_UNZIPPED_LIMIT for size in sizes.values())
    assert sizes["ingester"] < sizes["parser"] / 2
    # The compactor's Athena engine: core pins only, the local engine left out.
    assert not (tmp_path / "compactor" / "pyarrow").exists()
    assert not (tmp_path / "compactor" / "duckdb").exists()
    assert not (tmp_path / "compactor" / "pyiceberg").exists()
    assert not (tmp_path / "compactor" / "compactor" / "local_engine.py").exists()
    assert (tmp_path / "compactor" / "compactor" / "athena_engine.py").is_file()
    assert sizes["compactor"] < sizes["parser"] / 2


@pytest.mark.slow
@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_trimmed_artifact_imports_its_handler_alone(name: str, tmp_path: Path) -> None:
    """The same pins and trimming for this machine's Python, imported with nothing else on the path:
    proves the trimmed pyarrow still loads and every module the handler needs is in the artifact."""
    build.build(FUNCTIONS[name], tmp_path, for_host=True)
    code = (
        "import sys, importlib\n"
        f"sys.path.insert(0, {str(tmp_path)!r})\n"
        f"app = importlib.import_module('{name}.app')\n"
        "assert callable(app.handler) and callable(app.build_handler)\n"
        "if 'pyarrow' in sys.modules or {name!r} in {with_pyarrow!r}:\n"
        "    import pyarrow.parquet, pyarrow.json, pyarrow.compute\n"
        "outside = sorted(m.__name__ for m in list(sys.modules.values())\n"
        "                 if 'site-packages' in (getattr(m, '__file__', None) or ''))\n"
        "assert not outside, outside\n"
        "print(sorted({m.split('.')[0] for m in sys.modules if m.startswith('pyarrow')}))\n"
    ).replace("{name!r}", repr(name)).replace("{with_pyarrow!r}", repr(WITH_PYARROW))
    result = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, check=False,
                            env={"PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1"}, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert ("pyarrow" in result.stdout) is (name in WITH_PYARROW)
