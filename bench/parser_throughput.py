"""Parser throughput and memory: `signals parse-file` side by side with DuckDB and plain pyarrow.

    .venv/bin/python bench/parser_throughput.py [--size-mb 200] [--runs 3] [--memory-check]

Generates (once, under bench/out/) a ~200 MB uncompressed gzip JSONL of mixed device events, clean
and with 1% bad lines spread evenly, then times in the same run, each in its own subprocess:
- DuckDB: `COPY (SELECT * FROM read_json(...)) TO ... (FORMAT parquet)` (the baseline),
- pyarrow: `pyarrow.json.read_json` + `pyarrow.parquet.write_table` (no validation at all),
- `signals parse-file` (validation, partitioning, quarantine, lineage).
Times cover the work only (interpreter start and imports excluded for all three). Reported: median
MB/s of uncompressed input over the runs, the ratio to DuckDB, and each child's peak RSS.
`--memory-check` also runs parse-file on a 4x larger input and compares peak RSS.
`--baseline-src DIR` adds `parse-file@base`: the same command from another source tree (e.g.
`git archive main | tar -x -C DIR`), so a change is measured against its base in the same run.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import redirect_stdout
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
CONTENDERS = ["duckdb", "pyarrow", "parse-file"]
BASELINE_SRC_ENV = "BENCH_BASELINE_SRC"


def _dataset(size_mb: int, bad_fraction: float) -> tuple[Path, int]:
    OUT.mkdir(exist_ok=True)
    tag = f"{size_mb}mb-{'bad' + str(bad_fraction) if bad_fraction else 'clean'}"
    path = OUT / f"devices-{tag}.jsonl.gz"
    meta = path.with_suffix(".json")
    if not (path.exists() and meta.exists()):
        # In a subprocess: Linux carries a parent's peak RSS into its children's ru_maxrss.
        print(f"generating {path.name} ...", file=sys.stderr)
        subprocess.run([sys.executable, __file__, "--generate", str(path), str(size_mb), str(bad_fraction)],
                       check=True)
    return path, int(json.loads(meta.read_text())["uncompressed_bytes"])


def _generate(path: str, size_mb: str, bad_fraction: str) -> None:
    sys.path.insert(0, str(HERE))
    import parser_data  # noqa: PLC0415 (bench-local module)

    size = parser_data.write_raw(Path(path), int(size_mb) * 1_000_000, float(bad_fraction))
    Path(path).with_suffix(".json").write_text(json.dumps({"uncompressed_bytes": size}))


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _child(kind: str, raw: str, out_dir: str) -> None:
    """Runs in a subprocess: do one contender's work, print seconds and peak RSS as JSON."""
    if kind == "duckdb":
        import duckdb  # noqa: PLC0415

        connection = duckdb.connect()
        connection.execute(f"SET threads={os.cpu_count() or 1}")
        cpu_start = _cpu_seconds()
        start = time.perf_counter()
        # With bad lines DuckDB must be told to skip them (it cannot keep them anywhere).
        options = ", ignore_errors=true" if "-bad" in Path(raw).name else ""
        connection.execute(
            f"COPY (SELECT * FROM read_json('{raw}'{options})) TO '{out_dir}/duckdb.parquet' (FORMAT parquet)"
        )
    elif kind == "pyarrow":
        import pyarrow.json as pa_json  # noqa: PLC0415
        import pyarrow.parquet as pq  # noqa: PLC0415

        cpu_start = _cpu_seconds()
        start = time.perf_counter()
        table = pa_json.read_json(raw)
        pq.write_table(table, f"{out_dir}/pyarrow.parquet", compression="zstd")
    else:
        if kind == "parse-file@base":  # the baseline tree's packages shadow this checkout's
            sys.path.insert(0, os.environ[BASELINE_SRC_ENV])
        import parser.core  # noqa: F401, PLC0415 (imports outside the timed part, as for the others)
        from signals.cli import main  # noqa: PLC0415

        cpu_start = _cpu_seconds()
        start = time.perf_counter()
        with redirect_stdout(io.StringIO()):
            status = main(["parse-file", raw, "--out", out_dir, "--json"])
        if status != 0:
            raise SystemExit(status)
    seconds = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu_seconds = usage.ru_utime + usage.ru_stime - cpu_start
    print(json.dumps({"seconds": seconds, "cpu_seconds": cpu_seconds, "peak_rss_mb": usage.ru_maxrss / 1024}))


