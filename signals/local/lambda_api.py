"""Lambda's `Invoke` on the embedded AWS endpoint, answered by the in-process functions.

moto stores the template's functions (signals.local.resources) but would need Docker to run them,
so the gateway hands `Invoke` (`POST /2015-03-31/functions/{name}/invocations` in Lambda's model) to
`LambdaInvoke`, which runs the stack's `LocalFunction` with its local environment and answers as Lambda does:

- `RequestResponse` (the default): 200, the handler's return value as JSON, `X-Amz-Executed-Version`;
  an exception is still 200, with `X-Amz-Function-Error: Unhandled` and Lambda's error payload
  (`errorMessage`, `errorType`, `requestId`, `stackTrace`); a return value JSON cannot encode is
  `Runtime.MarshalError`, as in Lambda's Python runtime;
- `LogType: Tail` adds `X-Amz-Log-Result`: the base64 of the invocation's last 4 KB of log, Lambda's
  START and REPORT lines included;
- `Event`: 202 at once, the function runs on a background thread; `DryRun`: 204;
- a payload that is not JSON: 400 `InvalidRequestContentException`, the function never runs.

`x-amzn-RequestId` is the invocation's `aws_request_id`, as in Lambda. A function the stack does not
run, or a qualifier other than `$LATEST`, is left to moto (which answers `ResourceNotFoundException`).
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import threading
import traceback
import uuid
from collections.abc import Callable, Mapping
from typing import Any, Final

from werkzeug.wrappers import Response

from signals.local.gateway import AwsRequest
from signals.local.runtime import LocalFunction

#: Lambda returns at most the last 4 KB of the invocation's log with LogType=Tail.
LOG_TAIL_BYTES: Final = 4096

_FUNCTION_ARN: Final = re.compile(
    r"^(?:arn:aws[a-zA-Z-]*:lambda:[a-z0-9-]+:)?(?:\d{12}:)?(?:function:)?(?P<name>[a-zA-Z0-9_-]+)(?::(?P<qualifier>[^:]+))?$"
)


def function_name_of(identifier: str) -> tuple[str, str | None]:
    """(name, qualifier) of a FunctionName parameter: a name, `name:qualifier`, a full or partial ARN."""
    match = _FUNCTION_ARN.match(identifier)
    if match is None:
        return identifier, None
    return match["name"], match["qualifier"]


class LambdaInvoke:
    """The gateway interceptor for service `lambda`: answers Invoke, passes every other call to moto."""

    def __init__(self, functions: Callable[[], Mapping[str, LocalFunction]]) -> None:
        self._functions = functions
        self._background: list[threading.Thread] = []

    def __call__(self, request: AwsRequest) -> Response | None:
        if request.operation != "Invoke":
            return None
        params = request.params  # FunctionName from the path, Qualifier from the query, the rest from headers/body
        name, qualifier = function_name_of(str(params.get("FunctionName", "")))
        qualifier = qualifier or params.get("Qualifier")
        if qualifier not in (None, "$LATEST"):
            return None
        function = self._functions().get(name)
        if function is None:
            return None
        payload = bytes(params.get("Payload") or b"")
        try:
            event = json.loads(payload) if payload.strip() else {}
        except ValueError as exc:
            return request.error(400, "InvalidRequestContentException",
                                 f"Could not parse request body into json: {exc}")
        invocation_type = params.get("InvocationType") or "RequestResponse"
        if invocation_type == "DryRun":
            return Response(b"", status=204, headers={"x-amzn-RequestId": str(uuid.uuid4())})
        if invocation_type == "Event":
            return self._invoke_async(function, event)
        if invocation_type != "RequestResponse":
            return request.error(400, "InvalidParameterValueException",
                                 f"Unsupported invocation type {invocation_type!r}")
        return invoke(function, event, log_tail=params.get("LogType") == "Tail")

    def _invoke_async(self, function: LocalFunction, event: Any) -> Response:
        request_id = str(uuid.uuid4())

        def run() -> None:
            # An error is in the function's log (and its Errors metric); Lambda would retry, this does not.
            with contextlib.suppress(Exception):
                function.invoke(event, request_id=request_id)

        thread = threading.Thread(target=run, name=f"invoke-{function.name}", daemon=True)
        thread.start()
        self._background = [t for t in self._background if t.is_alive()] + [thread]
        return Response(b"", status=202, headers={"x-amzn-RequestId": request_id})


def invoke(function: LocalFunction, event: Any, *, log_tail: bool = False) -> Response:
    """One synchronous invocation, answered as Lambda's Invoke answers it."""
    request_id = str(uuid.uuid4())
    captured: list[str] | None = [] if log_tail else None
    headers = {"Content-Type": "application/json", "X-Amz-Executed-Version": "$LATEST", "x-amzn-RequestId": request_id}
    try:
        result = function.invoke(event, request_id=request_id, log_tail=captured)
    except Exception as exc:
        payload = json.dumps(error_payload(exc, request_id)).encode()
        headers["X-Amz-Function-Error"] = "Unhandled"
    else:
        try:
            payload = json.dumps(result).encode()
        except (TypeError, ValueError) as exc:
            payload = json.dumps({"errorMessage": f"Unable to marshal response: {exc}",
                                  "errorType": "Runtime.MarshalError", "requestId": request_id,
                                  "stackTrace": []}).encode()
            headers["X-Amz-Function-Error"] = "Unhandled"
    if captured is not None:
        headers["X-Amz-Log-Result"] = base64.b64encode(
            "".join(captured).encode("utf-8", "replace")[-LOG_TAIL_BYTES:]
        ).decode()
    return Response(payload, status=200, headers=headers)


def error_payload(exc: BaseException, request_id: str) -> dict[str, Any]:
    """Lambda's Python runtime's payload for an unhandled exception."""
    frames = traceback.extract_tb(exc.__traceback__)
    return {
        "errorMessage": str(exc),
        "errorType": type(exc).__name__,
        "requestId": request_id,
        "stackTrace": traceback.format_list(frames),
    }
