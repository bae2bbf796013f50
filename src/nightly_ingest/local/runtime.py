"""Lambda execution environment: one OS process that imports a handler once and runs invocations.

The local Lambda service starts it as ``python -m nightly_ingest.local.runtime`` with the
function's environment variables, the code directory as working directory and stdout and
stderr in the environment's log file. Invocations arrive one at a time on the channel whose
file descriptor is given; see ``channel`` for the messages.
"""

from __future__ import annotations

import argparse
import decimal
import importlib
import json
import math
import os
import resource
import sys
import threading
import time
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from .channel import receive_message, send_message

PARENT_CHECK_INTERVAL_SECONDS = 1.0


class LambdaContext:
    """The context object that Lambda passes to a Python handler."""

    def __init__(self, request_id: str, deadline_ms: int, invoked_function_arn: str) -> None:
        self.aws_request_id = request_id
        self.function_name = os.environ["AWS_LAMBDA_FUNCTION_NAME"]
        self.function_version = os.environ["AWS_LAMBDA_FUNCTION_VERSION"]
        self.invoked_function_arn = invoked_function_arn
        # Lambda's Python runtime passes the memory size as text, straight from the environment.
        self.memory_limit_in_mb = os.environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"]
        self.log_group_name = os.environ["AWS_LAMBDA_LOG_GROUP_NAME"]
        self.log_stream_name = os.environ["AWS_LAMBDA_LOG_STREAM_NAME"]
        self.identity = None
        self.client_context = None
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self._deadline_ms - int(time.time() * 1000))


class _InitError(Exception):
    def __init__(self, error_type: str, message: str, stack_trace: list[str]) -> None:
        super().__init__(message)
        self.body = {"errorMessage": message, "errorType": error_type, "stackTrace": stack_trace}


