"""`signals verify`'s follower against moto: the pipeline's steps done by hand, one stage at a time.

The API leg and the real pipeline are covered end to end in tests/e2e/ops against the local stack.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from shared import registry_keys
from shared.layout import output_name, verified_key
from signals.env import Environment, Output
from signals.ops import verify
from tests.integration.ops.conftest import RAW, VERIFIED, Pipeline


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def _land_raw(pipeline: Pipeline, canaries: list[verify.Canary]) -> dict[str, dict[str, str]]:
    """What the ingester and Firehose would write: one raw object per source holding its canaries."""
    landed = {}
    for source in ("json_telemetry", "otlp_logs"):
        lines = [json.dumps({"event_id": c.marker, "device_type": c.type_value}) for c in canaries
                 if c.source == source]
        key = f"raw/{source}/{canaries[0].event_time:%Y/%m/%d/%H}/stream-1-canary.gz"
        etag = pipeline.s3.put_object(Bucket=RAW, Key=key, Body=gzip.compress("\n".join(lines).encode()))["ETag"]
        landed[source] = {"key": key, "etag": etag.strip('"')}
    return landed


def _parse(pipeline: Pipeline, canary: verify.Canary, raw: dict[str, str], *, marker: str | None = None) -> str:
    """What the parser would write: the deterministic verified file with the canary's row."""
    column = "body" if canary.type_value == "otlp_logs" else "event_id"
    buffer = io.BytesIO()
    pq.write_table(pa.table({column: [marker or canary.marker, "other"]}), buffer)
    key = verified_key(canary.type_value, canary.partition, output_name(RAW, raw["key"], raw["etag"]))
    pipeline.s3.put_object(Bucket=VERIFIED, Key=key, Body=buffer.getvalue(),
                           Metadata={"rows": "2", "source-key": raw["key"], "type": canary.type_value})
    return key


def _follow(pipeline: Pipeline, canaries: list[verify.Canary], timeout_s: float = 10.0) -> None:
    """Up to Glue (the compacted stage has its own tests below)."""
    clock = Clock()
    follower = verify.Follower(pipeline.env, canaries, canaries[0].event_time, clock, compacted=False)
    verify.follow(follower, timeout_s, 1.0, sleep=clock.sleep)


def test_follows_every_canary_to_glue(pipeline: Pipeline) -> None:
    canaries = verify.make_canaries("run1", datetime.now(UTC))
    assert [c.type_value for c in canaries] == ["lock", "bridge", "video_doorbell", "otlp_logs"]
    raw = _land_raw(pipeline, canaries)
    for canary in canaries:
        key = _parse(pipeline, canary, raw[canary.source])
        pipeline.register_file(key, canary.type_value, canary.partition, 2)
        pipeline.add_partition(canary.type_value, canary.partition)
    _follow(pipeline, canaries)
    assert all(set(c.reached) == set(verify.STAGES) - {"compacted"} for c in canaries)
    assert canaries[0].raw_key == raw["json_telemetry"]["key"]
    assert canaries[3].verified_key is not None
    assert canaries[3].verified_key.startswith("telemetry_flat/type=otlp_logs/")
    out = io.StringIO()
    verify.render(canaries, out)
    assert out.getvalue().splitlines()[0].split() == ["canary", "raw", "verified", "registry", "glue", "compacted"]


@pytest.mark.parametrize("broken", ["raw", "verified", "registry", "glue"])
def test_names_the_first_stage_a_canary_did_not_reach(pipeline: Pipeline, broken: str) -> None:
    canaries = verify.make_canaries("run2", datetime.now(UTC))
    if broken != "raw":
        raw = _land_raw(pipeline, canaries)
        for canary in canaries:
            # A verified file from the same raw object, but without this canary's row, is not enough.
            key = _parse(pipeline, canary, raw[canary.source], marker="someone-else" if broken == "verified" else None)
            status = registry_keys.STATUS_PARTITION_FAILED if broken == "registry" else registry_keys.STATUS_REGISTERED
            pipeline.register_file(key, canary.type_value, canary.partition, 2, status=status)
            if broken != "glue":
                pipeline.add_partition(canary.type_value, canary.partition)
    with pytest.raises(verify.VerifyFailed) as failure:
        _follow(pipeline, canaries)
    assert failure.value.stage == broken
    assert f"stage {broken} not reached within 10s by: lock, bridge, video_doorbell, otlp_logs" in str(failure.value)
    if broken == "registry":
        assert "registry status now: partition_failed" in str(failure.value)


