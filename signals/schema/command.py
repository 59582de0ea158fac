"""`signals schema`: the field-id ledger and schema releases (docs/schema-evolution.md).

- `signals schema check [--write]`: `shared/schema.py` against the ledger (`shared/iceberg_ids.json`);
  exit 1 on an incompatible change (naming the safe alternatives) or a ledger that is behind;
  `--write` records the compatible changes (new ids after the last one, schema-version bumped).
- `signals schema apply --env E [--dry-run]`: the live tables against the ledger; additive changes
  applied by id, hand-made drift reported and left alone.
- `signals schema drift --env E`: unknown top-level keys the parser saw, per device type.
- `signals schema suggest TYPE.KEY | TYPE`: a `git apply`-able patch adding the key (or the type).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from signals.ops.common import add_env_arguments


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("schema", help="field-id ledger, schema releases, drift and suggested patches",
                                   description=__doc__.splitlines()[0] if __doc__ else None)
    commands = parser.add_subparsers(dest="schema_command", metavar="SUBCOMMAND")
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])

    check = commands.add_parser("check", help="compare shared/schema.py with the field-id ledger")
    check.add_argument("--write", action="store_true",
                       help="record the compatible changes in the ledger (new ids, schema-version bumped)")
    check.add_argument("--ledger", type=Path, default=None, help="ledger file (default shared/iceberg_ids.json)")
    check.set_defaults(func=run_check)

    apply = commands.add_parser("apply", help="apply the ledger's additive changes to an env's tables")
    add_env_arguments(apply)
    apply.add_argument("--dry-run", action="store_true", help="say what would change, change nothing")
    apply.set_defaults(func=run_apply)

    drift = commands.add_parser("drift", help="unknown keys the parser kept in `extra`, per device type")
    add_env_arguments(drift)
    drift.add_argument("--type", dest="device_type", default=None, help="only this device type")
    drift.add_argument("--days", type=int, default=30, help="received in the last DAYS days (default 30)")
    drift.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    drift.set_defaults(func=run_drift)

    suggest = commands.add_parser("suggest", help="print a patch adding TYPE.KEY (or a new device TYPE) to the schema")
    suggest.add_argument("target", metavar="TYPE.KEY|TYPE")
    add_env_arguments(suggest)
    suggest.add_argument("--repo", type=Path, default=None, help="checkout to patch (default: this one)")
    suggest.add_argument("--days", type=int, default=30, help="drift and parked events of the last DAYS days")
    suggest.set_defaults(func=run_suggest)


def run_check(args: argparse.Namespace) -> int:
    from shared import ledger as ledger_module  # noqa: PLC0415
    from signals.schema.evolution import compare  # noqa: PLC0415

    path = args.ledger or ledger_module.LEDGER_PATH
    current = ledger_module.parse(path.read_text()) if path.exists() else None
    result = compare(current)
    for change in result.changes:
        print(change.line())
    if result.incompatible:
        print(f"signals schema check: {len(result.incompatible)} incompatible change(s); the ledger is unchanged",
              file=sys.stderr)
        return 1
    if not result.pending:
        print(f"signals schema check: shared/schema.py agrees with {path.name} ({len(result.ledger.tables)} tables)"
              if result.ledger else "signals schema check: nothing to compare")
        return 0
    assert result.ledger is not None
    if args.write:
        path.write_text(result.ledger.dumps())
        print(f"signals schema check: {len(result.pending)} change(s) recorded in {path}; commit it, regenerate "
              "template.yaml (python -m deploy.glue_columns --write), then `signals schema apply` after the deploy")
        return 0
    print(f"signals schema check: {len(result.pending)} compatible change(s) not in {path.name}: "
          "run `signals schema check --write` and commit it", file=sys.stderr)
    return 1


def run_apply(args: argparse.Namespace) -> int:
    from signals.schema.apply import main  # noqa: PLC0415

    return main(args)


def run_drift(args: argparse.Namespace) -> int:
    from signals.schema.drift import main  # noqa: PLC0415

    return main(args)


def run_suggest(args: argparse.Namespace) -> int:
    from signals.schema.suggest import main  # noqa: PLC0415

    return main(args)
