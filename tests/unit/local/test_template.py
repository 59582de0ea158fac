"""The template resolver: CloudFormation tags, parameters, conditions and the intrinsics the template uses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from signals.local.template import ResolvedTemplate, TemplateError, load_template
from signals.local.wiring import LocalTimings, read_wiring

TEMPLATE = """
Parameters:
  Environment: {Type: String, AllowedValues: [dev, local]}
  Size: {Type: Number, Default: 64}
  Domain: {Type: String, Default: ""}
Conditions:
  IsLocal: !Equals [!Ref Environment, local]
  HasDomain: !Not [!Equals [!Ref Domain, ""]]
  Both: !And [!Condition IsLocal, !Condition HasDomain]
Globals:
  Function:
    Timeout: 9
    Environment: {Variables: {SHARED: "yes"}}
Resources:
  Dlq:
    Type: AWS::SQS::Queue
    Properties: {QueueName: !Sub "${Environment}-work_dlq"}
  Work:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: work
      VisibilityTimeout: 900
      RedrivePolicy: {deadLetterTargetArn: !GetAtt Dlq.Arn, maxReceiveCount: 4}
  Bucket:
    Type: AWS::S3::Bucket
    Properties:
      BucketName: !Join ["-", [!Ref Environment, raw, !Ref "AWS::AccountId"]]
      Tags: [{Key: x, Value: !If [HasDomain, !Ref Domain, !Ref "AWS::NoValue"]}]
  OnlyWithDomain:
    Type: AWS::S3::Bucket
    Condition: Both
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      FunctionName: worker
      CodeUri: .
      Handler: parser.app.handler
      Environment:
        Variables:
          QUEUE_URL: !Ref Work
          BUCKET: !Ref Bucket
          FIRST: !Select [0, !Split [",", "a,b"]]
          SIZE: !Sub "${Size}"
      Events:
        Jobs:
          Type: SQS
          Properties:
            Queue: !GetAtt Work.Arn
            BatchSize: 50
            MaximumBatchingWindowInSeconds: 10
            FunctionResponseTypes: [ReportBatchItemFailures]
        Tick:
          Type: Schedule
          Properties: {Schedule: "rate(5 minutes)", Name: !Sub "${Environment}-tick"}
Outputs:
  QueueUrl: {Value: !Ref Work}
  Maybe: {Condition: Both, Value: x}
"""


@pytest.fixture
def template(tmp_path: Path) -> ResolvedTemplate:
    path = tmp_path / "template.yaml"
    path.write_text(TEMPLATE)
    return ResolvedTemplate(load_template(path), parameters={"Environment": "local"}, stack_name="s",
                            endpoint="http://127.0.0.1:4566")


def test_intrinsics_resolve_for_the_environment(template: ResolvedTemplate) -> None:
    bucket: dict[str, Any] = template.resources["Bucket"].properties
    assert bucket["BucketName"] == "local-raw-123456789012"
    assert bucket["Tags"] == [{"Key": "x"}]  # AWS::NoValue removes the key
    assert "OnlyWithDomain" not in template.resources  # its condition is false
    assert template.outputs() == {"QueueUrl": "http://127.0.0.1:4566/123456789012/work"}


def test_wiring_reads_queues_functions_and_event_sources(template: ResolvedTemplate) -> None:
    wiring = read_wiring(template)
    work = wiring.queue_by_name("work")
    assert (work.dlq_arn, work.max_receive_count) == ("arn:aws:sqs:us-west-2:123456789012:local-work_dlq", 4)
    assert work.local_visibility(LocalTimings(visibility_seconds=2)) == 2
    function = wiring.functions["Fn"]
    assert function.module == "parser.app"
    assert function.timeout_seconds == 9  # from Globals
    assert function.environment == {
        "SHARED": "yes", "QUEUE_URL": "http://127.0.0.1:4566/123456789012/work", "BUCKET": "local-raw-123456789012",
        "FIRST": "a", "SIZE": "64",
    }
    (event,) = function.sqs_events
    assert (event.batch_size, event.window_seconds, event.report_batch_item_failures) == (50, 10.0, True)
    assert event.local_window(LocalTimings(max_batching_window_seconds=0.5)) == 0.5
    (schedule,) = function.schedules
    assert (schedule.expression, schedule.rule_name) == ("rate(5 minutes)", "local-tick")


def test_parameters_are_checked(tmp_path: Path) -> None:
    path = tmp_path / "template.yaml"
    path.write_text(TEMPLATE)
    with pytest.raises(TemplateError, match="not in"):
        ResolvedTemplate(load_template(path), parameters={"Environment": "qa"}, stack_name="s", endpoint="http://x")
    with pytest.raises(TemplateError, match="no default"):
        ResolvedTemplate(load_template(path), parameters={}, stack_name="s", endpoint="http://x")


def test_the_project_template_resolves_for_local() -> None:
    root = Path(__file__).resolve().parents[3]
    template = ResolvedTemplate(load_template(root / "template.yaml"), parameters={"Environment": "local"},
                                stack_name="signals-pipeline-local", endpoint="http://127.0.0.1:4566")
    wiring = read_wiring(template)
    modules = {f.module for f in wiring.functions.values()}
    assert modules == {"ingester.app", "parser.app", "registry.app", "reconciler.app", "compactor.app"}
    assert {s.name for s in wiring.streams.values()} == {"telemetry-signals-lake-firehose", "otlp-logs-firehose"}
    for queue in wiring.queues.values():
        if not queue.name.endswith("_dlq"):
            assert queue.dlq_arn is not None
            assert queue.dlq_arn.endswith(f":{queue.name}_dlq")
