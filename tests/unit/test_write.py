"""Tests of the Write state: functions/write/app.py."""

import json
import logging
from decimal import Decimal

import pytest
from botocore.stub import Stubber

from ingest_common.errors import TransientError


def _line(value) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def _as_item(line: bytes):
    """Return the table item expected for a valid message line: the event, numbers as Decimal."""
    return json.loads(line, parse_float=Decimal, parse_int=Decimal)


def _sorted(items):
    return sorted(items, key=lambda item: (item["source"], item["id"]))


@pytest.fixture
def write(load_handler):
    return load_handler("write")


@pytest.fixture
def ingest(aws, names, load_handler, write, context, whole_object_slice):
    """Store `body` as the batch and run Parse, then Write, on one slice covering all of it.

    `write_module` replaces the Write module for a test that loads it with its own settings.
    Returns the Write input and output, so that a test can run Write again.
    """
    parse = load_handler("parse")

    def run(body: bytes, write_module=write):
        batch = aws.put_batch(body)
        event = {
            "run": names.run,
            "execution": names.execution,
            "batch": batch,
            "slice": whole_object_slice(body),
        }
        event["parsed"] = parse.handler(event, context)
        return event, write_module.handler(event, context)

    return run


@pytest.fixture
def batch_write_calls(write, monkeypatch):
    """Record the item ids of every BatchWriteItem request, and let a test drop some items.

    Items whose id is in `calls.unprocessed` are returned as UnprocessedItems and not written.
    """

    class Calls(list):
        unprocessed: set[str] = set()

    calls = Calls()
    send = write.dynamodb.batch_write_item

    def batch_write_item(RequestItems):  # noqa: N803 (boto3 parameter name)
        [(table, requests)] = RequestItems.items()
        calls.append([request["PutRequest"]["Item"]["id"]["S"] for request in requests])
        forwarded = [
            r for r in requests if r["PutRequest"]["Item"]["id"]["S"] not in calls.unprocessed
        ]
        dropped = [r for r in requests if r not in forwarded]
        response = send(RequestItems={table: forwarded}) if forwarded else {"UnprocessedItems": {}}
        if dropped:
            response["UnprocessedItems"] = {table: dropped}
        return response

    monkeypatch.setattr(write.dynamodb, "batch_write_item", batch_write_item)
    return calls


def test_write_valid_slice_exact_items(aws, ingest, make_event):
    # GIVEN one valid message of each event type
    lines = [
        _line(make_event("com.example.order.placed", "evt-1")),
        _line(make_event("com.example.payment.captured", "evt-2")),
        _line(make_event("com.example.shipment.dispatched", "evt-3")),
    ]

    # WHEN Parse and Write run on them
    _, output = ingest(b"\n".join(lines) + b"\n")

    # THEN the table contains exactly the three events, envelope and data
    assert output == {"read": 3, "written": 3, "dead_lettered": 0, "duplicates": 0}
    assert aws.table_items() == _sorted([_as_item(line) for line in lines])
    assert aws.dead_letters() == []


def test_write_decimal_numbers_round_trip_exactly(aws, names, ingest, make_event):
    # GIVEN numbers that a float would change: 38 digits, tiny and huge magnitudes, "12.50"
    numbers = {
        "total": "12345678901234567890123456789012345678",
        "discount": "0.1000000000000000000000000000000000001",
        "cost": "12.50",
        "smallest": "1E-130",
        "largest": "-9.9999999999999999999999999999999999999E+125",
    }
    event = make_event(sequence=0, smallest=0, largest=0)
    event["data"]["shipping"]["cost"] = 0
    event["data"]["lines"][1]["discount"] = 0
    line = (
        _line(event)
        .replace(b'"total":36.18', b'"total":' + numbers["total"].encode())
        .replace(b'"discount":0', b'"discount":' + numbers["discount"].encode())
        .replace(b'"cost":0', b'"cost":' + numbers["cost"].encode())
        .replace(b'"smallest":0', b'"smallest":' + numbers["smallest"].encode())
        .replace(b'"largest":0', b'"largest":' + numbers["largest"].encode())
    )

    # WHEN Parse and Write run on it
    _, output = ingest(line + b"\n")

    # THEN the item equals the message read with Decimal, and each number's text is unchanged
    assert output["written"] == 1
    assert aws.table_items() == [_as_item(line)]
    stored = aws.dynamodb.get_item(
        TableName=names.table,
        Key={"source": {"S": event["source"]}, "id": {"S": event["id"]}},
    )["Item"]
    data = stored["data"]["M"]
    assert data["total"] == {"N": numbers["total"]}
    assert data["lines"]["L"][1]["M"]["discount"] == {"N": numbers["discount"]}
    assert data["shipping"]["M"]["cost"] == {"N": numbers["cost"]}
    assert stored["smallest"] == {"N": numbers["smallest"]}
    assert stored["largest"] == {"N": numbers["largest"]}


