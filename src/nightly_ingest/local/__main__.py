"""Run the emulator server standalone: ``python -m nightly_ingest.local --log-dir DIR``.

It prints one JSON line when ready (see ``server.run_server``) and then writes everything,
including moto's output, to ``server.log`` in the log directory.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from .server import ServerOptions, run_server
from .template import DEFAULT_STACK_NAME


def parse_arguments(argv: list[str] | None) -> ServerOptions:
    parser = argparse.ArgumentParser(
        prog="python -m nightly_ingest.local",
        description="Serve moto and the local Lambda service on 127.0.0.1 for a SAM template.",
    )
    parser.add_argument(
        "--template", type=Path, default=Path("template.yaml"), help="SAM template to provision"
    )
    parser.add_argument(
        "--log-dir", type=Path, required=True, help="directory for server and function logs"
    )
    parser.add_argument("--port", type=int, default=0, help="TCP port; 0 picks a free one")
    parser.add_argument("--stack-name", default=DEFAULT_STACK_NAME, help="value of AWS::StackName")
    parser.add_argument(
        "--parameter",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a template parameter; repeat for more",
    )
    parser.add_argument(
        "--stop-on-stdin-eof",
        action="store_true",
        help="stop when standard input closes, so that the server ends with its caller",
    )
    args = parser.parse_args(argv)
    overrides = {}
    for item in args.parameter:
        name, separator, value = item.partition("=")
        if not separator or not name:
            parser.error(f"--parameter needs NAME=VALUE, not {item!r}")
        overrides[name] = value
    return ServerOptions(
        template_path=args.template,
        log_dir=args.log_dir.resolve(),
        parameter_overrides=overrides,
        port=args.port,
        stack_name=args.stack_name,
        stop_on_stdin_eof=args.stop_on_stdin_eof,
    )


def main(argv: list[str] | None = None) -> int:
    options = parse_arguments(argv)
    options.log_dir.mkdir(parents=True, exist_ok=True)
    # The ready line goes to the original stdout. Everything else, including the state-machine
    # trees that moto's interpreter prints on every failure, goes to the log, so a caller that
    # reads only the first line does not block the server on a full pipe.
    ready_stream = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8")
    log_fd = os.open(options.log_dir / "server.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(log_fd, sys.stdout.fileno())
    os.dup2(log_fd, sys.stderr.fileno())
    os.close(log_fd)
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    try:
        return run_server(options, ready_stream)
    finally:
        ready_stream.close()


if __name__ == "__main__":
    exit_code = main()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    # Everything the server started is stopped by now. Skipping interpreter finalisation
    # saves about a second, which moto's modules take to tear down.
    os._exit(exit_code)
