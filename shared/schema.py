"""The one definition of every record the pipeline stores.

Each table is a tuple of `FieldSpec`s. Everything else is derived from these, never written twice:
the pydantic models (`shared.models`), the Arrow schemas (`shared.arrow`, the only module here that
imports pyarrow, so the ingester never loads it), the Glue/Hive column lists used by template.yaml
(`glue_columns`) and JSON Schema for the API docs (`shared.models.json_schema`).
`tests/unit/test_schema_agreement.py` proves the views agree field by field and type by type.

Coercion policy (lossless only), applied by every view that validates:
- int: a JSON integer, or a float with no fractional part (`87.0` -> 87). A string (`"87"`), a bool
  (`true`) or a fractional float (`87.5`) is invalid.
- float: a JSON number (int or float); NaN and infinities are invalid. Strings and bools are invalid.
- bool: `true` / `false` only (`1`, `"true"` are invalid).
- string / enum: a JSON string only (a number is not silently turned into text); enums are
  case-sensitive.
- timestamp: an RFC 3339 string (`T` or space, `z` or `Z`, any fraction digits, truncated to ms)
  or integer epoch milliseconds; stored as UTC.
- null equals absent for every optional field.
- map<string,string> (`attributes`): an object whose values are scalars; strings stay as they are,
  other scalars are stored as their JSON text (`3` -> `"3"`, `true` -> `"true"`), nulls are dropped,
  nested objects/arrays are invalid.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final


class Kind(enum.Enum):
    """Logical type of a column; each view maps it to its own type system."""

    STRING = "string"
    INT = "int"  # int64 everywhere
    INT32 = "int32"  # small bounded ints in OTLP rows (severity_number, flags, dropped count)
    FLOAT = "float"  # float64
    BOOL = "bool"
    TIMESTAMP_MS = "timestamp_ms"
    TIMESTAMP_US = "timestamp_us"
    STRING_MAP = "map<string,string>"


@dataclass(frozen=True)
class FieldSpec:
    name: str
    kind: Kind
    description: str
    required: bool = False
    minimum: float | None = None
    maximum: float | None = None
    min_length: int | None = None
    max_length: int | None = None
    choices: tuple[str, ...] | None = None
    default: object = None
    # Set by the pipeline, not by the device: not part of the ingest model's validated input.
    derived: bool = False


class DeviceType(enum.StrEnum):
    LOCK = "lock"
    BRIDGE = "bridge"
    VIDEO_DOORBELL = "video_doorbell"


#: A well-formed device type name: what the ingester parks (accepts into raw) when the schema does not
#: know it yet, so the parser quarantines it as `unknown_device_type` and `signals redrive quarantine`
#: replays it once the type is added. Lower-case ASCII letters, digits and underscores, starting with
#: a letter, at most 48 characters: it must fit the verified layout (`type=...` partitions) and a Glue
#: table name (`telemetry_{type}_flat`). Anything else (`Lock`, `7`, `"x y"`) is refused by the ingester.
DEVICE_TYPE_NAME: Final = re.compile(r"[a-z][a-z0-9_]{0,47}")


def is_device_type_name(value: object) -> bool:
    """A string that could name a device type (known or not): see DEVICE_TYPE_NAME."""
    return isinstance(value, str) and DEVICE_TYPE_NAME.fullmatch(value) is not None


class Source(enum.StrEnum):
    """Raw sources: the Firehose prefixes `raw/{source}/` and the quarantine `source=` values."""

    JSON_TELEMETRY = "json_telemetry"
    OTLP_LOGS = "otlp_logs"


class Reason(enum.StrEnum):
    """Quarantine reason codes (docs/data-contract.md)."""

    INVALID_JSON = "invalid_json"
    NOT_AN_OBJECT = "not_an_object"
    UNKNOWN_DEVICE_TYPE = "unknown_device_type"
    MISSING_FIELD = "missing_field"
    INVALID_VALUE = "invalid_value"
    EVENT_TIME_OUT_OF_RANGE = "event_time_out_of_range"
    RECORD_TOO_LARGE = "record_too_large"
    CORRUPT_INPUT = "corrupt_input"
    TOO_DEEP = "too_deep"


#: The `type=` partition value of the OTLP logs table (device tables use the device type).
OTLP_TYPE: Final = "otlp_logs"
ALL_TYPES: Final[tuple[str, ...]] = (*(t.value for t in DeviceType), OTLP_TYPE)

SCHEMA_VERSION: Final = 1

# --- device telemetry ----------------------------------------------------------------------------

ENVELOPE: Final[tuple[FieldSpec, ...]] = (
    FieldSpec("event_id", Kind.STRING, "Unique id of the event, set by the device.", required=True,
              min_length=1, max_length=128),
    FieldSpec("device_id", Kind.STRING, "Id of the sending device.", required=True,
              min_length=1, max_length=128),
    FieldSpec("device_type", Kind.STRING, "Kind of device; selects the typed fields.", required=True,
              choices=tuple(t.value for t in DeviceType)),
    FieldSpec("event_name", Kind.STRING, "What happened, e.g. `bolt_changed`.", required=True,
              min_length=1),
    FieldSpec("event_time", Kind.TIMESTAMP_MS,
              "When it happened: RFC 3339 string or epoch milliseconds; stored as UTC.", required=True),
    FieldSpec("received_at", Kind.TIMESTAMP_MS,
              "When the ingester accepted it (RFC 3339 UTC, ms); the raw object's arrival time when absent.",
              derived=True),
    FieldSpec("firmware_version", Kind.STRING, "Firmware the device runs."),
    FieldSpec("schema_version", Kind.INT, "Version of the event schema the device speaks.",
              minimum=1, default=1),
    FieldSpec("attributes", Kind.STRING_MAP,
              "Free-form scalars; non-string values stored as their JSON text, nulls dropped."),
)

_BATTERY = FieldSpec("battery_pct", Kind.INT, "Battery charge, percent.", minimum=0, maximum=100)
_RSSI = FieldSpec("rssi_dbm", Kind.INT, "Radio signal strength, dBm.", minimum=-130, maximum=0)
_WIFI_RSSI = FieldSpec("wifi_rssi_dbm", Kind.INT, "Wi-Fi signal strength, dBm.", minimum=-130, maximum=0)

DEVICE_FIELDS: Final[Mapping[DeviceType, tuple[FieldSpec, ...]]] = {
    DeviceType.LOCK: (
        _BATTERY,
        FieldSpec("bolt_state", Kind.STRING, "Bolt position.",
                  choices=("locked", "unlocked", "jammed", "unknown")),
        FieldSpec("door_state", Kind.STRING, "Door position.", choices=("open", "closed", "ajar", "unknown")),
        FieldSpec("operation_source", Kind.STRING, "What operated the lock.",
                  choices=("manual", "app", "keypad", "auto_lock", "voice", "remote", "unknown")),
        _RSSI,
        FieldSpec("temperature_c", Kind.FLOAT, "Internal temperature, degrees Celsius."),
    ),
    DeviceType.BRIDGE: (
        _WIFI_RSSI,
        FieldSpec("uptime_s", Kind.INT, "Seconds since boot.", minimum=0),
        FieldSpec("connected_devices", Kind.INT, "Devices paired to the bridge.", minimum=0),
        FieldSpec("cpu_pct", Kind.FLOAT, "CPU use, percent.", minimum=0, maximum=100),
        FieldSpec("mem_free_kb", Kind.INT, "Free memory, KiB.", minimum=0),
        FieldSpec("network_type", Kind.STRING, "Uplink.", choices=("wifi", "ethernet")),
    ),
    DeviceType.VIDEO_DOORBELL: (
        _BATTERY,
        _WIFI_RSSI,
        FieldSpec("motion_detected", Kind.BOOL, "Motion seen in this event."),
        FieldSpec("button_pressed", Kind.BOOL, "Doorbell button pressed."),
        FieldSpec("stream_duration_s", Kind.FLOAT, "Length of the live stream, seconds.", minimum=0),
        FieldSpec("video_bitrate_kbps", Kind.INT, "Stream bitrate, kbit/s.", minimum=0),
        FieldSpec("night_mode", Kind.BOOL, "Infrared night mode on."),
    ),
}

EXTRA: Final = FieldSpec(
    "extra", Kind.STRING, "Unknown top-level fields as one JSON object string (never dropped).", derived=True
)
LINEAGE: Final[tuple[FieldSpec, ...]] = (
    FieldSpec("source_key", Kind.STRING, "Raw object key this row came from.", required=True, derived=True),
    FieldSpec("source_line", Kind.INT, "1-based line number in the raw object.", required=True,
              derived=True),
)

# --- OTLP logs -----------------------------------------------------------------------------------

OTLP_LOG_FIELDS: Final[tuple[FieldSpec, ...]] = (
    FieldSpec("time", Kind.TIMESTAMP_US, "LogRecord.time_unix_nano as UTC (null when 0)."),
    FieldSpec("observed_time", Kind.TIMESTAMP_US, "LogRecord.observed_time_unix_nano as UTC (null when 0)."),
    FieldSpec("time_unix_nano", Kind.INT, "LogRecord.time_unix_nano exactly as sent."),
    FieldSpec("severity_number", Kind.INT32, "SeverityNumber (0-24).", minimum=0, maximum=24),
    FieldSpec("severity_text", Kind.STRING, "Severity as the source wrote it."),
    FieldSpec("body", Kind.STRING, "Body; a non-string AnyValue as its OTLP JSON."),
    FieldSpec("attributes", Kind.STRING_MAP, "Log attributes; non-string values as JSON."),
    FieldSpec("resource_attributes", Kind.STRING_MAP, "Resource attributes; non-string values as JSON."),
    FieldSpec("scope_name", Kind.STRING, "InstrumentationScope name."),
    FieldSpec("scope_version", Kind.STRING, "InstrumentationScope version."),
    FieldSpec("trace_id", Kind.STRING, "Trace id, 32 lowercase hex digits."),
    FieldSpec("span_id", Kind.STRING, "Span id, 16 lowercase hex digits."),
    FieldSpec("flags", Kind.INT, "LogRecord flags (W3C trace flags in the low byte)."),
    FieldSpec("dropped_attributes_count", Kind.INT, "Attributes the SDK dropped."),
    FieldSpec("event_name", Kind.STRING, "LogRecord.event_name."),
    FieldSpec("service_name", Kind.STRING, "Resource attribute service.name."),
    FieldSpec("device_id", Kind.STRING, "Resource attribute device.id, when present."),
    FieldSpec("received_at", Kind.TIMESTAMP_US, "Arrival time of the raw object.", derived=True),
)

PARTITION_KEYS: Final[tuple[str, ...]] = ("day", "hour")

# --- tables --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TableSpec:
    name: str  # Glue table name
    type_value: str  # the `type=` partition value under telemetry_flat/
    fields: tuple[FieldSpec, ...]
    description: str = ""
    timestamp_kind: Kind = Kind.TIMESTAMP_MS
    # Not an init field: `dataclasses.replace` would hand the copy this very dict, and the copy's
    # fields would then overwrite the original's lookups (a promoted copy changed the original).
    _by_name: dict[str, FieldSpec] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        names = [f.name for f in self.fields]
        if len(names) != len(set(names)):
            raise ValueError(f"duplicate column in {self.name}: {names}")
        object.__setattr__(self, "_by_name", {f.name: f for f in self.fields})

    def field(self, name: str) -> FieldSpec:
        return self._by_name[name]

    @property
    def column_names(self) -> list[str]:
        return [f.name for f in self.fields]

    @property
    def location_prefix(self) -> str:
        """Key prefix in the verified bucket (Glue table location without the bucket)."""
        return f"telemetry_flat/type={self.type_value}/"


def device_table(device_type: DeviceType) -> TableSpec:
    return DEVICE_TABLES[device_type]


def _device_table(device_type: DeviceType) -> TableSpec:
    return TableSpec(
        name=f"telemetry_{device_type.value}_flat",
        type_value=device_type.value,
        fields=(*ENVELOPE, *DEVICE_FIELDS[device_type], EXTRA, *LINEAGE),
        description=f"Validated {device_type.value} telemetry, one row per event.",
    )


DEVICE_TABLES: Final[Mapping[DeviceType, TableSpec]] = {t: _device_table(t) for t in DeviceType}
OTLP_TABLE: Final = TableSpec(
    name="telemetry_otlp_logs_flat",
    type_value=OTLP_TYPE,
    fields=(*OTLP_LOG_FIELDS, *LINEAGE),
    description="OpenTelemetry log records, one row per LogRecord.",
    timestamp_kind=Kind.TIMESTAMP_US,
)
TABLES: Final[tuple[TableSpec, ...]] = (*DEVICE_TABLES.values(), OTLP_TABLE)
TABLES_BY_TYPE: Final[Mapping[str, TableSpec]] = {t.type_value: t for t in TABLES}


def known_field_names(device_type: DeviceType) -> frozenset[str]:
    """Top-level names a device event of this type may carry; anything else goes to `extra`."""
    return frozenset(f.name for f in (*ENVELOPE, *DEVICE_FIELDS[device_type]))


# --- Glue / Hive view ----------------------------------------------------------------------------

_GLUE_TYPES: Final[Mapping[Kind, str]] = {
    Kind.STRING: "string",
    Kind.INT: "bigint",
    Kind.INT32: "int",
    Kind.FLOAT: "double",
    Kind.BOOL: "boolean",
    Kind.TIMESTAMP_MS: "timestamp",
    Kind.TIMESTAMP_US: "timestamp",
    Kind.STRING_MAP: "map<string,string>",
}


def glue_type(kind: Kind) -> str:
    return _GLUE_TYPES[kind]


def glue_columns(table: TableSpec) -> list[dict[str, str]]:
    """Glue `Columns` for a table (partition keys excluded), as template.yaml holds them."""
    return [{"Name": f.name, "Type": glue_type(f.kind), "Comment": f.description[:255]} for f in table.fields]


def glue_partition_keys() -> list[dict[str, str]]:
    return [{"Name": key, "Type": "string"} for key in PARTITION_KEYS]


def iter_all_fields() -> Iterable[tuple[TableSpec, FieldSpec]]:
    for table in TABLES:
        for spec in table.fields:
            yield table, spec


# --- compacted layer (docs/data-contract.md, "Compacted tables") ---------------------------------
#
# The verified tables are at least once (a client retry or a redelivery adds a copy); the compacted
# Iceberg tables keep one row per event. Each is the verified table's columns plus `day` and `hour`,
# partitioned by `day`, in the Glue database `alerts_database(env)`; the data-quality tables live in
# `audit_database(env)`. The compactor, the template generator and the local stack derive everything
# about these tables from the definitions below.


def alerts_database(env: str) -> str:
    """Glue database of the compacted tables (`telemetry_alerts_{env}`)."""
    return f"telemetry_alerts_{env}"


def audit_database(env: str) -> str:
    """Glue database of the data-quality audit tables (`telemetry_alerts_{env}_dq_audit`)."""
    return f"telemetry_alerts_{env}_dq_audit"


#: Key prefix of the compacted tables' data and metadata in the dbt bucket (`{prefix}{table}/`).
COMPACTED_DATA_PREFIX: Final = "dbt/data/"
#: Columns that say when and where a copy arrived rather than what it says.
ARRIVAL_COLUMNS: Final[tuple[str, ...]] = ("received_at", *(f.name for f in LINEAGE))

DAY_FIELD: Final = FieldSpec(
    "day", Kind.STRING, "Event day, UTC (YYYY-MM-DD): the verified partition's day; the partition column.",
    required=True, derived=True,
)
HOUR_FIELD: Final = FieldSpec(
    "hour", Kind.STRING, "Event hour, UTC (HH): the verified partition's hour.", required=True, derived=True
)


@dataclass(frozen=True)
class CompactedTableSpec:
    """A compacted (deduplicated, daily) Iceberg table over one verified table."""

    name: str
    source: TableSpec
    #: The columns copies of one event share: (`device_id`, `event_id`) for devices (two devices may
    #: number their events alike); empty: the key is a fingerprint of `identity_columns` (OTLP records
    #: carry no id).
    key_columns: tuple[str, ...]
    description: str
    #: The fingerprint's version when the key is one (`OTLP_FINGERPRINT_COLUMNS`); None for an id key.
    fingerprint_version: int | None = None

    @property
    def type_value(self) -> str:
        return self.source.type_value

    @property
    def fields(self) -> tuple[FieldSpec, ...]:
        return (*self.source.fields, DAY_FIELD, HOUR_FIELD)

    @property
    def column_names(self) -> list[str]:
        return [f.name for f in self.fields]

    @property
    def content_columns(self) -> tuple[str, ...]:
        """What a copy says: every verified column but `received_at` and the lineage."""
        return tuple(f.name for f in self.source.fields if f.name not in ARRIVAL_COLUMNS)

    @property
    def identity_columns(self) -> tuple[str, ...]:
        """What the fingerprint key hashes: the pinned column set of `fingerprint_version`.

        Not `content_columns`: a column added to the table later (a promotion, a new OTLP field) is
        content, compared between copies, but never identity, so a record parsed again or backfilled
        under a newer schema keeps its key and stays one row.
        """
        if self.fingerprint_version is None:
            raise ValueError(f"{self.name} keys on {', '.join(self.key_columns)}, not on a fingerprint")
        columns = OTLP_FINGERPRINT_COLUMNS[self.fingerprint_version]
        missing = [name for name in columns if name not in self.source.column_names]
        if missing:
            raise ValueError(f"{self.name}: fingerprint v{self.fingerprint_version} hashes {', '.join(missing)}, "
                             "which the table no longer has (a column is never dropped: tombstone it)")
        return columns

    @property
    def data_prefix(self) -> str:
        """Key prefix of the table's data and metadata in the dbt bucket."""
        return f"{COMPACTED_DATA_PREFIX}{self.name}/"


