"""`signals trino fetch|where`: the Trino server behind `signals local --athena-engine trino`.

`fetch` downloads Trino's server (`io.trino:trino-server-core`, tar.gz) and its `iceberg` and `hive`
plugins (zip) from Maven Central with `mvn dependency:copy` into the cache
($SIGNALS_TRINO_CACHE, else ~/.cache/signals/trino/<version>); a second run finds them there and does
nothing. It fails with one message where Maven or a JDK 24+ is missing (signals.sql.trino_server).

`functions` starts that server and compares its `SHOW FUNCTIONS` with the names the local DuckDB path
allows (`signals/sql/trino_functions.txt`, signals.sql.functions); `--write` rewrites the file (after
a change of Trino release). Exit 1 when they differ and nothing was written.
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
    functions = actions.add_parser("functions", help="compare (or --write) the Trino function names the local "
                                   "engine allows with the fetched server's SHOW FUNCTIONS")
    functions.add_argument("--write", action="store_true", help="rewrite signals/sql/trino_functions.txt")
    functions.set_defaults(func=run_functions)


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


def server_function_names() -> list[str]:
    """Start the fetched Trino (no catalog is read: any endpoint does) and list its functions."""
    import trino.dbapi  # noqa: PLC0415

    from signals.sql.functions import function_names_of  # noqa: PLC0415
    from signals.sql.trino_server import TrinoServer  # noqa: PLC0415

    server = TrinoServer(aws_endpoint_url="http://127.0.0.1:9")
    try:
        server.start()
        connect: Any = trino.dbapi.connect  # the client's DB API (untyped)
        return function_names_of(connect(host="127.0.0.1", port=server.port, user="signals", http_scheme="http"))
    finally:
        server.stop()


def run_functions(args: argparse.Namespace) -> int:
    from importlib import resources  # noqa: PLC0415

    from signals.sql.functions import FUNCTIONS_FILE, render, trino_function_names  # noqa: PLC0415
    from signals.sql.trino_server import TRINO_VERSION, TrinoUnavailable  # noqa: PLC0415

    try:
        names = server_function_names()
    except TrinoUnavailable as exc:
        print(f"signals trino functions: {exc}", file=sys.stderr)
        return 1
    allowed = trino_function_names()
    added, removed = sorted(set(names) - allowed), sorted(allowed - set(names))
    if not added and not removed:
        print(f"the local engine allows Trino {TRINO_VERSION}'s {len(names)} functions")
        return 0
    print(f"Trino {TRINO_VERSION} has {len(added)} function(s) the list lacks: {', '.join(added) or '-'}; "
          f"the list has {len(removed)} it lacks: {', '.join(removed) or '-'}")
    if not args.write:
        return 1
    path = resources.files("signals.sql").joinpath(FUNCTIONS_FILE)
    with resources.as_file(path) as file:
        file.write_text(render(names, TRINO_VERSION), encoding="utf-8")
        print(f"wrote {file}")
    return 0