def _in_glue(pipeline: Pipeline, run_id: str) -> list[verify.Canary]:
    canaries = verify.make_canaries(run_id, datetime.now(UTC))
    raw = _land_raw(pipeline, canaries)
    for canary in canaries:
        key = _parse(pipeline, canary, raw[canary.source])
        pipeline.register_file(key, canary.type_value, canary.partition, 2)
        pipeline.add_partition(canary.type_value, canary.partition)
    return canaries


class CompactedTables:
    """Stands in for the compactor and its tables: a run copies what is "verified" into "compacted"."""

    def __init__(self, copies: int = 1, *, runs_needed: int = 1) -> None:
        self.copies = copies
        self.runs_needed = runs_needed
        self.runs: list[list[str]] = []

    def compact(self, days: list[str]) -> None:
        self.runs.append(days)

    def count(self, _canary: verify.Canary) -> int:
        return self.copies if len(self.runs) >= self.runs_needed else 0


def test_compacts_the_canaries_day_once_they_are_in_glue_and_finds_each_row(pipeline: Pipeline) -> None:
    canaries = _in_glue(pipeline, "run4")
    tables = CompactedTables(runs_needed=2)  # the first run found the lease held by the scheduled one
    clock = Clock()
    follower = verify.Follower(pipeline.env, canaries, canaries[0].event_time, clock, compact=tables.compact,
                               count=tables.count)
    verify.follow(follower, 10.0, 1.0, sleep=clock.sleep, compact_timeout_s=30.0)
    assert all(set(c.reached) == set(verify.STAGES) for c in canaries)
    assert tables.runs == [[canaries[0].partition.day]] * 2
    assert all(c.reached["compacted"] >= c.reached["glue"] for c in canaries)


def test_a_canary_missing_from_its_compacted_table_fails_that_stage(pipeline: Pipeline) -> None:
    canaries = _in_glue(pipeline, "run5")
    tables = CompactedTables(copies=0)
    clock = Clock()
    follower = verify.Follower(pipeline.env, canaries, canaries[0].event_time, clock, compact=tables.compact,
                               count=tables.count)
    with pytest.raises(verify.VerifyFailed) as failure:
        verify.follow(follower, 10.0, 1.0, sleep=clock.sleep, compact_timeout_s=20.0)
    assert failure.value.stage == "compacted"
    assert "not reached within 10s" in str(failure.value)
    assert "compaction last run" in str(failure.value)
    assert clock.now >= 20.0  # the compacted stage had its own time after Glue


def test_a_deployed_env_asks_athena_only_after_a_compactor_run_since_the_send(pipeline: Pipeline) -> None:
    canaries = _in_glue(pipeline, "run7")
    asked: list[str] = []

    def count(canary: verify.Canary) -> int:
        asked.append(canary.type_value)
        return 1

    clock = Clock()
    follower = verify.Follower(pipeline.env, canaries, canaries[0].event_time, clock, count=count)
    assert follower.compact is None  # a deployed env: its hourly run, not verify, compacts
    pipeline.compactor_ran(canaries[0].event_time - timedelta(minutes=5), watermark=None)  # before the send
    for _ in range(3):
        follower.poll()
        clock.sleep(61.0)
    assert asked == []
    pipeline.compactor_ran(canaries[0].event_time + timedelta(seconds=30), watermark=None)
    verify.follow(follower, 10.0, 1.0, sleep=clock.sleep, compact_timeout_s=600.0)
    assert sorted(asked) == sorted(c.type_value for c in canaries)
    assert all("compacted" in c.reached for c in canaries)


