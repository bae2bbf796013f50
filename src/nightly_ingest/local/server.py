"""The emulator server: moto and the local Lambda service behind one endpoint on 127.0.0.1."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from werkzeug.wrappers import Request, Response

from . import exceptions
from .faults import FaultInjector
from .lambda_service import INVOKE_PATH, LambdaService
from .provision import provision
from .template import DEFAULT_STACK_NAME, resolve_stack

LOG = logging.getLogger(__name__)

HOST = "127.0.0.1"
STATS_PATH = "/_local/lambda/stats"
RESET_PEAKS_PATH = "/_local/lambda/stats/reset-peaks"
STACK_PATH = "/_local/stack"
FAULTS_PATH = "/_local/faults"
# Each running invocation occupies a thread while its handler makes requests of its own, and the
# interpreter and the caller poll at the same time, so the pool is far larger than the cores.
SERVER_THREADS = 64
SERVER_IDLE_TIMEOUT_SECONDS = 300
# moto 5.2.5's Distributed Map worker takes its next item by calling itself, one frame per item,
# so under the default limit of 1,000 a worker thread dies with RecursionError after about 985
# items and the execution stays RUNNING. With these, one worker ran 20,000 items (a Pass state
# each) to the end.
RECURSION_LIMIT = 50_000
THREAD_STACK_BYTES = 256 * 1024 * 1024


class Dispatcher:
    """WSGI app that sends Lambda invocations and stats to the Lambda service, the rest to moto.

    It also serves the fault rules at FAULTS_PATH and applies them to every call to moto; the
    Lambda service applies them to invocations. The server binds before the template is
    resolved, because queue URLs contain the port, so the services are attached afterwards.
    Until then every request gets 503.
    """

    def __init__(self) -> None:
        self._lambda_service: LambdaService | None = None
        self._moto_app: Callable[..., Iterable[bytes]] | None = None
        self.faults = FaultInjector()
        self.stack_report: dict[str, Any] | None = None
        """The ready report, served at STACK_PATH once the stack is provisioned."""

    def attach(
        self, lambda_service: LambdaService, moto_app: Callable[..., Iterable[bytes]]
    ) -> None:
        self._lambda_service = lambda_service
        self._moto_app = moto_app

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        if self._lambda_service is None or self._moto_app is None:
            response = Response("The emulator is starting.", status=503)
            return response(environ, start_response)
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "")
        match = INVOKE_PATH.match(path)
        if method == "POST" and match is not None:
            response = self._invoke(self._lambda_service, match["function"], Request(environ))
            return response(environ, start_response)
        if method == "GET" and path == STATS_PATH:
            body = json.dumps(self._lambda_service.stats())
            return Response(body, content_type="application/json")(environ, start_response)
        if method == "POST" and path == RESET_PEAKS_PATH:
            self._lambda_service.reset_peaks()
            return Response(status=204)(environ, start_response)
        if path == FAULTS_PATH or path.startswith(FAULTS_PATH + "/"):
            return self._serve_faults(Request(environ))(environ, start_response)
        if method == "GET" and path == STACK_PATH:
            if self.stack_report is None:
                response = Response("The stack is being provisioned.", status=503)
            else:
                response = Response(json.dumps(self.stack_report), content_type="application/json")
            return response(environ, start_response)
        if self.faults.active:
            return self.faults.handle(environ, start_response, self._moto_app)
        return self._moto_app(environ, start_response)

    def _serve_faults(self, request: Request) -> Response:
        """Serve the fault rules: GET lists them, POST adds one, DELETE removes one or all."""
        rule_id = request.path[len(FAULTS_PATH) :].strip("/")
        if request.method == "GET" and not rule_id:
            return _json_response({"faults": self.faults.rules()})
        if request.method == "POST" and not rule_id:
            try:
                rule = self.faults.add(json.loads(request.get_data() or b"null"))
            except ValueError as exc:
                return _json_response({"message": f"The body is not valid JSON: {exc}"}, 400)
            except exceptions.FaultRuleError as exc:
                return _json_response({"message": str(exc)}, 400)
            return _json_response(rule.to_dict(), 201)
        if request.method == "DELETE" and not rule_id:
            return _json_response({"removed": self.faults.clear()})
        if request.method == "DELETE":
            if not self.faults.remove(rule_id):
                return _json_response({"message": f"No fault rule has id {rule_id}."}, 404)
            return _json_response({"removed": 1})
        message = f"{request.method} {request.path} is not a fault rule request."
        return _json_response({"message": message}, 405)

    @staticmethod
    def _invoke(lambda_service: LambdaService, function_ref: str, request: Request) -> Response:
        result = lambda_service.invoke(
            function_ref,
            request.get_data(),
            qualifier=request.args.get("Qualifier"),
            invocation_type=request.headers.get("X-Amz-Invocation-Type", "RequestResponse"),
            log_type=request.headers.get("X-Amz-Log-Type", "None"),
        )
        return Response(
            result.body,
            status=result.status,
            headers=result.headers,
            content_type="application/json",
        )


@dataclass
class ServerOptions:
    template_path: Path
    log_dir: Path
    parameter_overrides: Mapping[str, str]
    port: int = 0
    stack_name: str = DEFAULT_STACK_NAME
    stop_on_stdin_eof: bool = False


def _channel_class() -> type:
    """Return waitress's HTTP channel with a parser that serves empty `Expect` requests at once.

    waitress 3.0.2 sends `100 Continue` for a request with `Expect: 100-continue` even when its
    body is empty, and then waits for a body that never comes. botocore sends that header on
    every S3 PutObject, so an empty upload hung until the client timed out.
    """
    from waitress.channel import HTTPChannel
    from waitress.parser import HTTPRequestParser

    class EmptyBodyAwareParser(HTTPRequestParser):
        def parse_header(self, header_plus: bytes) -> None:
            super().parse_header(header_plus)
            if not self.chunked and self.content_length == 0:
                self.expect_continue = False

    class Channel(HTTPChannel):
        parser_class = EmptyBodyAwareParser

    return Channel


def run_server(options: ServerOptions, ready_stream: IO[str]) -> int:
    """Start the server, provision the template, report on ``ready_stream`` and serve until stopped.

    The report is one JSON line. When ready it is ``{"status": "ready", "endpoint", "pid",
    "log_dir", "server_log", "resources", "resource_details", "outputs", "parameters"}``, where
    ``resources`` maps each logical id to what Ref returns, ``resource_details`` adds the
    type and attributes, and ``parameters`` has every parameter's value as text. When start-up
    fails it is ``{"status": "error", "error_type", "message", "server_log"}``.

    SIGTERM, SIGINT or, with ``stop_on_stdin_eof``, the end of standard input stop the server
    and every environment process. Returns the exit code.
    """
    # moto is imported here, not at module level, because it takes seconds to import.
    from moto.moto_api._internal.models import moto_api_backend
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from waitress.server import create_server

    sys.setrecursionlimit(RECURSION_LIMIT)
    # The stack size applies to threads started from here on, which includes every thread of
    # the interpreter and of the HTTP server.
    threading.stack_size(THREAD_STACK_BYTES)

    server_log = options.log_dir / "server.log"
    stop_requested = threading.Event()
    for signal_number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signal_number, lambda *_: stop_requested.set())

    dispatcher = Dispatcher()
    try:
        listener = _listen(options.port)
        # waitress, unlike werkzeug's development server, keeps HTTP/1.1 connections open, so
        # the connection counts of the execution environments show whether clients reuse them.
        server = create_server(
            dispatcher,
            sockets=[listener],
            threads=SERVER_THREADS,
            channel_timeout=SERVER_IDLE_TIMEOUT_SECONDS,
            clear_untrusted_proxy_headers=True,
        )
        server.channel_class = _channel_class()
        port = listener.getsockname()[1]
        endpoint = f"http://{HOST}:{port}"
        # moto's Step Functions interpreter builds its clients against localhost:$MOTO_PORT.
        os.environ["MOTO_PORT"] = str(port)
        moto_api_backend.set_config({"stepfunctions": {"execute_state_machine": True}})
        stack = resolve_stack(
            options.template_path,
            options.parameter_overrides,
            stack_name=options.stack_name,
            endpoint=endpoint,
        )
    except (OSError, exceptions.LocalAWSError) as exc:
        LOG.error("The emulator server did not start: %s: %s", type(exc).__name__, exc)
        _report_error(ready_stream, exc, server_log)
        return 1
    context = stack.context
    lambda_service = LambdaService(
        options.log_dir,
        endpoint,
        context.region,
        context.account_id,
        context.partition,
        faults=dispatcher.faults,
    )
    dispatcher.attach(lambda_service, DomainDispatcherApplication(create_backend_app))

    serve_thread = threading.Thread(target=server.run, name="serve", daemon=True)
    serve_thread.start()
    LOG.info("Serving on %s", endpoint)
    try:
        provision(stack, endpoint, lambda_service)
    except exceptions.LocalAWSError as exc:
        LOG.error("Provisioning failed: %s: %s", type(exc).__name__, exc)
        _report_error(ready_stream, exc, server_log)
        _shut_down(server, lambda_service)
        return 1
    dispatcher.stack_report = {
        "status": "ready",
        "endpoint": endpoint,
        "pid": os.getpid(),
        "log_dir": str(options.log_dir),
        "server_log": str(server_log),
        "template": str(options.template_path),
        "resources": {lid: res.physical_id for lid, res in stack.resources.items()},
        "resource_details": {lid: res.summary() for lid, res in stack.resources.items()},
        "outputs": stack.outputs,
        "parameters": dict(stack.parameters),
    }
    _report(ready_stream, dispatcher.stack_report)
    if options.stop_on_stdin_eof:
        threading.Thread(
            target=_stop_on_stdin_eof, args=(stop_requested,), name="stdin-eof", daemon=True
        ).start()
    # A short timed wait, because the signal handlers run on the main thread only between
    # waits.
    while not stop_requested.wait(0.1):
        pass
    LOG.info("Stopping")
    _shut_down(server, lambda_service)
    LOG.info("Stopped")
    return 0


def _json_response(document: Any, status: int = 200) -> Response:
    return Response(json.dumps(document), status=status, content_type="application/json")


def _listen(port: int) -> socket.socket:
    """Return a socket listening on 127.0.0.1.

    Binding here raises OSError on EADDRINUSE, so that the caller gets the reason in the ready
    report.
    """
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((HOST, port))
        listener.listen(socket.SOMAXCONN)
    except OSError as exc:
        listener.close()
        raise OSError(exc.errno, f"cannot listen on {HOST}:{port}: {exc.strerror}") from exc
    return listener


def _report(stream: IO[str], document: dict[str, Any]) -> None:
    stream.write(json.dumps(document) + "\n")
    stream.flush()


def _report_error(stream: IO[str], exc: Exception, server_log: Path) -> None:
    document = {
        "status": "error",
        "error_type": type(exc).__name__,
        "message": str(exc),
        "server_log": str(server_log),
    }
    _report(stream, document)


def _stop_on_stdin_eof(stop_requested: threading.Event) -> None:
    """Request a stop when standard input ends, which happens when the starting process dies."""
    while os.read(sys.stdin.fileno(), 4096):
        pass
    LOG.info("Standard input closed")
    stop_requested.set()


def _shut_down(server: Any, lambda_service: LambdaService) -> None:
    lambda_service.stop()
    # waitress has no graceful shutdown: closing the listener stops new connections, and the
    # open ones end with the process, which exits right after this.
    server.close()
    server.task_dispatcher.shutdown(timeout=2)