#: The OTLP dedup key (docs/data-contract.md, "Compacted tables"): a fingerprint over these columns,
#: by version. A version's column list is frozen forever: changing it would give every stored record
#: a new key, so the next compaction would insert each one again. A new version is added only with a
#: migration that rewrites the compacted table's keys; the compactor uses OTLP_FINGERPRINT_VERSION.
OTLP_FINGERPRINT_COLUMNS: Final[Mapping[int, tuple[str, ...]]] = {
    1: ("time", "observed_time", "time_unix_nano", "severity_number", "severity_text", "body", "attributes",
        "resource_attributes", "scope_name", "scope_version", "trace_id", "span_id", "flags",
        "dropped_attributes_count", "event_name", "service_name", "device_id"),
}
OTLP_FINGERPRINT_VERSION: Final = 1

#: The dedup key of a device event: an event id is unique per device only.
DEVICE_KEY_COLUMNS: Final[tuple[str, ...]] = ("device_id", "event_id")


def device_event_key(device_id: str, event_id: str) -> str:
    """A device event's key as text (`event_key` in duplicate_conflicts, the chaos ledger's ids):
    `<characters in device_id>:<device_id>:<event_id>`, e.g. `6:lock-1:e1`. The length prefix makes
    it unambiguous whatever the ids contain; `compactor.dedup.key_sql` computes the same text in SQL
    (`length` counts code points in Trino, DuckDB and Python alike)."""
    return f"{len(device_id)}:{device_id}:{event_id}"


