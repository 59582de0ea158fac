"""`LocalStack`: the whole pipeline in this process, started and stopped as a context manager.

    with LocalStack(LocalSettings(port=0, aws_port=0)) as stack:
        requests.post(stack.api_url + "/v1/telemetry", headers={"x-api-key": stack.api_key}, ...)
        stack.wait_until_drained()
        stack.client("s3").list_objects_v2(Bucket=stack.outputs[Output.VERIFIED_BUCKET])

Start order: moto's server (the embedded AWS), the template read for Environment=local, its
resources provisioned, the Firehose stand-in, the functions, their pollers and schedules, the ingest
API, and last the state file other `signals` commands read. Stop runs it backwards, flushing the
Firehose buffers and letting the pipeline drain before the pollers stop.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

import boto3
from botocore.config import Config

from shared.aws import DEFAULT_CONFIG, Clients
from signals.env import Output, local_state_path, stack_name
from signals.local.api import IngestApi
from signals.local.athena import LocalAthena
from signals.local.cloudwatch import CloudWatchPublisher
from signals.local.firehose import FirehoseStandIn, interceptor
from signals.local.gateway import AwsGateway
from signals.local.lambda_api import LambdaInvoke
from signals.local.pollers import Schedule, SqsPoller
from signals.local.provision import provision
from signals.local.resources import Provisioned, provision_resources
from signals.local.runtime import (
    LocalFunction,
    RoutedStdout,
    function_user_agent,
    install_routed_stdout,
    uninstall_routed_stdout,
)
from signals.local.switches import Switches
from signals.local.template import REGION, ResolvedTemplate, find_template, load_template
from signals.local.wiring import LocalTimings, Wiring, read_wiring
from signals.sql.trino_server import TrinoServer

log = logging.getLogger("signals.local")

DEFAULT_API_KEY: Final = "local-dev-key"
FAKE_CREDENTIALS: Final = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


def default_api_key() -> str:
    return os.environ.get("SIGNALS_API_KEY") or DEFAULT_API_KEY


def signals_home() -> Path:
    return local_state_path().parent


def ensure_port_free(port: int) -> None:
    """moto's threaded server would wait forever for a port it cannot bind; fail clearly instead."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the HTTP servers do
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            raise OSError(exc.errno, f"127.0.0.1:{port} is in use") from None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class LocalSettings:
    port: int = 4318  # ingest API; 0 picks a free port
    aws_port: int = 4566  # embedded AWS; 0 picks a free port
    api_key: str = field(default_factory=default_api_key)
    timings: LocalTimings = field(default_factory=LocalTimings)
    template_path: Path | None = None
    keep_dir: Path | None = None
    write_state: bool = True  # the state file other `signals` commands find the stack by
    route_function_output: bool = True  # function logs and EMF metrics to SIGNALS_HOME/logs/
    run_schedules: bool = True
    drain_on_stop_seconds: float = 10.0
    # Variables merged over a function's template environment, by function name or module
    # ("reconciler.app"): local-only tuning such as the reconciler's grace periods (`signals chaos`).
    function_environment: dict[str, dict[str, str]] = field(default_factory=dict)
    # The embedded Athena's engine: "duckdb" (signals.sql.engine) or "trino" (a Trino server the stack
    # starts and stops; signals.sql.trino, fetched by `signals trino fetch`).
    athena_engine: str = "duckdb"
    trino_heap: str = "2G"


class EndpointClients(Clients):
    """`shared.aws.Clients` bound to the embedded AWS (a service may be given an endpoint of its own)."""

    def __init__(self, session: boto3.Session, endpoints: Mapping[str, str], default_endpoint: str,
                 config: Config | None = None) -> None:
        super().__init__(session, config)
        self._endpoints = dict(endpoints)
        self._default_endpoint = default_endpoint
        self._config_for_local = config or DEFAULT_CONFIG
        self._by_service: dict[str, Any] = {}
        self._guard = threading.Lock()

    def client(self, service: str) -> Any:
        with self._guard:
            found = self._by_service.get(service)
            if found is None:
                found = self.session.client(  # type: ignore[call-overload]
                    service,
                    endpoint_url=self._endpoints.get(service, self._default_endpoint),
                    config=self._config_for_local,
                )
                self._by_service[service] = found
            return found


