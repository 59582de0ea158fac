"""The functions Athena's engine has, by name: what the DuckDB path may call on a user's behalf.

sqlglot parses any call it does not know as an anonymous function and passes it through, so without a
check DuckDB would answer `strftime(ts, '%Y')`, which Athena (Trino) refuses with FUNCTION_NOT_FOUND:
the local engine would be more lenient than the one it stands in for. `trino_functions.txt`, beside
this module, holds the names `SHOW FUNCTIONS` lists on the Trino release `--athena-engine trino` runs
(`signals.sql.trino_server.TRINO_VERSION`); `signals trino functions --write` regenerates it from that
server, and the slow tier (tests/e2e/local/test_trino_start.py) fails when they differ.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any, Final

FUNCTIONS_FILE: Final = "trino_functions.txt"


@cache
def trino_function_names() -> frozenset[str]:
    """Every function name Trino lists (lowercase): scalar, aggregate and window."""
    text = resources.files("signals.sql").joinpath(FUNCTIONS_FILE).read_text(encoding="utf-8")
    return frozenset(line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#"))


def function_names_of(connection: Any) -> list[str]:
    """`SHOW FUNCTIONS` on a Trino DB-API connection: the sorted distinct names."""
    cursor = connection.cursor()
    cursor.execute("SHOW FUNCTIONS")
    rows = cursor.fetchall()
    return sorted({str(row[0]).lower() for row in rows})


def render(names: list[str], version: str) -> str:
    """The file's text: a header naming the release, then one name a line."""
    return f"# SHOW FUNCTIONS on Trino {version} (signals trino functions --write)\n" + "".join(f"{n}\n" for n in names)
