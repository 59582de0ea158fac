"""What Athena accepts and Trino does not, translated in one place (signals.sql.trino.translate)."""

from __future__ import annotations

import pytest

from signals.sql.trino import _metadata_table, translate, trino_type
from signals.sql.types import AthenaType


@pytest.mark.parametrize(("athena", "trino"), [
    ('OPTIMIZE "db"."t" REWRITE DATA USING BIN_PACK', 'ALTER TABLE "db"."t" EXECUTE optimize'),
    ("optimize db.t rewrite data using bin_pack where day = DATE '2026-01-02';",
     "ALTER TABLE db.t EXECUTE optimize WHERE day = DATE '2026-01-02'"),
    ('SELECT * FROM "AwsDataCatalog"."db".t', 'SELECT * FROM awsdatacatalog."db".t'),
    ("SELECT * FROM AWSDATACATALOG.db.t", "SELECT * FROM awsdatacatalog.db.t"),
    ("SELECT 'awsdatacatalog' AS name", "SELECT 'awsdatacatalog' AS name"),  # not a catalog: left alone
])
def test_athena_statements_become_trinos(athena: str, trino: str) -> None:
    assert translate(athena).sql == trino
    assert translate(athena).vacuum_table is None


def test_vacuum_is_two_procedures_on_the_named_table() -> None:
    statement = translate('VACUUM "telemetry_alerts_local"."int_lock_compacted_daily"')
    assert statement.vacuum_table == '"telemetry_alerts_local"."int_lock_compacted_daily"'
    assert _metadata_table(statement.vacuum_table, "properties") == (
        '"telemetry_alerts_local"."int_lock_compacted_daily$properties"')
    assert _metadata_table("t", "files") == '"t$files"'


@pytest.mark.parametrize(("trino", "athena"), [
    ("varchar(12)", AthenaType("varchar", 2147483647)),
    ("timestamp(6)", AthenaType("timestamp", 3)),
    ("timestamp(3) with time zone", AthenaType("timestamp with time zone", 3)),
    ("decimal(10,2)", AthenaType("decimal", 10, 2)),
    ("array(row(a bigint, b varchar))", AthenaType("array")),
    ("map(varchar, varchar)", AthenaType("map")),
    ("bigint", AthenaType("bigint", 19)),
])
def test_trino_result_types_as_athenas_column_info(trino: str, athena: AthenaType) -> None:
    assert trino_type(trino) == athena