class LocalStack:
    def __init__(self, settings: LocalSettings | None = None) -> None:
        self.settings = settings or LocalSettings()
        self.started_at: float | None = None
        self.template: ResolvedTemplate | None = None
        self.wiring: Wiring | None = None
        self.functions: dict[str, LocalFunction] = {}
        self.pollers: list[SqsPoller] = []
        self.schedules: list[Schedule] = []
        self.outputs: dict[str, str] = {}
        self._gateway: AwsGateway | None = None
        self._athena: LocalAthena | None = None
        self._aws_endpoint = ""
        self._firehose: FirehoseStandIn | None = None
        self._api: IngestApi | None = None
        self._routed: RoutedStdout | None = None
        self._saved_environ: dict[str, str | None] = {}
        self._clients: EndpointClients | None = None
        self._state_path: Path | None = None
        self.provisioned = Provisioned()
        self.cloudwatch: CloudWatchPublisher | None = None
        self.trino: TrinoServer | None = None  # athena_engine="trino"

    # --- public surface --------------------------------------------------------------------------

    @property
    def api_url(self) -> str:
        assert self._api is not None, "stack not started"
        return self._api.url

    @property
    def api_key(self) -> str:
        return self.settings.api_key

    @property
    def aws_endpoint_url(self) -> str:
        return self._aws_endpoint

    @property
    def gateway(self) -> AwsGateway:
        """The embedded AWS endpoint; `stack.gateway.intercept(service, handler)` answers in moto's place."""
        assert self._gateway is not None, "stack not started"
        return self._gateway

    @property
    def firehose(self) -> FirehoseStandIn:
        assert self._firehose is not None, "stack not started"
        return self._firehose

    @property
    def firehose_endpoint_url(self) -> str:
        """Where Firehose answers: the embedded AWS endpoint itself (the stand-in intercepts it there)."""
        return self.aws_endpoint_url

    @property
    def routed_output(self) -> RoutedStdout | None:
        """The stdout router sending function output to the log files and CloudWatch (None when off)."""
        return self._routed

    @property
    def log_dir(self) -> Path:
        return signals_home() / "logs"

    def session(self) -> boto3.Session:
        return boto3.Session(
            aws_access_key_id=FAKE_CREDENTIALS["aws_access_key_id"],
            aws_secret_access_key=FAKE_CREDENTIALS["aws_secret_access_key"],
            region_name=REGION,
        )

    def client(self, service: str) -> Any:
        """A boto3 client bound to the embedded AWS (its Firehose calls answered by the stand-in)."""
        assert self._clients is not None, "stack not started"
        return self._clients.client(service)

    def function(self, name_or_module: str) -> LocalFunction:
        """A function by its name, logical id or module (`parser.app`)."""
        for local in self.functions.values():
            spec = local.spec
            if name_or_module in (spec.name, spec.logical_id, spec.module, spec.module.split(".")[0]):
                return local
        raise KeyError(name_or_module)

    def pollers_of(self, queue_name: str) -> list[SqsPoller]:
        return [p for p in self.pollers if p.queue.name == queue_name]

    def schedule_of(self, name_or_module: str) -> Schedule:
        local = self.function(name_or_module)
        for schedule in self.schedules:
            if schedule.function is local:
                return schedule
        raise KeyError(f"{name_or_module} has no schedule")

    def run_schedule(self, name_or_module: str) -> Any:
        """Run a scheduled function now (what its EventBridge rule does); returns its response."""
        return self.schedule_of(name_or_module).run_now()

    def queue_depths(self) -> dict[str, tuple[int, int, int]]:
        """Every queue's (visible, in flight, delayed) message counts."""
        assert self.wiring is not None
        sqs = self.client("sqs")
        depths: dict[str, tuple[int, int, int]] = {}
        for queue in self.wiring.queues.values():
            attributes = sqs.get_queue_attributes(
                QueueUrl=queue.url,
                AttributeNames=[
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesNotVisible",
                    "ApproximateNumberOfMessagesDelayed",
                ],
            )["Attributes"]
            depths[queue.name] = (
                int(attributes["ApproximateNumberOfMessages"]),
                int(attributes["ApproximateNumberOfMessagesNotVisible"]),
                int(attributes["ApproximateNumberOfMessagesDelayed"]),
            )
        return depths

    def is_idle(self) -> bool:
        """Nothing buffered in Firehose, no function running, no message on a consumed queue."""
        if self.firehose.pending_records():
            return False
        if any(f.busy for f in self.functions.values()) or any(p.holding for p in self.pollers):
            return False
        consumed = {p.queue.name for p in self.pollers if not p.paused}
        depths = self.queue_depths()
        return all(sum(depths[name]) == 0 for name in consumed)

    def wait_until_drained(self, timeout: float = 60.0, *, flush_firehose: bool = False) -> bool:
        """Block until the pipeline is idle twice in a row; False when `timeout` passes first.

        With `flush_firehose`, buffered records are written now instead of at their interval.
        """
        deadline = time.monotonic() + timeout
        idle_checks = 0
        while time.monotonic() < deadline:
            if flush_firehose:
                self.firehose.flush_due(force=True)
            if self.is_idle():
                idle_checks += 1
                if idle_checks >= 2:
                    return True
            else:
                idle_checks = 0
            time.sleep(0.2)
        return False

    # --- lifecycle -------------------------------------------------------------------------------

    def __enter__(self) -> LocalStack:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        settings = self.settings
        self.started_at = time.monotonic()
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's server logs every request otherwise
        aws_port = settings.aws_port or free_port()
        ensure_port_free(aws_port)
        if settings.port:
            ensure_port_free(settings.port)  # before anything starts, not after the pollers run
        self._gateway = AwsGateway("127.0.0.1", aws_port)
        self._gateway.start()
        self._aws_endpoint = self._gateway.url
        self._gateway.reset()
        if settings.athena_engine == "trino":
            # Launched now (it takes tens of seconds), waited for once the resources exist.
            self.trino = TrinoServer(aws_endpoint_url=self._aws_endpoint, heap=settings.trino_heap)
            self.trino.launch()
        elif settings.athena_engine != "duckdb":
            raise ValueError(f"unknown Athena engine {settings.athena_engine!r} (duckdb or trino)")

        template_path = settings.template_path or find_template()
        document = load_template(template_path)
        parameters = {"Environment": "local"} if "Environment" in (document.get("Parameters") or {}) else {}
        self.template = ResolvedTemplate(
            document, parameters=parameters, stack_name=stack_name("local"), endpoint=self._aws_endpoint
        )
        self.wiring = read_wiring(self.template)
        # With a real engine behind Athena, the compactor runs the code it runs in AWS (its athena engine).
        engine_environment = {"COMPACTOR_ENGINE": "athena"} if settings.athena_engine == "trino" else {}
        for logical_id, spec in list(self.wiring.functions.items()):
            extra = {**(engine_environment if spec.module.split(".")[0] == "compactor" else {}),
                     **settings.function_environment.get(spec.module, {}),
                     **settings.function_environment.get(spec.name, {})}
            if extra:
                self.wiring.functions[logical_id] = replace(spec, environment={**spec.environment, **extra})

        # The stand-in answers every Firehose call on the embedded endpoint, before any client makes one.
        raw_s3 = self.session().client("s3", endpoint_url=self._aws_endpoint, config=DEFAULT_CONFIG)
        self._firehose = FirehoseStandIn(
            self.wiring.streams, raw_s3, interval_override=settings.timings.buffer_seconds
        )
        self._gateway.intercept("firehose", interceptor(self._firehose))
        self._set_process_environ()
        self._clients = EndpointClients(self.session(), {}, self._aws_endpoint)
        provision(self.wiring, self.client, settings.timings)
        self.provisioned = provision_resources(self.wiring, self.client, api_key=settings.api_key)
        # Athena's query operations run on the local engine (moto keeps the workgroups).
        self._athena = LocalAthena(self.session(), self._aws_endpoint, engine=self._athena_engine())
        self._athena.install(self._gateway)
        self._firehose.start()

        if settings.route_function_output:
            self._routed = install_routed_stdout(self.log_dir)
        for spec in self.wiring.functions.values():
            self.functions[spec.logical_id] = LocalFunction(spec, self._function_clients(spec.name), self._routed)
            self.functions[spec.logical_id].load()
        self._start_cloudwatch()
        self.gateway.intercept("lambda", LambdaInvoke(lambda: {f.name: f for f in self.functions.values()}))
        self._start_event_sources()
        Switches(self.provisioned.mappings, lambda: self.pollers, lambda: self.schedules).install(self.gateway)
        routes = [(route, self.functions[spec.logical_id])
                  for spec in self.wiring.functions.values() for route in spec.routes]
        self._api = IngestApi(
            routes,
            api_key=settings.api_key,
            binary_media_types=self.wiring.binary_media_types,
            stage=self.wiring.stage_name,
            port=settings.port if settings.port else 0,
        )
        if self.cloudwatch is not None:
            self._api.observers.append(self.cloudwatch.api_request)
        self._api.start()
        self.outputs = self.template.outputs()
        self.outputs[Output.API_URL] = self._api.url
        if settings.write_state:
            self._write_state()

    def _athena_engine(self) -> Any:
        """The engine behind the embedded Athena: None (LocalAthena's DuckDB default) or Trino's."""
        if self.trino is None:
            return None
        from signals.sql.trino import TrinoEngine  # noqa: PLC0415

        self.trino.wait_ready()
        return TrinoEngine(self.session(), self._aws_endpoint, port=self.trino.port)

    def _start_cloudwatch(self) -> None:
        """Function logs and metrics into the embedded CloudWatch (signals.local.cloudwatch)."""
        assert self.wiring is not None
        self.cloudwatch = CloudWatchPublisher(
            self.client("logs"), self.client("cloudwatch"), self.provisioned.log_groups,
            sqs=self.client("sqs"), queues=self.wiring.queues.values(), firehose=self._firehose,
            json_platform_logs=self.provisioned.json_logs,
            api=next(iter(self.provisioned.rest_api_stages.values()), None),
        )
        if self._routed is not None:
            self._routed.add_sink(self.cloudwatch.sink)
        for local in self.functions.values():
            local.observers.append(self.cloudwatch)
        self.cloudwatch.start()
    def _function_clients(self, function_name: str) -> EndpointClients:
        """Clients of one function's own (as each Lambda function has its own environment and role).

        Its requests carry the function's name in the user agent, and its session's hooks can end a
        killed invocation (`LocalFunction.kill`) without touching another function's calls.
        """
        config = DEFAULT_CONFIG.merge(Config(user_agent_extra=function_user_agent(function_name)))
        return EndpointClients(self.session(), {}, self._aws_endpoint, config)

    def _start_event_sources(self) -> None:
        assert self.wiring is not None
        sqs = self.client("sqs")
        for spec in self.wiring.functions.values():
            local = self.functions[spec.logical_id]
            for event in spec.sqs_events:
                if not event.enabled:
                    continue
                queue = self.wiring.queues[event.queue_arn]
                self.pollers.append(SqsPoller(local, event, queue, sqs, self.settings.timings))
            for schedule_spec in spec.schedules:
                if schedule_spec.enabled:
                    self.schedules.append(Schedule(local, schedule_spec, self.settings.timings.reconcile_seconds))
        for poller in self.pollers:
            poller.start()
        if self.settings.run_schedules:
            for schedule in self.schedules:
                schedule.start()

    def stop(self) -> None:
        if self._state_path is not None:
            self._state_path.unlink(missing_ok=True)
            self._state_path = None
        if self._api is not None:
            self._api.stop()
        for schedule in self.schedules:
            schedule.stop()
        if self._firehose is not None:
            self._firehose.stop()  # writes what is buffered
        if self.pollers and self.settings.drain_on_stop_seconds > 0:
            self.wait_until_drained(self.settings.drain_on_stop_seconds)
        for poller in self.pollers:
            poller.stop()
        for poller in self.pollers:
            poller.join()
        if self.cloudwatch is not None:
            self.cloudwatch.stop()  # sends what is pending
            self.cloudwatch = None
        if self.settings.keep_dir is not None and self._clients is not None:
            try:
                self.keep(self.settings.keep_dir)
            except Exception:
                log.exception("could not copy the lake to %s", self.settings.keep_dir)
        if self._routed is not None:
            uninstall_routed_stdout(self._routed)
            self._routed = None
        if self._athena is not None:
            self._athena.close()
            self._athena = None
        if self.trino is not None:
            self.trino.stop()
            self.trino = None
        if self._gateway is not None:
            self._gateway.stop()
            self._gateway = None
        self._restore_process_environ()

    def keep(self, directory: Path) -> int:
        """Copy the verified lake and the quarantine into `directory` (same key layout); returns files."""
        s3 = self.client("s3")
        copied = 0
        for output, prefix in ((Output.VERIFIED_BUCKET, "telemetry_flat/"), (Output.QUARANTINE_BUCKET, "")):
            bucket = self.outputs.get(output)
            if not bucket:
                continue
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    target = directory / item["Key"]
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read())
                    copied += 1
        return copied

    # --- process-wide settings and the state file ------------------------------------------------

    def _set_process_environ(self) -> None:
        values = {
            "AWS_ENDPOINT_URL": self._aws_endpoint,
            "AWS_ACCESS_KEY_ID": FAKE_CREDENTIALS["aws_access_key_id"],
            "AWS_SECRET_ACCESS_KEY": FAKE_CREDENTIALS["aws_secret_access_key"],
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
        }
        for name, value in values.items():
            self._saved_environ[name] = os.environ.get(name)
            os.environ[name] = value
        # A service-specific endpoint would win over AWS_ENDPOINT_URL (Firehose is on the main one).
        for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL_FIREHOSE"):
            self._saved_environ[name] = os.environ.pop(name, None)

    def _restore_process_environ(self) -> None:
        for name, value in self._saved_environ.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_environ.clear()

    def _write_state(self) -> None:
        path = local_state_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {
            "aws_endpoint_url": self._aws_endpoint,
            "api_endpoint": self.api_url,
            "api_key": self.api_key,
            "region": REGION,
            **FAKE_CREDENTIALS,
            "outputs": self.outputs,
            "pid": os.getpid(),
            "log_dir": str(self.log_dir),
            # `signals status` judges the reconciler's last run against this period, not the 15-min cron.
            "reconciler_interval_s": self.settings.timings.reconcile_seconds,
            # ... and the compactor's (hourly in AWS): every local schedule runs at this period.
            "compactor_interval_s": self.settings.timings.reconcile_seconds,
        }
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(state, indent=2) + "\n")
        temporary.replace(path)
        self._state_path = path


@contextmanager
def local_stack(settings: LocalSettings | None = None) -> Iterator[LocalStack]:
    with LocalStack(settings) as stack:
        yield stack
