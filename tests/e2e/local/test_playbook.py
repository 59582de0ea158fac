"""The production playbook's AWS CLI commands against `signals local`, with only AWS_ENDPOINT_URL set.

Discovery through plain boto3 clients (the stack sets AWS_ENDPOINT_URL and fake credentials in this
process, as a user's shell would), the expected names read from the template, never listed here;
function logs and metrics after traffic; `aws lambda invoke` through the stock aws CLI and the
events/ files through boto3; `signals invoke` from another process.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from signals.env import resolve
from signals.local.stack import LocalStack
from signals.local.template import ResolvedTemplate
from signals.ops.checks import StatusContext, check_queue
from tests.e2e.local.conftest import API_KEY, post, wait_for

ROOT = Path(__file__).resolve().parents[3]
EVENTS = ROOT / "events"
BIN = Path(sys.executable).parent


@pytest.fixture(autouse=True)
def _endpoint(stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> None:
    """What a user exports in their shell (the shared conftest removes it around every test)."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", stack.aws_endpoint_url)


@contextmanager
def function_output_routed(stack: LocalStack) -> Iterator[None]:
    """pytest's capture puts its own sys.stdout back at the start of each test, over the stack's router
    (installed while the module's stack started), so functions' print()s (Powertools' EMF lines) would
    end in pytest's capture; `signals local` has no such swap."""
    routed = stack.routed_output
    assert routed is not None
    saved, sys.stdout = sys.stdout, routed
    try:
        yield
    finally:
        sys.stdout = saved


def aws(service: str) -> Any:
    """A client as the playbook makes one: no endpoint argument, the environment says where AWS is."""
    return boto3.client(service)  # type: ignore[call-overload]


def names(template: ResolvedTemplate, resource_type: str) -> set[str]:
    return {template.physical_name(r.logical_id) for r in template.of_type(resource_type)}


def cli_env(stack: LocalStack, signals_home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ENDPOINT_URL=stack.aws_endpoint_url, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
               AWS_DEFAULT_REGION="us-west-2", SIGNALS_HOME=str(signals_home))
    return env


