"""Local Lambda service: runs each function's handler in execution environment processes.

It serves the Invoke API (``POST /2015-03-31/functions/{name}/invocations``) in Lambda's wire
format, so that moto's Step Functions interpreter and any boto3 client can call it.

Environments start on demand, one OS process each, up to the function's concurrency limit, and
stay warm until the service stops. An invocation beyond the limit is throttled as a function
with reserved concurrency is on AWS: HTTP 429, ``TooManyRequestsException``, reason
``ReservedFunctionConcurrentInvocationLimitExceeded``. A timed-out or crashed environment is
killed and replaced by the next invocation.

Fault rules (see ``faults``) apply to invocations here, where the function is known. An
``error`` is returned as an error of the Lambda service, a ``crash`` as an error of the
function and a ``timeout`` as the function's timeout, and a ``delay`` takes a concurrency slot
before the handler runs.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, NoReturn

from .aws_calls import LAMBDA_PROTOCOL, AwsCall
from .channel import receive_message, send_message
from .faults import FaultInjector, FaultRule

LOG = logging.getLogger(__name__)

INVOKE_PATH = re.compile(r"^/2015-03-31/functions/(?P<function>[^/]+)/invocations$")
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024
"""Lambda's limit for a synchronous request or response payload (6 MB)."""
MIN_INIT_TIMEOUT_SECONDS = 10.0
"""Lambda's limit for the init phase. On AWS a slower init is retried within the function
timeout, so the local limit is the larger of the two."""
LOG_TAIL_BYTES = 4096
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}
_FUNCTION_REF = re.compile(
    r"^(?:arn:(?P<partition>[\w-]+):lambda:(?P<region>[\w-]+):)?"
    r"(?:(?P<account>\d{12}):)?(?:function:)?"
    r"(?P<name>[A-Za-z0-9_-]{1,64})(?::(?P<qualifier>[A-Za-z0-9$_-]+))?$"
)


@dataclass
class FunctionConfig:
    """One function as the template defines it, with every value resolved."""

    name: str
    logical_id: str
    arn: str
    handler: str
    runtime: str
    code_dir: Path
    layer_dirs: list[Path]
    environment: dict[str, str]
    timeout_seconds: float
    memory_size_mb: int
    concurrency_limit: int


@dataclass
class LambdaResponse:
    """An HTTP response of the Invoke API."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


def _json_body(document: dict[str, Any]) -> bytes:
    return json.dumps(document).encode("utf-8")


def _service_error(status: int, error_type: str, message: str, request_id: str) -> LambdaResponse:
    """Build an error of the Lambda API itself, as opposed to an error of the function."""
    return LambdaResponse(
        status=status,
        body=_json_body({"Type": "User", "Message": message}),
        headers={"x-amzn-ErrorType": error_type, "x-amzn-RequestId": request_id},
    )


class _FunctionError(Exception):
    """The invocation failed in the environment. ``body`` is Lambda's error payload."""

    def __init__(self, body: dict[str, Any]) -> None:
        super().__init__(body.get("errorMessage", ""))
        self.body = body


def _timeout_error(request_id: str, timeout: float) -> _FunctionError:
    """Build Lambda's error for an invocation that ran past the function's timeout."""
    message = f"RequestId: {request_id} Error: Task timed out after {timeout:.2f} seconds"
    return _FunctionError({"errorType": "Sandbox.Timedout", "errorMessage": message})


