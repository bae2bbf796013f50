"""Tests of client configuration and reuse: ingest_common/clients.py and the handlers."""

import json

import botocore.session
import pytest
from botocore.exceptions import (
    ClientError,
    EndpointConnectionError,
    ParamValidationError,
    ReadTimeoutError,
)

from ingest_common.clients import create_client, is_retryable


def test_clients_config_explicit_timeouts_and_retries():
    client = create_client("s3")

    config = client.meta.config
    assert config.connect_timeout == 5
    assert config.read_timeout == 20
    assert config.retries == {"mode": "standard", "total_max_attempts": 4}
    assert config.max_pool_connections == 2


def _client_error(code, status=400):
    return ClientError(
        {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "Operation",
    )


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        pytest.param(_client_error("SlowDown", 503), True, id="s3-slow-down"),
        pytest.param(_client_error("ProvisionedThroughputExceededException"), True,
                     id="dynamodb-throughput"),
        pytest.param(_client_error("ThrottlingException"), True, id="throttling"),
        pytest.param(_client_error("Whatever", 502), True, id="bad-gateway"),
        pytest.param(EndpointConnectionError(endpoint_url="https://x"), True, id="no-connection"),
        pytest.param(ReadTimeoutError(endpoint_url="https://x"), True, id="read-timeout"),
        pytest.param(_client_error("AccessDenied", 403), False, id="access-denied"),
        pytest.param(_client_error("NoSuchKey", 404), False, id="no-such-key"),
        pytest.param(_client_error("ValidationException"), False, id="validation"),
        pytest.param(ParamValidationError(report="bad"), False, id="parameter-validation"),
        pytest.param(ValueError("x"), False, id="not-botocore"),
    ],
)  # fmt: skip
def test_clients_is_retryable(error, expected):
    assert is_retryable(error) is expected


@pytest.fixture
def created_clients(monkeypatch):
    """Count the botocore clients created from now on, by service name."""
    created = []
    original = botocore.session.Session.create_client

    def create_client(self, service_name, *args, **kwargs):
        created.append(service_name)
        return original(self, service_name, *args, **kwargs)

    monkeypatch.setattr(botocore.session.Session, "create_client", create_client)
    return created


def test_clients_handlers_reuse_module_clients(aws, names, load_handler, context, make_line,
                                               created_clients):  # fmt: skip
    # GIVEN the four handlers, imported once, and a batch of two valid messages and one invalid
    handlers = {name: load_handler(name) for name in ("plan", "parse", "write", "reconcile")}
    assert sorted(created_clients) == ["dynamodb", "dynamodb", "s3", "s3", "s3", "sqs", "sqs"]
    created_clients.clear()
    body = "\n".join([make_line(event_id="evt-1"), "{", make_line(event_id="evt-2")]).encode()
    aws.put_batch(body)

    # WHEN the whole run goes through every handler five times, as the state machine would
    for _ in range(5):
        output = _run_pipeline(aws, names, handlers, context)

    # THEN no invocation created a client, and the run adds up
    assert created_clients == []
    assert output["read"] == 3
    assert output["written"] == 2
    assert output["dead_lettered"] == 1


def _run_pipeline(aws, names, handlers, context):
    plan_event = {"run": names.run, "bucket": names.bucket, "key": names.batch_key,
                  "slice_size": 2}  # fmt: skip
    plan = handlers["plan"].handler(plan_event, context)
    for slice_ in json.loads(aws.read_object(plan["manifest"]["key"])):
        event = {"run": names.run, "execution": names.execution, "batch": plan["batch"],
                 "slice": slice_}  # fmt: skip
        event["parsed"] = handlers["parse"].handler(event, context)
        outcome = {**handlers["write"].handler(event, context), "failed_state": None}
        # Stored as the RecordOutcome state stores it.
        aws.dynamodb.put_item(
            TableName=names.ledger,
            Item={
                "run": {"S": names.run},
                "slice": {"N": str(slice_["index"])},
                "outcome": {"S": json.dumps(outcome)},
                "execution": {"S": names.execution},
            },
        )
    reconcile_event = {"run": names.run, "batch": plan["batch"], "slices": plan["slices"],
                       "messages": plan["messages"]}  # fmt: skip
    return handlers["reconcile"].handler(reconcile_event, context)