def test_two_compacted_rows_for_one_canary_fail_at_once(pipeline: Pipeline) -> None:
    canaries = _in_glue(pipeline, "run6")
    tables = CompactedTables(copies=2)
    clock = Clock()
    follower = verify.Follower(pipeline.env, canaries, canaries[0].event_time, clock, compact=tables.compact,
                               count=tables.count)
    with pytest.raises(verify.VerifyFailed, match="2 compacted rows for one canary"):
        verify.follow(follower, 10.0, 1.0, sleep=clock.sleep)


def test_raw_objects_from_before_the_send_are_not_read(pipeline: Pipeline) -> None:
    canaries = verify.make_canaries("run3", datetime(2030, 1, 1, tzinfo=UTC))  # "sent" long after this object
    _land_raw(pipeline, canaries)
    with pytest.raises(verify.VerifyFailed) as failure:
        _follow(pipeline, canaries)
    assert failure.value.stage == "raw"


def _api(pipeline: Pipeline) -> tuple[Any, str]:
    apigateway = pipeline.env.client("apigateway")
    api_id = apigateway.create_rest_api(name="telemetry-signals-ingester-api")["id"]
    other = apigateway.create_rest_api(name="another-api")["id"]
    for rest_api, value in ((other, "not-this-one-0123456789"), (api_id, "the-ingest-key-0123456789")):
        key = apigateway.create_api_key(name=f"key-{rest_api}", value=value, enabled=True)
        plan = apigateway.create_usage_plan(name=f"plan-{rest_api}", apiStages=[{"apiId": rest_api, "stage": "v1"}])
        apigateway.create_usage_plan_key(usagePlanId=plan["id"], keyId=key["id"], keyType="API_KEY")
    return apigateway, f"https://{api_id}.execute-api.us-west-2.amazonaws.com/v1"