def test_discovery_lists_the_template_resources(stack: LocalStack) -> None:
    template = stack.template
    assert template is not None
    assert stack.wiring is not None

    buckets = {b["Name"] for b in aws("s3").list_buckets()["Buckets"]}
    assert names(template, "AWS::S3::Bucket") <= buckets

    sqs = aws("sqs")
    urls = sqs.list_queues()["QueueUrls"]
    assert names(template, "AWS::SQS::Queue") <= {u.rsplit("/", 1)[-1] for u in urls}
    for queue in stack.wiring.queues.values():
        attributes = sqs.get_queue_attributes(QueueUrl=queue.url, AttributeNames=["All"])["Attributes"]
        assert attributes["QueueArn"] == queue.arn
        if queue.dlq_arn:
            redrive = json.loads(attributes["RedrivePolicy"])
            assert (redrive["deadLetterTargetArn"], int(redrive["maxReceiveCount"])) == (
                queue.dlq_arn, queue.max_receive_count)

    firehose = aws("firehose")
    assert names(template, "AWS::KinesisFirehose::DeliveryStream") <= set(
        firehose.list_delivery_streams()["DeliveryStreamNames"])

    table = aws("dynamodb").describe_table(TableName=stack.outputs["RegistryTable"])["Table"]
    assert table["TableStatus"] == "ACTIVE"

    workgroups = {w["Name"] for w in aws("athena").list_work_groups()["WorkGroups"]}
    assert names(template, "AWS::Athena::WorkGroup") <= workgroups

    glue = aws("glue")
    database = stack.outputs["GlueDatabase"]
    assert database in {d["Name"] for d in glue.get_databases()["DatabaseList"]}
    tables = {t["Name"] for t in glue.get_tables(DatabaseName=database)["TableList"]}
    expected_tables = {r.properties["TableInput"]["Name"] for r in template.of_type("AWS::Glue::Table")
                       if r.properties["DatabaseName"] == database}
    assert expected_tables <= tables

    cloudwatch = aws("cloudwatch")
    dashboards = {d["DashboardName"] for d in cloudwatch.list_dashboards()["DashboardEntries"]}
    assert names(template, "AWS::CloudWatch::Dashboard") <= dashboards
    for resource in template.of_type("AWS::CloudWatch::Dashboard"):
        body = cloudwatch.get_dashboard(DashboardName=template.physical_name(resource.logical_id))["DashboardBody"]
        assert json.loads(body) == json.loads(resource.properties["DashboardBody"])  # resolved: no ${...} left
        assert "${" not in body
    alarms = {a["AlarmName"]: a for page in cloudwatch.get_paginator("describe_alarms").paginate()
              for a in page["MetricAlarms"]}
    for resource in template.of_type("AWS::CloudWatch::Alarm"):
        alarm = alarms[resource.properties["AlarmName"]]
        assert (alarm["Namespace"], alarm["MetricName"], alarm["Threshold"]) == (
            resource.properties["Namespace"], resource.properties["MetricName"],
            float(resource.properties["Threshold"]))
        assert alarm["AlarmActions"]
        assert alarm["AlarmActions"][0].startswith("arn:aws:sns:")

    groups = {g["logGroupName"]: g for page in aws("logs").get_paginator("describe_log_groups").paginate()
              for g in page["logGroups"]}
    for resource in template.of_type("AWS::Logs::LogGroup"):
        group = groups[template.physical_name(resource.logical_id)]
        assert group["retentionInDays"] == int(resource.properties["RetentionInDays"])

    reconciler_rules = aws("events").list_rules(NamePrefix="local-tps-telemetry-registry")["Rules"]
    assert [r["Name"] for r in reconciler_rules] == [s.rule_name for s in stack.function("reconciler").spec.schedules]
    rules = aws("events").list_rules()["Rules"]
    schedules = [s for f in stack.wiring.functions.values() for s in f.schedules]
    assert {s.rule_name for s in schedules} == {r["Name"] for r in rules}
    for rule in rules:
        schedule = next(s for s in schedules if s.rule_name == rule["Name"])
        assert rule["ScheduleExpression"] == schedule.expression
        targets = aws("events").list_targets_by_rule(Rule=rule["Name"])["Targets"]
        assert [t["Arn"].rsplit(":", 1)[-1] for t in targets] == [
            f.name for f in stack.wiring.functions.values() if schedule in f.schedules]

    apigateway = aws("apigateway")
    (api,) = [a for a in apigateway.get_rest_apis()["items"] if a["name"] == "telemetry-signals-ingester-api"]
    assert set(api["binaryMediaTypes"]) == set(stack.wiring.binary_media_types)
    assert [s["stageName"] for s in apigateway.get_stages(restApiId=api["id"])["item"]] == [stack.wiring.stage_name]
    keys = apigateway.get_api_keys(includeValues=True)["items"]
    assert [k["value"] for k in keys] == [API_KEY]
    (plan,) = apigateway.get_usage_plans()["items"]
    assert plan["apiStages"] == [{"apiId": api["id"], "stage": stack.wiring.stage_name}]
    assert [k["id"] for k in apigateway.get_usage_plan_keys(usagePlanId=plan["id"])["items"]] == [keys[0]["id"]]
    routes = {(r["path"], m) for r in apigateway.get_resources(restApiId=api["id"])["items"]
              for m in r.get("resourceMethods", {})}
    assert {(route.path, route.method) for f in stack.wiring.functions.values() for route in f.routes} <= routes


def test_lambda_functions_have_the_template_settings(stack: LocalStack) -> None:
    template = stack.template
    assert template is not None
    assert stack.wiring is not None
    client = aws("lambda")
    listed = {f["FunctionName"] for page in client.get_paginator("list_functions").paginate()
              for f in page["Functions"]}
    assert {f.name for f in stack.wiring.functions.values()} == listed  # every function, whatever their number
    for spec in stack.wiring.functions.values():
        props = template.resources[spec.logical_id].properties
        found = client.get_function(FunctionName=spec.name)
        configuration = found["Configuration"]
        assert configuration["Handler"] == props["Handler"]
        assert configuration["Runtime"] == props["Runtime"]
        assert configuration["Architectures"] == props["Architectures"]
        assert (configuration["MemorySize"], configuration["Timeout"]) == (props["MemorySize"], props["Timeout"])
        assert configuration["Environment"]["Variables"] == spec.environment
        if "ReservedConcurrentExecutions" in props:
            assert found["Concurrency"]["ReservedConcurrentExecutions"] == int(props["ReservedConcurrentExecutions"])
        mappings = client.list_event_source_mappings(FunctionName=spec.name)["EventSourceMappings"]
        assert sorted((m["EventSourceArn"], m["BatchSize"], m.get("MaximumBatchingWindowInSeconds", 0))
                      for m in mappings) == sorted(
            (e.queue_arn, e.batch_size, int(e.window_seconds)) for e in spec.sqs_events)
        assert all(m["State"] == "Enabled" for m in mappings)


