"""The Node.js OpenTelemetry log exporters (otlp-http: JSON, otlp-proto: protobuf) land every record.

Both stream their body into the request (`Transfer-Encoding: chunked`, no Content-Length), gzipped
or not; before the front door read chunked bodies, none of their records arrived. Slow: the
packages come from the npm registry (cached under pytest's cache dir, so a rerun installs nothing).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from signals.env import Environment
from signals.local.stack import LocalStack
from tests.e2e.local.conftest import API_KEY, sql

PACKAGES = (
    "@opentelemetry/api@1.10.0",
    "@opentelemetry/sdk-logs@3.1.0",
    "@opentelemetry/resources@3.1.0",
    "@opentelemetry/exporter-logs-otlp-http@0.301.0",
    "@opentelemetry/exporter-logs-otlp-proto@0.301.0",
)
RECORDS = 100

EXPORT_SCRIPT = r"""
const { diag, DiagLogLevel } = require('@opentelemetry/api');
const { LoggerProvider, BatchLogRecordProcessor } = require('@opentelemetry/sdk-logs');
const { resourceFromAttributes } = require('@opentelemetry/resources');
const [protocol, url, key, service, count, compression] = process.argv.slice(2);
const { OTLPLogExporter } = require(`@opentelemetry/exporter-logs-otlp-${protocol}`);

const errors = [];
diag.setLogger({
  error: (...args) => errors.push(args.join(' ')), warn: (...args) => errors.push(args.join(' ')),
  info: () => {}, debug: () => {}, verbose: () => {},
}, DiagLogLevel.WARN);

async function main() {
  const exporter = new OTLPLogExporter({ url, headers: { 'x-api-key': key }, compression });
  const provider = new LoggerProvider({
    resource: resourceFromAttributes({ 'service.name': service }),
    processors: [new BatchLogRecordProcessor({ exporter, maxExportBatchSize: 40, scheduledDelayMillis: 50 })],
  });
  const logger = provider.getLogger('node-e2e');
  for (let i = 0; i < Number(count); i++) {
    logger.emit({ severityNumber: 9, severityText: 'INFO', body: `node record ${i}`, attributes: { 'record.n': i } });
  }
  await provider.forceFlush();
  await provider.shutdown();
  if (errors.length) {
    console.error(errors.join('\n'));
    process.exit(1);
  }
}
main().catch((error) => { console.error(error); process.exit(1); });
"""


@pytest.fixture(scope="module")
def node_exporters(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.fail("node and npm are needed for the Node.js OpenTelemetry exporter test")
    cache = getattr(request.config, "cache", None)  # None under -p no:cacheprovider
    directory = cache.mkdir("node-otel-exporters") if cache is not None else tmp_path_factory.mktemp("node-otel")
    wanted = "\n".join(PACKAGES)
    marker = directory / "installed.txt"
    if not marker.exists() or marker.read_text() != wanted:
        completed = subprocess.run(
            [npm, "install", "--prefix", str(directory), "--no-audit", "--no-fund", "--loglevel=error", *PACKAGES],
            capture_output=True, text=True, timeout=600, check=False,
        )
        assert completed.returncode == 0, f"npm install failed:\n{completed.stdout}\n{completed.stderr}"
        marker.write_text(wanted)
    (directory / "export.js").write_text(EXPORT_SCRIPT)
    return directory


@pytest.mark.slow
@pytest.mark.parametrize(("protocol", "compression"), [("http", "none"), ("http", "gzip"),
                                                       ("proto", "none"), ("proto", "gzip")])
def test_node_exporters_land_every_record(stack: LocalStack, env: Environment, node_exporters: Path,
                                          protocol: str, compression: str) -> None:
    service = f"node-otlp-{protocol}-{compression}"
    completed = subprocess.run(
        ["node", str(node_exporters / "export.js"), protocol, f"{stack.api_url}/v1/logs", API_KEY, service,
         str(RECORDS), compression],
        cwd=node_exporters, capture_output=True, text=True, timeout=120, check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert stack.wait_until_drained(60, flush_firehose=True)
    rows = sql(env, "SELECT count(*), count(DISTINCT body), min(severity_text), max(attributes['record.n']) "
                    f"FROM telemetry_otlp_logs_flat WHERE service_name = '{service}'").rows
    assert rows == [(RECORDS, RECORDS, "INFO", json.dumps(RECORDS - 1))]
