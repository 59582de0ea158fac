"""`signals parse-file`: the core on local files, the bucket layout under --out."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from pathlib import Path

import orjson
import pytest

from shared.layout import local_output_name
from signals.cli import main
from tests.unit.parser.conftest import ARRIVAL_MS, block_of, line


def write_raw(path: Path, lines: list[bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(block_of(lines)))
    os.utime(path, (ARRIVAL_MS / 1000, ARRIVAL_MS / 1000))  # the arrival time is the file's mtime
    return path


def test_json_report_and_bucket_layout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    raw = write_raw(tmp_path / "in" / "events.gz", [line("a"), line("b", "bridge"), b"", b"[1]", line("c", x=1)])
    out = tmp_path / "out"
    assert main(["parse-file", str(raw), "--out", str(out), "--json"]) == 0
    [report] = json.loads(capsys.readouterr().out)["files"]
    assert (report["source"], report["rows"], report["quarantined"], report["blank_lines"]) == (
        "json_telemetry", 3, 1, 1)
    assert report["quarantined_by_reason"] == {"not_an_object": 1}
    name = local_output_name(str(raw.resolve()), hashlib.sha256(raw.read_bytes()).hexdigest())
    assert sorted(p["key"] for p in report["partitions"]) == [
        f"telemetry_flat/type=bridge/day=2026-11-25/hour=18/{name}.parquet",
        f"telemetry_flat/type=lock/day=2026-11-25/hour=18/{name}.parquet",
    ]
    assert report["quarantine_key"] == f"quarantine/source=json_telemetry/day=2026-11-25/hour=19/{name}.jsonl.gz"
    for key in [*(p["key"] for p in report["partitions"]), report["quarantine_key"]]:
        assert (out / key).is_file()
    assert sorted(p.name for p in out.iterdir()) == ["quarantine", "telemetry_flat"]  # no scratch left behind


def test_source_is_inferred_from_an_otlp_path_and_text_output(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    request = {"resourceLogs": [{"scopeLogs": [{"logRecords": [{"severityText": "INFO"}]}]}]}
    raw = write_raw(tmp_path / "raw" / "otlp_logs" / "2026" / "11" / "25" / "19" / "o.gz", [orjson.dumps(request)])
    assert main(["parse-file", str(raw), "--out", str(tmp_path / "out")]) == 0
    text = capsys.readouterr().out
    assert "(otlp_logs): 1 rows, 0 quarantined" in text
    assert "telemetry_flat/type=otlp_logs/day=2026-11-25/hour=19/" in text


def test_running_twice_gives_the_same_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    raw = write_raw(tmp_path / "events.gz", [line("a"), b"{"])
    out = tmp_path / "out"
    main(["parse-file", str(raw), "--out", str(out)])
    first = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    main(["parse-file", str(raw), "--out", str(out)])
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) == first
    capsys.readouterr()


def test_a_missing_file_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["parse-file", str(tmp_path / "nope.gz"), "--out", str(tmp_path / "out")]) == 1
    assert "no such file" in capsys.readouterr().err
