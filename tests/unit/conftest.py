"""Fixtures for the unit tests: in-process moto, handler loading and message factories."""

import copy
import importlib.util
import json
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
from moto import mock_aws

FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"
REGION = "us-east-1"
ACCOUNT = "123456789012"
BUCKET = "nightly-ingest-batches"
TABLE = "nightly-ingest-events"
LEDGER = "nightly-ingest-ledger"
QUEUE = "nightly-ingest-dead-letters"
QUEUE_URL = f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{QUEUE}"
MAX_MESSAGE_BYTES = 262144
RUN = "nightly-20240501"
EXECUTION = (
    f"arn:aws:states:{REGION}:{ACCOUNT}:execution:nightly-ingest-ingest/"
    "ProcessSlices:7d1c3e52-0f5b-4d7e-9a51-2b8f3c6d9e01"
)
BATCH_KEY = "incoming/nightly-20240501.jsonl"


def pytest_configure(config: pytest.Config) -> None:
    # Metrics.log_metrics warns when a handler raises before it adds a metric, which several
    # tests make it do on purpose.
    config.addinivalue_line(
        "filterwarnings", "ignore:No application metrics to publish:UserWarning"
    )


@pytest.fixture(autouse=True)
def aws_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Point boto3 at fake credentials and give the handlers the variables template.yaml sets."""
    for name in list(os.environ):
        if name.startswith(("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_CONFIG_FILE")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "nightly-ingest")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "NightlyIngest")
    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "INFO")
    monkeypatch.setenv("BATCH_BUCKET", BUCKET)
    monkeypatch.setenv("DEAD_LETTER_QUEUE_URL", QUEUE_URL)
    monkeypatch.setenv("DEAD_LETTER_MAX_BYTES", str(MAX_MESSAGE_BYTES))
    monkeypatch.setenv("TABLE_NAME", TABLE)
    monkeypatch.setenv("LEDGER_TABLE_NAME", LEDGER)
    monkeypatch.setenv("WRITE_BASE_DELAY_SECONDS", "0")


@dataclass(frozen=True)
class Names:
    """Resource names and ids that the fixtures set up and that expected values repeat."""

    bucket: str = BUCKET
    table: str = TABLE
    ledger: str = LEDGER
    queue_url: str = QUEUE_URL
    max_message_bytes: int = MAX_MESSAGE_BYTES
    run: str = RUN
    execution: str = EXECUTION
    batch_key: str = BATCH_KEY


@pytest.fixture
def names() -> Names:
    return Names()


@dataclass
class Aws:
    """Clients on the mocked account, for arranging and inspecting."""

    s3: Any
    sqs: Any
    dynamodb: Any

    def put_batch(self, body: bytes, key: str = BATCH_KEY) -> dict[str, Any]:
        """Store a batch object and return it as Plan describes it."""
        self.s3.put_object(Bucket=BUCKET, Key=key, Body=body)
        head = self.s3.head_object(Bucket=BUCKET, Key=key)
        return {"bucket": BUCKET, "key": key, "size": len(body), "etag": head["ETag"]}

    def read_object(self, key: str) -> bytes:
        return self.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()

    def dead_letters(self) -> list[tuple[dict[str, Any], dict[str, str]]]:
        """Receive every message of the queue as (body, attributes), ordered by line."""
        received = []
        while True:
            response = self.sqs.receive_message(
                QueueUrl=QUEUE_URL, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
            )
            messages = response.get("Messages", [])
            if not messages:
                break
            for message in messages:
                attributes = {
                    name: value["StringValue"]
                    for name, value in message.get("MessageAttributes", {}).items()
                }
                received.append((json.loads(message["Body"]), attributes))
        return sorted(received, key=lambda letter: letter[0].get("line", 0))

    def table_items(self, table: str = TABLE) -> list[dict[str, Any]]:
        """Scan a table with the resource API, so that numbers come back as Decimal."""
        resource = boto3.resource("dynamodb", region_name=REGION)
        items = resource.Table(table).scan(ConsistentRead=True)["Items"]
        return sorted(items, key=lambda item: (item.get("source", ""), str(item.get("id", ""))))


@pytest.fixture
def aws() -> Iterator[Aws]:
    """Start moto in process and create the bucket, tables and queue of template.yaml."""
    # Keeping boto3's default session keeps its loaded service models, which makes creating a
    # client much faster than with a fresh session in every test.
    with mock_aws(config={"core": {"reset_boto3_session": False}}):
        s3 = boto3.client("s3", region_name=REGION)
        sqs = boto3.client("sqs", region_name=REGION)
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)
        sqs.create_queue(QueueName=QUEUE, Attributes={"MaximumMessageSize": str(MAX_MESSAGE_BYTES)})
        _create_table(dynamodb, TABLE, ("source", "S"), ("id", "S"))
        _create_table(dynamodb, LEDGER, ("run", "S"), ("slice", "N"))
        yield Aws(s3=s3, sqs=sqs, dynamodb=dynamodb)


def _create_table(client: Any, name: str, hash_key: tuple[str, str], range_key: tuple[str, str]):
    client.create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": hash_key[0], "AttributeType": hash_key[1]},
            {"AttributeName": range_key[0], "AttributeType": range_key[1]},
        ],
        KeySchema=[
            {"AttributeName": hash_key[0], "KeyType": "HASH"},
            {"AttributeName": range_key[0], "KeyType": "RANGE"},
        ],
    )


@pytest.fixture
def load_handler(aws: Aws, monkeypatch: pytest.MonkeyPatch) -> Callable[..., ModuleType]:
    """Import a function's app.py afresh, after setting extra environment variables.

    Each import runs the module-level code again, so the clients see the mocked account and the
    environment of the test.
    """

    def load(function: str, **environment: str) -> ModuleType:
        for name, value in environment.items():
            monkeypatch.setenv(name, value)
        monkeypatch.syspath_prepend(str(FUNCTIONS / function))
        module_name = f"{function}_app"
        spec = importlib.util.spec_from_file_location(module_name, FUNCTIONS / function / "app.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        monkeypatch.setitem(sys.modules, module_name, module)
        spec.loader.exec_module(module)
        return module

    return load


@dataclass
class FakeLambdaContext:
    """The parts of the Lambda context object that the handlers and Powertools read."""

    function_name: str = "nightly-ingest-function"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = (
        f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:nightly-ingest-function"
    )
    aws_request_id: str = "6f0c8d0a-3b8e-4f4e-9d55-0c7d8f0e2a11"
    remaining_millis: int = 60_000

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_millis


@pytest.fixture
def context() -> FakeLambdaContext:
    return FakeLambdaContext()


# Valid data for each event type, with nested objects, arrays, optional fields and decimals.
_DATA: dict[str, dict[str, Any]] = {
    "com.example.order.placed": {
        "order_id": "ord_8f3k2m9q",
        "customer": {
            "customer_id": "cus_5t7y9u1i",
            "email": "ada@example.org",
            "loyalty_tier": "gold",
        },
        "lines": [
            {"sku": "MUG-BLUE-350", "name": "Blue mug", "quantity": 2, "unit_price": 12.5},
            {"sku": "TEA-EARLGREY", "quantity": 1, "unit_price": 7.99, "discount": 0.8},
        ],
        "currency": "EUR",
        "total": 36.18,
        "shipping": {
            "method": "standard",
            "cost": 4.99,
            "address": {
                "line1": "Keizersgracht 1",
                "city": "Amsterdam",
                "postal_code": "1015 CJ",
                "country": "NL",
            },
        },
        "metadata": {"campaign": "spring-sale"},
        "placed_at": "2024-05-01T21:14:03.512Z",
    },
    "com.example.payment.captured": {
        "payment_id": "pay_3j5k7l9m",
        "order_id": "ord_8f3k2m9q",
        "amount": {"value": 36.18, "currency": "EUR"},
        "method": {
            "kind": "card",
            "card": {"brand": "visa", "last4": "4242", "expiry_month": 9, "expiry_year": 2027},
        },
        "fees": [{"kind": "processing", "amount": {"value": 0.54, "currency": "EUR"}}],
        "risk_score": 12.75,
        "captured_at": "2024-05-01T21:14:09+02:00",
    },
    "com.example.shipment.dispatched": {
        "shipment_id": "shp_1q2w3e4r",
        "order_id": "ord_8f3k2m9q",
        "carrier": "postnl",
        "service_level": "standard",
        "tracking_number": "3SABCD123456789",
        "parcels": [
            {
                "parcel_id": "P1",
                "weight_kg": 1.25,
                "dimensions_cm": {"length": 30, "width": 20, "height": 10.5},
                "items": [{"sku": "MUG-BLUE-350", "quantity": 2}],
            }
        ],
        "destination": {"city": "Amsterdam", "postal_code": "1015 CJ", "country": "NL"},
        "estimated_delivery": {"earliest": "2024-05-03", "latest": "2024-05-04"},
        "dispatched_at": "2024-05-02T07:30:00Z",
    },
}
EVENT_TYPES = tuple(_DATA)
SOURCES = {
    "com.example.order.placed": "https://shop.example.com/orders",
    "com.example.payment.captured": "https://shop.example.com/payments",
    "com.example.shipment.dispatched": "https://shop.example.com/warehouse",
}


def make_event(
    event_type: str = "com.example.order.placed", event_id: str = "evt-0001", **attributes: Any
) -> dict[str, Any]:
    """Build a valid CloudEvent of `event_type`; keyword arguments replace envelope attributes."""
    event = {
        "specversion": "1.0",
        "id": event_id,
        "source": SOURCES.get(event_type, "https://shop.example.com/other"),
        "type": event_type,
        "time": "2024-05-01T21:14:03Z",
        "datacontenttype": "application/json",
        "data": copy.deepcopy(_DATA.get(event_type, {})),
    }
    event.update(attributes)
    return event


def to_line(event: Any) -> str:
    """Render an event as one batch line; floats print as their shortest exact decimal."""
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False)


def whole_object_slice(body: bytes, index: int = 0) -> dict[str, Any]:
    """Describe the whole object as one slice, counting lines the way docs/design.md does."""
    lines = body.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    bom = b"\xef\xbb\xbf"
    messages = sum(
        1
        for number, line in enumerate(lines, 1)
        if (line[3:] if number == 1 and line.startswith(bom) else line).strip(b" \t\r")
    )
    return {
        "index": index,
        "first_line": 1,
        "last_line": len(lines),
        "start_byte": 0,
        "end_byte": len(body) - 1,
        "messages": messages,
    }


@pytest.fixture(name="make_event")
def make_event_fixture() -> Callable[..., dict[str, Any]]:
    """Factory of valid CloudEvents: make_event(event_type, event_id, **attributes)."""
    return make_event


@pytest.fixture(name="make_line")
def make_line_fixture() -> Callable[..., str]:
    """Factory of valid batch lines: make_line(event_type, event_id, **attributes)."""
    return lambda *args, **attributes: to_line(make_event(*args, **attributes))


@pytest.fixture(name="whole_object_slice")
def whole_object_slice_fixture() -> Callable[..., dict[str, Any]]:
    return whole_object_slice
