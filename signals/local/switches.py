"""The playbook's on/off switches act on the local consumers, as they act on Lambda's.

In AWS an operator stops a consumer with `aws lambda update-event-source-mapping --uuid U
--no-enabled` and the reconciler with `aws events disable-rule --name R`. moto records the new
state but polls and schedules nothing itself, so the gateway lets these calls through to moto and,
on the way, pauses or resumes the local poller of that mapping or the local schedule of that rule:

- `UpdateEventSourceMapping` with `Enabled` (`PUT /2015-03-31/event-source-mappings/{uuid}`);
- `DisableRule` / `EnableRule`, and `PutRule` with a `State`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from werkzeug.wrappers import Response

from signals.local.gateway import AwsGateway, AwsRequest
from signals.local.pollers import Schedule, SqsPoller


class Switches:
    def __init__(self, mappings: dict[str, tuple[str, str]], pollers: Callable[[], Iterable[SqsPoller]],
                 schedules: Callable[[], Iterable[Schedule]]) -> None:
        self._mappings = mappings  # uuid -> (function name, queue ARN)
        self._pollers = pollers
        self._schedules = schedules

    def install(self, gateway: AwsGateway) -> list[Callable[[], None]]:
        return [
            gateway.intercept("lambda", self.on_lambda),
            gateway.intercept("events", self.on_rule_state, operation="DisableRule"),
            gateway.intercept("events", self.on_rule_state, operation="EnableRule"),
            gateway.intercept("events", self.on_rule_state, operation="PutRule"),
        ]

    def on_lambda(self, request: AwsRequest) -> Response | None:
        if request.operation != "UpdateEventSourceMapping":
            return None
        body = request.params  # UUID from the path, Enabled from the body
        target = self._mappings.get(str(body.get("UUID", "")))
        if target is None or "Enabled" not in body:
            return None
        function_name, queue_arn = target
        for poller in self._pollers():
            if poller.function.name == function_name and poller.event.queue_arn == queue_arn:
                if body["Enabled"]:
                    poller.resume()
                else:
                    poller.pause()
        return None  # moto records the mapping's new state and answers

    def on_rule_state(self, request: AwsRequest) -> Response | None:
        body = request.params
        name = str(body.get("Name", ""))
        if request.operation == "PutRule":
            if "State" not in body:
                return None
            enabled = body["State"] == "ENABLED"
        else:
            enabled = request.operation == "EnableRule"
        for schedule in self._schedules():
            if schedule.spec.rule_name == name:
                if enabled:
                    schedule.resume()
                else:
                    schedule.pause()
        return None