def test_write_duplicate_keys_later_line_wins(aws, ingest, make_event, caplog):
    # GIVEN evt-1 on lines 1, 3 and 5 with different totals, and evt-2 on line 2
    first, third, fifth = (
        _line(make_event(event_id="evt-1", data={**make_event()["data"], "total": total}))
        for total in (10, 30, 50)
    )
    other = _line(make_event(event_id="evt-2"))
    caplog.set_level(logging.WARNING)

    # WHEN Parse and Write run on the slice
    _, output = ingest(b"\n".join([first, other, third, b"", fifth]) + b"\n")

    # THEN the table keeps line 5, and each replaced line is counted and logged
    assert output == {"read": 4, "written": 2, "dead_lettered": 0, "duplicates": 2}
    assert aws.table_items() == _sorted([_as_item(fifth), _as_item(other)])
    warnings = [
        (record.source, record.id, record.earlier_line, record.later_line)
        for record in caplog.records
        if record.levelno == logging.WARNING
    ]
    assert warnings == [
        ("https://shop.example.com/orders", "evt-1", 1, 3),
        ("https://shop.example.com/orders", "evt-1", 3, 5),
    ]


def test_write_requests_at_most_25_items(aws, ingest, make_line, batch_write_calls):
    lines = [make_line(event_id=f"evt-{n:02d}").encode() for n in range(60)]

    _, output = ingest(b"\n".join(lines))

    assert [len(call) for call in batch_write_calls] == [25, 25, 10]
    assert output["written"] == 60
    assert len(aws.table_items()) == 60


def test_write_unprocessed_items_resent_then_written(aws, ingest, make_line, write,
                                                     batch_write_calls, monkeypatch):  # fmt: skip
    # GIVEN DynamoDB that leaves evt-03 and evt-07 unprocessed on the first attempt only
    lines = [make_line(event_id=f"evt-{n:02d}").encode() for n in range(10)]
    batch_write_calls.unprocessed = {"evt-03", "evt-07"}
    send = write.dynamodb.batch_write_item

    def clear_after_first_call(**kwargs):
        response = send(**kwargs)
        batch_write_calls.unprocessed = set()
        return response

    monkeypatch.setattr(write.dynamodb, "batch_write_item", clear_after_first_call)

    # WHEN Write runs
    _, output = ingest(b"\n".join(lines))

    # THEN the unprocessed items are resent alone and every item is written
    assert batch_write_calls == [[f"evt-{n:02d}" for n in range(10)], ["evt-03", "evt-07"]]
    assert output == {"read": 10, "written": 10, "dead_lettered": 0, "duplicates": 0}
    assert aws.table_items() == _sorted([_as_item(line) for line in lines])
    assert aws.dead_letters() == []


def test_write_unprocessed_after_max_attempts_dead_lettered(aws, names, load_handler, context,
                                                            make_line, whole_object_slice,
                                                            monkeypatch):  # fmt: skip
    # GIVEN at most 3 attempts, DynamoDB that never processes evt-02 and evt-04, and one line
    # that Parse rejects
    write = load_handler("write", WRITE_MAX_ATTEMPTS="3")
    parse = load_handler("parse")
    lines = [make_line(event_id=f"evt-{n:02d}").encode() for n in range(6)] + [b"{"]
    body = b"\n".join(lines) + b"\n"
    calls = []
    send = write.dynamodb.batch_write_item

    def batch_write_item(RequestItems):  # noqa: N803 (boto3 parameter name)
        [(table, requests)] = RequestItems.items()
        calls.append(len(requests))
        stuck = [r for r in requests if r["PutRequest"]["Item"]["id"]["S"] in {"evt-02", "evt-04"}]
        forwarded = [r for r in requests if r not in stuck]
        if forwarded:
            send(RequestItems={table: forwarded})
        return {"UnprocessedItems": {table: stuck}}

    monkeypatch.setattr(write.dynamodb, "batch_write_item", batch_write_item)
    batch = aws.put_batch(body)
    event = {"run": names.run, "execution": names.execution, "batch": batch,
             "slice": whole_object_slice(body)}  # fmt: skip
    event["parsed"] = parse.handler(event, context)

    # WHEN Write runs
    output = write.handler(event, context)

    # THEN after 3 attempts the two items are dead-lettered by Write with their original lines
    assert calls == [6, 2, 2]
    assert output == {"read": 7, "written": 4, "dead_lettered": 3, "duplicates": 0}
    letters = [letter for letter, _ in aws.dead_letters() if letter["state"] == "Write"]
    assert letters == [
        {
            "kind": "message",
            "message": lines[line - 1].decode(),
            "error": "UnprocessedItemsError",
            "cause": "BatchWriteItem left the item unprocessed after 3 attempts",
            "state": "Write",
            "execution": names.execution,
            "run": names.run,
            "batch": {"bucket": names.bucket, "key": names.batch_key},
            "line": line,
        }
        for line in (3, 5)
    ]
    assert [item["id"] for item in aws.table_items()] == ["evt-00", "evt-01", "evt-03", "evt-05"]