def test_function_logs_and_metrics_reach_cloudwatch(stack: LocalStack) -> None:
    assert stack.cloudwatch is not None
    device = f"cw-{uuid.uuid4().hex[:8]}"
    started = datetime.now(UTC) - timedelta(minutes=1)
    now = datetime.now(UTC).isoformat()
    body = json.dumps([{"device_id": device, "device_type": "lock", "event_id": f"{device}-{i}",
                        "event_name": "bolt_changed", "event_time": now, "battery_pct": 50} for i in range(5)])
    with function_output_routed(stack):
        status, _ = post(stack, "/v1/telemetry", body.encode(),
                         {"x-api-key": API_KEY, "content-type": "application/json"})
        assert status == 200
        refused, _ = post(stack, "/v1/telemetry", body.encode(),
                          {"x-api-key": "wrong", "content-type": "application/json"})
        assert refused == 403
        assert stack.wait_until_drained(60, flush_firehose=True)
    logs = aws("logs")
    parser = stack.function("parser")
    group = stack.provisioned.log_groups[parser.name]

    def parser_events() -> list[dict[str, Any]]:
        return logs.filter_log_events(logGroupName=group, startTime=int(started.timestamp() * 1000))["events"]

    assert wait_for(lambda: any('"platform.report"' in e["message"] for e in parser_events()), timeout=15)
    events = parser_events()
    assert {e["logStreamName"] for e in events} == {parser.log_stream_name}
    assert re.fullmatch(r"\d{4}/\d{2}/\d{2}/\[\$LATEST\][0-9a-f]{32}", parser.log_stream_name)  # as Lambda names it
    messages = [json.loads(e["message"]) for e in events if e["message"].startswith("{")]
    assert any(m.get("service") == "parser" and m.get("level") for m in messages)  # Powertools' lines
    # The log file keeps the same lines.
    assert (stack.log_dir / f"{parser.name}.log").read_text().count('"service":"parser"') > 0

    cloudwatch = aws("cloudwatch")

    def app_metrics() -> set[str]:
        return {m["MetricName"] for m in cloudwatch.list_metrics(Namespace="SignalsPipeline")["Metrics"]
                if {"Name": "service", "Value": "parser"} in m["Dimensions"]}

    assert wait_for(lambda: {"RowsOut", "RawObjects"} <= app_metrics(), timeout=15), app_metrics()

    def invocations() -> float:
        points = cloudwatch.get_metric_statistics(
            Namespace="AWS/Lambda", MetricName="Invocations",
            Dimensions=[{"Name": "FunctionName", "Value": parser.name}],
            StartTime=datetime.now(UTC) - timedelta(hours=1), EndTime=datetime.now(UTC) + timedelta(minutes=1),
            Period=60, Statistics=["Sum"])["Datapoints"]
        return float(sum(p["Sum"] for p in points))

    # Every invocation since the stack started (moto was reset then), as Lambda counts them.
    assert wait_for(lambda: invocations() == parser.invocations, timeout=10), (invocations(), parser.invocations)

    stack.cloudwatch.sample()
    stack.cloudwatch.flush()
    queue = stack.wiring.queue_by_name("telemetry-processing-queue") if stack.wiring else None
    assert queue is not None
    age = cloudwatch.get_metric_statistics(
        Namespace="AWS/SQS", MetricName="ApproximateAgeOfOldestMessage",
        Dimensions=[{"Name": "QueueName", "Value": queue.name}],
        StartTime=started, EndTime=datetime.now(UTC) + timedelta(minutes=1), Period=60, Statistics=["Maximum"])
    assert age["Datapoints"]
    assert all(p["Maximum"] >= 0 for p in age["Datapoints"])
    incoming = cloudwatch.get_metric_statistics(
        Namespace="AWS/Firehose", MetricName="IncomingRecords",
        Dimensions=[{"Name": "DeliveryStreamName", "Value": "telemetry-signals-lake-firehose"}],
        StartTime=started, EndTime=datetime.now(UTC) + timedelta(minutes=1), Period=60, Statistics=["Sum"])
    assert sum(p["Sum"] for p in incoming["Datapoints"]) >= 1

    # API Gateway's metrics for the stage, as the template's 5xx alarm and dashboard read them.
    def api_sum(metric: str) -> float:
        points = cloudwatch.get_metric_statistics(
            Namespace="AWS/ApiGateway", MetricName=metric,
            Dimensions=[{"Name": "ApiName", "Value": "telemetry-signals-ingester-api"},
                        {"Name": "Stage", "Value": stack.wiring.stage_name if stack.wiring else ""}],
            StartTime=started, EndTime=datetime.now(UTC) + timedelta(minutes=1), Period=60, Statistics=["Sum"])
        return float(sum(p["Sum"] for p in points["Datapoints"]))

    assert api_sum("Count") >= 2
    assert api_sum("4XXError") >= 1


