"""Operator tools: `signals status`, `signals verify`, `signals redrive`.

The debug playbook done by the tool instead of by hand (docs/operations.md). Each works against the
local stack and, with a profile, against a deployed env; resource names come from the env's stack
outputs (`signals.env`), never from constants here.
"""
