"""Query failures as Athena reports them: an error name, a message, and Athena's error category."""

from __future__ import annotations

from typing import Final

#: AthenaError.ErrorCategory values.
SYSTEM: Final = 1
USER: Final = 2
OTHER: Final = 3


class QueryError(Exception):
    """A failed query: `str(error)` is Athena's StateChangeReason, e.g.
    `COLUMN_NOT_FOUND: line 1:8: Column 'nope' cannot be resolved or requester is not authorized to
    access requested resources`."""

    def __init__(self, name: str, message: str, *, category: int = USER, retryable: bool = False) -> None:
        super().__init__(f"{name}: {message}" if name else message)
        self.name = name
        self.message = message
        self.category = category
        self.retryable = retryable


class QueryCancelled(Exception):
    """The query was stopped (StopQueryExecution) while it ran."""


def position(sql: str, offset: int) -> str:
    """`line L:C` (1-based, as Trino reports it) of a character offset in the statement."""
    before = sql[:offset]
    line = before.count("\n") + 1
    column = offset - (before.rfind("\n") + 1) + 1
    return f"line {line}:{column}"
