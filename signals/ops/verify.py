"""`signals verify`: canaries through the public API, followed to raw, verified, registry, Glue and
the compacted tables.

One canary event per device type and one OTLP log record are sent with the API key, each carrying
a unique marker. Each is then followed stage by stage:

  raw       a raw object (under the hour it was sent in, or the next) whose lines hold the marker
  verified  the verified file made from that raw object (its `source-key` metadata names it) holds
            the canary's row
  registry  that file's registry item has status `registered`
  glue      the file's partition exists in Glue
  compacted the canary's row is in its compacted Iceberg table (telemetry_alerts_{env}); on `local`
            verify runs the compactor for the canaries' day once they reached Glue (as `signals
            compact` does); on a deployed env it waits for the hourly run (`--compact-timeout`) and
            asks Athena. `--no-compacted` stops at Glue.

and each stage's latency since the send is printed. A stage not reached within `--timeout` fails
the command, naming the stage.

`--first-deploy` runs the checks of `signals.ops.first_deploy` instead (Athena readability of every
Iceberg table, a MERGE that commits, `$partitions`, VACUUM).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final, TextIO
from urllib.parse import urlparse

from botocore.exceptions import BotoCoreError, ClientError

from shared import registry_keys
from shared.layout import META_SOURCE_KEY, Partition, output_name, verified_key
from shared.schema import OTLP_TYPE, TABLES_BY_TYPE, DeviceType, Source
from signals.env import Environment, EnvironmentNotFound, Output
from signals.ops.common import EnvClients, add_env_arguments, environment_from_args, list_objects, raw_hour_prefix
from signals.ops.compaction import compacted_count, key_column, run_compactor

STAGES: Final = ("raw", "verified", "registry", "glue", "compacted")
# The hourly compactor runs at ten past the hour: a deployed canary can wait this long for it.
DEPLOYED_COMPACT_TIMEOUT_S: Final = 75 * 60.0
LOCAL_COMPACT_TIMEOUT_S: Final = 60.0
# How often a deployed env's compacted table is asked (each ask is an Athena query).
DEPLOYED_COMPACT_POLL_S: Final = 60.0
# S3's LastModified and this machine's clock may differ; raw objects this much older than the
# send still count as candidates.
CLOCK_SLACK: Final = timedelta(minutes=2)
# The default timeout is the Firehose buffering interval (no raw object exists before it has passed)
# plus this much for parsing, registering and Firehose's own delivery delay.
LOCAL_SLACK_S: Final = 60.0
DEPLOYED_SLACK_S: Final = 300.0
# When the streams cannot be described: Firehose's largest interval.
FALLBACK_INTERVAL_S: Final = 900.0
CANARY_EVENT_NAME: Final = "signals_verify_canary"
CANARY_SERVICE: Final = "signals-verify"


class VerifyFailed(RuntimeError):
    def __init__(self, stage: str, message: str) -> None:
        super().__init__(message)
        self.stage = stage


@dataclass
class Canary:
    type_value: str  # lock / bridge / video_doorbell / otlp_logs
    marker: str  # unique text in the canary's raw line and verified row
    event_time: datetime
    reached: dict[str, float] = field(default_factory=dict)  # stage -> seconds after the send
    raw_key: str | None = None
    raw_etag: str | None = None
    verified_key: str | None = None
    registry_status: str | None = None

    @property
    def source(self) -> str:
        return Source.OTLP_LOGS.value if self.type_value == OTLP_TYPE else Source.JSON_TELEMETRY.value

    @property
    def partition(self) -> Partition:
        return Partition.from_datetime(self.event_time)

    @property
    def next_stage(self) -> str | None:
        return next((stage for stage in STAGES if stage not in self.reached), None)


def make_canaries(run_id: str, now: datetime) -> list[Canary]:
    canaries = [Canary(t.value, f"signals-verify-{run_id}-{t.value}", now) for t in DeviceType]
    canaries.append(Canary(OTLP_TYPE, f"signals-verify-{run_id}-{OTLP_TYPE}", now))
    return canaries


def telemetry_body(canaries: Iterable[Canary]) -> bytes:
    events = [{
        "event_id": c.marker, "device_id": f"{CANARY_SERVICE}-{c.type_value}", "device_type": c.type_value,
        "event_name": CANARY_EVENT_NAME, "event_time": c.event_time.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        "attributes": {"canary": "true"},
    } for c in canaries if c.type_value != OTLP_TYPE]
    return json.dumps(events).encode()


def otlp_body(canary: Canary) -> bytes:
    nanos = str(int(canary.event_time.timestamp() * 1_000_000) * 1000)
    record = {
        "timeUnixNano": nanos, "observedTimeUnixNano": nanos, "severityNumber": 9, "severityText": "INFO",
        "body": {"stringValue": canary.marker},
        "attributes": [{"key": "canary", "value": {"boolValue": True}}],
    }
    request = {"resourceLogs": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": CANARY_SERVICE}}]},
        "scopeLogs": [{"scope": {"name": "signals.ops.verify"}, "logRecords": [record]}],
    }]}
    return json.dumps(request).encode()


# --- the API -------------------------------------------------------------------------------------

def api_endpoint(env: Environment) -> str:
    if env.name == "local":
        endpoint = env.extra.get("api_endpoint")
        if not endpoint:
            raise VerifyFailed("api", "the local stack's state file has no api_endpoint")
        return str(endpoint).rstrip("/")
    return env.output(Output.API_URL).rstrip("/")


def api_key(env: Environment, given: str | None) -> str:
    """--api-key, else SIGNALS_API_KEY, else the local stack's key, else the key of the API's usage plan."""
    key = given or os.environ.get("SIGNALS_API_KEY") or env.api_key
    if key:
        return key
    return lookup_api_key(env.client("apigateway"), api_endpoint(env))


def lookup_api_key(apigateway: Any, endpoint: str) -> str:
    """The value of an enabled API key in a usage plan of the REST API behind `endpoint`.

    Falls back to the account's only enabled key when no usage plan names the API.
    """
    host = urlparse(endpoint).hostname or ""
    if ".execute-api." in host:
        api_id = host.split(".", 1)[0]
    else:  # a custom domain: its base path mapping names the API
        mappings = apigateway.get_base_path_mappings(domainName=host).get("items", [])
        if not mappings:
            raise VerifyFailed("api", f"no API mapped to custom domain {host}; pass --api-key")
        api_id = mappings[0]["restApiId"]
    for page in apigateway.get_paginator("get_usage_plans").paginate():
        for plan in page.get("items", []):
            if not any(stage.get("apiId") == api_id for stage in plan.get("apiStages", [])):
                continue
            for keys in apigateway.get_paginator("get_usage_plan_keys").paginate(usagePlanId=plan["id"]):
                for item in keys.get("items", []):
                    found = apigateway.get_api_key(apiKey=item["id"], includeValue=True)
                    if found.get("enabled", True) and found.get("value"):
                        return str(found["value"])
    # No usage plan names the API: the account's only enabled key, if it has exactly one.
    enabled = [key for page in apigateway.get_paginator("get_api_keys").paginate(includeValues=True)
               for key in page.get("items", []) if key.get("enabled", True) and key.get("value")]
    if len(enabled) == 1:
        return str(enabled[0]["value"])
    raise VerifyFailed("api", f"no enabled API key in a usage plan of API {api_id} ({len(enabled)} keys in the "
                              "account); pass --api-key or set SIGNALS_API_KEY")


def post(url: str, key: str, body: bytes, timeout_s: float = 30.0) -> dict[str, Any]:
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/json", "x-api-key": key, "User-Agent": "signals-verify"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            text = response.read().decode() or "{}"
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")[:300]
        raise VerifyFailed("api", f"POST {url}: HTTP {exc.code} {detail}") from None
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        raise VerifyFailed("api", f"POST {url}: {exc}") from None
    parsed = json.loads(text)
    return parsed if isinstance(parsed, dict) else {}


def send_canaries(endpoint: str, key: str, canaries: list[Canary]) -> None:
    if not endpoint.startswith(("https://", "http://")):
        raise VerifyFailed("api", f"API endpoint {endpoint!r} is not an http(s) URL")
    device = [c for c in canaries if c.type_value != OTLP_TYPE]
    answer = post(f"{endpoint}/v1/telemetry", key, telemetry_body(device))
    if answer.get("accepted") != len(device) or answer.get("rejected"):
        raise VerifyFailed("api", f"/v1/telemetry did not accept every canary: {answer}")
    for canary in canaries:
        if canary.type_value == OTLP_TYPE:
            answer = post(f"{endpoint}/v1/logs", key, otlp_body(canary))
            rejected = int((answer.get("partialSuccess") or answer.get("partial_success") or {})
                           .get("rejectedLogRecords", 0) or 0)
            if rejected:
                raise VerifyFailed("api", f"/v1/logs rejected the canary: {answer}")


# --- following the canaries ----------------------------------------------------------------------

class Follower:
    """Advances each canary through the stages; every read is idempotent, so it simply polls."""

    def __init__(self, env: Environment, canaries: list[Canary], sent_at: datetime,
                 clock: Callable[[], float], *, compacted: bool = True,
                 compact: Callable[[list[str]], Any] | None = None,
                 count: Callable[[Canary], int] | None = None) -> None:
        self.env = env
        self.canaries = canaries
        self.sent_at = sent_at
        self.clock = clock
        self.started = clock()
        self.compacted = compacted
        # Locally the compactor is run for the canaries' days; a deployed env's runs on its schedule.
        self.compact = compact if compact is not None else (_run_compactor_for(env) if env.endpoint_url else None)
        self.count = count or self._compacted_rows
        self.compact_runs = 0
        self.compact_error: str | None = None
        self._last_compacted_ask = float("-inf")
        self.clients = EnvClients(env)
        self.s3 = self.clients.client("s3")
        self.raw_bucket = env.output(Output.RAW_BUCKET)
        self.verified_bucket = env.output(Output.VERIFIED_BUCKET)
        self._raw_seen: set[str] = set()
        self._verified_other: set[str] = set()

    def done(self) -> bool:
        return all(c.next_stage in (None, "compacted") if not self.compacted else c.next_stage is None
                   for c in self.canaries)

    def poll(self) -> None:
        self._find_raw([c for c in self.canaries if c.next_stage == "raw"])
        for canary in self.canaries:
            if canary.next_stage == "verified":
                self._find_verified(canary)
            if canary.next_stage == "registry":
                self._check_registry(canary)
            if canary.next_stage == "glue":
                self._check_glue(canary)
        if self.compacted:
            self._check_compacted([c for c in self.canaries if c.next_stage == "compacted"])

    def _reach(self, canary: Canary, stage: str) -> None:
        canary.reached[stage] = self.clock() - self.started

    def _find_raw(self, waiting: list[Canary]) -> None:
        if not waiting:
            return
        hours = {self.sent_at.replace(minute=0, second=0, microsecond=0) + timedelta(hours=h) for h in (0, 1)}
        for source in {c.source for c in waiting}:
            for hour in sorted(hours):
                for obj in list_objects(self.s3, self.raw_bucket, raw_hour_prefix(source, hour)):
                    if obj["Key"] in self._raw_seen or obj["LastModified"] < self.sent_at - CLOCK_SLACK:
                        continue
                    self._raw_seen.add(obj["Key"])
                    body = self.s3.get_object(Bucket=self.raw_bucket, Key=obj["Key"])["Body"]
                    found = markers_in(obj["Key"], body, {c.marker.encode() for c in waiting if c.raw_key is None})
                    for canary in waiting:
                        if canary.marker.encode() in found:
                            canary.raw_key, canary.raw_etag = obj["Key"], obj["ETag"].strip('"')
                            self._reach(canary, "raw")

    def _find_verified(self, canary: Canary) -> None:
        if canary.raw_key is None or canary.raw_etag is None:
            return
        expected = verified_key(canary.type_value, canary.partition,
                                output_name(self.raw_bucket, canary.raw_key, canary.raw_etag))
        candidates = [expected]
        prefix = expected.rsplit("/", 1)[0] + "/"
        candidates += [o["Key"] for o in list_objects(self.s3, self.verified_bucket, prefix)
                       if o["Key"] != expected and o["Key"] not in self._verified_other
                       and o["LastModified"] >= self.sent_at - CLOCK_SLACK]
        for key in candidates:
            try:
                head = self.s3.head_object(Bucket=self.verified_bucket, Key=key)
            except ClientError as exc:
                if exc.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
                    continue
                raise
            if head.get("Metadata", {}).get(META_SOURCE_KEY) != canary.raw_key:
                self._verified_other.add(key)  # from another raw object: never this canary's
                continue
            body = self.s3.get_object(Bucket=self.verified_bucket, Key=key)["Body"].read()
            if _row_present(body, canary):
                canary.verified_key = key
                self._reach(canary, "verified")
                return

    def _check_registry(self, canary: Canary) -> None:
        if canary.verified_key is None:
            return
        item = self.clients.client("dynamodb").get_item(
            TableName=self.env.output(Output.REGISTRY_TABLE), ConsistentRead=True,
            Key={name: {"S": value} for name, value in registry_keys.file_key(canary.verified_key).items()},
        ).get("Item")
        canary.registry_status = item.get(registry_keys.STATUS_ATTR, {}).get("S") if item else None
        if canary.registry_status == registry_keys.STATUS_REGISTERED:
            self._reach(canary, "registry")

    def _check_glue(self, canary: Canary) -> None:
        try:
            self.clients.client("glue").get_partition(
                DatabaseName=self.env.output(Output.GLUE_DATABASE), TableName=TABLES_BY_TYPE[canary.type_value].name,
                PartitionValues=canary.partition.values)
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "EntityNotFoundException":
                return
            raise
        self._reach(canary, "glue")


    def _check_compacted(self, waiting: list[Canary]) -> None:
        """Once every canary is in Glue: (locally) run the compactor for their days, then look for each
        canary's row in its compacted table."""
        if not waiting or any(c.next_stage not in ("compacted", None) for c in self.canaries):
            return
        if self.compact is not None:
            if self.compact_runs and self.clock() - self._last_compacted_ask < 2.0:
                return
            try:
                self.compact(sorted({c.partition.day for c in waiting}))
            except Exception as exc:  # the stage then times out with this reason
                self.compact_error = f"{type(exc).__name__}: {exc}"
                return
            self.compact_runs += 1
        else:
            if self.clock() - self._last_compacted_ask < DEPLOYED_COMPACT_POLL_S:
                return
            self._last_compacted_ask = self.clock()
            if not self._compactor_ran_since_send():
                return  # Athena is asked only once a run started after the canaries were sent
        self._last_compacted_ask = self.clock()
        for canary in waiting:
            found = self.count(canary)
            if found == 1:
                self._reach(canary, "compacted")
            elif found > 1:
                raise VerifyFailed("compacted", f"{canary.type_value}: {found} compacted rows for one canary "
                                                "(the dedup must keep exactly one)")


    def _compactor_ran_since_send(self) -> bool:
        item = self.clients.client("dynamodb").get_item(
            TableName=self.env.output(Output.REGISTRY_TABLE), ConsistentRead=True,
            Key={name: {"S": value} for name, value in registry_keys.compactor_state_key().items()},
        ).get("Item") or {}
        started = item.get("last_run_at", {}).get("S", "")
        try:
            return datetime.fromisoformat(started.replace("Z", "+00:00")) > self.sent_at
        except ValueError:
            return False

    def _compacted_rows(self, canary: Canary) -> int:
        return compacted_count(self.env, canary.type_value, day=canary.partition.day,
                               equals=(key_column(canary.type_value), canary.marker))