def test_queue_age_is_the_oldest_waiting_message(stack: LocalStack) -> None:
    """A message nobody consumes ages in AWS/SQS ApproximateAgeOfOldestMessage (the alarms' metric)."""
    assert stack.cloudwatch is not None
    assert stack.wiring is not None
    dlq = stack.wiring.queue_by_name("telemetry-registry-queue_dlq")  # not consumed by any function
    aws("sqs").send_message(QueueUrl=dlq.url, MessageBody="{}")
    time.sleep(2.1)
    stack.cloudwatch.sample()
    stack.cloudwatch.flush()
    points = aws("cloudwatch").get_metric_statistics(
        Namespace="AWS/SQS", MetricName="ApproximateAgeOfOldestMessage",
        Dimensions=[{"Name": "QueueName", "Value": dlq.name}],
        StartTime=datetime.now(UTC) - timedelta(minutes=2), EndTime=datetime.now(UTC) + timedelta(minutes=1),
        Period=60, Statistics=["Maximum"])["Datapoints"]
    assert max(p["Maximum"] for p in points) >= 2
    visible = aws("cloudwatch").get_metric_statistics(
        Namespace="AWS/SQS", MetricName="ApproximateNumberOfMessagesVisible",
        Dimensions=[{"Name": "QueueName", "Value": dlq.name}],
        StartTime=datetime.now(UTC) - timedelta(minutes=2), EndTime=datetime.now(UTC) + timedelta(minutes=1),
        Period=60, Statistics=["Maximum"])["Datapoints"]
    assert max(p["Maximum"] for p in visible) >= 1
    # `signals status` reads the same metric, as it does on AWS.
    ctx = StatusContext(env=resolve("local"), hour=datetime.now(UTC), now=datetime.now(UTC) + timedelta(seconds=1))
    (result,) = check_queue(ctx, "registry dlq", "RegistryDlqUrl")
    assert result.details["oldest_age_s"] >= 2
    assert "oldest n/a" not in result.figure
    # The message is still there, never received: its receive count is untouched.
    attributes = aws("sqs").get_queue_attributes(QueueUrl=dlq.url, AttributeNames=["ApproximateNumberOfMessages"])
    assert attributes["Attributes"]["ApproximateNumberOfMessages"] == "1"
    message = aws("sqs").receive_message(QueueUrl=dlq.url, AttributeNames=["ApproximateReceiveCount"])["Messages"][0]
    assert message["Attributes"]["ApproximateReceiveCount"] == "1"
    aws("sqs").delete_message(QueueUrl=dlq.url, ReceiptHandle=message["ReceiptHandle"])


@pytest.mark.parametrize("path", sorted(EVENTS.glob("*.json")), ids=lambda p: p.name)
def test_every_events_file_invokes_its_function(stack: LocalStack, path: Path) -> None:
    function = stack.function(path.name.split("_")[0])
    response = aws("lambda").invoke(FunctionName=function.name, Payload=path.read_bytes(), LogType="Tail")
    payload = json.loads(response["Payload"].read())
    assert response["StatusCode"] == 200
    assert "FunctionError" not in response, payload
    log = base64.b64decode(response["LogResult"]).decode()
    assert response["ResponseMetadata"]["RequestId"] in log  # Lambda's REPORT line of this invocation
    if "statusCode" in payload:  # the ingester's API Gateway proxy response
        assert payload["statusCode"] == 200, payload


