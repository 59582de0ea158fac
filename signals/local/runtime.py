"""Running the pipeline's functions in-process, the way Lambda would run them.

Each function is built once from its module's `build_handler(environ, clients)` with its own
environment mapping from the template (never `os.environ`), gets a Lambda context per invocation
(request id, remaining time from the template's Timeout) and runs one invocation at a time (the
handlers keep per-invocation state at module level, as Lambda allows).

An invocation can be killed (`LocalFunction.kill`), as Lambda ends one on a timeout, out of memory
or a crashed runtime: its threads stop at their next AWS call (`InvocationKilled`, a BaseException
no handler catches), whatever they wrote so far stays written, the caller gets `FunctionKilled`
instead of a response, and the next invocation starts cold (the handler is built again). The hooks
that stop it are on the function's own boto3 session, so each function needs clients of its own.

What a function prints (Powertools' JSON logs, EMF metrics, warnings, tracebacks) goes to
`SIGNALS_HOME/logs/{function}.log` instead of the console: `RoutedStdout` (on stdout and stderr)
sends writes made while a function runs to that function's file and leaves every other write alone.
"""

from __future__ import annotations

import importlib
import io
import logging
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol, TextIO

from aws_lambda_powertools import Logger as PowertoolsLogger

from shared.aws import Clients
from signals.local.template import ACCOUNT_ID, REGION
from signals.local.wiring import FunctionSpec

log = logging.getLogger("signals.local")

Handler = Callable[[Mapping[str, Any], Any], Any]
LogSink = Callable[[str, str], None]


class InvocationObserver(Protocol):
    """Told of every invocation (CloudWatch: Lambda's platform log lines and AWS/Lambda metrics).

    Each method returns a line to log as Lambda's own (START, REPORT), or None. Keep them cheap:
    they run on the function's hot path.
    """

    def started(self, function: LocalFunction, context: LambdaContext) -> str | None: ...

    def finished(self, function: LocalFunction, context: LambdaContext, duration_s: float,
                 error: BaseException | None) -> str | None: ...


def new_log_stream_name() -> str:
    """A function instance's log stream, named as Lambda names them: `2026/12/01/[$LATEST]<32 hex>`."""
    return time.strftime("%Y/%m/%d/[$LATEST]", time.gmtime()) + uuid.uuid4().hex

#: Marks a function's AWS requests (botocore's user agent), so the embedded AWS knows who is calling.
USER_AGENT_MARK = "signals-local-function/"


def function_user_agent(function_name: str) -> str:
    """`user_agent_extra` for a function's clients (read back by `function_of_user_agent`)."""
    return f"{USER_AGENT_MARK}{function_name}"


def function_of_user_agent(user_agent: str) -> str | None:
    """The function that sent a request, from its User-Agent header (None: not a function's request)."""
    start = user_agent.find(USER_AGENT_MARK)
    if start < 0:
        return None
    return user_agent[start + len(USER_AGENT_MARK):].split(" ", 1)[0] or None


class InvocationKilled(BaseException):
    """Raised in a killed invocation's threads at their next AWS call; a BaseException, so no handler catches it."""


class FunctionKilled(RuntimeError):
    """The invocation was killed: it ended without a response (what Lambda reports for a timeout or crash)."""


