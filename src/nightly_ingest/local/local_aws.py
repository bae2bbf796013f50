"""LocalAWS: start the emulator server in its own process and drive it from Python."""

from __future__ import annotations

import json
import logging
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import boto3
import psutil
from botocore.config import Config

from . import exceptions
from .executions import (
    DEFAULT_POLL_INTERVAL_SECONDS,
    DEFAULT_STALL_TIMEOUT_SECONDS,
    DEFAULT_TIMEOUT_SECONDS,
    start_execution,
    wait_for_execution,
)
from .lambda_service import FAKE_CREDENTIALS
from .template import DEFAULT_ACCOUNT_ID, DEFAULT_REGION, DEFAULT_STACK_NAME

LOG = logging.getLogger(__name__)

DEFAULT_STARTUP_TIMEOUT_SECONDS = 60.0
DEFAULT_STOP_TIMEOUT_SECONDS = 15.0
LOG_TAIL_LINES = 20


class LocalAWS:
    """The local AWS for one template: moto, the local Lambda service and the provisioned stack.

    ``start()`` (or ``with LocalAWS(...) as aws:``) runs ``python -m nightly_ingest.local`` as a
    separate process and waits for its ready line. ``stop()`` ends that process and every
    execution environment it started, and checks that none is left.
    """

    def __init__(
        self,
        template_path: Path | str,
        log_dir: Path | str,
        parameter_overrides: Mapping[str, Any] | None = None,
        port: int = 0,
        *,
        stack_name: str = DEFAULT_STACK_NAME,
        startup_timeout: float = DEFAULT_STARTUP_TIMEOUT_SECONDS,
        stop_timeout: float = DEFAULT_STOP_TIMEOUT_SECONDS,
    ) -> None:
        self.template_path = Path(template_path).resolve()
        self.log_dir = Path(log_dir).resolve()
        self.parameter_overrides = dict(parameter_overrides or {})
        self.port = port
        self.stack_name = stack_name
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.region = DEFAULT_REGION
        self.account_id = DEFAULT_ACCOUNT_ID
        self._process: subprocess.Popen[bytes] | None = None
        self._ready: dict[str, Any] = {}
        self._session: boto3.session.Session | None = None
        self._attached = False

    @classmethod
    def attach(cls, endpoint: str) -> LocalAWS:
        """Return a LocalAWS for a server that another process started, such as `ingest serve`.

        The instance reads the server's stack report and its counters. ``stop()`` leaves that
        server running, because its owner stops it.
        """
        url = f"{endpoint.rstrip('/')}/_local/stack"
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(url, timeout=10) as response:
                report: dict[str, Any] = json.load(response)
        except (OSError, ValueError) as exc:
            raise exceptions.ServerStartError(
                f"No local AWS responds at {endpoint}: GET {url} failed: {exc}. "
                "Start one with `ingest serve` and pass the endpoint it prints."
            ) from exc
        local = cls(report["template"], report["log_dir"])
        local._ready = report
        local._attached = True
        return local

    @property
    def server_log(self) -> Path:
        return self.log_dir / "server.log"

    @property
    def endpoint(self) -> str:
        return str(self._ready_value("endpoint"))

    @property
    def resources(self) -> dict[str, str]:
        """Each logical id's physical id, which is what Ref returns: a name, ARN or queue URL."""
        return dict(self._ready_value("resources"))

    @property
    def resource_details(self) -> dict[str, dict[str, str]]:
        """Each logical id's ``type``, ``physical_id`` and attributes such as ``Arn``."""
        return dict(self._ready_value("resource_details"))

    @property
    def outputs(self) -> dict[str, str]:
        return dict(self._ready_value("outputs"))

    @property
    def parameters(self) -> dict[str, str]:
        """Each template parameter's value as text, after the overrides."""
        return dict(self._ready_value("parameters"))

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def __enter__(self) -> LocalAWS:
        # Entering an instance that start() already started keeps it, so that
        # ``with LocalAWS(...).start() as aws:`` works too.
        return self if self._process is not None or self._attached else self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> LocalAWS:
        """Start the server and wait until the stack is provisioned.

        Raises ServerStartError when the server exits or stays silent for ``startup_timeout``
        seconds, and the server's own error (TemplateError, ProvisionError, ...) when it
        reports one. Each message names the server log.
        """
        if self._process is not None:
            raise exceptions.LocalAWSError("LocalAWS is already started; call stop() first.")
        self.log_dir.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable,
            "-m",
            "nightly_ingest.local",
            "--template",
            str(self.template_path),
            "--log-dir",
            str(self.log_dir),
            "--port",
            str(self.port),
            "--stack-name",
            self.stack_name,
            "--stop-on-stdin-eof",
        ]
        for name, value in self.parameter_overrides.items():
            command += ["--parameter", f"{name}={value}"]
        environment = {
            **os.environ,
            "AWS_EC2_METADATA_DISABLED": "true",
            "NO_PROXY": _no_proxy(os.environ.get("NO_PROXY", "")),
        }
        with open(self.server_log, "ab") as early_log:
            # The server moves its own output to server.log once it runs. Until then, for
            # example during a failing import, output goes straight to the same file.
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=early_log,
                env=environment,
            )
        try:
            self._ready = self._read_ready_line()
        except BaseException:
            self._force_stop()
            raise
        LOG.info("Local AWS ready at %s (pid %s)", self.endpoint, self.pid)
        return self

    def _read_ready_line(self) -> dict[str, Any]:
        assert self._process is not None and self._process.stdout is not None
        stdout = self._process.stdout
        deadline = time.monotonic() + self.startup_timeout
        buffer = b""
        with selectors.DefaultSelector() as selector:
            selector.register(stdout, selectors.EVENT_READ)
            while b"\n" not in buffer:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise exceptions.ServerStartError(
                        f"The emulator server did not report ready within "
                        f"{self.startup_timeout:g} s. See {self.server_log}:\n{self._log_tail()}"
                    )
                if not selector.select(remaining):
                    continue
                chunk = os.read(stdout.fileno(), 65536)
                if not chunk:
                    code = self._process.wait(timeout=self.stop_timeout)
                    raise exceptions.ServerStartError(
                        f"The emulator server exited with status {code} before it was ready. "
                        f"See {self.server_log}:\n{self._log_tail()}"
                    )
                buffer += chunk
        stdout.close()
        report: dict[str, Any] = json.loads(buffer.split(b"\n", 1)[0])
        if report.get("status") != "ready":
            error_class = getattr(exceptions, str(report.get("error_type")), None)
            if not (
                isinstance(error_class, type) and issubclass(error_class, exceptions.LocalAWSError)
            ):
                error_class = exceptions.ServerStartError
            raise error_class(f"{report.get('message')} (server log: {self.server_log})")
        return report

    def _log_tail(self) -> str:
        try:
            lines = self.server_log.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-LOG_TAIL_LINES:])

    def _ready_value(self, key: str) -> Any:
        if key not in self._ready:
            raise exceptions.LocalAWSError("LocalAWS is not started; call start() first.")
        return self._ready[key]

    def client(self, service: str, **kwargs: Any) -> Any:
        """Return a boto3 client for ``service`` on the emulator, with fake credentials."""
        if self._session is None:
            self._session = boto3.session.Session(
                aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
                aws_session_token=FAKE_CREDENTIALS["AWS_SESSION_TOKEN"],
                region_name=self.region,
            )
        # An empty proxy map keeps HTTP(S)_PROXY from routing requests away from 127.0.0.1.
        config = Config(proxies={}).merge(kwargs.pop("config", None) or Config())
        return self._session.client(  # type: ignore[call-overload]
            service, endpoint_url=self.endpoint, config=config, **kwargs
        )

    def lambda_stats(self) -> dict[str, Any]:
        """Return the Lambda service's counters: ``{"functions": {name: {...}}}``.

        Each function has ``logical_id``, ``arn``, ``concurrency_limit``,
        ``environments_started``, ``invocations``, ``concurrent_invocations``,
        ``peak_concurrent_invocations``, ``throttles``, ``errors`` (count by errorType) and
        ``environments``: per environment ``id``, ``pid``, ``state``, ``exit_reason``,
        ``cold_start_seconds`` (process start to handler imported), ``init_seconds`` (handler
        import alone), ``invocations``, ``clients_created``, ``connections_opened`` and ``log``.
        """
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(f"{self.endpoint}/_local/lambda/stats", timeout=10) as response:
            stats: dict[str, Any] = json.load(response)
        return stats

    def reset_lambda_peaks(self) -> None:
        """Set each function's ``peak_concurrent_invocations`` to its current concurrency.

        The other counters keep growing, so a test measures them as differences.
        """
        self._request("POST", "/_local/lambda/stats/reset-peaks")

    def add_fault(self, service: str, action: str, kind: str, **options: Any) -> str:
        """Add a fault rule and return its id; see ``nightly_ingest.local.faults`` for the rules.

        ``service`` is the SigV4 signing name (``lambda``, ``dynamodb``, ``sqs``, ``s3``,
        ``states``) and ``action`` the API action or ``*``. ``options`` are the rule's other
        fields, such as ``resource``, ``match_body``, ``times`` (None for every matching call),
        ``skip``, ``share``, ``status``, ``error_code``, ``error_type``, ``error_message``,
        ``items`` and ``seconds``. Raises FaultRuleError with the server's reason when the rule
        is invalid.
        """
        rule = {"service": service, "action": action, "kind": kind, **options}
        created = self._request("POST", "/_local/faults", rule, exceptions.FaultRuleError)
        return str(created["id"])

    def faults(self) -> list[dict[str, Any]]:
        """Return every fault rule with ``matched`` and ``fired``, the calls it matched and hit."""
        listed: list[dict[str, Any]] = self._request("GET", "/_local/faults")["faults"]
        return listed

    def fault(self, fault_id: str) -> dict[str, Any]:
        """Return one fault rule by id. Raises FaultRuleError when there is none."""
        for rule in self.faults():
            if rule["id"] == fault_id:
                return rule
        raise exceptions.FaultRuleError(f"No fault rule has id {fault_id}.")

    def remove_fault(self, fault_id: str) -> None:
        """Remove one fault rule. Raises FaultRuleError when no rule has that id."""
        self._request("DELETE", f"/_local/faults/{fault_id}", None, exceptions.FaultRuleError)

    def clear_faults(self) -> int:
        """Remove every fault rule and return how many there were."""
        return int(self._request("DELETE", "/_local/faults")["removed"])

    def _request(
        self,
        method: str,
        path: str,
        document: Any = None,
        rejected_error: type[exceptions.LocalAWSError] = exceptions.LocalAWSError,
    ) -> Any:
        """Send a request to the server's own API and return the JSON response, if any.

        Raises ``rejected_error`` with the server's message when it rejects the request (HTTP
        4xx), and LocalAWSError for any other failure.
        """
        data = None if document is None else json.dumps(document).encode("utf-8")
        request = urllib.request.Request(
            f"{self.endpoint}{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(request, timeout=10) as response:
                body = response.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", errors="replace")
            try:
                message = json.loads(detail)["message"]
            except (ValueError, KeyError, TypeError):
                message = f"{method} {path} failed with HTTP {exc.code}: {detail}"
            if 400 <= exc.code < 500:
                raise rejected_error(message) from None
            raise exceptions.LocalAWSError(message) from None
        return json.loads(body) if body else None

    def lambda_totals(self) -> dict[str, int]:
        """Return the counters of every function and environment added up.

        Keys: ``environments_started``, ``invocations``, ``throttles``, ``clients_created`` and
        ``connections_opened``.
        """
        functions = self.lambda_stats()["functions"].values()
        environments = [env for function in functions for env in function["environments"]]
        return {
            "environments_started": sum(f["environments_started"] for f in functions),
            "invocations": sum(f["invocations"] for f in functions),
            "throttles": sum(f["throttles"] for f in functions),
            "clients_created": sum(env["clients_created"] for env in environments),
            "connections_opened": sum(env["connections_opened"] for env in environments),
        }

    def lambda_invocations(self) -> int:
        """Return the number of invocations accepted so far, by every function together."""
        return sum(f["invocations"] for f in self.lambda_stats()["functions"].values())

    def lambda_progress(self) -> tuple[int, bool]:
        """Return the invocations and throttles so far, and whether an invocation is running."""
        functions = self.lambda_stats()["functions"].values()
        counter = sum(function["invocations"] + function["throttles"] for function in functions)
        busy = any(function["concurrent_invocations"] for function in functions)
        return counter, busy

    def state_machine_arn(self) -> str:
        """Return the ARN of the template's only state machine."""
        arns = [
            resource["physical_id"]
            for resource in self.resource_details.values()
            if resource["type"] == "AWS::Serverless::StateMachine"
        ]
        if len(arns) != 1:
            raise exceptions.LocalAWSError(
                f"The template has {len(arns)} state machines. "
                "Pass state_machine_arn to choose one."
            )
        return arns[0]

    def start_execution(
        self,
        execution_input: Any = None,
        *,
        name: str | None = None,
        state_machine_arn: str | None = None,
    ) -> str:
        """Start an execution under a unique name (unless ``name`` is given) and return its ARN."""
        arn = state_machine_arn or self.state_machine_arn()
        return start_execution(self.client("stepfunctions"), arn, execution_input, name)

    def wait_for_execution(
        self,
        execution_arn: str,
        *,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        stall_timeout: float = DEFAULT_STALL_TIMEOUT_SECONDS,
        poll_interval: float = DEFAULT_POLL_INTERVAL_SECONDS,
        sleep: Any = time.sleep,
    ) -> dict[str, Any]:
        """Wait for the execution to end; see ``executions.wait_for_execution``."""
        return wait_for_execution(
            self.client("stepfunctions"),
            execution_arn,
            timeout=timeout,
            stall_timeout=stall_timeout,
            poll_interval=poll_interval,
            progress=self.lambda_progress,
            log_path=self.server_log,
            sleep=sleep,
        )

    def stop(self) -> None:
        """Stop the server and its environment processes, then check that nothing is left.

        Raises ServerStopError, after killing them, when processes outlived the graceful stop or
        the port still accepts connections.
        """
        if self._attached:
            self._ready = {}
            return
        if self._process is None:
            return
        process = self._process
        port = int(self.endpoint.rsplit(":", 1)[1]) if "endpoint" in self._ready else None
        try:
            children = psutil.Process(process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            children = []
        problems = []
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=self.stop_timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=self.stop_timeout)
            problems.append(f"the server (pid {process.pid}) ignored SIGTERM")
        _, alive = psutil.wait_procs(children, timeout=self.stop_timeout)
        for child in alive:
            problems.append(f"process {child.pid} outlived the server")
        _kill_all(alive, self.stop_timeout)
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                stream.close()
        self._process = None
        if port is not None and _accepts_connections(port):
            problems.append(f"port {port} still accepts connections")
        if problems:
            raise exceptions.ServerStopError(
                f"Stopping the local AWS left {'; '.join(problems)}. See {self.server_log}."
            )
        LOG.info("Local AWS stopped")

    def _force_stop(self) -> None:
        """Kill the server and its children after a failed start."""
        if self._process is None:
            return
        try:
            children = psutil.Process(self._process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            children = []
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait(timeout=self.stop_timeout)
        _kill_all(children, self.stop_timeout)
        for stream in (self._process.stdin, self._process.stdout):
            if stream is not None:
                stream.close()
        self._process = None


def _kill_all(processes: list[psutil.Process], timeout: float) -> None:
    for process in processes:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(processes, timeout=timeout)


def _no_proxy(current: str) -> str:
    hosts = [host for host in current.split(",") if host]
    for host in ("127.0.0.1", "localhost"):
        if host not in hosts:
            hosts.append(host)
    return ",".join(hosts)


def _accepts_connections(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        return probe.connect_ex(("127.0.0.1", port)) == 0