def _run_compactor_for(env: Environment) -> Callable[[list[str]], Any]:
    def compact(days: list[str]) -> Any:
        return run_compactor(env, {"days": days})

    return compact


def markers_in(key: str, body: Any, markers: set[bytes]) -> set[bytes]:
    """The markers found in a raw object, streamed line by line and stopped once all are found.

    Raw objects can be large (Firehose buffers up to 128 MiB before gzip), so they are never read
    whole; each canary is one JSON line, so a marker never straddles lines.
    """
    found: set[bytes] = set()
    lines = gzip.GzipFile(fileobj=body) if key.endswith(".gz") else body.iter_lines(keepends=True)
    for line in lines:
        found.update(marker for marker in markers if marker in line)
        if found == markers:
            break
    body.close()
    return found


def _row_present(parquet_bytes: bytes, canary: Canary) -> bool:
    import pyarrow.parquet as pq  # noqa: PLC0415 (pyarrow only when a canary reached this stage)

    from shared.arrow import parquet_input  # noqa: PLC0415

    column = "body" if canary.type_value == OTLP_TYPE else "event_id"
    values = pq.read_table(parquet_input(parquet_bytes), columns=[column]).column(column).to_pylist()
    return canary.marker in values


def follow(follower: Follower, timeout_s: float, poll_s: float,
           sleep: Callable[[float], None] = time.sleep, *, compact_timeout_s: float = LOCAL_COMPACT_TIMEOUT_S) -> None:
    """Poll until every canary passed every stage; VerifyFailed naming the stage otherwise.

    `timeout_s` bounds the stages up to Glue; the compacted stage gets `compact_timeout_s` more from
    the moment every canary reached Glue.
    """
    deadline = follower.started + timeout_s
    while True:
        follower.poll()
        if follower.done():
            return
        if all(c.next_stage in ("compacted", None) for c in follower.canaries) and follower.compacted:
            reached_glue = max(c.reached["glue"] for c in follower.canaries)
            deadline = max(deadline, follower.started + reached_glue + compact_timeout_s)
        if follower.clock() >= deadline:
            break
        sleep(poll_s)
    stuck = [c for c in follower.canaries if c.next_stage is not None]
    stage = min((c.next_stage for c in stuck if c.next_stage), key=STAGES.index)
    names = ", ".join(c.type_value for c in stuck if c.next_stage == stage)
    hint = {
        "raw": "the ingester accepted it but no raw object holds it: check Firehose delivery and its error prefix",
        "verified": "the raw object exists but no verified row: check the processing queue, its DLQ and the "
                    "parser's errors",
        "registry": "the verified file has no `registered` registry item: check the registry queue, its DLQ "
                    "and the registry function",
        "glue": "the registry item is registered but Glue has no partition: check the registry's Glue "
                "permissions and `signals status`",
        "compacted": "the canary is in the verified table but not in its compacted table: see `signals status` "
                     "(compaction last run, lag) and the compactor's log"
                     + (f"; the compactor run failed: {follower.compact_error}" if follower.compact_error else ""),
    }[stage]
    statuses = {c.registry_status for c in stuck if c.next_stage == "registry" and c.registry_status}
    if statuses:
        hint += f" (registry status now: {', '.join(sorted(statuses))})"
    raise VerifyFailed(stage, f"stage {stage} not reached within {timeout_s:.0f}s by: {names}; {hint}")


