"""End-to-end: `ingest generate`, `ingest serve` and `ingest run` as a user runs them."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import pytest
from boto3.dynamodb.types import TypeDeserializer

pytestmark = pytest.mark.e2e

MESSAGES = 3000
BAD_SHARE = 0.04
SEED = 7
INGEST = [sys.executable, "-m", "nightly_ingest.cli"]


@pytest.fixture(scope="module")
def batch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("batch") / "nightly.jsonl"
    result = subprocess.run(
        [
            *INGEST,
            "generate",
            "--messages",
            str(MESSAGES),
            "--out",
            str(path),
            "--seed",
            str(SEED),
            "--bad-share",
            str(BAD_SHARE),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return path


@pytest.fixture
def served(tmp_path: Path):
    """Start `ingest serve` and yield its endpoint and resources; stop it afterwards."""
    process = subprocess.Popen(
        [
            *INGEST,
            "serve",
            "--slice-size",
            "400",
            "--max-concurrency",
            "2",
            "--log-dir",
            str(tmp_path / "logs"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first_line = process.stdout.readline()
        assert first_line, process.stderr.read()
        info = json.loads(first_line)
        yield info
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
    assert process.returncode == 0


def _client(info: dict[str, Any], service: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=info["endpoint"],
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


def _lines(path: Path) -> list[bytes]:
    """Return the physical lines of the batch without their line endings."""
    return [line.rstrip(b"\r") for line in path.read_bytes().split(b"\n")]


def _expected_items(lines: list[bytes], bad_lines: set[int]) -> dict[tuple[str, str], Any]:
    items = {}
    for number, line in enumerate(lines, start=1):
        if number in bad_lines or not line.strip():
            continue
        event = json.loads(line, parse_float=Decimal, parse_int=Decimal)
        items[(event["source"], event["id"])] = event
    return items


def _bad_lines(path: Path) -> set[int]:
    from nightly_ingest.generate import generate_batch

    with open(os.devnull, "wb") as sink:
        counts = generate_batch(sink, messages=MESSAGES, seed=SEED, bad_share=BAD_SHARE)
    return set(counts.bad_lines)


def _scan_items(ddb: Any, table: str) -> dict[tuple[str, str], Any]:
    deserializer = TypeDeserializer()
    items = {}
    for page in ddb.get_paginator("scan").paginate(TableName=table):
        for raw in page["Items"]:
            item = {name: deserializer.deserialize(value) for name, value in raw.items()}
            items[(item["source"], item["id"])] = item
    return items


def _drain_queue(sqs: Any, queue_url: str) -> list[dict[str, Any]]:
    messages = []
    for _ in range(1000):
        response = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=10,
            MessageAttributeNames=["All"],
            VisibilityTimeout=600,
        )
        batch = response.get("Messages", [])
        if not batch:
            return messages
        messages.extend(batch)
    raise AssertionError("dead-letter queue did not drain within 1000 receives")


def _original_bytes(s3: Any, body: dict[str, Any]) -> bytes:
    if "message" in body:
        return body["message"].encode()
    if "message_base64" in body:
        return base64.b64decode(body["message_base64"])
    pointer = body["message_s3"]
    return s3.get_object(Bucket=pointer["bucket"], Key=pointer["key"])["Body"].read()


def test_ingest_run_batch_lands_every_message_once(batch: Path, served: dict[str, Any]) -> None:
    # GIVEN a generated batch with malformed messages and a running local AWS
    lines = _lines(batch)
    bad_lines = _bad_lines(batch)
    resources = served["resources"]

    # WHEN the batch runs through the command line against it
    result = subprocess.run(
        [*INGEST, "run", str(batch), "--endpoint", served["endpoint"], "--json"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )

    # THEN the run succeeds and reconciles
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    expected_items = _expected_items(lines, bad_lines)
    assert summary["status"] == "SUCCEEDED"
    assert summary["read"] == MESSAGES
    assert summary["written"] == len(expected_items)
    assert summary["dead_lettered"] == len(bad_lines)
    assert summary["table_items"] == len(expected_items)
    assert summary["dlq_messages"] == len(bad_lines)
    assert summary["slices"] == 8
    assert summary["clients_created"] <= 3 * summary["environments_started"]

    # AND the table contains exactly the valid messages
    s3 = _client(served, "s3")
    assert _scan_items(_client(served, "dynamodb"), resources["IngestTable"]) == expected_items

    # AND the dead-letter queue contains exactly the malformed lines, each once
    messages = _drain_queue(_client(served, "sqs"), resources["DeadLetterQueue"])
    bodies = [json.loads(message["Body"]) for message in messages]
    by_line = {body["line"]: body for body in bodies}
    assert len(by_line) == len(bodies)
    assert set(by_line) == bad_lines
    for number, body in by_line.items():
        assert _original_bytes(s3, body) == lines[number - 1], f"line {number}"
        assert body["state"] == "Parse"
        assert body["batch"] == {
            "bucket": resources["BatchBucket"],
            "key": f"incoming/{summary['run']}/{batch.name}",
        }
    for message, body in zip(messages, bodies, strict=True):
        assert message["MessageAttributes"]["error_type"]["StringValue"] == body["error"]


def test_ingest_run_missing_file_exits_2(tmp_path: Path) -> None:
    result = subprocess.run(
        [*INGEST, "run", str(tmp_path / "absent.jsonl")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == f"ingest: error: batch file not found: {tmp_path / 'absent.jsonl'}\n"


def test_ingest_run_bad_template_exits_2(tmp_path: Path, batch: Path) -> None:
    template = tmp_path / "template.yaml"
    template.write_text("Resources:\n  Topic:\n    Type: AWS::SNS::Topic\n")

    result = subprocess.run(
        [*INGEST, "run", str(batch), "--template", str(template)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 2
    assert result.stderr.startswith("ingest: error: ")
    assert "AWS::SNS::Topic" in result.stderr
    assert "Traceback" not in result.stderr


def test_ingest_run_empty_batch_succeeds(tmp_path: Path) -> None:
    # GIVEN an empty batch file, which uploads as an empty object
    batch = tmp_path / "empty.jsonl"
    batch.write_bytes(b"")

    # WHEN it runs
    result = subprocess.run(
        [*INGEST, "run", str(batch), "--json", "--log-dir", str(tmp_path / "logs")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    # THEN the run has nothing to account for and succeeds
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["status"] == "SUCCEEDED"
    assert summary["slices"] == 0
    assert summary["read"] == 0
    assert summary["table_items"] == 0
    assert summary["dlq_messages"] == 0


def test_ingest_run_all_malformed_dead_letters_each(tmp_path: Path) -> None:
    # GIVEN a batch in which every message is malformed, so Parse stages an empty object
    batch = tmp_path / "all-bad.jsonl"
    generated = subprocess.run(
        [*INGEST, "generate", "--messages", "300", "--out", str(batch), "--bad-share", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert generated.returncode == 0, generated.stderr

    # WHEN it runs in slices of 100
    result = subprocess.run(
        [
            *INGEST,
            "run",
            str(batch),
            "--json",
            "--slice-size",
            "100",
            "--log-dir",
            str(tmp_path / "logs"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    # THEN each message is dead-lettered on its own and nothing is written
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["status"] == "SUCCEEDED"
    assert summary["slices"] == 3
    assert summary["read"] == 300
    assert summary["written"] == 0
    assert summary["dead_lettered"] == 300
    assert summary["dlq_messages"] == 300
    assert summary["table_items"] == 0
