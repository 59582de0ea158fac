"""A Trino server the stack starts takes a catalog scan as its very first query, and lists the functions
the local DuckDB path allows (slow tier).

Trino's coordinator schedules a catalog's splits on the nodes of its per-catalog node map; under the
default static catalog management a 5 s timer rebuilds that map, and the rebuild before the server
reports `starting: false` can predate the catalogs. A scan in that window failed with
`NO_NODES_AVAILABLE` in CI (the first Athena query of `test_trino.py`). The server the stack starts has
every catalog on every node from the start.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from signals.local.stack import free_port
from signals.sql.trino_server import TrinoServer

pytestmark = pytest.mark.slow

BUCKET = "trino-start"


@pytest.fixture
def endpoint() -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    session = boto3.Session(aws_access_key_id="local", aws_secret_access_key="local", region_name="us-west-2")
    s3 = session.client("s3", endpoint_url=url)
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    s3.put_object(Bucket=BUCKET, Key="events/part-0.json.gz",
                  Body=gzip.compress(b'{"id": 1}\n{"id": 2}\n{"id": 3}\n'))
    glue = session.client("glue", endpoint_url=url)
    glue.create_database(DatabaseInput={"Name": "start_db"})
    glue.create_table(DatabaseName="start_db", TableInput={
        "Name": "events", "TableType": "EXTERNAL_TABLE",
        "Parameters": {"classification": "json"},
        "StorageDescriptor": {
            "Columns": [{"Name": "id", "Type": "bigint"}],
            "Location": f"s3://{BUCKET}/events/",
            "InputFormat": "org.apache.hadoop.mapred.TextInputFormat",
            "OutputFormat": "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat",
            "SerdeInfo": {"SerializationLibrary": "org.openx.data.jsonserde.JsonSerDe"},
        },
    })
    try:
        yield url
    finally:
        server.stop()


def test_the_first_query_after_start_scans_a_catalog(endpoint: str) -> None:
    import trino.dbapi  # noqa: PLC0415
    import trino.exceptions  # noqa: PLC0415

    server = TrinoServer(aws_endpoint_url=endpoint)
    try:
        server.start()
        connect: Any = trino.dbapi.connect  # the client's DB API (untyped)
        connection = connect(host="127.0.0.1", port=server.port, user="signals",
                             catalog="awsdatacatalog", schema="start_db", http_scheme="http")
        cursor = connection.cursor()

        def run(sql: str) -> list[list[object]]:
            cursor.execute(sql)
            return list(cursor.fetchall())

        assert run("SELECT count(*), sum(id) FROM events") == [[3, 6]]
        # Dynamic catalog management, with a read-only store: Athena has no CREATE CATALOG, nor has this.
        with pytest.raises(trino.exceptions.TrinoQueryError, match=r"(?i)read.only"):
            run("CREATE CATALOG extra USING iceberg WITH (\"iceberg.catalog.type\" = 'glue')")
    finally:
        server.stop()


def test_the_functions_the_local_engine_allows_are_the_servers() -> None:
    """The DuckDB path refuses a function Trino lacks by the committed list (signals.sql.functions):
    it must be this release's. After a Trino upgrade: `signals trino functions --write`."""
    from signals.sql.functions import trino_function_names  # noqa: PLC0415
    from signals.trino import server_function_names  # noqa: PLC0415

    assert server_function_names() == sorted(trino_function_names())
