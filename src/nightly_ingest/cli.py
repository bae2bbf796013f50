"""The `ingest` command: generate a batch, run it on the local AWS, or serve the local AWS."""

from __future__ import annotations

import argparse
import json
import logging
import math
import signal
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from nightly_ingest.errors import IngestCliError, RunFailedError

DEFAULT_TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"

EXIT_OK = 0
EXIT_RUN_FAILED = 1
EXIT_USAGE = 2


def main(argv: list[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.command(args)
    except IngestCliError as exc:
        print(f"ingest: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except RunFailedError as exc:
        print(f"ingest: run failed: {exc}", file=sys.stderr)
        return EXIT_RUN_FAILED
    except KeyboardInterrupt:
        print("ingest: interrupted", file=sys.stderr)
        return 130


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ingest",
        description="Generate nightly batches and run them through the pipeline on a local AWS.",
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    generate = commands.add_parser("generate", help="write a realistic nightly batch file")
    generate.add_argument(
        "--messages",
        type=_non_negative_int,
        required=True,
        help="number of messages (non-blank lines) to write",
    )
    generate.add_argument("--out", type=Path, required=True, help="path of the JSON Lines file")
    generate.add_argument(
        "--seed",
        type=_integer,
        default=0,
        help="random seed; the same seed gives the same file (default 0)",
    )
    generate.add_argument(
        "--bad-share",
        type=_share,
        default=0.01,
        help="share of malformed messages, from 0 to 1 (default 0.01)",
    )
    generate.set_defaults(command=_generate)

    run = commands.add_parser("run", help="run one batch file through the local AWS")
    run.add_argument("file", type=Path, help="the nightly batch, one CloudEvent per line")
    _add_local_arguments(run)
    run.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    run.add_argument(
        "--endpoint",
        help="use the local AWS that `ingest serve` started at this URL instead of starting one",
    )
    run.add_argument(
        "--stall-timeout",
        type=_seconds,
        default=120.0,
        metavar="SECONDS",
        help="fail when the execution shows no progress for this long (default 120)",
    )
    run.add_argument(
        "--timeout",
        type=_seconds,
        default=3600.0,
        metavar="SECONDS",
        help="fail when the execution has not finished after this long (default 3600)",
    )
    run.set_defaults(command=_run)

    serve = commands.add_parser("serve", help="keep the local AWS running and print its endpoint")
    _add_local_arguments(serve)
    serve.add_argument(
        "--port", type=_port, default=0, help="port on 127.0.0.1 to listen on (default: a free one)"
    )
    serve.set_defaults(command=_serve)
    return parser


def _add_local_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--template",
        type=Path,
        default=DEFAULT_TEMPLATE,
        help="SAM template to provision from (default: the project's template.yaml)",
    )
    parser.add_argument(
        "--max-concurrency",
        type=_positive_int,
        help="override the template's MaxConcurrency parameter",
    )
    parser.add_argument(
        "--slice-size",
        type=_positive_int,
        help="override the template's SliceSize parameter (messages per slice)",
    )
    parser.add_argument(
        "--log-dir",
        type=Path,
        help="directory for the local AWS logs (default: a new temporary directory)",
    )


def _generate(args: argparse.Namespace) -> int:
    from nightly_ingest.generate import generate_batch

    try:
        args.out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise IngestCliError(f"cannot create folder {args.out.parent}: {exc.strerror}") from exc
    try:
        with args.out.open("wb") as out:
            counts = generate_batch(
                out, messages=args.messages, seed=args.seed, bad_share=args.bad_share
            )
    except OSError as exc:
        raise IngestCliError(f"cannot write {args.out}: {exc.strerror}") from exc
    print(f"wrote {counts.messages} messages ({counts.bad} malformed) to {args.out}")
    return EXIT_OK


def _run(args: argparse.Namespace) -> int:
    from nightly_ingest.runner import RunOptions, run_batch

    batch_path: Path = args.file
    _check_readable(batch_path)
    console = Console(stderr=True)
    options = RunOptions(stall_timeout_s=args.stall_timeout, timeout_s=args.timeout)

    with _open_local(args) as local:
        try:
            if args.json:
                summary = run_batch(local, batch_path, options)
            else:
                summary = _run_with_progress(console, local, batch_path, options)
        except (BotoCoreError, OSError) as exc:
            raise RunFailedError(
                f"lost the local AWS at {local.endpoint}: {exc}; see {local.server_log}"
            ) from exc
        except RunFailedError as exc:
            if args.endpoint is None:
                raise
            raise RunFailedError(
                f"{exc} The execution may still be running on {args.endpoint}; "
                "stop it with StopExecution if it should not finish."
            ) from exc

    if args.json:
        print(json.dumps(summary.to_dict()))
    else:
        _print_summary(Console(), summary)
    return EXIT_OK if summary.reconciled else EXIT_RUN_FAILED


def _run_with_progress(console: Console, local: Any, batch_path: Path, options: Any) -> Any:
    from nightly_ingest.runner import run_batch

    columns = (
        TextColumn("[bold]slices"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[counts]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task("slices", total=None, counts="planning")

        def show(progress: Any) -> None:
            counts = (
                f"written {progress.written:,}  dead-lettered {progress.dead_lettered:,}  "
                f"{progress.rate:,.0f} msg/s"
            )
            bar.update(
                task, total=progress.slices_total, completed=progress.slices_done, counts=counts
            )

        return run_batch(local, batch_path, options, on_progress=show)


def _print_summary(console: Console, summary: Any) -> None:
    table = Table(title=f"Run {summary.run}", show_header=False)
    table.add_column("figure")
    table.add_column("value", justify="right", overflow="fold")
    rows = [
        ("status", summary.status),
        ("batch", summary.batch),
        ("slices", f"{summary.slices:,}"),
        ("messages read", f"{summary.read:,}"),
        ("written", f"{summary.written:,}"),
        ("dead-lettered", f"{summary.dead_lettered:,}"),
        ("duplicates collapsed", f"{summary.duplicates:,}"),
        ("table items", f"{summary.table_items:,}"),
        ("dead-letter queue messages", f"{summary.dlq_messages:,}"),
        ("duration", f"{summary.duration_s:.1f} s"),
        ("messages per second", f"{summary.messages_per_s:,.0f}"),
        ("execution environments started", f"{summary.environments_started}"),
        ("invocations", f"{summary.invocations:,}"),
        ("clients created", f"{summary.clients_created}"),
        ("connections opened", f"{summary.connections_opened}"),
    ]
    for label, value in rows:
        table.add_row(label, value)
    console.print(table)
    if summary.error:
        console.print(f"[red]error[/red] {summary.error}: {_first_line(summary.cause)}")
    for problem in summary.problems:
        console.print(f"[red]not reconciled[/red]: {problem}")
    if summary.reconciled:
        outcome = "every message read was written or dead-lettered"
        if summary.duplicates:
            outcome += ", or collapsed into a later line with the same key"
        console.print(f"[green]{outcome}[/green]")
    console.print(f"logs: {summary.log_dir}")


def _first_line(cause: str | None, limit: int = 300) -> str:
    """Return the start of an error cause; the whole cause is in the `--json` summary."""
    text = (cause or "").strip()
    try:
        # A Lambda error's cause is its JSON payload, stack trace included.
        text = json.loads(text).get("errorMessage", text)
    except (ValueError, AttributeError):
        pass
    first = str(text).splitlines()[0] if text else ""
    return first if len(first) <= limit else first[: limit - 1] + "…"


def _serve(args: argparse.Namespace) -> int:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with _start_local(args, port=args.port) as local:
        # One JSON line first, so that a script can read the endpoint and resource names.
        print(json.dumps({"endpoint": local.endpoint, "resources": local.resources}))
        print(f"local AWS at {local.endpoint}; press Ctrl+C to stop", flush=True)
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass
    return EXIT_OK


def _open_local(args: argparse.Namespace) -> Any:
    """Attach to the server at `--endpoint`, or start a local AWS of this command's own."""
    from nightly_ingest.local import LocalAWS, LocalAWSError

    if args.endpoint is None:
        return _start_local(args)
    server_options = [
        option
        for option, value in (
            ("--max-concurrency", args.max_concurrency),
            ("--slice-size", args.slice_size),
            ("--log-dir", args.log_dir),
            ("--template", args.template if args.template != DEFAULT_TEMPLATE else None),
        )
        if value is not None
    ]
    if server_options:
        raise IngestCliError(
            f"{', '.join(server_options)} set up a new local AWS; pass them to `ingest serve` "
            "instead of using them with --endpoint"
        )
    try:
        return LocalAWS.attach(args.endpoint)
    except LocalAWSError as exc:
        raise IngestCliError(str(exc)) from exc


def _start_local(args: argparse.Namespace, port: int = 0) -> Any:
    from nightly_ingest.local import LocalAWS, LocalAWSError

    if not args.template.exists():
        raise IngestCliError(f"template not found: {args.template}")
    if not args.template.is_file():
        raise IngestCliError(f"template is not a file: {args.template}")
    overrides = {}
    if args.max_concurrency is not None:
        overrides["MaxConcurrency"] = str(args.max_concurrency)
    if args.slice_size is not None:
        overrides["SliceSize"] = str(args.slice_size)
    log_dir = args.log_dir or Path(tempfile.mkdtemp(prefix="ingest-local-"))
    try:
        log_dir.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=log_dir)
    except OSError as exc:
        raise IngestCliError(f"cannot write logs to {log_dir}: {exc.strerror}") from exc
    probe.close()
    local = LocalAWS(args.template, log_dir, parameter_overrides=overrides, port=port)
    try:
        local.start()
    except LocalAWSError as exc:
        local.stop()
        raise IngestCliError(f"the local AWS did not start: {exc}") from exc
    return local


def _check_readable(path: Path) -> None:
    if not path.exists():
        raise IngestCliError(f"batch file not found: {path}")
    if not path.is_file():
        raise IngestCliError(f"batch path is not a file: {path}")
    try:
        with path.open("rb") as handle:
            handle.read(1)
    except OSError as exc:
        raise IngestCliError(f"cannot read batch file {path}: {exc.strerror}") from exc


def _positive_int(text: str) -> int:
    value = _integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer of at least 1, got {text}")
    return value


def _non_negative_int(text: str) -> int:
    value = _integer(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer of at least 0, got {text}")
    return value


def _port(text: str) -> int:
    value = _integer(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port from 0 to 65535, got {text}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text}")
    return value


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a share from 0 to 1, got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a share from 0 to 1, got {text}")
    return value


if __name__ == "__main__":
    sys.exit(main())