class LambdaContext:
    """The attributes of Lambda's context object that handlers and Powertools read."""

    def __init__(self, function: FunctionSpec, *, request_id: str | None = None,
                 log_stream_name: str | None = None) -> None:
        self.function_name = function.name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{function.name}"
        self.memory_limit_in_mb = function.memory_mb
        self.aws_request_id = request_id or str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function.name}"
        self.log_stream_name = log_stream_name or new_log_stream_name()
        self.identity = None
        self.client_context = None
        self._deadline = time.monotonic() + function.timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class RoutedStdout(io.TextIOBase):
    """sys.stdout replacement: writes from a thread running a function go to that function's log file."""

    def __init__(self, console: TextIO, log_dir: Path, *, share_with: RoutedStdout | None = None) -> None:
        self.console = console
        self.log_dir = log_dir
        # stdout and stderr routers share the per-thread function, the open files and the sink.
        self._local: threading.local = share_with._local if share_with else threading.local()
        self._files: dict[str, TextIO] = share_with._files if share_with else {}
        self._lock: threading.Lock = share_with._lock if share_with else threading.Lock()
        self._sinks: list[LogSink] = share_with._sinks if share_with else []
        self.stderr: RoutedStdout | None = None

    def add_sink(self, sink: LogSink) -> None:
        """Also hand every function write to `sink(function_name, text)` (CloudWatch Logs); keep it cheap."""
        self._sinks.append(sink)

    def remove_sink(self, sink: LogSink) -> None:
        if sink in self._sinks:
            self._sinks.remove(sink)

    def route_to(self, function_name: str | None) -> None:
        self._local.function = function_name

    def tap(self, captured: list[str] | None) -> None:
        """Also collect this thread's function writes into `captured` (Invoke's LogType=Tail); None stops."""
        self._local.tap = captured

    def current(self) -> str | None:
        name: str | None = getattr(self._local, "function", None)
        return name

    def _target(self) -> TextIO:
        name = getattr(self._local, "function", None)
        if name is None:
            return self.console
        with self._lock:
            found = self._files.get(name)
            if found is None:
                self.log_dir.mkdir(parents=True, exist_ok=True)
                found = (self.log_dir / f"{name}.log").open("a", encoding="utf-8", buffering=1)
                self._files[name] = found
        return found

    def write(self, text: str) -> int:
        name = getattr(self._local, "function", None)
        if name is not None:
            self._share(name, text)
        return self._target().write(text)

    def platform(self, text: str) -> None:
        """A line Lambda itself logs (START, REPORT): to the sinks and the tap, not the function's file."""
        name = getattr(self._local, "function", None)
        if name is not None:
            self._share(name, text)

    def _share(self, name: str, text: str) -> None:
        tap: list[str] | None = getattr(self._local, "tap", None)
        if tap is not None:
            tap.append(text)
        for sink in self._sinks:
            sink(name, text)

    def flush(self) -> None:
        self._target().flush()

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return self.console.isatty()

    def close_files(self) -> None:
        with self._lock:
            for handle in self._files.values():
                handle.close()
            self._files.clear()


def install_routed_stdout(log_dir: Path) -> RoutedStdout:
    """Route function output (stdout and stderr) to files; re-point logging handlers bound to the old streams."""
    console = sys.stdout
    routed = RoutedStdout(console, log_dir)
    routed.stderr = RoutedStdout(sys.stderr, log_dir, share_with=routed)
    sys.stdout = routed
    sys.stderr = routed.stderr
    for handler in _stream_handlers():
        if handler.stream is console:
            _point(handler, routed)
        elif handler.stream is routed.stderr.console:
            _point(handler, routed.stderr)
    return routed


def uninstall_routed_stdout(routed: RoutedStdout) -> None:
    for router in (routed, routed.stderr):
        if router is None:
            continue
        for handler in _stream_handlers():
            if handler.stream is router:
                _point(handler, router.console)
    if sys.stdout is routed:
        sys.stdout = routed.console
    if routed.stderr is not None and sys.stderr is routed.stderr:
        sys.stderr = routed.stderr.console
    routed.close_files()


def _point(handler: logging.StreamHandler[Any], stream: Any) -> None:
    """`handler.setStream(stream)` without flushing the old stream, which may be closed by now (a
    test runner's capture, or a command that pointed the logger at its own stderr)."""
    handler.acquire()
    try:
        handler.stream = stream
    finally:
        handler.release()


def _stream_handlers() -> list[logging.StreamHandler[Any]]:
    loggers: list[logging.Logger] = [logging.getLogger()]
    loggers += [item for item in logging.Logger.manager.loggerDict.values() if isinstance(item, logging.Logger)]
    return [h for lg in loggers for h in lg.handlers if type(h) is logging.StreamHandler]


