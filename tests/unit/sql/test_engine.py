"""The local engine on moto's Glue and S3 (in process): what it reads, names and refuses."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from moto import mock_aws

from signals.sql.engine import LocalEngine, transpile
from signals.sql.errors import QueryError


@pytest.fixture(scope="module")
def engine() -> Iterator[LocalEngine]:
    with mock_aws():
        session = boto3.Session(region_name="us-west-2")
        s3, glue = session.client("s3"), session.client("glue")
        s3.create_bucket(Bucket="lake", CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
        glue.create_database(DatabaseInput={"Name": "db-one"})
        buffer = io.BytesIO()
        pq.write_table(pa.table({"ID": ["a", "b"], "n": [1, 2]}), buffer)
        s3.put_object(Bucket="lake", Key="plain/part-0.parquet", Body=buffer.getvalue())
        s3.put_object(Bucket="lake", Key="plain/_SUCCESS", Body=b"x")  # hidden: not read
        glue.create_table(DatabaseName="db-one", TableInput={
            "Name": "plain", "Parameters": {"classification": "parquet"},
            "StorageDescriptor": {"Location": "s3://lake/plain/", "Columns": [
                {"Name": "id", "Type": "string"}, {"Name": "n", "Type": "bigint"}, {"Name": "absent", "Type": "int"}]},
        })
        for device in ("a", "b"):
            s3.put_object(Bucket="lake", Key=f"events/device={device}/1.json",
                          Body=json.dumps({"value": device.upper()}).encode() + b"\n")
        glue.create_table(DatabaseName="db-one", TableInput={
            "Name": "injected", "PartitionKeys": [{"Name": "device", "Type": "string"}],
            "Parameters": {"projection.enabled": "true", "projection.device.type": "injected"},
            "StorageDescriptor": {"Location": "s3://lake/events/", "Columns": [{"Name": "value", "Type": "string"}],
                                  "SerdeInfo": {"SerializationLibrary": "org.openx.data.jsonserde.JsonSerDe"}},
        })
        for day in ("2026-11-24", "2026-11-25"):
            buffer = io.BytesIO()
            pq.write_table(pa.table({"v": [day[-2:]]}), buffer)
            s3.put_object(Bucket="lake", Key=f"daily/day={day}/0.parquet", Body=buffer.getvalue())
        glue.create_table(DatabaseName="db-one", TableInput={
            "Name": "daily", "PartitionKeys": [{"Name": "day", "Type": "string"}],
            "StorageDescriptor": {"Location": "s3://lake/daily/", "Columns": [{"Name": "v", "Type": "string"}],
                                  "SerdeInfo": {"SerializationLibrary": "parquet"}},
        })
        for day in ("2026-11-24", "2026-11-25"):
            glue.create_partition(DatabaseName="db-one", TableName="daily", PartitionInput={
                "Values": [day], "StorageDescriptor": {"Location": f"s3://lake/daily/day={day}/"}})
        yield LocalEngine(session, None, database="db-one")


def test_columns_match_by_name_and_missing_ones_are_null(engine: LocalEngine) -> None:
    result = engine.execute("SELECT id, n, absent, n * 2 FROM plain ORDER BY id")
    assert result.columns == ["id", "n", "absent", "_col3"]
    assert result.athena_types == ["varchar", "bigint", "integer", "bigint"]
    assert result.rows == [("a", 1, None, 2), ("b", 2, None, 4)]
    assert result.files_read == 1
    assert engine.execute('SELECT count(*) FROM "db-one".plain').rows == [(2,)]
    assert engine.execute("SELECT count(*) FROM awsdatacatalog.\"db-one\".plain AS p WHERE p.n > 1").rows == [(1,)]
    assert engine.execute("WITH plain AS (SELECT 7 AS n) SELECT n FROM plain").rows == [(7,)]  # a CTE, not the table
    assert engine.execute('SELECT n AS "Total", ID FROM plain LIMIT 1').columns == ["total", "id"]


def test_injected_partitions_need_their_values_in_the_where(engine: LocalEngine) -> None:
    assert engine.execute("SELECT value, device FROM injected WHERE device = 'b'").rows == [("B", "b")]
    assert engine.execute("SELECT count(*) FROM injected WHERE device IN ('a', 'b')").rows == [(2,)]
    with pytest.raises(QueryError, match="CONSTRAINT_VIOLATION: For the injected projected partition column device"):
        engine.execute("SELECT * FROM injected")


def test_show_statements_and_parameters(engine: LocalEngine) -> None:
    assert engine.execute("SHOW TABLES 'in*'").rows == [("injected",)]
    assert engine.execute("SHOW TABLES IN `db-one`").rows == [("daily",), ("injected",), ("plain",)]
    assert engine.execute("SHOW SCHEMAS").rows == [("db-one",)]
    assert engine.execute("SHOW COLUMNS IN plain").rows == [("id",), ("n",), ("absent",)]
    assert engine.execute("SELECT id FROM plain WHERE n = ?", parameters=["2"]).rows == [("b",)]
    with pytest.raises(QueryError, match="INVALID_PARAMETER_USAGE"):
        engine.execute("SELECT id FROM plain WHERE n = ?")


@pytest.mark.parametrize(("sql", "error"), [
    ("MERGE INTO plain t USING plain s ON t.id = s.id WHEN NOT MATCHED THEN INSERT VALUES (s.id, s.n, 1)",
     "NOT_SUPPORTED: MERGE INTO db-one.plain: only Iceberg tables can be written"),
    ("INSERT INTO plain VALUES ('c', 3, 1)", "NOT_SUPPORTED: INSERT INTO db-one.plain: only Iceberg"),
    ("DELETE FROM plain", "NOT_SUPPORTED: DELETE"),
    ("SHOW CREATE TABLE plain", "NOT_SUPPORTED: this SHOW statement"),
    ("SELECT FROM WHERE", "SYNTAX_ERROR"),
    ("SELECT id FROM plain p JOIN plain q ON p.id = q.nope", "COLUMN_NOT_FOUND"),
    ("SELECT CAST('x' AS integer)", "INVALID_CAST_ARGUMENT"),
    ("SELECT * FROM hive.db.t", "CATALOG_NOT_FOUND: line 1:15: Catalog 'hive' does not exist"),
    ("", "SYNTAX_ERROR"),
    ("SELECT * FROM plain FOR VERSION AS OF 1", "NOT_SUPPORTED: line 1:15: time travel"),
    ('SELECT * FROM "plain$partitions"', "NOT_SUPPORTED: db-one.plain\\$partitions: metadata tables exist for Iceberg"),
    ("EXPLAIN SELECT 1", "NOT_SUPPORTED: EXPLAIN"),
])
def test_failures_are_named_like_athena(engine: LocalEngine, sql: str, error: str) -> None:
    with pytest.raises(QueryError, match=error):
        engine.execute(sql)


def test_trino_functions_are_transpiled() -> None:
    duck = transpile("SELECT approx_distinct(x), date_trunc('hour', from_iso8601_timestamp(s)) FROM t")
    assert "APPROX_COUNT_DISTINCT" in duck.upper()


@pytest.mark.parametrize(("where", "rows", "files"), [
    ("day = '2026-11-25'", [("25",)], 1),
    ("'2026-11-25' <= day", [("25",)], 1),
    ("day IN ('2026-11-24') AND v IS NOT NULL", [("24",)], 1),
    ("day BETWEEN '2026-11-25' AND '2026-11-30'", [("25",)], 1),
    ("day = '2026-11-25' OR v = '24'", [("24",), ("25",)], 2),  # an OR prunes nothing
    ("d.day > '2026-11-20'", [("24",), ("25",)], 2),
    ("day = '2001-01-01'", [], 0),
])
def test_partitions_are_pruned_by_the_where(engine: LocalEngine, where: str, rows: list[tuple[str]],
                                            files: int) -> None:
    result = engine.execute(f"SELECT v FROM daily AS d WHERE {where} ORDER BY v")
    assert (result.rows, result.files_read) == (rows, files)


def test_pruning_keeps_to_the_select_that_reads_the_table(engine: LocalEngine) -> None:
    joined = engine.execute("SELECT a.v, b.v FROM daily a JOIN daily b ON a.v = b.v WHERE a.day = '2026-11-25'")
    assert (joined.rows, joined.files_read) == ([("25", "25")], 2)  # b is read whole: the term names a only
    nested = engine.execute("SELECT count(*) FROM (SELECT v FROM daily) AS x WHERE x.v = '25'")
    assert (nested.rows, nested.files_read) == ([(1,)], 2)


def test_the_bytes_scanned_cutoff_fails_the_query(engine: LocalEngine) -> None:
    assert engine.execute("SELECT count(*) FROM plain").bytes_scanned > 10
    with pytest.raises(QueryError, match="EXCEEDED_BYTES_SCANNED_LIMIT: Query cancelled! Bytes scanned limit"):
        engine.execute("SELECT count(*) FROM plain", bytes_scanned_cutoff=10)


def test_a_hive_timestamp_reads_at_milliseconds_rounded_as_athena_reads_it() -> None:
    """Athena reads Hive TIMESTAMP at millisecond resolution (Trino's hive.timestamp-precision default,
    values rounded); a Parquet file with microseconds must not read finer locally."""
    from datetime import datetime  # noqa: PLC0415

    with mock_aws():
        session = boto3.Session(region_name="us-west-2")
        s3, glue = session.client("s3"), session.client("glue")
        s3.create_bucket(Bucket="times-lake", CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
        glue.create_database(DatabaseInput={"Name": "times-db"})
        buffer = io.BytesIO()
        moments = [datetime(2026, 3, 10, 1, 2, 3, 123456), datetime(2026, 3, 10, 1, 2, 3, 999500)]
        pq.write_table(pa.table({"t": pa.array(moments, pa.timestamp("us"))}), buffer)
        s3.put_object(Bucket="times-lake", Key="times/0.parquet", Body=buffer.getvalue())
        glue.create_table(DatabaseName="times-db", TableInput={
            "Name": "times", "Parameters": {"classification": "parquet"},
            "StorageDescriptor": {"Location": "s3://times-lake/times/",
                                  "Columns": [{"Name": "t", "Type": "timestamp"}]}})
        rows = LocalEngine(session, None, database="times-db").execute("SELECT t FROM times ORDER BY t").rows
    assert rows == [(datetime(2026, 3, 10, 1, 2, 3, 123000),), (datetime(2026, 3, 10, 1, 2, 4),)]

@pytest.mark.parametrize(("sql", "row", "types"), [
    # Found by the differential corpus (tests/e2e/corpus): Trino's answers, which DuckDB's defaults missed.
    ("SELECT 7 / 2, -7 / 2, 7 % -3, CAST(7 AS double) / 2", (3, -3, 1, 3.5),
     ["integer", "integer", "integer", "double"]),
    ("SELECT n / 2, sum(n) / count(n) FROM plain WHERE id = 'b' GROUP BY n", (1, 2), ["bigint", "bigint"]),
    ("SELECT cardinality(MAP(ARRAY['a', 'b'], ARRAY['1', '2'])), cardinality(ARRAY[1])", (2, 1), ["bigint", "bigint"]),
    ("SELECT json_format(CAST('x' AS JSON)), json_format(CAST(MAP(ARRAY['k'], ARRAY[CAST(1 AS JSON)]) AS JSON))",
     ('"x"', '{"k":1}'), ["varchar", "varchar"]),
    ("SELECT slice(ARRAY[1, 2, 3, 4], 2, 2)", ([2, 3],), ["array"]),
    ("""SELECT json_extract('{"a": {"b": 1}}', '$.a')""", ('{"b":1}',), ["json"]),
    ("SELECT grouping(id) FROM plain GROUP BY ROLLUP (id) ORDER BY 1 LIMIT 1", (0,), ["integer"]),
])
def test_trino_semantics_where_duckdb_differs(engine: LocalEngine, sql: str, row: tuple[object, ...],
                                              types: list[str]) -> None:
    result = engine.execute(sql)
    assert result.rows[0] == row
    assert result.athena_types == types


@pytest.mark.parametrize(("sql", "error"), [
    ("SELECT n / 0 FROM plain", "DIVISION_BY_ZERO"),
    ("SELECT id, count(*) FROM plain", "EXPRESSION_NOT_AGGREGATE"),
    ("SELECT n FROM plain a JOIN plain b ON a.id = b.id", "AMBIGUOUS_NAME"),
    ("SELECT n::varchar FROM plain", "SYNTAX_ERROR: line 1:9: mismatched input '::'"),
    ("SELECT n FROM plain WHERE id ILIKE 'A'", "SYNTAX_ERROR: .*mismatched input 'ILIKE'"),
    ("SELECT n FROM plain ORDER BY n LIMIT 1 OFFSET 1", "SYNTAX_ERROR: line 1:40: mismatched input 'OFFSET'"),
    # DuckDB's own functions, which sqlglot passes through and DuckDB would answer; Athena has none of them.
    ("SELECT strftime(current_timestamp, '%Y') FROM plain", "FUNCTION_NOT_FOUND: line 1:8: Function 'strftime' not"),
    ("SELECT id FROM plain WHERE list_contains(list_value(1, 2), n)", "FUNCTION_NOT_FOUND: line 1:28: Function "
     "'list_contains' not"),
])
def test_what_trino_refuses_fails_with_its_error_name(engine: LocalEngine, sql: str, error: str) -> None:
    with pytest.raises(QueryError, match=error):
        engine.execute(sql)
    assert engine.execute("SELECT n FROM plain ORDER BY n OFFSET 1 LIMIT 1").rows == [(2,)]


def test_a_map_subscript_of_an_absent_key_fails_as_in_trino(engine: LocalEngine) -> None:
    sql = "SELECT m['a'], element_at(m, 'b') FROM (SELECT MAP(ARRAY['a'], ARRAY['1']) AS m)"
    assert engine.execute(sql).rows == [("1", None)]
    with pytest.raises(QueryError, match=r"INVALID_FUNCTION_ARGUMENT: .*Key not present in map: b"):
        engine.execute("SELECT m['b'] FROM (SELECT MAP(ARRAY['a'], ARRAY['1']) AS m)")


@pytest.mark.parametrize(("sql", "error"), [
    # ids that happen to cast ('a' would not): DuckDB answered; Trino refuses when it plans.
    ("SELECT n FROM plain WHERE n = '1'", r"TYPE_MISMATCH: line 1:27: Cannot apply operator: bigint = varchar\(1\)"),
    ("SELECT n FROM plain WHERE id = 1", r"TYPE_MISMATCH: line 1:27: Cannot apply operator: varchar = integer"),
    ("SELECT n FROM plain p WHERE 2 < p.n AND p.id <> 3", r"Cannot apply operator: varchar <> integer"),
    ("SELECT v FROM daily WHERE day = 2026", "TYPE_MISMATCH: .*varchar = integer"),
    ("SELECT n FROM plain WHERE n IN ('1', '2')", "TYPE_MISMATCH: .*IN value and list items must be the same type"),
    ("SELECT n FROM plain WHERE n BETWEEN '1' AND '2'", "TYPE_MISMATCH: .*BETWEEN"),
    ("SELECT a.n FROM plain a JOIN daily d ON a.id = d.v WHERE d.day = 1.5", "TYPE_MISMATCH: .*varchar = decimal"),
])
def test_a_character_column_against_a_number_fails_when_planned_as_in_trino(engine: LocalEngine, sql: str,
                                                                             error: str) -> None:
    with pytest.raises(QueryError, match=error):
        engine.execute(sql)


@pytest.mark.parametrize(("sql", "row"), [
    ("SELECT n FROM plain WHERE n = 1 AND id = 'a' AND n IN (1, 2) AND n BETWEEN 0 AND 5", (1,)),
    ("SELECT n FROM plain WHERE CAST(n AS varchar) = '1'", (1,)),  # an expression: the engine's to type
    ("SELECT n FROM (SELECT CAST(n AS varchar) AS n FROM plain) WHERE n = '1'", ("1",)),  # a subquery's column
    ("WITH c AS (SELECT CAST(n AS varchar) AS n FROM plain) SELECT n FROM c WHERE n = '1'", ("1",)),  # a CTE's
    ("SELECT n FROM plain WHERE n = 1 AND cardinality(filter(ARRAY['1'], n -> n = '1')) = 1", (1,)),  # a lambda's
])
def test_comparisons_of_one_type_or_of_unknown_types_run(engine: LocalEngine, sql: str,
                                                         row: tuple[object, ...]) -> None:
    assert engine.execute(sql).rows == [row]


def test_typeof_names_types_as_trino_does(engine: LocalEngine) -> None:
    result = engine.execute("SELECT typeof(n), typeof(id), typeof(1.5), typeof(current_date), typeof(ARRAY[1]), "
                            "typeof(CAST(1.5 AS real)) FROM plain WHERE n = 1")
    assert result.rows == [("bigint", "varchar", "decimal(2,1)", "date", "array(integer)", "real")]


def test_a_date_plus_an_interval_is_a_date_as_in_trino(engine: LocalEngine) -> None:
    result = engine.execute("SELECT DATE '2026-11-30' + INTERVAL '1' DAY, current_date - INTERVAL '1' MONTH, "
                            "TIMESTAMP '2026-11-25 23:30:00' + INTERVAL '1' HOUR FROM plain WHERE n = 1")
    assert result.athena_types == ["date", "date", "timestamp"]
    assert str(result.rows[0][0]) == "2026-12-01"


def test_rows_print_as_athena_prints_them(engine: LocalEngine) -> None:
    from signals.local.athena import _texts  # noqa: PLC0415 (the text GetQueryResults and the CSV carry)

    result = engine.execute("SELECT ROW(1, 'x') AS r, CAST(ROW(1, 'x') AS ROW(a integer, b varchar)) AS n, "
                            "ARRAY[ROW(1, 2)] AS l FROM plain WHERE n = 1")
    assert _texts(result)[1] == ["{field0=1, field1=x}", "{a=1, b=x}", "[{field0=1, field1=2}]"]
