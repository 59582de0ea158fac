"""Keep template.yaml's Glue tables in step with `shared.schema`.

The four `AWS::Glue::Table` resources sit between two marker comments in template.yaml and are
generated from `shared.schema.TABLES` (columns from `glue_columns`, partition keys from
`glue_partition_keys`, location from the table's `type=` prefix). Edit the schema, then run

    python -m deploy.glue_columns --write    # regenerate the block in template.yaml
    python -m deploy.glue_columns --check    # exit 1 if template.yaml is out of date (CI)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Final

from shared.schema import TABLES, TableSpec, glue_columns, glue_partition_keys

TEMPLATE: Final = Path(__file__).resolve().parent.parent / "template.yaml"
BEGIN: Final = "  # BEGIN GENERATED GLUE TABLES (python -m deploy.glue_columns --write; do not edit by hand)\n"
END: Final = "  # END GENERATED GLUE TABLES\n"

# Hive/Glue settings every table shares: Parquet files under the table's `type=` prefix.
_INPUT_FORMAT: Final = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
_OUTPUT_FORMAT: Final = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"
_SERDE: Final = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"


def logical_id(table: TableSpec) -> str:
    """`telemetry_video_doorbell_flat` -> `GlueTableVideoDoorbell`."""
    return "GlueTable" + "".join(part.capitalize() for part in table.type_value.split("_"))


def _scalar(value: str) -> str:
    # JSON strings are valid YAML double-quoted scalars; quoting keeps `map<string,string>` intact.
    return json.dumps(value, ensure_ascii=True)


def _flow(mapping: dict[str, str]) -> str:
    return "{" + ", ".join(f"{key}: {_scalar(value)}" for key, value in mapping.items()) + "}"


def render_table(table: TableSpec) -> str:
    lines = [
        f"  {logical_id(table)}:",
        "    Type: AWS::Glue::Table",
        "    Properties:",
        "      CatalogId: !Ref AWS::AccountId",
        "      DatabaseName: !Ref GlueDatabase",
        "      TableInput:",
        f"        Name: {table.name}",
        f"        Description: {_scalar(table.description)}",
        "        TableType: EXTERNAL_TABLE",
        "        Parameters:",
        "          classification: parquet",
        '          EXTERNAL: "TRUE"',
        "        PartitionKeys:",
        *(f"          - {_flow(key)}" for key in glue_partition_keys()),
        "        StorageDescriptor:",
        f"          Location: !Sub s3://${{VerifiedBucket}}/{table.location_prefix}",
        f"          InputFormat: {_INPUT_FORMAT}",
        f"          OutputFormat: {_OUTPUT_FORMAT}",
        "          SerdeInfo:",
        f"            SerializationLibrary: {_SERDE}",
        "            Parameters:",
        '              serialization.format: "1"',
        "          Columns:",
        *(f"            - {_flow(column)}" for column in glue_columns(table)),
    ]
    return "\n".join(lines) + "\n"


def render_block() -> str:
    return BEGIN + "\n".join(render_table(table) for table in TABLES) + END


def _split(text: str) -> tuple[str, str, str]:
    start = text.find(BEGIN)
    end = text.find(END)
    if start < 0 or end < start:
        raise SystemExit(f"{TEMPLATE.name}: generated Glue table markers not found")
    return text[:start], text[start : end + len(END)], text[end + len(END) :]


def is_current(template_text: str) -> bool:
    return _split(template_text)[1] == render_block()


def write(path: Path = TEMPLATE) -> bool:
    """Regenerate the block; True when the file changed."""
    text = path.read_text()
    head, block, tail = _split(text)
    fresh = render_block()
    if block == fresh:
        return False
    path.write_text(head + fresh + tail)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.glue_columns", description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="regenerate the Glue tables in template.yaml")
    mode.add_argument("--check", action="store_true", help="exit 1 when template.yaml differs from the schema")
    parser.add_argument("--template", type=Path, default=TEMPLATE)
    args = parser.parse_args(argv)
    if args.write:
        changed = write(args.template)
        print(f"{args.template}: {'updated' if changed else 'already current'}")
        return 0
    if is_current(args.template.read_text()):
        print(f"{args.template}: Glue tables match shared.schema")
        return 0
    print(f"{args.template}: Glue tables differ from shared.schema; run python -m deploy.glue_columns --write",
          file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
