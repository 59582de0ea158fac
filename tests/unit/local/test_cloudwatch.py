"""EMF lines become metric data as Lambda's EMF processing reads them; logs are batched per stream."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from signals.invoke import _lines_between
from signals.local.cloudwatch import MAX_EVENTS_PER_PUT, CloudWatchPublisher, aggregate, emf_metric_data


def emf(document: dict[str, Any]) -> str:
    return json.dumps(document, separators=(",", ":"))


def test_powertools_emf_line_becomes_one_datum_per_metric_and_dimension_set() -> None:
    line = emf({
        "_aws": {"Timestamp": 1796150000123, "CloudWatchMetrics": [{
            "Namespace": "SignalsPipeline", "Dimensions": [["service"], ["service", "type"]],
            "Metrics": [{"Name": "RowsOut", "Unit": "Count"}, {"Name": "LagSeconds", "Unit": "Seconds",
                                                              "StorageResolution": 1}]}]},
        "service": "parser", "type": "lock", "RowsOut": [5.0], "LagSeconds": [1.5, 2.5],
    })
    data = emf_metric_data(line)
    assert {namespace for namespace, _ in data} == {"SignalsPipeline"}
    by_key = {(d["MetricName"], tuple(x["Value"] for x in d["Dimensions"])): d for _, d in data}
    assert set(by_key) == {("RowsOut", ("parser",)), ("RowsOut", ("parser", "lock")),
                           ("LagSeconds", ("parser",)), ("LagSeconds", ("parser", "lock"))}
    assert by_key["RowsOut", ("parser",)]["Value"] == 5.0
    assert by_key["RowsOut", ("parser",)]["Unit"] == "Count"
    assert by_key["LagSeconds", ("parser",)]["Values"] == [1.5, 2.5]
    assert by_key["LagSeconds", ("parser",)]["StorageResolution"] == 1
    assert by_key["RowsOut", ("parser",)]["Timestamp"] == datetime.fromtimestamp(1796150000.123, tz=UTC)


def test_lines_that_are_not_emf_give_nothing() -> None:
    assert emf_metric_data('{"level":"INFO","message":"has _aws in text: \\"_aws\\""}') == []
    assert emf_metric_data("not json _aws") == []
    assert emf_metric_data(emf({"_aws": {"CloudWatchMetrics": [{"Namespace": "N", "Dimensions": [[]],
                                                                "Metrics": [{"Name": "Missing"}]}]}})) == []
    # A metric with no dimension set is published without dimensions.
    ((_, datum),) = emf_metric_data(emf({"_aws": {"CloudWatchMetrics": [
        {"Namespace": "N", "Dimensions": [[]], "Metrics": [{"Name": "M"}]}]}, "M": 3}))
    assert (datum["Dimensions"], datum["Value"], datum["Unit"]) == ([], 3.0, "None")


class FakeLogs:
    class exceptions:
        class ResourceNotFoundException(Exception):
            pass

        class ResourceAlreadyExistsException(Exception):
            pass

    def __init__(self) -> None:
        self.groups: set[str] = set()
        self.streams: set[tuple[str, str]] = set()
        self.puts: list[tuple[str, str, list[dict[str, Any]]]] = []

    def create_log_group(self, logGroupName: str) -> None:
        self.groups.add(logGroupName)

    def create_log_stream(self, logGroupName: str, logStreamName: str) -> None:
        if logGroupName not in self.groups:
            raise self.exceptions.ResourceNotFoundException()
        self.streams.add((logGroupName, logStreamName))

    def put_log_events(self, logGroupName: str, logStreamName: str, logEvents: list[dict[str, Any]]) -> None:
        assert (logGroupName, logStreamName) in self.streams
        self.puts.append((logGroupName, logStreamName, logEvents))


class FakeCloudWatch:
    def __init__(self) -> None:
        self.puts: list[tuple[str, list[dict[str, Any]]]] = []

    def put_metric_data(self, Namespace: str, MetricData: list[dict[str, Any]]) -> None:
        self.puts.append((Namespace, MetricData))


def test_partial_writes_join_into_lines_and_emf_lines_also_become_metrics() -> None:
    logs, cloudwatch = FakeLogs(), FakeCloudWatch()
    publisher = CloudWatchPublisher(logs, cloudwatch, {"fn": "/aws/lambda/fn"}, clock=lambda: 1796150000.0)
    metric_line = emf({"_aws": {"CloudWatchMetrics": [{"Namespace": "App", "Dimensions": [["service"]],
                                                       "Metrics": [{"Name": "Hits", "Unit": "Count"}]}]},
                       "service": "fn", "Hits": [2]})
    publisher.sink("fn", "first half ")
    publisher.sink("fn", "and second\n" + metric_line + "\n")
    publisher.sink("other", "no log group in the template\n")
    publisher.flush()
    (group, stream, events), (other_group, _, other_events) = logs.puts
    assert (group, stream) == ("/aws/lambda/fn", "local")
    assert [e["message"] for e in events] == ["first half and second", metric_line]
    assert other_group == "/aws/lambda/other"  # created on first write, as Lambda does
    assert [e["message"] for e in other_events] == ["no log group in the template"]
    ((namespace, data),) = cloudwatch.puts
    assert namespace == "App"
    assert [(d["MetricName"], d["Value"]) for d in data] == [("Hits", 2.0)]


def test_a_large_burst_is_split_at_the_put_log_events_limit() -> None:
    logs = FakeLogs()
    publisher = CloudWatchPublisher(logs, FakeCloudWatch(), {"fn": "/aws/lambda/fn"})
    logs.create_log_group("/aws/lambda/fn")
    publisher.sink("fn", "line\n" * (MAX_EVENTS_PER_PUT + 5))
    publisher.flush()
    assert [len(events) for _, _, events in logs.puts] == [MAX_EVENTS_PER_PUT, 5]


def test_an_unfinished_last_line_is_sent_on_the_final_flush() -> None:
    logs = FakeLogs()
    logs.create_log_group("/aws/lambda/fn")
    publisher = CloudWatchPublisher(logs, FakeCloudWatch(), {"fn": "/aws/lambda/fn"})
    publisher.sink("fn", "no newline yet")
    publisher.flush()
    assert logs.puts == []
    publisher.flush(final=True)
    assert [e["message"] for _, _, events in logs.puts for e in events] == ["no newline yet"]


def test_signals_invoke_reads_one_invocation_from_start_to_report() -> None:
    def event(stream: str, at: int, message: str) -> dict[str, Any]:
        return {"logStreamName": stream, "timestamp": at, "message": message}

    events = [
        event("s1", 1, '{"type": "platform.start", "record": {"requestId": "r0"}}'),
        event("s1", 2, '{"type": "platform.report", "record": {"requestId": "r0"}}'),
        event("s1", 3, '{"type": "platform.start", "record": {"requestId": "r1"}}'),
        event("s2", 3, "another instance's line"),
        event("s1", 4, "the function's line"),
    ]
    assert _lines_between(events, "r1") is None  # REPORT not in yet
    events.append(event("s1", 5, '{"type": "platform.report", "record": {"requestId": "r1"}}'))
    assert _lines_between(events, "r1") == [e["message"] for e in events if e["logStreamName"] == "s1"][2:]


def test_a_flush_sends_each_metric_once_as_its_statistic_set() -> None:
    dimensions = [{"Name": "FunctionName", "Value": "fn"}]
    data = [{"MetricName": "Duration", "Dimensions": dimensions, "Value": v, "Unit": "Milliseconds"} for v in (3, 1)]
    data.append({"MetricName": "Duration", "Dimensions": dimensions, "Values": [8.0], "Unit": "Milliseconds"})
    data.append({"MetricName": "Errors", "Dimensions": dimensions, "Value": 0.0, "Unit": "Count"})
    merged = {d["MetricName"]: d for d in aggregate(data)}
    assert merged["Duration"]["StatisticValues"] == {"SampleCount": 3.0, "Sum": 12.0, "Minimum": 1.0, "Maximum": 8.0}
    assert merged["Errors"]["Value"] == 0.0
    assert "Value" not in merged["Duration"]


def test_a_line_over_the_event_size_limit_is_cut_not_lost() -> None:
    logs = FakeLogs()
    logs.create_log_group("/aws/lambda/fn")
    publisher = CloudWatchPublisher(logs, FakeCloudWatch(), {"fn": "/aws/lambda/fn"})
    publisher.sink("fn", "x" * 300_000 + "\nnext\n")
    publisher.flush()
    (_, _, events), = logs.puts
    assert len(events[0]["message"].encode()) + 26 <= 256 * 1024
    assert events[0]["message"].endswith("[truncated]")
    assert events[1]["message"] == "next"
