"""Lambda Invoke on the gateway: the in-process function answers in Lambda's shapes."""

from __future__ import annotations

import base64
import json
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from werkzeug.wrappers import Response

from signals.local.gateway import AwsRequest, identify_request
from signals.local.lambda_api import LOG_TAIL_BYTES, LambdaInvoke, function_name_of
from signals.local.runtime import LocalFunction, RoutedStdout, install_routed_stdout, uninstall_routed_stdout
from signals.local.wiring import FunctionSpec
from tests.unit.local import fake_function

SPEC = FunctionSpec(logical_id="FakeFunction", name="fake-fn", module="tests.unit.local.fake_function",
                    environment={"SETTING": "local"}, timeout_seconds=5, memory_mb=256)


class Report:
    """An invocation observer like the CloudWatch publisher: Lambda's START/REPORT lines."""

    def started(self, function: LocalFunction, context: object) -> str:
        return f"START RequestId: {context.aws_request_id} Version: $LATEST"  # type: ignore[attr-defined]

    def finished(self, function: LocalFunction, context: object, duration_s: float, error: object) -> str:
        return f"REPORT RequestId: {context.aws_request_id}\tDuration: {duration_s * 1000:.2f} ms"  # type: ignore[attr-defined]


@pytest.fixture
def routed(tmp_path: Path) -> Iterator[RoutedStdout]:
    router = install_routed_stdout(tmp_path / "logs")
    try:
        yield router
    finally:
        uninstall_routed_stdout(router)


Answer = Callable[[AwsRequest], Response | None]


@pytest.fixture
def answer(routed: RoutedStdout) -> Answer:
    function = LocalFunction(SPEC, clients=None, routed=routed)  # type: ignore[arg-type]
    function.observers.append(Report())
    interceptor = LambdaInvoke(lambda: {function.name: function})

    def call(request: AwsRequest) -> Response | None:
        # pytest's capture swaps sys.stdout back between a fixture and its test: route for the call.
        saved, sys.stdout = sys.stdout, routed
        try:
            return interceptor(request)
        finally:
            sys.stdout = saved

    return call


def request(name: str, body: bytes, **headers: str) -> AwsRequest:
    """An Invoke request as the gateway identifies it (Lambda's model: rest-json)."""
    return identify_request("lambda", "POST", f"/2015-03-31/functions/{name}/invocations",
                            headers={"Content-Type": "application/json", **headers}, body=body)


def test_request_response_returns_the_handler_result_with_the_log_tail(answer: Answer) -> None:
    response = answer(request("fake-fn", b'{"n": 7}', **{"X-Amz-Log-Type": "Tail"}))
    assert response is not None
    assert response.status_code == 200
    assert json.loads(response.get_data()) == {"ok": 7}
    assert response.headers["X-Amz-Executed-Version"] == "$LATEST"
    assert "X-Amz-Function-Error" not in response.headers
    request_id = response.headers["x-amzn-RequestId"]
    assert fake_function.SEEN[-1]["request_id"] == request_id  # the context's aws_request_id
    assert fake_function.SEEN[-1]["environ"] == {"SETTING": "local"}
    log = base64.b64decode(response.headers["X-Amz-Log-Result"]).decode()
    assert log.splitlines()[0] == f"START RequestId: {request_id} Version: $LATEST"
    assert "handling 7" in log
    assert log.splitlines()[-1].startswith(f"REPORT RequestId: {request_id}")


def test_an_exception_is_a_200_with_function_error_and_lambdas_payload(answer: Answer) -> None:
    response = answer(request("fake-fn", b'{"n": 1, "fail": true}'))
    assert response is not None
    assert response.status_code == 200
    assert response.headers["X-Amz-Function-Error"] == "Unhandled"
    payload = json.loads(response.get_data())
    assert payload["errorType"] == "ValueError"
    assert payload["errorMessage"] == "asked to fail"
    assert payload["requestId"] == response.headers["x-amzn-RequestId"]
    assert any("fake_function.py" in frame for frame in payload["stackTrace"])
    assert "X-Amz-Log-Result" not in response.headers  # only with LogType=Tail


def test_tail_is_the_last_4_kb(answer: Answer, routed: RoutedStdout) -> None:
    response = answer(request("fake-fn", json.dumps({"n": "x" * 10_000}).encode(), **{"X-Amz-Log-Type": "Tail"}))
    assert response is not None
    log = base64.b64decode(response.headers["X-Amz-Log-Result"])
    assert len(log) == LOG_TAIL_BYTES
    assert log.decode().rstrip().splitlines()[-1].startswith("REPORT RequestId:")


def test_bad_payload_unknown_function_and_other_qualifiers(answer: Answer) -> None:
    before = len(fake_function.SEEN)
    bad = answer(request("fake-fn", b"{not json"))
    assert bad is not None
    assert bad.status_code == 400
    assert bad.headers["x-amzn-ErrorType"] == "InvalidRequestContentException"
    assert len(fake_function.SEEN) == before  # never ran
    assert answer(request("other-fn", b"{}")) is None  # moto answers (ResourceNotFoundException)
    assert answer(request("fake-fn:prod", b"{}")) is None
    arn = "arn:aws:lambda:us-west-2:123456789012:function:fake-fn"
    response = answer(request(arn.replace(":", "%3A"), b'{"n": 2}'))
    assert response is not None
    assert json.loads(response.get_data()) == {"ok": 2}


def test_event_and_dry_run_invocations(answer: Answer) -> None:
    dry = answer(request("fake-fn", b'{"n": 3}', **{"X-Amz-Invocation-Type": "DryRun"}))
    assert dry is not None
    assert dry.status_code == 204
    before = len(fake_function.SEEN)
    queued = answer(request("fake-fn", b'{"n": 4}', **{"X-Amz-Invocation-Type": "Event"}))
    assert queued is not None
    assert queued.status_code == 202
    deadline = time.monotonic() + 5
    while len(fake_function.SEEN) == before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert fake_function.SEEN[-1]["request_id"] == queued.headers["x-amzn-RequestId"]


def test_function_names_as_lambda_takes_them() -> None:
    assert function_name_of("fn") == ("fn", None)
    assert function_name_of("fn:$LATEST") == ("fn", "$LATEST")
    assert function_name_of("123456789012:function:fn") == ("fn", None)
    assert function_name_of("arn:aws:lambda:us-west-2:123456789012:function:fn:live") == ("fn", "live")
