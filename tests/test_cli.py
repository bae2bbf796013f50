"""The `ingest` command's handling of bad arguments and inputs, without a long run."""

from __future__ import annotations

from pathlib import Path

import pytest

from nightly_ingest.cli import main


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        pytest.param(
            ["run", "batch.jsonl", "--timeout", "-5"],
            "argument --timeout: expected a positive number of seconds, got -5",
            id="negative-timeout",
        ),
        pytest.param(
            ["run", "batch.jsonl", "--stall-timeout", "nan"],
            "argument --stall-timeout: expected a positive number of seconds, got nan",
            id="nan-stall-timeout",
        ),
        pytest.param(
            ["run", "batch.jsonl", "--slice-size", "abc"],
            "argument --slice-size: expected an integer, got 'abc'",
            id="text-slice-size",
        ),
        pytest.param(
            ["run", "batch.jsonl", "--max-concurrency", "0"],
            "argument --max-concurrency: expected an integer of at least 1, got 0",
            id="zero-concurrency",
        ),
        pytest.param(
            ["serve", "--port", "70000"],
            "argument --port: expected a port from 0 to 65535, got 70000",
            id="port-out-of-range",
        ),
        pytest.param(
            ["generate", "--messages", "10", "--out", "x", "--bad-share", "1.5"],
            "argument --bad-share: expected a share from 0 to 1, got 1.5",
            id="share-above-one",
        ),
    ],
)
def test_cli_invalid_argument_exits_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)

    assert exit_info.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1].endswith(f"error: {message}")


def _batch(tmp_path: Path) -> Path:
    batch = tmp_path / "batch.jsonl"
    batch.write_text("\n")
    return batch


def test_cli_run_endpoint_with_server_options_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["run", str(_batch(tmp_path)), "--endpoint", "http://127.0.0.1:9", "--slice-size", "5"]

    code = main(argv)

    assert code == 2
    assert capsys.readouterr().err == (
        "ingest: error: --slice-size set up a new local AWS; pass them to `ingest serve` "
        "instead of using them with --endpoint\n"
    )


def test_cli_run_log_dir_is_file_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log_file = tmp_path / "logs"
    log_file.write_text("")

    code = main(["run", str(_batch(tmp_path)), "--log-dir", str(log_file)])

    assert code == 2
    assert (
        capsys.readouterr().err == f"ingest: error: cannot write logs to {log_file}: File exists\n"
    )


def test_cli_run_template_not_utf8_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    template = tmp_path / "template.yaml"
    template.write_bytes(b"Resources:\n  \xff\xfe: {}\n")

    code = main(["run", str(_batch(tmp_path)), "--template", str(template)])

    error = capsys.readouterr().err
    assert code == 2
    assert error.startswith(
        f"ingest: error: the local AWS did not start: Template {template} is not UTF-8 text: "
        "invalid byte at offset 13"
    )
    assert "Traceback" not in error
    assert error.count("\n") == 1


def test_cli_run_endpoint_without_server_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["run", str(_batch(tmp_path)), "--endpoint", "http://127.0.0.1:9"])

    error = capsys.readouterr().err
    assert code == 2
    assert error.startswith("ingest: error: No local AWS responds at http://127.0.0.1:9")
    assert error.count("\n") == 1
