"""No script under bench/ shadows a package: run as `python bench/X.py`, bench/ comes first on sys.path.

`bench/compactor.py` once hid the `compactor` package from every script in bench/ (the local stack
could not import `compactor.app`, so `bench/local_athena.py` died at start).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"


def test_no_bench_script_shadows_an_importable_module() -> None:
    names = sorted(p.stem for p in BENCH.glob("*.py"))
    assert names, "bench/ has no scripts"
    saved = list(sys.path)
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH]
    try:
        shadowed = {name: spec.origin for name in names
                    if (spec := importlib.util.find_spec(name)) is not None}
    finally:
        sys.path[:] = saved
    shadowed.update({name: "the standard library" for name in names if name in sys.stdlib_module_names})
    assert shadowed == {}, f"rename these bench/ scripts, they hide the modules: {shadowed}"