def test_deployed_env_key_comes_from_the_apis_usage_plan(pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SIGNALS_API_KEY", raising=False)
    _apigateway, url = _api(pipeline)
    env = Environment(name="dev", session=pipeline.env.session, outputs={**pipeline.env.outputs, Output.API_URL: url})
    assert verify.api_endpoint(env) == url
    assert verify.api_key(env, None) == "the-ingest-key-0123456789"
    assert verify.api_key(env, "given") == "given"
    monkeypatch.setenv("SIGNALS_API_KEY", "from-env")
    assert verify.api_key(env, None) == "from-env"


def test_custom_domain_is_followed_to_its_api(pipeline: Pipeline) -> None:
    apigateway, url = _api(pipeline)
    api_id = url.split("//")[1].split(".")[0]
    domain = "signals-pipeline-ingest.dev-public.level.co"
    root = apigateway.get_resources(restApiId=api_id)["items"][0]["id"]
    apigateway.put_method(restApiId=api_id, resourceId=root, httpMethod="POST", authorizationType="NONE")
    apigateway.put_integration(restApiId=api_id, resourceId=root, httpMethod="POST", type="MOCK")
    apigateway.create_deployment(restApiId=api_id, stageName="v1")
    apigateway.create_domain_name(domainName=domain)
    apigateway.create_base_path_mapping(domainName=domain, restApiId=api_id, stage="v1")
    assert verify.lookup_api_key(apigateway, f"https://{domain}") == "the-ingest-key-0123456789"


def test_no_key_found_fails_at_the_api_stage(pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SIGNALS_API_KEY", raising=False)
    apigateway = pipeline.env.client("apigateway")
    api_id = apigateway.create_rest_api(name="keyless")["id"]
    env = Environment(name="dev", session=pipeline.env.session, outputs={
        **pipeline.env.outputs, Output.API_URL: f"https://{api_id}.execute-api.us-west-2.amazonaws.com/v1/"})
    with pytest.raises(verify.VerifyFailed, match="pass --api-key") as failure:
        verify.api_key(env, None)
    assert failure.value.stage == "api"
    # With no usage plan naming the API, the account's only enabled key is taken...
    apigateway.create_api_key(name="only", value="the-only-key-0123456789", enabled=True)
    assert verify.api_key(env, None) == "the-only-key-0123456789"
    # ...but never one of several.
    apigateway.create_api_key(name="second", value="another-key-0123456789", enabled=True)
    with pytest.raises(verify.VerifyFailed, match="2 keys in the account"):
        verify.api_key(env, None)


def test_canary_bodies_are_valid_requests() -> None:
    canaries = verify.make_canaries("run4", datetime(2026, 11, 25, 19, 30, 0, 123000, tzinfo=UTC))
    events = json.loads(verify.telemetry_body(canaries))
    assert [e["device_type"] for e in events] == ["lock", "bridge", "video_doorbell"]
    assert events[0]["event_time"] == "2026-11-25T19:30:00.123Z"
    assert events[0]["event_id"] == "signals-verify-run4-lock"
    logs = json.loads(verify.otlp_body(canaries[3]))
    record = logs["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]
    assert record["timeUnixNano"] == "1795635000123000000"
    assert record["body"] == {"stringValue": "signals-verify-run4-otlp_logs"}


def test_default_timeout_follows_the_firehose_buffering_interval(pipeline: Pipeline) -> None:
    env = pipeline.env
    assert verify.default_timeout(env) == 60 + verify.DEPLOYED_SLACK_S  # the pipeline's streams buffer 60 s
    unknown = Environment(name="dev", session=env.session, outputs={
        k: v for k, v in env.outputs.items() if k not in (Output.TELEMETRY_FIREHOSE, Output.OTLP_FIREHOSE)})
    assert verify.default_timeout(unknown) == verify.FALLBACK_INTERVAL_S + verify.DEPLOYED_SLACK_S
    firehose = env.client("firehose")
    outputs = dict(env.outputs)
    for output, seconds in ((Output.TELEMETRY_FIREHOSE, 120), (Output.OTLP_FIREHOSE, 60)):
        name = f"stream-{seconds}"
        firehose.create_delivery_stream(DeliveryStreamName=name, ExtendedS3DestinationConfiguration={
            "RoleARN": "arn:aws:iam::123456789012:role/firehose", "BucketARN": f"arn:aws:s3:::{RAW}",
            "BufferingHints": {"IntervalInSeconds": seconds, "SizeInMBs": 64}})
        outputs[output] = name
    described = Environment(name="dev", session=env.session, outputs=outputs)
    assert verify.default_timeout(described) == 120 + verify.DEPLOYED_SLACK_S


def test_command_exits_2_when_the_env_lacks_an_output(pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(verify, "environment_from_args", lambda _args: pipeline.env)  # no ApiUrl output
    parser = argparse.ArgumentParser(prog="signals")
    verify.register(parser.add_subparsers())
    args = parser.parse_args(["verify", "--timeout", "1"])
    assert args.func(args) == 2
    assert "stack has no output 'ApiUrl'" in capsys.readouterr().err


def test_markers_are_found_in_gzip_members_and_plain_objects(pipeline: Pipeline) -> None:
    members = gzip.compress(b'{"event_id": "a"}\n') + gzip.compress(b'{"event_id": "m-1"}\n{"body": "m-2"}\n')
    pipeline.s3.put_object(Bucket=RAW, Key="raw/otlp_logs/x.gz", Body=members)
    pipeline.s3.put_object(Bucket=RAW, Key="raw/otlp_logs/plain", Body=b'{"event_id": "m-2"}\n')

    def search(key: str, markers: set[bytes]) -> set[bytes]:
        return verify.markers_in(key, pipeline.s3.get_object(Bucket=RAW, Key=key)["Body"], markers)

    assert search("raw/otlp_logs/x.gz", {b"m-1", b"m-2", b"m-3"}) == {b"m-1", b"m-2"}
    assert search("raw/otlp_logs/plain", {b"m-1", b"m-2"}) == {b"m-2"}