def test_write_deadline_reached_dead_letters_without_writing(aws, ingest, make_line, context,
                                                             batch_write_calls):  # fmt: skip
    # GIVEN less time left than the margin kept for dead-lettering
    context.remaining_millis = 9_000
    lines = [make_line(event_id=f"evt-{n:02d}").encode() for n in range(3)]

    _, output = ingest(b"\n".join(lines))

    letters = aws.dead_letters()
    assert batch_write_calls == []
    assert output == {"read": 3, "written": 0, "dead_lettered": 3, "duplicates": 0}
    assert {letter["cause"] for letter, _ in letters} == {
        "not written: the invocation reached its deadline (10 s before its timeout) before "
        "this request"
    }
    assert [attributes["error_type"] for _, attributes in letters] == ["UnprocessedItemsError"] * 3
    assert aws.table_items() == []


def test_write_backoff_full_jitter_within_bounds(load_handler, ingest, make_line, monkeypatch):
    # GIVEN a base delay of 0.1 s, a maximum of 0.3 s and items that are never processed
    write = load_handler("write", WRITE_BASE_DELAY_SECONDS="0.1", WRITE_MAX_DELAY_SECONDS="0.3",
                         WRITE_MAX_ATTEMPTS="5")  # fmt: skip
    bounds, sleeps = [], []

    def uniform(low, high):
        bounds.append((low, high))
        return high

    monkeypatch.setattr(write.random, "uniform", uniform)
    monkeypatch.setattr(write.time, "sleep", sleeps.append)
    monkeypatch.setattr(
        write.dynamodb, "batch_write_item",
        lambda RequestItems: {"UnprocessedItems": RequestItems},  # noqa: N803
    )  # fmt: skip

    # WHEN Write runs
    ingest(make_line().encode(), write_module=write)

    # THEN each delay is drawn from 0 up to a bound that doubles and stops at the maximum
    assert bounds == [(0, 0.1), (0, 0.2), (0, 0.3), (0, 0.3)]
    assert sleeps == [0.1, 0.2, 0.3, 0.3]


def test_write_no_sleep_past_deadline(aws, load_handler, ingest, make_line, context,
                                      monkeypatch):  # fmt: skip
    # GIVEN 0.5 s left before the deadline and a first delay of 1 s
    write = load_handler("write", WRITE_BASE_DELAY_SECONDS="1", WRITE_MAX_DELAY_SECONDS="1")
    context.remaining_millis = 10_500
    sleeps = []
    monkeypatch.setattr(write.random, "uniform", lambda low, high: high)
    monkeypatch.setattr(write.time, "sleep", sleeps.append)
    monkeypatch.setattr(
        write.dynamodb, "batch_write_item",
        lambda RequestItems: {"UnprocessedItems": RequestItems},  # noqa: N803
    )  # fmt: skip

    _, output = ingest(make_line().encode(), write_module=write)

    [(letter, _)] = aws.dead_letters()
    assert sleeps == []
    assert output["dead_lettered"] == 1
    assert letter["cause"] == (
        "BatchWriteItem left the item unprocessed after 1 attempt, and the invocation reached "
        "its deadline before the next one"
    )


def test_write_throttled_raises_transient(aws, names, ingest, write, make_line):
    with Stubber(write.dynamodb) as stubber:
        stubber.add_client_error(
            "batch_write_item",
            service_error_code="ProvisionedThroughputExceededException",
            service_message="The level of configured provisioned throughput for the table "
            "was exceeded.",
            http_status_code=400,
        )
        with pytest.raises(TransientError) as raised:
            ingest(make_line().encode())

    assert str(raised.value) == (
        f"BatchWriteItem on table {names.table} failed and may succeed on retry: "
        "An error occurred (ProvisionedThroughputExceededException) when calling the "
        "BatchWriteItem operation: The level of configured provisioned throughput for the "
        "table was exceeded."
    )


def test_write_same_slice_twice_table_identical(aws, ingest, write, context, make_line):
    # GIVEN a slice already written once, with a duplicate and an invalid line
    lines = [make_line(event_id="evt-1"), make_line(event_id="evt-2"), "{",
             make_line(event_id="evt-1")]  # fmt: skip
    event, first_output = ingest("\n".join(lines).encode())
    first_items = aws.table_items()

    # WHEN Write runs again on the same staged slice, as a Step Functions retry would
    second_output = write.handler(event, context)

    # THEN the table and the counts are the same
    assert aws.table_items() == first_items
    assert second_output == first_output
    assert first_output == {"read": 4, "written": 2, "dead_lettered": 1, "duplicates": 1}