def render(canaries: list[Canary], out: TextIO, stages: tuple[str, ...] = STAGES) -> None:
    out.write(f"{'canary':<16}" + "".join(f"{stage:>10}" for stage in stages) + "\n")
    for canary in canaries:
        cells = "".join(f"{canary.reached[s]:>9.1f}s" if s in canary.reached else f"{'-':>10}" for s in stages)
        out.write(f"{canary.type_value:<16}{cells}\n")


def firehose_interval(env: Environment) -> float:
    """The longest buffering interval of the two streams (seconds), or the service maximum if unknown."""
    firehose = EnvClients(env).client("firehose")
    intervals = []
    try:
        for output in (Output.TELEMETRY_FIREHOSE, Output.OTLP_FIREHOSE):
            description = firehose.describe_delivery_stream(DeliveryStreamName=env.output(output))
            for destination in description["DeliveryStreamDescription"].get("Destinations", []):
                hints = destination.get("ExtendedS3DestinationDescription", {}).get("BufferingHints", {})
                intervals.append(float(hints.get("IntervalInSeconds", FALLBACK_INTERVAL_S)))
    except (ClientError, BotoCoreError, RuntimeError, KeyError):
        return FALLBACK_INTERVAL_S
    return max(intervals, default=FALLBACK_INTERVAL_S)


