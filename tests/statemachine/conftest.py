"""Fixtures for the state machine tests: the Step Functions endpoint and fault injection.

Unless INGEST_SFN_ENDPOINT is set, the session starts the local AWS from template.yaml with
small slices. With it set, the tests run against that endpoint (see docs/testing.md).
"""

from __future__ import annotations

import ipaddress
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import boto3
import pytest
from botocore.config import Config

from nightly_ingest.local import LocalAWS, LocalAWSError

from .harness import Engine

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"
# Three messages a slice and two slices at a time keep runs short while every batch still has
# more slices than the Map runs at once.
PARAMETER_OVERRIDES = {"SliceSize": "3", "MaxConcurrency": "2"}
ENDPOINT_VARIABLE = "INGEST_SFN_ENDPOINT"
AWS_ENDPOINT_VARIABLE = "INGEST_AWS_ENDPOINT"
OUTPUTS_VARIABLE = "INGEST_STACK_OUTPUTS"
REQUIRED_OUTPUTS = (
    "BatchBucketName",
    "IngestTableName",
    "LedgerTableName",
    "DeadLetterQueueUrl",
    "StateMachineArn",
)


@pytest.fixture(scope="session")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """Yield the Step Functions endpoint under test, started by the session unless one is set."""
    endpoint = os.environ.get(ENDPOINT_VARIABLE)
    if not endpoint:
        log_dir = tmp_path_factory.mktemp("statemachine-logs")
        with LocalAWS(TEMPLATE, log_dir, PARAMETER_OVERRIDES) as local:
            yield _local_engine(local)
        return

    _check_on_this_machine(endpoint, ENDPOINT_VARIABLE)
    try:
        local = LocalAWS.attach(endpoint)
    except LocalAWSError:
        # Not a local AWS of this project, such as Step Functions Local or LocalStack.
        yield _other_engine(endpoint)
        return
    yield _local_engine(local)


@pytest.fixture
def faults(engine: Engine) -> Iterator[LocalAWS]:
    """Yield the local AWS for fault injection, with no rule before or after the test.

    Skips the test when the endpoint is not a local AWS of this project.
    """
    local = engine.require_local("Fault injection")
    local.clear_faults()
    yield local
    local.clear_faults()


def _local_engine(local: LocalAWS) -> Engine:
    resources = local.resources
    return Engine(
        stepfunctions=local.client("stepfunctions"),
        s3=local.client("s3"),
        dynamodb=local.client("dynamodb"),
        sqs=local.client("sqs"),
        state_machine_arn=resources["IngestStateMachine"],
        bucket=resources["BatchBucket"],
        table=resources["IngestTable"],
        ledger_table=resources["LedgerTable"],
        queue_url=resources["DeadLetterQueue"],
        local=local,
    )


def _other_engine(endpoint: str) -> Engine:
    aws_endpoint = os.environ.get(AWS_ENDPOINT_VARIABLE) or endpoint
    _check_on_this_machine(aws_endpoint, AWS_ENDPOINT_VARIABLE)
    outputs = _stack_outputs()
    region = outputs["StateMachineArn"].split(":")[3]
    session = boto3.session.Session(
        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "test"),
        aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "test"),
        region_name=region,
    )
    config = Config(proxies={})

    def client(service: str, url: str) -> Any:
        return session.client(service, endpoint_url=url, config=config)  # type: ignore[call-overload]

    return Engine(
        stepfunctions=client("stepfunctions", endpoint),
        s3=client("s3", aws_endpoint),
        dynamodb=client("dynamodb", aws_endpoint),
        sqs=client("sqs", aws_endpoint),
        state_machine_arn=outputs["StateMachineArn"],
        bucket=outputs["BatchBucketName"],
        table=outputs["IngestTableName"],
        ledger_table=outputs["LedgerTableName"],
        queue_url=outputs["DeadLetterQueueUrl"],
    )


def _stack_outputs() -> dict[str, str]:
    """Read the stack outputs file, as a JSON object or as CloudFormation's list of outputs."""
    path = os.environ.get(OUTPUTS_VARIABLE)
    if not path:
        raise pytest.UsageError(
            f"{ENDPOINT_VARIABLE} is not a local AWS of this project, so {OUTPUTS_VARIABLE} must "
            "name a JSON file with the stack outputs "
            f"({', '.join(REQUIRED_OUTPUTS)})."
        )
    document = json.loads(Path(path).read_text(encoding="utf-8"))
    if isinstance(document, list):
        document = {output["OutputKey"]: output["OutputValue"] for output in document}
    missing = [name for name in REQUIRED_OUTPUTS if name not in document]
    if missing:
        raise pytest.UsageError(f"{OUTPUTS_VARIABLE} file {path} has no {', '.join(missing)}.")
    return {name: str(document[name]) for name in REQUIRED_OUTPUTS}


def _check_on_this_machine(url: str, variable: str) -> None:
    """Reject an endpoint on another host, because the tests write to and drain its resources."""
    host = urlparse(url).hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise pytest.UsageError(
            f"{variable} is {url}, which is not on this machine. The tests upload batches and "
            "delete dead-letter messages, so they run only against localhost, 127.0.0.1 or ::1."
        )
