"""The local SQL engine: Athena's dialect (Trino) over the Glue catalog, answered by DuckDB.

One engine answers `signals query --env local` and the embedded endpoint's Athena
(`signals.local.athena`), so both give the same rows:

    from signals.sql.engine import LocalEngine
    engine = LocalEngine(session, endpoint_url="http://127.0.0.1:4566", database="telemetry-parser-db")
    result = engine.execute('SELECT count(*) FROM telemetry_lock_flat')   # a `Result`
    result.columns, result.athena_types, result.rows                      # rows: Python values

- `signals.sql.engine`: `LocalEngine.execute(sql, database=..., cancel=...)` -> `Result`; a failure
  raises `QueryError` with Athena's error name (`COLUMN_NOT_FOUND: line 1:8: ...`) and category.
- `signals.sql.catalog`: `GlueCatalog` reads one Glue table as Arrow: Hive Parquet or JSON over the
  partitions Glue lists, partition projection enumerated from S3, S3 Inventory symlink tables, and
  Iceberg tables (their current snapshot, through pyiceberg on the same Glue catalog).
- `signals.sql.projection`: Athena partition projection (enum, integer, date, injected).
- `signals.sql.types`: Hive type strings as Arrow types; DuckDB result types as Athena's type names
  and values as Athena writes them (GetQueryResults and the result CSV).
"""