class Environment:
    """One execution environment: a runtime process that serves one invocation at a time."""

    def __init__(
        self, function: FunctionConfig, number: int, log_path: Path, base_env: dict[str, str]
    ) -> None:
        self.function = function
        self.number = number
        self.log_path = log_path
        self._base_env = base_env
        self._process: subprocess.Popen[bytes] | None = None
        self._connection: Connection | None = None
        self.state = "new"
        self.exit_reason: str | None = None
        self.cold_start_seconds: float | None = None
        self.init_seconds: float | None = None
        self.invocations = 0
        self.clients_created = 0
        self.connections_opened = 0

    @property
    def alive(self) -> bool:
        return self.state in ("new", "idle", "busy")

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def stats(self) -> dict[str, Any]:
        return {
            "id": self.number,
            "pid": self.pid,
            "state": self.state,
            "exit_reason": self.exit_reason,
            "cold_start_seconds": self.cold_start_seconds,
            "init_seconds": self.init_seconds,
            "invocations": self.invocations,
            "clients_created": self.clients_created,
            "connections_opened": self.connections_opened,
            "log": str(self.log_path),
        }

    def invoke(self, request_id: str, payload: str, invoked_arn: str) -> str:
        """Run one invocation and return the handler's result as JSON text.

        Raises _FunctionError with Lambda's error payload when the handler raises, the
        invocation times out or the process exits. After a timeout or exit the environment is
        dead and the pool replaces it.
        """
        self.state = "busy"
        if self._process is None:
            self._start(request_id)
        timeout = self.function.timeout_seconds
        deadline_ms = int(time.time() * 1000 + timeout * 1000)
        message = {
            "type": "invoke",
            "request_id": request_id,
            "payload": payload,
            "deadline_ms": deadline_ms,
            "invoked_function_arn": invoked_arn,
        }
        self.invocations += 1
        reply = self._exchange(message, request_id, timeout)
        self._take_counters(reply)
        if reply["type"] == "error":
            raise _FunctionError({**reply["error"], "requestId": request_id})
        self.state = "idle"
        return str(reply["payload"])

    def _start(self, request_id: str) -> None:
        """Start the runtime process and wait until it has imported the handler."""
        parent_socket, child_socket = socket.socketpair()
        self._connection = Connection(parent_socket.detach())
        child_fd = child_socket.fileno()
        command = [
            sys.executable,
            "-m",
            "nightly_ingest.local.runtime",
            "--channel-fd",
            str(child_fd),
            "--handler",
            self.function.handler,
            "--code-dir",
            str(self.function.code_dir),
        ]
        for layer_dir in self.function.layer_dirs:
            command += ["--layer-dir", str(layer_dir)]

        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        try:
            with open(self.log_path, "ab") as log_file:
                self._process = subprocess.Popen(
                    command,
                    cwd=self.function.code_dir,
                    env=self._environment_variables(),
                    stdin=subprocess.DEVNULL,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    pass_fds=(child_fd,),
                )
        finally:
            # The child has its own copy now. Keeping this one open would hide the child's
            # exit, because the channel would never reach EOF.
            child_socket.close()
        LOG.info("Started environment %s of %s (pid %s)", self.number, self.function.name, self.pid)

        init_timeout = max(MIN_INIT_TIMEOUT_SECONDS, self.function.timeout_seconds)
        reply = self._receive(request_id, init_timeout)
        if reply["type"] == "init_error":
            self._reap(f"init error {reply['error']['errorType']}")
            raise _FunctionError({**reply["error"], "requestId": request_id})
        self.cold_start_seconds = time.monotonic() - started
        self.init_seconds = float(reply["init_seconds"])
        self._take_counters(reply)

    def _environment_variables(self) -> dict[str, str]:
        today = datetime.now(UTC).strftime("%Y/%m/%d")
        stream = f"{today}/[$LATEST]{uuid.uuid4().hex}"
        return {
            **self.function.environment,
            **self._base_env,
            "_HANDLER": self.function.handler,
            "LAMBDA_TASK_ROOT": str(self.function.code_dir),
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{self.function.runtime}",
            "AWS_LAMBDA_FUNCTION_NAME": self.function.name,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(self.function.memory_size_mb),
            "AWS_LAMBDA_FUNCTION_TIMEOUT": str(int(self.function.timeout_seconds)),
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{self.function.name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": stream,
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        }

    def _exchange(self, message: dict[str, Any], request_id: str, timeout: float) -> dict[str, Any]:
        assert self._connection is not None
        try:
            send_message(self._connection, message)
        except OSError:
            self._fail_exited(request_id)
        return self._receive(request_id, timeout)

    def _receive(self, request_id: str, timeout: float) -> dict[str, Any]:
        # stop() may close the channel from another thread: the closed connection then
        # raises OSError here, which reads as the process having exited.
        connection = self._connection
        assert connection is not None
        try:
            ready = connection.poll(timeout)
        except OSError:
            ready = True
        if not ready:
            self._kill(f"timed out after {timeout:.2f} s")
            raise _timeout_error(request_id, timeout)
        try:
            return receive_message(connection)
        except (EOFError, OSError):
            self._fail_exited(request_id)

    def _fail_exited(self, request_id: str) -> NoReturn:
        assert self._process is not None
        try:
            returncode = self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._kill("closed its channel but did not exit")
            returncode = -signal.SIGKILL
        if returncode < 0:
            status = f"signal: {signal.strsignal(-returncode) or -returncode}".lower()
        else:
            status = f"exit status {returncode}"
        self._reap(f"exited ({status})")
        message = f"RequestId: {request_id} Error: Runtime exited with error: {status}"
        raise _FunctionError({"errorType": "Runtime.ExitError", "errorMessage": message})

    def _take_counters(self, reply: dict[str, Any]) -> None:
        self.clients_created = int(reply.get("clients_created", self.clients_created))
        self.connections_opened = int(reply.get("connections_opened", self.connections_opened))

    def _kill(self, reason: str) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
        self._reap(reason)

    def _reap(self, reason: str) -> None:
        """Close the channel, wait for the process and mark the environment dead."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        if self._process is not None:
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=5)
        if self.alive:
            LOG.info(
                "Environment %s of %s (pid %s) stopped: %s",
                self.number,
                self.function.name,
                self.pid,
                reason,
            )
        self.state = "stopped"
        self.exit_reason = reason

    def begin_stop(self) -> None:
        """Ask the process to exit: EOF on its channel when idle, SIGKILL when busy."""
        if not self.alive or self._process is None:
            self.state = "stopped"
            return
        if self.state == "busy":
            self._kill("service stopped during an invocation")
            return
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def finish_stop(self, deadline: float) -> None:
        """Wait for the process until ``deadline`` (time.monotonic()), then kill it."""
        if not self.alive or self._process is None:
            return
        try:
            self._process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self._process.kill()
        self._reap("service stopped")

    def read_log_since(self, offset: int) -> bytes:
        try:
            with open(self.log_path, "rb") as log_file:
                log_file.seek(offset)
                return log_file.read()
        except FileNotFoundError:
            return b""

    def log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except FileNotFoundError:
            return 0


class _FunctionPool:
    """The environments of one function and its concurrency counters."""

    def __init__(self, function: FunctionConfig, log_dir: Path, base_env: dict[str, str]) -> None:
        self.function = function
        self._log_dir = log_dir / "lambda" / function.name
        self._base_env = base_env
        self._lock = threading.Lock()
        self._idle: list[Environment] = []
        self.environments: list[Environment] = []
        self.active = 0
        self.peak_concurrent = 0
        self.invocations = 0
        self.throttles = 0
        self.errors: dict[str, int] = {}

    def acquire(self) -> Environment | None:
        """Reserve an environment, warm if one is idle. Returns None when at the limit."""
        with self._lock:
            if self.active >= self.function.concurrency_limit:
                self.throttles += 1
                return None
            self.active += 1
            self.invocations += 1
            self.peak_concurrent = max(self.peak_concurrent, self.active)
            if self._idle:
                # The most recently used environment is the warmest, as on Lambda.
                return self._idle.pop()
            number = len(self.environments) + 1
            log_path = self._log_dir / f"env-{number:03d}.log"
            environment = Environment(self.function, number, log_path, self._base_env)
            self.environments.append(environment)
            return environment

    def release(self, environment: Environment, error_type: str | None) -> None:
        with self._lock:
            self.active -= 1
            if error_type is not None:
                self.errors[error_type] = self.errors.get(error_type, 0) + 1
            if environment.alive:
                environment.state = "idle"
                self._idle.append(environment)

    def reset_peak(self) -> None:
        with self._lock:
            self.peak_concurrent = self.active

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "logical_id": self.function.logical_id,
                "arn": self.function.arn,
                "concurrency_limit": self.function.concurrency_limit,
                "environments_started": sum(1 for env in self.environments if env.pid is not None),
                "invocations": self.invocations,
                "concurrent_invocations": self.active,
                "peak_concurrent_invocations": self.peak_concurrent,
                "throttles": self.throttles,
                "errors": dict(self.errors),
                "environments": [env.stats() for env in self.environments],
            }

    def take_all(self) -> list[Environment]:
        """Return every environment and leave none idle, so that none is reused."""
        with self._lock:
            self._idle.clear()
            return list(self.environments)


class LambdaService:
    """Functions registered from the template and their execution environments."""

    def __init__(
        self,
        log_dir: Path,
        endpoint: str,
        region: str,
        account_id: str,
        partition: str = "aws",
        *,
        faults: FaultInjector | None = None,
    ) -> None:
        self._log_dir = Path(log_dir)
        self._faults = faults
        self._region = region
        self._account_id = account_id
        self._partition = partition
        self._pools: dict[str, _FunctionPool] = {}
        self._stopping = False
        self._base_env = {
            "PATH": os.environ.get("PATH", os.defpath),
            "LANG": "C.UTF-8",
            "TZ": ":UTC",
            "PYTHONUNBUFFERED": "1",
            "AWS_REGION": region,
            "AWS_DEFAULT_REGION": region,
            "AWS_ENDPOINT_URL": endpoint,
            # Keep the user's AWS profiles and the instance metadata service out of reach, so
            # that a handler can only talk to the emulator.
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
            # Set by `sam local` too. Powertools reads it and skips X-Ray, which has no local
            # daemon.
            "AWS_SAM_LOCAL": "true",
            **FAKE_CREDENTIALS,
        }

    def register(self, function: FunctionConfig) -> None:
        runtime_version = function.runtime.removeprefix("python")
        local_version = f"{sys.version_info.major}.{sys.version_info.minor}"
        if runtime_version != local_version:
            LOG.warning(
                "Function %s declares runtime %s; it runs locally on Python %s",
                function.name,
                function.runtime,
                local_version,
            )
        self._pools[function.name] = _FunctionPool(function, self._log_dir, self._base_env)

    @property
    def function_names(self) -> list[str]:
        return list(self._pools)

    def invoke(
        self,
        function_ref: str,
        payload: bytes,
        *,
        qualifier: str | None = None,
        invocation_type: str = "RequestResponse",
        log_type: str = "None",
    ) -> LambdaResponse:
        """Run one Invoke API call as Lambda does and return Lambda's wire-format response."""
        request_id = str(uuid.uuid4())
        pool, invoked_arn = self._find(function_ref, qualifier)
        if pool is None:
            message = f"Function not found: {invoked_arn}"
            return _service_error(404, "ResourceNotFoundException", message, request_id)
        if self._stopping:
            message = "The local Lambda service is stopping."
            return _service_error(500, "ServiceException", message, request_id)
        if invocation_type == "DryRun":
            return LambdaResponse(status=204, body=b"", headers={"x-amzn-RequestId": request_id})
        if invocation_type != "RequestResponse":
            message = (
                f"InvocationType {invocation_type} is not supported by the local Lambda "
                "service. Use RequestResponse or DryRun."
            )
            return _service_error(400, "InvalidParameterValueException", message, request_id)
        if len(payload) > MAX_PAYLOAD_BYTES:
            message = (
                f"{len(payload)} byte payload is too large for the RequestResponse invocation "
                f"type (limit {MAX_PAYLOAD_BYTES} bytes)"
            )
            return _service_error(413, "RequestTooLargeException", message, request_id)
        try:
            text = payload.decode("utf-8") if payload else "{}"
            json.loads(text)
        except (UnicodeDecodeError, ValueError) as exc:
            message = f"Could not parse request body into json: {exc}"
            return _service_error(400, "InvalidRequestContentException", message, request_id)

        fault = self._take_fault(pool.function.name, text)
        if fault is not None and fault.kind == "error":
            assert fault.status is not None and fault.error_code is not None
            return _service_error(
                fault.status, fault.error_code, fault.error_message or "", request_id
            )
        environment = pool.acquire()
        if environment is None:
            return LambdaResponse(
                status=429,
                body=_json_body(
                    {
                        "Reason": "ReservedFunctionConcurrentInvocationLimitExceeded",
                        "Type": "User",
                        "message": "Rate Exceeded.",
                    }
                ),
                headers={
                    "x-amzn-ErrorType": "TooManyRequestsException",
                    "x-amzn-RequestId": request_id,
                },
            )
        log_offset = environment.log_size()
        error_type = None
        headers = {"x-amzn-RequestId": request_id, "X-Amz-Executed-Version": "$LATEST"}
        try:
            if fault is not None:
                _apply_fault(fault, request_id, pool.function.timeout_seconds)
            body = environment.invoke(request_id, text, invoked_arn).encode("utf-8")
            if len(body) > MAX_PAYLOAD_BYTES:
                raise _FunctionError(
                    {
                        "errorMessage": (
                            "Response payload size exceeded maximum allowed payload size "
                            f"({MAX_PAYLOAD_BYTES} bytes)."
                        ),
                        "errorType": "Function.ResponseSizeTooLarge",
                    }
                )
        except _FunctionError as exc:
            error_type = str(exc.body.get("errorType"))
            body = _json_body(exc.body)
            headers["X-Amz-Function-Error"] = "Unhandled"
            LOG.info("Invocation %s of %s failed: %s", request_id, pool.function.name, error_type)
        finally:
            pool.release(environment, error_type)
        if log_type == "Tail":
            tail = environment.read_log_since(log_offset)[-LOG_TAIL_BYTES:]
            headers["X-Amz-Log-Result"] = base64.b64encode(tail).decode("ascii")
        return LambdaResponse(status=200, body=body, headers=headers)

    def _take_fault(self, function_name: str, payload: str) -> FaultRule | None:
        if self._faults is None or not self._faults.active:
            return None
        document = json.loads(payload)
        call = AwsCall(
            "lambda",
            "Invoke",
            LAMBDA_PROTOCOL,
            (function_name,),
            document if isinstance(document, dict) else None,
        )
        return self._faults.take(call)

    def _find(self, function_ref: str, qualifier: str | None) -> tuple[_FunctionPool | None, str]:
        """Return the pool of a function name or ARN and the ARN as invoked."""
        match = _FUNCTION_REF.match(function_ref)
        if match is None:
            return None, function_ref
        name = match["name"]
        arn_qualifier = match["qualifier"]
        if qualifier and arn_qualifier and qualifier != arn_qualifier:
            return None, function_ref
        qualifier = qualifier or arn_qualifier
        arn = f"arn:{self._partition}:lambda:{self._region}:{self._account_id}:function:{name}"
        invoked_arn = f"{arn}:{qualifier}" if qualifier else arn
        pool = self._pools.get(name)
        if (
            pool is None
            or match["region"] not in (None, self._region)
            or match["account"] not in (None, self._account_id)
            or match["partition"] not in (None, self._partition)
            or qualifier not in (None, "$LATEST")
        ):
            return None, invoked_arn
        return pool, invoked_arn

    def stats(self) -> dict[str, Any]:
        """Return counters for every function, keyed by function name."""
        return {"functions": {name: pool.stats() for name, pool in self._pools.items()}}

    def reset_peaks(self) -> None:
        """Set each function's peak concurrency to its current concurrency, to measure anew."""
        for pool in self._pools.values():
            pool.reset_peak()

    def stop(self, grace_seconds: float = 2.0) -> None:
        """Stop every environment process and reject invocations from now on."""
        self._stopping = True
        environments = [env for pool in self._pools.values() for env in pool.take_all()]
        # All processes are asked first and awaited after, so that they exit in parallel.
        for environment in environments:
            environment.begin_stop()
        deadline = time.monotonic() + grace_seconds
        for environment in environments:
            environment.finish_stop(deadline)


def _apply_fault(fault: FaultRule, request_id: str, timeout_seconds: float) -> None:
    """Apply a crash, timeout or delay fault inside an acquired concurrency slot.

    Raises _FunctionError for a crash, as the handler would have. For a timeout it raises the
    error of a real timeout after ``timeout_seconds`` at once. The environment stays alive after
    a timeout fault, because no handler ran in it.
    """
    if fault.kind == "delay":
        time.sleep(fault.seconds or 0.0)
    elif fault.kind == "timeout":
        raise _timeout_error(request_id, timeout_seconds)
    elif fault.kind == "crash":
        raise _FunctionError(
            {
                "errorMessage": fault.error_message,
                "errorType": fault.error_type,
                "requestId": request_id,
                "stackTrace": [],
            }
        )