def _compacted(source: TableSpec) -> CompactedTableSpec:
    device = source.type_value != OTLP_TYPE
    return CompactedTableSpec(
        name=f"int_{source.type_value}_compacted_daily",
        source=source,
        key_columns=DEVICE_KEY_COLUMNS if device else (),
        fingerprint_version=None if device else OTLP_FINGERPRINT_VERSION,
        description=(
            f"{source.description.split(',')[0]}, deduplicated: one row per "
            + ("(device_id, event_id)" if device else "log record (content fingerprint)")
            + " and day, the earliest copy."
        ),
    )


COMPACTED_TABLES: Final[tuple[CompactedTableSpec, ...]] = tuple(_compacted(t) for t in TABLES)
#: Columns removed from a compacted or audit table, by table name: tombstoned in the field-id ledger
#: (shared/iceberg_ids.json). Their ids are never reused and their columns stay in the deployed tables
#: with the values already written; the pipeline writes null from then on (docs/schema-evolution.md).
RETIRED_FIELDS: Final[Mapping[str, tuple[str, ...]]] = {}
COMPACTED_BY_TYPE: Final[Mapping[str, CompactedTableSpec]] = {t.type_value: t for t in COMPACTED_TABLES}
COMPACTED_BY_NAME: Final[Mapping[str, CompactedTableSpec]] = {t.name: t for t in COMPACTED_TABLES}


