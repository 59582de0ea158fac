"""`signals verify --first-deploy`: what only AWS can say about a freshly deployed stack, each check
ok or fail with the AWS error, before the first hourly compactor run meets it.

Every statement runs on Athena in the stack's dbt workgroup (the compactor's, engine version 3), with
the operator's credentials:

  read <table>     each compacted and audit Iceberg table answers `SELECT count(*)`: Glue has it as
                   an Iceberg table Athena can read (schema, Lake Formation, S3 access)
  compactor merge  the compactor's own MERGE for a scratch day (1970-01-01, no verified rows there):
                   the statement it will run, against the real verified and compacted tables
  merge commits    a MERGE inserting one scratch row on that day commits, and a SELECT reads it back
  $partitions      the compactor's per-day file count (`"t$partitions"`) answers for the scratch day
  cleanup          a MERGE ... WHEN MATCHED THEN DELETE removes the scratch row (read back: none)
  vacuum           VACUUM on the compacted table runs (snapshot expiry and orphan-file removal; it
                   keeps `vacuum_max_snapshot_age_seconds` of history, so nothing recent is touched)

The scratch row lives on a day no event can have (1970-01-01, key `signals-verify-first-deploy`) and
is deleted before the command ends; a failed cleanup is reported with the statement to run by hand.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, TextIO

from botocore.exceptions import BotoCoreError, ClientError

from compactor.dedup import ATHENA, DayQuery, Relations, literal, quote, relation
from shared.schema import AUDIT_TABLES, COMPACTED_BY_TYPE, COMPACTED_TABLES, COMPACTION_RUNS, DUPLICATE_CONFLICTS
from signals.env import Environment, Output
from signals.query import QueryFailed, QueryResult, query_athena

SCRATCH_DAY: Final = "1970-01-01"
SCRATCH_DEVICE: Final = "signals-verify-first-deploy"
#: The table the commit checks write to (any compacted table would do; the lock table is the first).
SCRATCH_TABLE: Final = COMPACTED_BY_TYPE["lock"]


@dataclass(frozen=True)
class Step:
    name: str
    ok: bool
    detail: str  # what was seen, or the AWS error


Runner = Callable[[str], QueryResult]


def athena_runner(env: Environment) -> Runner:
    workgroup = env.output(Output.DBT_WORKGROUP)
    return lambda sql: query_athena(env, sql, workgroup=workgroup, poll=0.2 if env.endpoint_url else 1.0)


def first_deploy_checks(env: Environment, run: Runner | None = None) -> list[Step]:
    """Run every check in order; a failed step does not stop the ones that do not depend on it."""
    run = run or athena_runner(env)
    alerts, audit = env.output(Output.ALERTS_DATABASE), env.output(Output.AUDIT_DATABASE)
    steps: list[Step] = []

    def attempt(name: str, sql: str, seen: Callable[[QueryResult], tuple[bool, str]] | None = None) -> bool:
        try:
            result = run(sql)
        except (QueryFailed, ClientError, BotoCoreError) as exc:
            steps.append(Step(name, False, str(exc)))
            return False
        ok, detail = seen(result) if seen else (True, "succeeded")
        steps.append(Step(name, ok, detail))
        return ok

    def rows(result: QueryResult) -> int:
        return int(result.rows[0][0]) if result.rows else 0

    for database, specs in ((alerts, COMPACTED_TABLES), (audit, AUDIT_TABLES)):
        for spec in specs:
            attempt(f"read {spec.name}", f"SELECT count(*) FROM {relation(database, spec.name)}",
                    lambda r: (True, f"readable by Athena, {rows(r)} row(s)"))

    table = relation(alerts, SCRATCH_TABLE.name)
    relations = Relations(verified=relation(env.output(Output.GLUE_DATABASE), SCRATCH_TABLE.source.name),
                          compacted=table, conflicts=relation(audit, DUPLICATE_CONFLICTS.name),
                          runs=relation(audit, COMPACTION_RUNS.name))
    scratch = DayQuery(ATHENA, SCRATCH_TABLE, SCRATCH_DAY, relations)
    attempt("compactor merge", scratch.merge())

    marker = f"first-deploy-{uuid.uuid4().hex[:12]}"
    key = (f"t.{quote('day')} = {literal(SCRATCH_DAY)} AND t.{quote('device_id')} = s.{quote('device_id')} "
           f"AND t.{quote('event_id')} = s.{quote('event_id')}")
    columns = ("event_id", "device_id", "device_type", "event_name", "event_time", "source_key", "source_line",
               "day", "hour")
    source = (f"SELECT {literal(marker)} AS event_id, {literal(SCRATCH_DEVICE)} AS device_id, 'lock' AS device_type, "
              f"'first_deploy_check' AS event_name, TIMESTAMP '1970-01-01 00:00:00.000' AS event_time, "
              f"'signals-verify' AS source_key, CAST(1 AS bigint) AS source_line, {literal(SCRATCH_DAY)} AS day, "
              "'00' AS hour")
    insert = (f"MERGE INTO {table} AS t USING ({source}) AS s ON {key} WHEN NOT MATCHED THEN INSERT "
              f"({', '.join(quote(c) for c in columns)}) VALUES ({', '.join('s.' + quote(c) for c in columns)})")
    count = (f"SELECT count(*) FROM {table} WHERE {quote('day')} = {literal(SCRATCH_DAY)} "
             f"AND {quote('event_id')} = {literal(marker)}")
    if attempt("merge commits", insert):
        attempt("merge read back", count, lambda r: (rows(r) == 1, f"{rows(r)} scratch row(s) read back (1 expected)"))
    attempt(f"{SCRATCH_TABLE.name}$partitions", scratch.data_files_select(alerts),
            lambda r: (True, f"file_count for {SCRATCH_DAY}: {rows(r)}"))
    delete = (f"MERGE INTO {table} AS t USING (SELECT {literal(marker)} AS event_id, {literal(SCRATCH_DEVICE)} "
              f"AS device_id) AS s ON {key} WHEN MATCHED THEN DELETE")
    if attempt("cleanup", delete):
        attempt("cleanup read back", count, lambda r: (rows(r) == 0, f"{rows(r)} scratch row(s) left (0 expected)"))
    else:
        steps[-1] = Step("cleanup", False, f"{steps[-1].detail}; remove the scratch row by hand: {delete}")
    attempt("vacuum", f"VACUUM {table}")
    return steps


def render(steps: list[Step], env_name: str, out: TextIO) -> None:
    width = max((len(s.name) for s in steps), default=10)
    out.write(f"signals verify --first-deploy  env={env_name}\n")
    for step in steps:
        out.write(f"{'ok' if step.ok else 'fail':<4}  {step.name:<{width}}  {step.detail}\n")
    failed = sum(not s.ok for s in steps)
    out.write(f"{len(steps) - failed} ok, {failed} fail\n")
