"""`signals trino fetch|where`: the Trino server behind `signals local --athena-engine trino`.

`fetch` downloads Trino's server (`io.trino:trino-server-core`, tar.gz) and its `iceberg` and `hive`
plugins (zip) from Maven Central with `mvn dependency:copy` into the cache
($SIGNALS_TRINO_CACHE, else ~/.cache/signals/trino/<version>); a second run finds them there and does
nothing. It fails with one message where Maven or a JDK 24+ is missing (signals.sql.trino_server).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "trino", help="fetch the Trino server that `signals local --athena-engine trino` runs",
        description="Trino behind the local Athena: `fetch` downloads it once with Maven into the cache; "
        "`where` prints the cached release's directory and the JDK it runs on.")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    fetch = actions.add_parser("fetch", help="download Trino's server and its iceberg/hive plugins (once)")
    fetch.set_defaults(func=run_fetch)
    where = actions.add_parser("where", help="print the cached Trino's directory and JDK (exit 1: not fetched)")
    where.set_defaults(func=run_where)


def run_fetch(args: argparse.Namespace) -> int:
    from signals.sql.trino_server import TRINO_VERSION, TrinoUnavailable, fetch, find_java_home, is_fetched  # noqa: PLC0415

    already = is_fetched()
    try:
        home = fetch()
        java = find_java_home()
    except TrinoUnavailable as exc:
        print(f"signals trino fetch: {exc}", file=sys.stderr)
        return 1
    state = "already fetched" if already else "fetched"
    print(f"Trino {TRINO_VERSION} {state}: {home} (runs on {java})")
    return 0


def run_where(args: argparse.Namespace) -> int:
    from signals.sql.trino_server import TRINO_VERSION, TrinoUnavailable, find_java_home, is_fetched, trino_home  # noqa: PLC0415

    if not is_fetched():
        print(f"Trino {TRINO_VERSION} is not fetched ({trino_home()}): run `signals trino fetch`", file=sys.stderr)
        return 1
    try:
        java = find_java_home()
    except TrinoUnavailable as exc:
        print(f"signals trino: {exc}", file=sys.stderr)
        return 1
    print(f"{trino_home()}\t{java}")
    return 0
