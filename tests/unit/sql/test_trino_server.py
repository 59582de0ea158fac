"""`signals trino fetch` and the server's JDK: one clear message where Maven or a JDK 24+ is missing."""

from __future__ import annotations

from pathlib import Path

import pytest

from signals.cli import main
from signals.sql import trino_server
from signals.sql.trino_server import TrinoServer, TrinoUnavailable, catalog_properties, find_java_home


def fake_jdk(root: Path, name: str, version: str) -> Path:
    home = root / name
    (home / "bin").mkdir(parents=True)
    (home / "bin" / "java").write_text("")
    (home / "release").write_text(f'JAVA_VERSION="{version}"\n')
    return home


def test_the_newest_jdk_of_24_or_later_is_chosen_and_17_is_not(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SIGNALS_TRINO_JAVA_HOME", raising=False)
    monkeypatch.setattr(trino_server, "JVM_ROOT", tmp_path)
    fake_jdk(tmp_path, "java-17-openjdk-amd64", "17.0.15")
    with pytest.raises(TrinoUnavailable, match="needs a JDK 24 or later"):
        find_java_home()
    fake_jdk(tmp_path, "temurin-24-jdk-amd64", "24.0.2")
    newest = fake_jdk(tmp_path, "temurin-25-jdk-amd64", "25.0.3")
    assert find_java_home() == newest


def test_fetch_without_maven_says_so_and_writes_nothing_complete(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SIGNALS_TRINO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("SIGNALS_TRINO_JAVA_HOME", str(fake_jdk(tmp_path, "jdk", "25.0.3")))
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    assert main(["trino", "fetch"]) == 1
    assert "needs Maven (`mvn`)" in capsys.readouterr().err
    assert not (tmp_path / "cache" / trino_server.TRINO_VERSION / "complete").exists()
    assert main(["trino", "where"]) == 1


def test_a_jdk_too_old_named_explicitly_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIGNALS_TRINO_JAVA_HOME", str(fake_jdk(tmp_path, "jdk17", "17.0.15")))
    with pytest.raises(TrinoUnavailable, match="is not a JDK 24 or later"):
        find_java_home()


def test_a_server_not_fetched_is_refused_before_it_starts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIGNALS_TRINO_CACHE", str(tmp_path / "cache"))
    with pytest.raises(TrinoUnavailable, match="run `signals trino fetch`"):
        TrinoServer(aws_endpoint_url="http://127.0.0.1:4566")


def test_both_catalogs_use_the_stacks_glue_and_s3_and_vacuum_may_go_below_seven_days() -> None:
    catalogs = catalog_properties("http://127.0.0.1:4566")
    assert catalogs["awsdatacatalog"]["hive.iceberg-catalog-name"] == "iceberg"
    assert catalogs["iceberg"]["iceberg.catalog.type"] == "glue"
    for values in catalogs.values():
        assert values["hive.metastore.glue.endpoint-url"] == values["s3.endpoint"] == "http://127.0.0.1:4566"
        assert values["s3.path-style-access"] == "true"
    assert catalogs["iceberg"]["iceberg.expire-snapshots.min-retention"] == "0s"
