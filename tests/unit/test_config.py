from __future__ import annotations

import pytest

from shared.config import ConfigError, IngesterConfig, ReconcilerConfig, load


def test_missing_variable_is_named() -> None:
    with pytest.raises(ConfigError, match="OTLP_STREAM_NAME"):
        load(IngesterConfig, {"TELEMETRY_STREAM_NAME": "t"})


def test_bad_variable_is_named_with_its_value() -> None:
    env = {"TELEMETRY_STREAM_NAME": "t", "OTLP_STREAM_NAME": "o", "MAX_BODY_BYTES": "lots"}
    with pytest.raises(ConfigError, match="MAX_BODY_BYTES='lots'"):
        load(IngesterConfig, env)


def test_defaults_and_overrides() -> None:
    config = load(IngesterConfig, {"TELEMETRY_STREAM_NAME": "t", "OTLP_STREAM_NAME": "o"})
    assert config.max_body_bytes == 32 * 1024 * 1024
    config = load(IngesterConfig, {"TELEMETRY_STREAM_NAME": "t", "OTLP_STREAM_NAME": "o", "MAX_BODY_BYTES": "1024"})
    assert config.max_body_bytes == 1024


def test_reads_the_mapping_it_is_given_not_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REGISTRY_TABLE", "from-os-environ")
    env = {"REGISTRY_TABLE": "tbl", "GLUE_DATABASE": "db", "VERIFIED_BUCKET": "ver",
           "RAW_BUCKET": "raw", "REDRIVE_QUEUE_URL": "http://q"}
    assert load(ReconcilerConfig, env).registry_table == "tbl"


def test_functions_in_one_process_keep_their_metrics_apart() -> None:
    # The local stack runs every function in one process: one's flush must not carry another's metrics.
    from shared.observability import logger_and_metrics  # noqa: PLC0415

    _, parser_metrics = logger_and_metrics("parser")
    _, registry_metrics = logger_and_metrics("registry")
    parser_metrics.add_metric(name="RowsOut", unit="Count", value=3)
    assert "RowsOut" in parser_metrics.metric_set
    assert registry_metrics.metric_set == {}
    parser_metrics.clear_metrics()