@dataclass(frozen=True)
class AuditTableSpec:
    """A data-quality table in `audit_database(env)`, written by the compactor."""

    name: str
    fields: tuple[FieldSpec, ...]
    description: str
    partition_column: str = "day"

    @property
    def column_names(self) -> list[str]:
        return [f.name for f in self.fields]

    @property
    def data_prefix(self) -> str:
        return f"{COMPACTED_DATA_PREFIX}dq_audit/{self.name}/"


_RUN_ID = FieldSpec("run_id", Kind.STRING, "Compactor run that wrote the row.", required=True)
_TABLE_NAME = FieldSpec("table_name", Kind.STRING, "Compacted table (e.g. int_lock_compacted_daily).", required=True)
_AUDIT_DAY = FieldSpec("day", Kind.STRING, "Event day (UTC, YYYY-MM-DD) compacted.", required=True)

COMPACTION_RUNS: Final = AuditTableSpec(
    name="compaction_runs",
    description="One row per compactor run, table and day: what was read, inserted and dropped.",
    fields=(
        _RUN_ID,
        FieldSpec("started_at", Kind.TIMESTAMP_US, "When the run started.", required=True),
        _TABLE_NAME,
        _AUDIT_DAY,
        FieldSpec("verified_rows", Kind.INT, "Verified rows read for the day, every copy."),
        FieldSpec("inserted", Kind.INT, "Rows added to the compacted table."),
        FieldSpec("replaced", Kind.INT,
                  "Compacted rows replaced by an earlier copy of the same event that arrived after them."),
        FieldSpec("natural_duplicates", Kind.INT, "Copies with the same key and content, dropped."),
        FieldSpec("conflicting_duplicates", Kind.INT,
                  "Copies with the same key and other content (see duplicate_conflicts)."),
        FieldSpec("late_rows", Kind.INT,
                  "Rows written (inserted or replaced) whose event day is before the day they were received."),
        FieldSpec("engine", Kind.STRING, "`athena` or `local` (DuckDB + pyiceberg)."),
        FieldSpec("duration_ms", Kind.INT, "Time spent on this table and day."),
        FieldSpec("outcome", Kind.STRING,
                  "`succeeded`, `failed`, or `stopped` (out of time: the next run compacts the day)."),
        FieldSpec("error", Kind.STRING, "Why it failed, when it did."),
    ),
)

