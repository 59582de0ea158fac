"""`signals schema apply` (being written on branch ledger: this commit fixes the command's name and arguments)."""

from __future__ import annotations

import argparse
import sys


def main(args: argparse.Namespace) -> int:
    print("signals schema apply: not implemented in this build", file=sys.stderr)
    return 2