class LocalFunction:
    """One function of the template, built in-process and invoked serially."""

    def __init__(self, spec: FunctionSpec, clients: Clients, routed: RoutedStdout | None) -> None:
        self.spec = spec
        self._clients = clients
        self._routed = routed
        self._lock = threading.Lock()
        self._handler: Handler | None = None
        self.invocations = 0
        self.errors = 0
        self.overruns = 0  # invocations that ran past the template's Timeout
        self.kills = 0  # invocations killed (`kill`)
        self.busy = False
        self.log_stream_name = new_log_stream_name()  # one instance, one stream (until it is rebuilt)
        self.observers: list[InvocationObserver] = []
        self._kill_reason: str | None = None
        session = getattr(clients, "session", None)
        if session is not None:
            # Every client the handler creates from this session stops a killed invocation.
            session.events.register("before-send", self._stop_if_killed)
            session.events.register("needs-retry", self._stop_if_killed)

    @property
    def name(self) -> str:
        return self.spec.name

    def load(self) -> None:
        """Import the module and build the handler now (the stack does this at start, to fail early)."""
        with self._lock:
            if self._handler is None:
                self._handler = self._build()

    def _build(self) -> Handler:
        try:
            module = importlib.import_module(self.spec.module)
        except ImportError as exc:
            raise RuntimeError(f"function {self.spec.name}: cannot import {self.spec.module}: {exc}") from exc
        if self._routed is not None:
            self._route_loggers(module)
        build: Callable[..., Handler] = module.build_handler
        self.log_stream_name = new_log_stream_name()
        return build(dict(self.spec.environment), self._clients)

    def _route_loggers(self, module: ModuleType) -> None:
        """Point the function's loggers at the router, wherever their stream pointed when they were made.

        Loggers created at import (Powertools binds sys.stdout as it was then) write to the function's
        file while it runs; the router passes every other write on to the console.
        """
        assert self._routed is not None
        stderr = self._routed.stderr
        for handler in _stream_handlers():
            if handler.stream is self._routed.console:
                _point(handler, self._routed)
            elif stderr is not None and handler.stream is stderr.console:
                _point(handler, stderr)
        for value in vars(module).values():
            if isinstance(value, PowertoolsLogger):
                for own in value.handlers:
                    if isinstance(own, logging.StreamHandler) and own.stream not in (self._routed, stderr):
                        _point(own, self._routed)

    def kill(self, reason: str) -> bool:
        """End the running invocation at its next AWS call, as Lambda would kill it; False when none runs.

        Called from any thread (an interceptor of the embedded AWS, for example). What the invocation
        wrote before stays; the request being answered when the kill came is not acted upon.
        """
        if not self.busy:
            return False
        self._kill_reason = reason
        return True

    def _stop_if_killed(self, **_: Any) -> None:
        reason = self._kill_reason
        if reason is not None:
            raise InvocationKilled(reason)

    def invoke(self, event: Mapping[str, Any], *, request_id: str | None = None,
               log_tail: list[str] | None = None) -> Any:
        """Run the handler on `event`; `log_tail` collects what it logs (and Lambda's START/REPORT lines)."""
        with self._lock:
            self.busy = True
            self._kill_reason = None
            previous = None
            if self._routed is not None:
                previous = self._routed.current()
                self._routed.route_to(self.spec.name)
                self._routed.tap(log_tail)
            try:
                if self._handler is None:
                    self._handler = self._build()
                self.invocations += 1
                context = LambdaContext(self.spec, request_id=request_id, log_stream_name=self.log_stream_name)
                self._platform_line([o.started(self, context) for o in self.observers])
                started = time.monotonic()
                error: BaseException | None = None
                try:
                    response = self._handler(event, context)
                except InvocationKilled as killed:
                    error = self._killed(str(killed))
                    raise error from None
                except BaseException as exc:
                    error = exc
                    raise
                finally:
                    elapsed = time.monotonic() - started
                    if elapsed > self.spec.timeout_seconds:
                        # Not enforced locally; in Lambda this invocation would have been killed.
                        self.overruns += 1
                        print(f"signals local: {self.spec.name} ran {elapsed:.1f} s, over its "
                              f"{self.spec.timeout_seconds} s timeout (Lambda would have stopped it)",
                              file=sys.stderr)
                    if isinstance(error, Exception) and not isinstance(error, FunctionKilled):
                        # Lambda logs an unhandled error to the function's log; so do we (the file, not the console).
                        traceback.print_exception(error, file=sys.stderr)
                    self._platform_line([o.finished(self, context, elapsed, error) for o in self.observers])
                if self._kill_reason is not None:  # killed after its last AWS call: the response is lost too
                    raise self._killed(self._kill_reason)
                return response
            except Exception:
                self.errors += 1
                raise
            finally:
                self._kill_reason = None
                if self._routed is not None:
                    self._routed.tap(None)
                    self._routed.route_to(previous)
                self.busy = False

    def _platform_line(self, lines: list[str | None]) -> None:
        for line in lines:
            if line is not None and self._routed is not None:
                self._routed.platform(line if line.endswith("\n") else line + "\n")

    def _killed(self, reason: str) -> FunctionKilled:
        """Count the kill and start the next invocation cold, as Lambda replaces a killed environment."""
        self.kills += 1
        self._handler = None
        print(f"signals local: {self.spec.name} invocation killed ({reason})", file=sys.stderr)
        return FunctionKilled(f"{self.spec.name}: invocation killed ({reason})")
