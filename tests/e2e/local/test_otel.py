"""OpenTelemetry logs from the real Python SDK come back from `signals query` intact."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from signals.local.stack import LocalStack
from tests.e2e.local.conftest import API_KEY


@pytest.mark.filterwarnings("ignore:.*LoggingHandler.*:DeprecationWarning")
def test_sdk_logs_come_back_with_attributes_trace_ids_and_severities(stack: LocalStack, signals_home: Path) -> None:
    resource = Resource.create({"service.name": "e2e-otel", "device.id": "dev-42"})
    provider = LoggerProvider(resource=resource)
    exporter = OTLPLogExporter(endpoint=f"{stack.api_url}/v1/logs", headers={"x-api-key": API_KEY},
                               compression=Compression.Gzip)
    provider.add_log_record_processor(BatchLogRecordProcessor(exporter))
    tracer = TracerProvider(resource=resource).get_tracer("e2e")
    logger = logging.getLogger("e2e.otel.sdk")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    handler = LoggingHandler(level=logging.DEBUG, logger_provider=provider)
    logger.addHandler(handler)
    try:
        with tracer.start_as_current_span("checkout") as span:
            logger.warning("card declined", extra={"order.id": "o-1", "amount": 12.5})
            trace_id = format(span.get_span_context().trace_id, "032x")
            span_id = format(span.get_span_context().span_id, "016x")
        logger.info("no span here", extra={"order.id": "o-2"})
        logger.error("boom")
        provider.force_flush()
    finally:
        logger.removeHandler(handler)
        provider.shutdown()
    assert stack.wait_until_drained(60)

    completed = subprocess.run(
        [sys.executable, "-m", "signals.cli", "query", "--format", "json",
         "SELECT body, severity_text, severity_number, trace_id, span_id, attributes, service_name, device_id "
         "FROM telemetry_otlp_logs_flat WHERE service_name = 'e2e-otel' ORDER BY time"],
        env={**os.environ, "SIGNALS_HOME": str(signals_home)}, capture_output=True, text=True, timeout=60, check=False,
    )
    assert completed.returncode == 0, completed.stderr
    rows = json.loads(completed.stdout)
    assert [(r["body"], r["severity_text"], r["severity_number"]) for r in rows] == [
        ("card declined", "WARN", 13), ("no span here", "INFO", 9), ("boom", "ERROR", 17)]
    assert (rows[0]["trace_id"], rows[0]["span_id"]) == (trace_id, span_id)
    assert rows[1]["trace_id"] is None
    assert rows[0]["attributes"]["order.id"] == "o-1"
    assert rows[0]["attributes"]["amount"] == "12.5"
    assert {(r["service_name"], r["device_id"]) for r in rows} == {("e2e-otel", "dev-42")}