def default_timeout(env: Environment) -> float:
    return firehose_interval(env) + (LOCAL_SLACK_S if env.name == "local" else DEPLOYED_SLACK_S)


def run_verify(env: Environment, out: TextIO, *, key: str | None = None, timeout_s: float | None = None,
               poll_s: float | None = None, clock: Callable[[], float] = time.monotonic, compacted: bool = True,
               compact_timeout_s: float | None = None) -> list[Canary]:
    local = env.name == "local"
    timeout = timeout_s if timeout_s is not None else default_timeout(env)
    compact_timeout = compact_timeout_s if compact_timeout_s is not None else (
        LOCAL_COMPACT_TIMEOUT_S if env.endpoint_url is not None else DEPLOYED_COMPACT_TIMEOUT_S)
    endpoint = api_endpoint(env)
    resolved_key = api_key(env, key)
    now = datetime.now(UTC)
    canaries = make_canaries(uuid.uuid4().hex[:12], now)
    out.write(f"signals verify  env={env.name}  api={endpoint}  timeout={timeout:.0f}s"
              + (f" (+{compact_timeout:.0f}s for the compacted tables)" if compacted else "") + "\n")
    follower = Follower(env, canaries, now, clock, compacted=compacted)
    send_canaries(endpoint, resolved_key, canaries)
    try:
        follow(follower, timeout, poll_s if poll_s is not None else 0.5 if local else 5.0,
               compact_timeout_s=compact_timeout)
    finally:
        render(canaries, out, STAGES if compacted else STAGES[:-1])
    return canaries


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "verify", help="send canaries through the API and follow them to raw, verified, registry, Glue and the "
                       "compacted tables",
        description="One canary event per device type and one OTLP log record, sent with the API key and "
                    "followed stage by stage with each stage's latency. Exit 1 naming the stage not reached.")
    add_env_arguments(parser)
    parser.add_argument("--timeout", type=float, default=None, metavar="S",
                        help="seconds to wait for every stage (default: the Firehose buffering interval "
                             f"plus {LOCAL_SLACK_S:.0f} s locally, plus {DEPLOYED_SLACK_S:.0f} s for a deployed env)")
    parser.add_argument("--api-key", default=None,
                        help="API key (default: SIGNALS_API_KEY, the local stack's, or the API's usage plan key)")
    parser.add_argument("--compacted", action=argparse.BooleanOptionalAction, default=True,
                        help="follow the canaries into the compacted tables too (default; locally verify runs the "
                             "compactor for their day, a deployed env's hourly run is waited for)")
    parser.add_argument("--first-deploy", action="store_true",
                        help="instead of canaries, check on a fresh deploy what only AWS can say: each Iceberg "
                             "table readable by Athena, one MERGE on a scratch day commits, $partitions answers, "
                             "VACUUM runs (each ok/fail with the AWS error; docs/deploy.md)")
    parser.add_argument("--compact-timeout", type=float, default=None, metavar="S",
                        help=f"seconds the compacted stage may take after Glue (default {LOCAL_COMPACT_TIMEOUT_S:.0f} "
                             f"locally, {DEPLOYED_COMPACT_TIMEOUT_S:.0f} for a deployed env's hourly run)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    env = environment_from_args(args)
    if env is None:
        return 2
    if args.first_deploy:
        from signals.ops import first_deploy  # noqa: PLC0415

        try:
            steps = first_deploy.first_deploy_checks(env)
        except (ClientError, BotoCoreError, EnvironmentNotFound) as exc:
            print(f"signals verify: could not run the first-deploy checks: {exc}", file=sys.stderr)
            return 2
        first_deploy.render(steps, env.name, sys.stdout)
        return 0 if all(step.ok for step in steps) else 1
    try:
        run_verify(env, sys.stdout, key=args.api_key, timeout_s=args.timeout, compacted=args.compacted,
                   compact_timeout_s=args.compact_timeout)
    except VerifyFailed as exc:
        print(f"signals verify: FAILED at {exc.stage}: {exc}", file=sys.stderr)
        return 1
    except (ClientError, BotoCoreError, EnvironmentNotFound) as exc:  # cannot read the pipeline at all
        print(f"signals verify: could not follow the canaries: {exc}", file=sys.stderr)
        return 2
    print("signals verify: ok, every canary reached " + ("its compacted table" if args.compacted else "Glue"))
    return 0