def test_an_unhandled_error_is_reported_as_lambda_does(stack: LocalStack) -> None:
    registry = stack.function("registry")
    errors_before = registry.errors
    response = aws("lambda").invoke(FunctionName=registry.name, Payload=b'{"Records": "not a list"}')
    assert response["StatusCode"] == 200
    assert response["FunctionError"] == "Unhandled"
    payload = json.loads(response["Payload"].read())
    assert set(payload) == {"errorMessage", "errorType", "requestId", "stackTrace"}
    assert payload["requestId"] == response["ResponseMetadata"]["RequestId"]
    assert registry.errors == errors_before + 1
    with pytest.raises(aws("lambda").exceptions.ResourceNotFoundException):
        aws("lambda").invoke(FunctionName="no-such-function", Payload=b"{}")
    with pytest.raises(aws("lambda").exceptions.InvalidRequestContentException):
        aws("lambda").invoke(FunctionName=registry.name, Payload=b"{not json")


def test_stock_aws_cli_lists_rules_and_invokes_the_ingester(stack: LocalStack, signals_home: Path,
                                                            tmp_path: Path) -> None:
    env = cli_env(stack, signals_home)
    rules = subprocess.run([str(BIN / "aws"), "events", "list-rules", "--name-prefix", "local-tps-telemetry-registry"],
                           env=env, capture_output=True, text=True, timeout=60, check=True)
    assert "local-tps-telemetry-registry-reconciler" in rules.stdout
    out = tmp_path / "out.json"
    before = stack.firehose.stats["telemetry-signals-lake-firehose"].records_in
    invoked = subprocess.run(
        [str(BIN / "aws"), "lambda", "invoke", "--function-name", "telemetry-signals-ingester",
         "--payload", f"fileb://{EVENTS / 'ingester_telemetry.json'}", str(out)],
        env=env, capture_output=True, text=True, timeout=60, check=True, cwd=tmp_path)
    assert json.loads(invoked.stdout)["StatusCode"] == 200
    response = json.loads(out.read_text())
    assert response["statusCode"] == 200
    accepted = json.loads(response["body"])["accepted"]
    assert accepted > 0
    # It really ran: the events went to Firehose, as through the API.
    assert stack.firehose.stats["telemetry-signals-lake-firehose"].records_in > before


def test_signals_invoke_from_another_process(stack: LocalStack, signals_home: Path) -> None:
    env = cli_env(stack, signals_home)
    done = subprocess.run([str(BIN / "signals"), "invoke", "ParserFunction", "-e", str(EVENTS / "parser_sqs_s3.json")],
                          env=env, capture_output=True, text=True, timeout=60, cwd=ROOT, check=False)
    assert done.returncode == 0, done.stderr
    assert "batchItemFailures" in json.loads(done.stdout)
    assert '"platform.report"' in done.stderr
    assert '"service":"parser"' in done.stderr  # the function's own log lines
    failed = subprocess.run([str(BIN / "signals"), "invoke", "registry", "-e", "-"], input='{"Records": 1}',
                            env=env, capture_output=True, text=True, timeout=60, cwd=ROOT, check=False)
    assert failed.returncode == 1
    assert json.loads(failed.stdout)["errorType"]
    unknown = subprocess.run([str(BIN / "signals"), "invoke", "nope"], env=env, capture_output=True, text=True,
                             timeout=60, cwd=ROOT, check=False)
    assert unknown.returncode == 1
    assert "telemetry-parser-service" in unknown.stderr


def test_disabling_a_mapping_or_a_rule_stops_the_local_consumer(stack: LocalStack) -> None:
    """The playbook's switches: `lambda update-event-source-mapping --no-enabled`, `events disable-rule`."""
    lambda_client, events = aws("lambda"), aws("events")
    registry = stack.function("registry")
    (mapping,) = lambda_client.list_event_source_mappings(FunctionName=registry.name)["EventSourceMappings"]
    (poller,) = [p for p in stack.pollers if p.function is registry]
    try:
        lambda_client.update_event_source_mapping(UUID=mapping["UUID"], Enabled=False)
        assert poller.paused
        assert lambda_client.get_event_source_mapping(UUID=mapping["UUID"])["State"] == "Disabled"
    finally:
        lambda_client.update_event_source_mapping(UUID=mapping["UUID"], Enabled=True)
    assert not poller.paused
    schedule = stack.schedule_of("reconciler")
    try:
        events.disable_rule(Name=schedule.spec.rule_name)
        assert schedule.paused
        assert events.describe_rule(Name=schedule.spec.rule_name)["State"] == "DISABLED"
    finally:
        events.enable_rule(Name=schedule.spec.rule_name)
    assert not schedule.paused