DUPLICATE_CONFLICTS: Final = AuditTableSpec(
    name="duplicate_conflicts",
    description="Copies kept out of a compacted table because they share a key with other content.",
    fields=(
        _RUN_ID,
        FieldSpec("detected_at", Kind.TIMESTAMP_US, "When the run found it.", required=True),
        _TABLE_NAME,
        _AUDIT_DAY,
        FieldSpec("event_key", Kind.STRING, "The shared key: <len(device_id)>:<device_id>:<event_id> (devices), "
                  "or the content fingerprint (OTLP).",
                  required=True),
        FieldSpec("kept_source_key", Kind.STRING, "Raw object of the copy in the compacted table."),
        FieldSpec("kept_source_line", Kind.INT, "Its line."),
        FieldSpec("kept_received_at", Kind.TIMESTAMP_US, "Its received_at."),
        FieldSpec("conflicting_source_key", Kind.STRING, "Raw object of the copy kept out."),
        FieldSpec("conflicting_source_line", Kind.INT, "Its line."),
        FieldSpec("conflicting_received_at", Kind.TIMESTAMP_US, "Its received_at."),
        FieldSpec("differing_columns", Kind.STRING, "Content columns whose values differ, comma-separated."),
        FieldSpec("conflicting_row", Kind.STRING, "The copy kept out, as a JSON object of its content columns."),
    ),
)

