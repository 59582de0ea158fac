"""Where Athena errors hit this pipeline locally: the readers of the compacted layer.

In AWS, Athena is on two paths: the compactor submits its MERGE statements to the dbt workgroup, and
analysts, dashboards and dbt read the compacted tables ("exactly once where analysts look"). Locally
the compactor runs its DuckDB + pyiceberg engine (COMPACTOR_ENGINE=local), so no function calls
Athena; what remains is the read path (with `--athena-engine trino` the compactor runs its athena
engine on the embedded Athena, and meets athena_error too). The campaign runs a dashboard-like reader through the Athena
API on the embedded endpoint (`signals.query.query_athena`, the code `signals query --env` runs, with
botocore's standard retries as pyathena and awswrangler use them): it counts the compacted rows every
few seconds while the faults run, so `athena_error` (TooManyRequestsException on the Athena API)
meets it, and once more after the settle phase, where its count must equal the Iceberg tables'.

The reader first asks `SELECT 1`: an embedded Athena that does not execute queries (moto answers
every query with canned, empty results) cannot be read from, and the report says so instead of
pretending (`athena_reader: unavailable`).
"""

from __future__ import annotations

import threading
from typing import Any, Final

import boto3
import botocore.session
from botocore.config import Config

from shared.schema import COMPACTED_TABLES, alerts_database
from signals.env import Environment

READER_AGENT: Final = "signals-chaos-dashboard"
READER_CONFIG: Final = Config(user_agent_extra=READER_AGENT, retries={"mode": "standard", "max_attempts": 5})


def reader_session(stack: Any) -> boto3.Session:
    """A session whose clients carry the reader's user agent and retry settings."""
    botocore_session = botocore.session.get_session()
    botocore_session.set_default_client_config(READER_CONFIG)
    credentials = stack.session().get_credentials()
    return boto3.Session(aws_access_key_id=credentials.access_key, aws_secret_access_key=credentials.secret_key,
                         region_name="us-west-2", botocore_session=botocore_session)


class AthenaReader:
    def __init__(self, stack: Any) -> None:
        self.env = Environment(name="local", session=reader_session(stack), outputs=stack.outputs,
                               endpoint_url=stack.aws_endpoint_url, api_key=stack.api_key)
        self.queries = 0
        self.failures = 0
        self.last_error: str | None = None
        self._available: bool | None = None

    def _run(self, sql: str) -> list[tuple[Any, ...]]:
        from signals.query import query_athena  # noqa: PLC0415

        self.queries += 1
        return list(query_athena(self.env, sql, timeout=60, poll=0.2).rows)

    def available(self) -> bool:
        if self._available is None:
            try:
                self._available = self._run("SELECT 1 AS one") == [(1,)]
            except Exception as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                self._available = False
        return self._available

    def compacted_rows(self) -> int:
        database = alerts_database("local")
        total = 0
        for table in COMPACTED_TABLES:
            rows = self._run(f'SELECT count(*) FROM "{database}"."{table.name}"')
            total += int(rows[0][0]) if rows else 0
        return total

    def watch(self, stop: threading.Event, every_s: float = 5.0) -> None:
        """The dashboard: count the compacted rows every `every_s` until `stop`; errors counted, not fatal."""
        if not self.available():
            return
        while not stop.wait(every_s):
            try:
                self.compacted_rows()
            except Exception as exc:
                self.failures += 1
                self.last_error = f"{type(exc).__name__}: {exc}"

    def as_dict(self) -> dict[str, Any]:
        return {"available": bool(self._available), "queries": self.queries, "failed_reads": self.failures,
                "last_error": self.last_error}