def _measure(kind: str, raw: Path) -> dict[str, float] | None:
    """One contender's figures, or None when it cannot process this input at all."""
    scratch = Path(tempfile.mkdtemp(prefix=f"bench-{kind}-", dir=OUT))
    try:
        completed = subprocess.run(
            [sys.executable, __file__, "--child", kind, str(raw), str(scratch)],
            check=False, capture_output=True, text=True,
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if completed.returncode != 0:
        return None
    result: dict[str, float] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


def _compare(label: str, raw: Path, size: int, runs: int) -> dict[str, dict[str, float]]:
    samples: dict[str, list[dict[str, float]]] = {kind: [] for kind in CONTENDERS}
    for _ in range(runs):
        for kind in CONTENDERS:  # interleaved, so load on a shared machine hits all alike
            figures = _measure(kind, raw)
            if figures is not None:
                samples[kind].append(figures)
    summary: dict[str, dict[str, float]] = {}
    for kind, items in samples.items():
        if not items:
            continue
        seconds = statistics.median(item["seconds"] for item in items)
        summary[kind] = {
            "mb_s": size / 1e6 / seconds,
            "seconds": seconds,
            "cpu_seconds": statistics.median(item["cpu_seconds"] for item in items),
            "peak_rss_mb": max(item["peak_rss_mb"] for item in items),
        }
    base = summary["duckdb"]["mb_s"]
    print(f"\n{label}: {raw.name}, {size / 1e6:.0f} MB uncompressed, median of {runs} runs")
    print(f"  {'contender':<15} {'MB/s':>8} {'x DuckDB':>9} {'seconds':>8} {'CPU s':>6} {'peak RSS MB':>12}")
    for kind in CONTENDERS:
        if kind not in summary:
            print(f"  {kind:<15} {'fails on this input (cannot skip or keep bad lines)':>40}")
            continue
        figures = summary[kind]
        print(f"  {kind:<15} {figures['mb_s']:>8.1f} {figures['mb_s'] / base:>9.2f} {figures['seconds']:>8.2f} "
              f"{figures['cpu_seconds']:>6.2f} {figures['peak_rss_mb']:>12.0f}")
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", nargs=3, metavar=("KIND", "RAW", "OUT"), help=argparse.SUPPRESS)
    parser.add_argument("--generate", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--bad", type=float, default=0.01, help="fraction of bad lines in the second input")
    parser.add_argument("--memory-check", action="store_true", help="also parse a 4x larger input")
    parser.add_argument("--baseline-src", type=Path, default=None,
                        help="also time parse-file from this source tree (the base of a change)")
    args = parser.parse_args()
    if args.baseline_src is not None:
        os.environ[BASELINE_SRC_ENV] = str(args.baseline_src.resolve())
        CONTENDERS.append("parse-file@base")
    if args.child:
        _child(*args.child)
        return 0
    if args.generate:
        _generate(*args.generate)
        return 0
    print(f"cpu count {os.cpu_count()}, load average {os.getloadavg()[0]:.1f} (at start)")
    clean, clean_size = _dataset(args.size_mb, 0.0)
    bad, bad_size = _dataset(args.size_mb, args.bad)
    clean_summary = _compare("clean", clean, clean_size, args.runs)
    bad_summary = _compare(f"{args.bad:.0%} bad lines", bad, bad_size, args.runs)
    print("\nratios parse-file / DuckDB: "
          f"clean {clean_summary['parse-file']['mb_s'] / clean_summary['duckdb']['mb_s']:.2f} (target >= 0.70), "
          f"bad {bad_summary['parse-file']['mb_s'] / bad_summary['duckdb']['mb_s']:.2f} (target >= 0.40)")
    if "parse-file@base" in clean_summary and "parse-file@base" in bad_summary:
        print("ratios parse-file / parse-file@base (same run): "
              f"clean {clean_summary['parse-file']['mb_s'] / clean_summary['parse-file@base']['mb_s']:.3f}, "
              f"bad {bad_summary['parse-file']['mb_s'] / bad_summary['parse-file@base']['mb_s']:.3f}")
    print(f"load average {os.getloadavg()[0]:.1f} (at end)")
    if args.memory_check:
        large, large_size = _dataset(args.size_mb * 4, 0.0)
        peaks = [_measure("parse-file", large)["peak_rss_mb"] for _ in range(max(1, args.runs // 2))]
        base_peak = clean_summary["parse-file"]["peak_rss_mb"]
        print(f"\nmemory: parse-file peak RSS {base_peak:.0f} MB on {clean_size / 1e6:.0f} MB, "
              f"{max(peaks):.0f} MB on {large_size / 1e6:.0f} MB ({max(peaks) / base_peak - 1:+.0%}; "
              "target <= 400 MB and within 20%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