BACKFILL_RUNS: Final = AuditTableSpec(
    name="backfill_runs",
    description="One row per `signals backfill` run, table and day: keys lifted out of extra into promoted columns.",
    fields=(
        FieldSpec("run_id", Kind.STRING, "Backfill run that wrote the row.", required=True),
        FieldSpec("started_at", Kind.TIMESTAMP_US, "When the run started.", required=True),
        _TABLE_NAME,
        FieldSpec("day", Kind.STRING, "Event day (UTC, YYYY-MM-DD) backfilled.", required=True),
        FieldSpec("method", Kind.STRING, "`extra`: values lifted out of the row's own extra column."),
        FieldSpec("columns", Kind.STRING, "Columns a value was lifted into, comma-separated."),
        FieldSpec("files_read", Kind.INT, "Verified files of the day read."),
        FieldSpec("files_rewritten", Kind.INT, "Verified files rewritten in place (same key, same rows)."),
        FieldSpec("rows_read", Kind.INT, "Verified rows read, every copy."),
        FieldSpec("values_lifted", Kind.INT, "Values moved from extra into their typed column."),
        FieldSpec("values_unfit", Kind.INT,
                  "Values left in extra because they do not fit the column (type, range, choices); never quarantined."),
        FieldSpec("unfit_columns", Kind.STRING, "Unfit values per column, as a JSON object."),
        FieldSpec("compacted_refreshed", Kind.INT, "Compacted rows replaced by their backfilled copy."),
        FieldSpec("compacted_inserted", Kind.INT,
                  "Compacted rows inserted by the recompute (verified rows not compacted before the backfill)."),
        FieldSpec("duration_ms", Kind.INT, "Time spent on this table and day."),
        FieldSpec("outcome", Kind.STRING, "`succeeded`, `unchanged` (nothing to lift) or `failed`."),
        FieldSpec("error", Kind.STRING, "Why it failed, when it did."),
    ),
)

AUDIT_TABLES: Final[tuple[AuditTableSpec, ...]] = (COMPACTION_RUNS, DUPLICATE_CONFLICTS, BACKFILL_RUNS)
#: The quarantine bucket's JSON lines as a Glue table in the audit database (partition projection).
QUARANTINE_RECORDS_TABLE: Final = "quarantine_records"
#: The parser's drift counts (parser.drift) as a Glue table in the audit database (partition projection).
SCHEMA_DRIFT_TABLE: Final = "schema_drift"


def compacted_glue_columns(table: CompactedTableSpec | AuditTableSpec) -> list[dict[str, str]]:
    """Glue `Columns` of a compacted or audit Iceberg table (the partition column included)."""
    return [{"Name": f.name, "Type": glue_type(f.kind), "Comment": f.description[:255]} for f in table.fields]