class _Counters:
    """Clients and TCP connections that the process created, counted by patched constructors."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.clients_created = 0
        self.connections_opened = 0

    def count_client(self) -> None:
        with self._lock:
            self.clients_created += 1

    def count_connection(self) -> None:
        with self._lock:
            self.connections_opened += 1

    def as_dict(self) -> dict[str, int]:
        with self._lock:
            return {
                "clients_created": self.clients_created,
                "connections_opened": self.connections_opened,
            }


def install_counters(counters: _Counters) -> None:
    """Count every botocore client and every new urllib3 connection from now on.

    This runs before the handler module is imported, so module-level clients count too.
    """
    import botocore.session
    import urllib3.connection

    create_client = botocore.session.Session.create_client
    new_conn = urllib3.connection.HTTPConnection._new_conn

    def counted_create_client(self: Any, *args: Any, **kwargs: Any) -> Any:
        counters.count_client()
        return create_client(self, *args, **kwargs)

    def counted_new_conn(self: Any) -> Any:
        sock = new_conn(self)
        counters.count_connection()
        return sock

    botocore.session.Session.create_client = counted_create_client  # type: ignore[method-assign]
    urllib3.connection.HTTPConnection._new_conn = counted_new_conn  # type: ignore[method-assign]


def load_handler(handler: str) -> Callable[[Any, LambdaContext], Any]:
    """Import the handler's module and return the function.

    Raises _InitError with the error type and message that Lambda's Python runtime reports.
    """
    module_name, _, function_name = handler.rpartition(".")
    if not module_name or not function_name:
        raise _InitError(
            "Runtime.MalformedHandlerName",
            f"Bad handler '{handler}': expected <module>.<function>",
            [],
        )
    module_name = module_name.replace("/", ".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise _InitError(
            "Runtime.ImportModuleError", f"Unable to import module '{module_name}': {exc}", []
        ) from exc
    except SyntaxError as exc:
        raise _InitError(
            "Runtime.UserCodeSyntaxError",
            f"Syntax error in module '{module_name}': {exc}",
            _stack_trace(exc),
        ) from exc
    except Exception as exc:
        raise _InitError(type(exc).__name__, str(exc), _stack_trace(exc)) from exc
    function = getattr(module, function_name, None)
    if function is None:
        raise _InitError(
            "Runtime.HandlerNotFound",
            f"Handler '{function_name}' missing on module '{module_name}'",
            [],
        )
    return function  # type: ignore[no-any-return]


def _stack_trace(exc: BaseException) -> list[str]:
    # The first frame is the runtime's own call into the handler or the import.
    frames = traceback.extract_tb(exc.__traceback__)[1:]
    return traceback.format_list(frames)


def _to_json_ready(value: Any) -> Any:
    """Turn Decimal into int or float, as Lambda's Python runtime serialises it as a number."""
    if isinstance(value, decimal.Decimal):
        if value.is_nan():
            return math.nan
        # NOTE: a Decimal with more than 17 significant digits loses precision as a float,
        # where Lambda writes its digits unchanged.
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {key: _to_json_ready(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_to_json_ready(item) for item in value]
    return value


def invoke(
    handler: Callable[[Any, LambdaContext], Any],
    message: dict[str, Any],
    counters: _Counters,
) -> dict[str, Any]:
    """Run one invocation and return the result or error message for the service."""
    request_id = message["request_id"]
    context = LambdaContext(request_id, message["deadline_ms"], message["invoked_function_arn"])
    event = json.loads(message["payload"])
    try:
        result = handler(event, context)
    except Exception as exc:
        stack_trace = _stack_trace(exc)
        print(f"[ERROR] {type(exc).__name__}: {exc}", file=sys.stderr)
        print("Traceback (most recent call last):", *stack_trace, sep="\n", file=sys.stderr)
        handler_error = {
            "errorMessage": str(exc),
            "errorType": type(exc).__name__,
            "stackTrace": stack_trace,
        }
        return {"type": "error", "error": handler_error, **counters.as_dict()}
    try:
        payload = json.dumps(_to_json_ready(result), ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        marshal_error = {
            "errorMessage": f"Unable to marshal response: {exc}",
            "errorType": "Runtime.MarshalError",
            "stackTrace": [],
        }
        return {"type": "error", "error": marshal_error, **counters.as_dict()}
    return {"type": "result", "payload": payload, **counters.as_dict()}


def _exit_when_orphaned() -> None:
    """Exit the process once the service that started it has gone, even mid-invocation."""
    parent = os.getppid()
    while True:
        time.sleep(PARENT_CHECK_INTERVAL_SECONDS)
        if os.getppid() != parent:
            os._exit(1)


def serve(connection: Connection, handler_name: str) -> int:
    """Import the handler, then run invocations until the channel closes. Returns the exit code."""
    threading.Thread(target=_exit_when_orphaned, name="orphan-check", daemon=True).start()
    counters = _Counters()
    install_counters(counters)
    started = time.monotonic()
    try:
        handler = load_handler(handler_name)
    except _InitError as exc:
        print(f"[ERROR] {exc.body['errorType']}: {exc.body['errorMessage']}", file=sys.stderr)
        sys.stderr.flush()
        send_message(connection, {"type": "init_error", "error": exc.body})
        return 1
    init_seconds = time.monotonic() - started
    send_message(connection, {"type": "ready", "init_seconds": init_seconds, **counters.as_dict()})

    first = True
    while True:
        try:
            message = receive_message(connection)
        except EOFError:
            return 0
        request_id = message["request_id"]
        print(f"START RequestId: {request_id} Version: {os.environ['AWS_LAMBDA_FUNCTION_VERSION']}")
        invocation_started = time.monotonic()
        response = invoke(handler, message, counters)
        duration_ms = (time.monotonic() - invocation_started) * 1000
        _print_report(request_id, duration_ms, init_seconds if first else None)
        first = False
        sys.stdout.flush()
        sys.stderr.flush()
        send_message(connection, response)


def _print_report(request_id: str, duration_ms: float, init_seconds: float | None) -> None:
    memory_used_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    fields = [
        f"REPORT RequestId: {request_id}",
        f"Duration: {duration_ms:.2f} ms",
        f"Billed Duration: {math.ceil(duration_ms)} ms",
        f"Memory Size: {os.environ['AWS_LAMBDA_FUNCTION_MEMORY_SIZE']} MB",
        f"Max Memory Used: {memory_used_mb} MB",
    ]
    if init_seconds is not None:
        fields.append(f"Init Duration: {init_seconds * 1000:.2f} ms")
    print(f"END RequestId: {request_id}")
    print("\t".join(fields))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--channel-fd", type=int, required=True, help="file descriptor of the channel"
    )
    parser.add_argument("--handler", required=True, help="handler as <module>.<function>")
    parser.add_argument("--code-dir", required=True, help="the function's CodeUri directory")
    parser.add_argument(
        "--layer-dir", action="append", default=[], help="a layer's ContentUri directory"
    )
    args = parser.parse_args(argv)
    # Lambda puts the function code before the layers on the import path.
    for path in reversed([args.code_dir, *args.layer_dir]):
        if path in sys.path:
            sys.path.remove(path)
        sys.path.insert(0, path)
    connection = Connection(args.channel_fd)
    try:
        return serve(connection, args.handler)
    finally:
        connection.close()


if __name__ == "__main__":
    sys.exit(main())
