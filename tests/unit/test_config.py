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


COMPACTOR_ENV = {"REGISTRY_TABLE": "tbl", "GLUE_DATABASE": "telemetry-parser-db",
                 "ALERTS_DATABASE": "telemetry_alerts_dev", "AUDIT_DATABASE": "telemetry_alerts_dev_dq_audit",
                 "VERIFIED_BUCKET": "ver", "DBT_BUCKET": "dev-signal-data-lake-dbt",
                 "ARTIFACTS_BUCKET": "dev-dbt-artifacts-x", "ATHENA_WORKGROUP": "dev-tps-telemetry-dbt-wg"}


def test_compactor_config_names_what_is_missing_and_defaults_to_athena() -> None:
    from shared.config import CompactorConfig  # noqa: PLC0415

    with pytest.raises(ConfigError, match="ARTIFACTS_BUCKET"):
        load(CompactorConfig, {k: v for k, v in COMPACTOR_ENV.items() if k != "ARTIFACTS_BUCKET"})
    config = load(CompactorConfig, COMPACTOR_ENV)
    assert config.compactor_engine == "athena"
    assert config.lease_seconds > 900  # outlives the longest Lambda run
    with pytest.raises(ConfigError, match="COMPACTOR_ENGINE='spark'"):
        load(CompactorConfig, {**COMPACTOR_ENV, "COMPACTOR_ENGINE": "spark"})
