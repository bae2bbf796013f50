"""Tests of the Parse state: functions/parse/app.py and its decoding and item limit checks."""

import base64
import json
from decimal import Decimal

import pytest
from botocore.exceptions import EndpointConnectionError
from botocore.stub import Stubber

from ingest_common.errors import BatchChangedError, DeadLetterError, TransientError


def _line(value) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def _with_data(event, **changes):
    event["data"].update(changes)
    return event


def _without(event, *path):
    parent = event
    for key in path[:-1]:
        parent = parent[key]
    del parent[path[-1]]
    return event


def _replace(event, old: str, new: str) -> bytes:
    line = _line(event)
    assert old.encode() in line
    return line.replace(old.encode(), new.encode(), 1)


@pytest.fixture
def parse(load_handler):
    return load_handler("parse")


@pytest.fixture
def parse_event(names):
    """Factory of Parse inputs for a batch and a slice."""

    def build(batch, slice_):
        return {"run": names.run, "execution": names.execution, "batch": batch, "slice": slice_}

    return build


@pytest.fixture
def run_parse(aws, parse, parse_event, context, whole_object_slice):
    """Store `body` as the batch and run Parse on one slice covering all of it."""

    def run(body: bytes):
        batch = aws.put_batch(body)
        return parse.handler(parse_event(batch, whole_object_slice(body)), context)

    return run


@pytest.fixture
def expected_letter(names):
    """Factory of the exact dead-letter body and attributes that Parse sends for a line."""

    def build(line: int, raw: bytes, error: str, cause: str, message=None, state="Parse"):
        if message is None:
            try:
                message = {"message": raw.decode("utf-8")}
            except UnicodeDecodeError:
                message = {"message_base64": base64.b64encode(raw).decode("ascii")}
        body = {
            "kind": "message",
            **message,
            "error": error,
            "cause": cause,
            "state": state,
            "execution": names.execution,
            "run": names.run,
            "batch": {"bucket": names.bucket, "key": names.batch_key},
            "line": line,
        }
        return body, {"error_type": error, "kind": "message"}

    return build


def test_parse_valid_messages_staged_exactly(aws, names, run_parse, make_event):
    # GIVEN one valid message of each event type
    lines = [
        _line(make_event("com.example.order.placed", "evt-1")),
        _line(make_event("com.example.payment.captured", "evt-2")),
        _line(make_event("com.example.shipment.dispatched", "evt-3")),
    ]

    # WHEN Parse reads them
    output = run_parse(b"\n".join(lines) + b"\n")

    # THEN all are staged in order with their line and raw text, and nothing is dead-lettered
    staged_key = f"runs/{names.run}/staged/0.jsonl"
    assert output == {
        "staged": {"bucket": names.bucket, "key": staged_key},
        "read": 3,
        "valid": 3,
        "dead_lettered": 0,
    }
    records = [json.loads(line) for line in aws.read_object(staged_key).splitlines()]
    assert [(record["line"], record["raw"]) for record in records] == [
        (1, lines[0].decode()),
        (2, lines[1].decode()),
        (3, lines[2].decode()),
    ]
    assert aws.dead_letters() == []


def test_parse_staged_item_exact_dynamodb_json(aws, names, run_parse, make_event):
    event = make_event("com.example.payment.captured", "evt-2", subject="ord_8f3k2m9q")

    run_parse(_line(event) + b"\n")

    record = json.loads(aws.read_object(f"runs/{names.run}/staged/0.jsonl"))
    assert record["item"] == {
        "specversion": {"S": "1.0"},
        "id": {"S": "evt-2"},
        "source": {"S": "https://shop.example.com/payments"},
        "type": {"S": "com.example.payment.captured"},
        "time": {"S": "2024-05-01T21:14:03Z"},
        "datacontenttype": {"S": "application/json"},
        "data": {
            "M": {
                "payment_id": {"S": "pay_3j5k7l9m"},
                "order_id": {"S": "ord_8f3k2m9q"},
                "amount": {"M": {"value": {"N": "36.18"}, "currency": {"S": "EUR"}}},
                "method": {
                    "M": {
                        "kind": {"S": "card"},
                        "card": {
                            "M": {
                                "brand": {"S": "visa"},
                                "last4": {"S": "4242"},
                                "expiry_month": {"N": "9"},
                                "expiry_year": {"N": "2027"},
                            }
                        },
                    }
                },
                "fees": {
                    "L": [
                        {
                            "M": {
                                "kind": {"S": "processing"},
                                "amount": {"M": {"value": {"N": "0.54"}, "currency": {"S": "EUR"}}},
                            }
                        }
                    ]
                },
                "risk_score": {"N": "12.75"},
                "captured_at": {"S": "2024-05-01T21:14:09+02:00"},
            }
        },
        "subject": {"S": "ord_8f3k2m9q"},
    }


def test_parse_blank_lines_crlf_bom_line_numbers(aws, names, run_parse, make_event):
    # GIVEN a BOM, a blank first line, CRLF endings, a whitespace-only line and no final LF
    first = _line(make_event(event_id="evt-1"))
    second = _line(make_event(event_id="evt-2"))
    body = b"\xef\xbb\xbf\r\n" + first + b"\r\n \t\r\n\n" + second

    output = run_parse(body)

    # THEN blank lines are skipped but counted in line numbers, and raw has no CR or BOM
    records = [json.loads(line) for line in aws.read_object(output["staged"]["key"]).splitlines()]
    assert [(record["line"], record["raw"]) for record in records] == [
        (2, first.decode()),
        (5, second.decode()),
    ]
    assert output["read"] == 2
    assert output["valid"] == 2


def test_parse_bom_before_first_message_removed(aws, run_parse, make_event):
    line = _line(make_event())

    output = run_parse(b"\xef\xbb\xbf" + line + b"\n")

    record = json.loads(aws.read_object(output["staged"]["key"]))
    assert record["raw"] == line.decode()
    assert record["line"] == 1
    assert output["valid"] == 1


def test_parse_middle_slice_reads_only_its_range(aws, names, parse, parse_event, context,
                                                 make_event):  # fmt: skip
    # GIVEN a batch of three lines and a slice that covers only line 2
    lines = [_line(make_event(event_id=f"evt-{n}")) for n in (1, 2, 3)]
    batch = aws.put_batch(b"\n".join(lines) + b"\n")
    start = len(lines[0]) + 1
    slice_ = {
        "index": 1,
        "first_line": 2,
        "last_line": 2,
        "start_byte": start,
        "end_byte": start + len(lines[1]),
        "messages": 1,
    }

    # WHEN Parse reads the slice
    output = parse.handler(parse_event(batch, slice_), context)

    # THEN only line 2 is staged, under the slice's index
    staged_key = f"runs/{names.run}/staged/1.jsonl"
    assert output == {
        "staged": {"bucket": names.bucket, "key": staged_key},
        "read": 1,
        "valid": 1,
        "dead_lettered": 0,
    }
    record = json.loads(aws.read_object(staged_key))
    assert (record["line"], record["raw"]) == (2, lines[1].decode())


INVALID_MESSAGES = [
    # InvalidEncodingError: the cause names the byte within the line and within the object.
    pytest.param(
        lambda event: b'{"id":"\xff"}',
        "InvalidEncodingError",
        "line 2, byte 8 of the line (offset 8 in the object): invalid UTF-8, invalid start "
        "byte (bytes ff)",
        id="invalid-start-byte",
    ),
    pytest.param(
        lambda event: b'{"id":"\xe2\x82"}',
        "InvalidEncodingError",
        "line 2, byte 8 of the line (offset 8 in the object): invalid UTF-8, invalid "
        "continuation byte (bytes e2 82)",
        id="truncated-sequence",
    ),
    # InvalidJsonError: the cause names the line and the column.
    pytest.param(
        lambda event: b'{"id": "evt-1", "source": "s',
        "InvalidJsonError",
        "line 2: Unterminated string starting at column 27",
        id="truncated-json",
    ),
    pytest.param(
        lambda event: b'{"id": "evt-1",}',
        "InvalidJsonError",
        "line 2, column 16: Expecting property name enclosed in double quotes",
        id="trailing-comma",
    ),
    pytest.param(
        lambda event: b'{"id": "evt-1"} {}',
        "InvalidJsonError",
        "line 2, column 17: Extra data",
        id="two-values",
    ),
    pytest.param(
        lambda event: b'{"note": "NaN", "total": NaN}',
        "InvalidJsonError",
        "line 2, column 26: NaN is not valid JSON; numbers must be finite",
        id="nan",
    ),
    pytest.param(
        lambda event: b'{"total": Infinity}',
        "InvalidJsonError",
        "line 2, column 11: Infinity is not valid JSON; numbers must be finite",
        id="infinity",
    ),
    pytest.param(
        lambda event: b'{"total": [1, -Infinity]}',
        "InvalidJsonError",
        "line 2, column 15: -Infinity is not valid JSON; numbers must be finite",
        id="negative-infinity",
    ),
    pytest.param(
        lambda event: _replace(event, '"id":"evt-0001"', '"id":"evt-0001","id":"evt-0002"'),
        "InvalidJsonError",
        'line 2: duplicate key "id" in one object',
        id="duplicate-key",
    ),
    pytest.param(
        lambda event: b"\xef\xbb\xbf" + _line(event),
        "InvalidJsonError",
        "line 2, column 1: Unexpected UTF-8 BOM (decode using utf-8-sig)",
        id="bom-after-first-line",
    ),
    pytest.param(
        lambda event: b"[" * 100_000,
        "InvalidJsonError",
        "line 2: arrays and objects are nested too deeply to parse",
        id="nested-too-deeply",
    ),
    # EnvelopeValidationError: the cause names the JSON path, the value and the rule.
    pytest.param(
        lambda event: b'["evt-1"]',
        "EnvelopeValidationError",
        """$: ["evt-1"] is not of type 'object'""",
        id="not-an-object",
    ),
    pytest.param(
        lambda event: _line(_without(event, "id")),
        "EnvelopeValidationError",
        "$: 'id' is a required property",
        id="missing-id",
    ),
    pytest.param(
        lambda event: _line({**event, "specversion": "0.3"}),
        "EnvelopeValidationError",
        """$.specversion: '1.0' was expected, got "0.3\"""",
        id="wrong-specversion",
    ),
    pytest.param(
        lambda event: _line({**event, "source": ""}),
        "EnvelopeValidationError",
        '$.source: "" should be non-empty',
        id="empty-source",
    ),
    pytest.param(
        lambda event: _line({**event, "id": 42}),
        "EnvelopeValidationError",
        "$.id: 42 is not of type 'string'",
        id="numeric-id",
    ),
    pytest.param(
        lambda event: _line({**event, "time": "2024-02-30T10:00:00Z"}),
        "EnvelopeValidationError",
        """$.time: "2024-02-30T10:00:00Z" is not a 'date-time'""",
        id="time-impossible-date",
    ),
    pytest.param(
        lambda event: _line({**event, "time": "2024-05-01T10:00:00"}),
        "EnvelopeValidationError",
        """$.time: "2024-05-01T10:00:00" is not a 'date-time'""",
        id="time-without-offset",
    ),
    pytest.param(
        lambda event: _line({**event, "datacontenttype": "application/xml"}),
        "EnvelopeValidationError",
        """$.datacontenttype: "application/xml" does not match """
        """'^application/([A-Za-z0-9.+-]+\\\\+)?json( *;.*)?$'""",
        id="non-json-content-type",
    ),
    pytest.param(
        lambda event: _line({**event, "Tenant": "acme"}),
        "EnvelopeValidationError",
        """$: "Tenant" does not match '^[a-z0-9]{1,20}$'""",
        id="invalid-extension-name",
    ),
    pytest.param(
        lambda event: _line({**event, "tenant": {"name": "acme"}}),
        "EnvelopeValidationError",
        """$.tenant: {"name": "acme"} is not of type 'string', 'number', 'boolean'""",
        id="extension-object-value",
    ),
    pytest.param(
        lambda event: _line({**_without(event, "data"), "data_base64": "e30="}),
        "EnvelopeValidationError",
        """$: "data_base64" does not match '^[a-z0-9]{1,20}$'""",
        id="binary-data",
    ),
    pytest.param(
        lambda event: _line({**event, "data": ["ord_8f3k2m9q"]}),
        "EnvelopeValidationError",
        """$.data: ["ord_8f3k2m9q"] is not of type 'object'""",
        id="data-not-an-object",
    ),
    # UnknownEventTypeError: the type is never guessed.
    pytest.param(
        lambda event: _line({**event, "type": "com.example.refund.requested"}),
        "UnknownEventTypeError",
        '$.type: "com.example.refund.requested" is not a known event type; expected one of '
        "com.example.order.placed, com.example.payment.captured, "
        "com.example.shipment.dispatched",
        id="unknown-type",
    ),
    pytest.param(
        lambda event: _line({**event, "type": "../cloudevent"}),
        "UnknownEventTypeError",
        '$.type: "../cloudevent" is not a known event type; expected one of '
        "com.example.order.placed, com.example.payment.captured, "
        "com.example.shipment.dispatched",
        id="type-naming-a-path",
    ),
    # SchemaValidationError: the cause names the path below $.data.
    pytest.param(
        lambda event: _line(_without(event, "data")),
        "SchemaValidationError",
        "$: 'data' is a required property for type com.example.order.placed",
        id="missing-data",
    ),
    pytest.param(
        lambda event: _line(_with_data(event, total="abc")),
        "SchemaValidationError",
        """$.data.total: "abc" is not of type 'number'""",
        id="string-for-number",
    ),
    pytest.param(
        lambda event: _line(_without(event, "data", "customer", "email")),
        "SchemaValidationError",
        "$.data.customer: 'email' is a required property",
        id="missing-nested-property",
    ),
    pytest.param(
        lambda event: _replace(event, '"quantity":2', '"quantity":2.5'),
        "SchemaValidationError",
        "$.data.lines[0].quantity: 2.5 is not of type 'integer'",
        id="fraction-for-integer",
    ),
    pytest.param(
        lambda event: _line(_with_data(event, total=-1)),
        "SchemaValidationError",
        "$.data.total: -1 is less than the minimum of 0",
        id="below-minimum",
    ),
    pytest.param(
        lambda event: _line(_with_data(event, placed_at="2024-05-01 21:14:03")),
        "SchemaValidationError",
        """$.data.placed_at: "2024-05-01 21:14:03" is not a 'date-time'""",
        id="date-time-with-space",
    ),
    pytest.param(
        lambda event: _line(_with_data(event, currency="eur", coupon="SPRING")),
        "SchemaValidationError",
        "$.data: Additional properties are not allowed ('coupon' was unexpected); "
        """$.data.currency: "eur" does not match '^[A-Z]{3}$'""",
        id="two-errors",
    ),
    pytest.param(
        lambda event: _line(
            _with_data(
                event, customer={"customer_id": 7, "email": None, "loyalty_tier": "tin"}, lines=[]
            )
        ),
        "SchemaValidationError",
        '$.data.lines: [] should be non-empty; $.data.customer.loyalty_tier: "tin" is not one '
        "of ['bronze', 'silver', 'gold', 'platinum']; $.data.customer.email: null is not of "
        "type 'string'; and 1 more",
        id="four-errors",
    ),  # fmt: skip
    # ItemLimitError: valid for the schema, but DynamoDB cannot store the item.
    pytest.param(
        lambda event: _replace(
            event, '"total":36.18', '"total":1234567890123456789012345678901234567.89'
        ),
        "ItemLimitError",
        "$.data.total: number 1234567890123456789012345678901234567.89 has 39 digits; "
        "DynamoDB allows at most 38",
        id="39-digits",
    ),  # fmt: skip
    pytest.param(
        lambda event: _replace(event, '"total":36.18', '"total":1E+126'),
        "ItemLimitError",
        "$.data.total: number 1E+126 is out of DynamoDB's range; magnitudes run from 1E-130 to "
        "9.9999999999999999999999999999999999999E+125",
        id="number-too-large",
    ),
    pytest.param(
        lambda event: _replace(event, '"total":36.18', '"total":1E-131'),
        "ItemLimitError",
        "$.data.total: number 1E-131 is out of DynamoDB's range; magnitudes run from 1E-130 to "
        "9.9999999999999999999999999999999999999E+125",
        id="number-too-small",
    ),
    pytest.param(
        lambda event: _replace(event, '"total":36.18', '"total":1e1000000000000000000'),
        "ItemLimitError",
        "line 2: a number's exponent is too large to represent; DynamoDB magnitudes run from "
        "1E-130 to 9.9999999999999999999999999999999999999E+125",
        id="exponent-beyond-decimal",
    ),
    pytest.param(
        lambda event: _replace(_with_data(event, metadata={"note": "x"}), '"x"', '"\\ud83d"'),
        "ItemLimitError",
        "$.data.metadata.note: string contains \\ud83d, a lone surrogate that has no UTF-8 "
        "form, so DynamoDB cannot store it",
        id="lone-surrogate",
    ),
    pytest.param(
        lambda event: _line(_with_data(event, metadata={"": "x"})),
        "ItemLimitError",
        "$.data.metadata: empty attribute name; DynamoDB requires at least one character",
        id="empty-attribute-name",
    ),
    pytest.param(
        lambda event: _line({**event, "source": "s" * 2049}),
        "ItemLimitError",
        "$.source: partition key is 2049 bytes; DynamoDB allows at most 2048",
        id="partition-key-too-long",
    ),
    pytest.param(
        lambda event: _line({**event, "id": "é" * 513}),
        "ItemLimitError",
        "$.id: sort key is 1026 bytes; DynamoDB allows at most 1024",
        id="sort-key-too-long",
    ),
]


@pytest.mark.parametrize(("build_line", "error", "cause"), INVALID_MESSAGES)
def test_parse_invalid_message_dead_lettered(aws, names, run_parse, make_event, expected_letter,
                                             build_line, error, cause):  # fmt: skip
    # GIVEN a blank line 1, the invalid message on line 2 and a valid message on line 3
    bad = build_line(make_event())
    good = _line(make_event(event_id="evt-good"))

    # WHEN Parse reads the slice
    output = run_parse(b"\n" + bad + b"\n" + good + b"\n")

    # THEN the invalid message alone is dead-lettered with its error and cause
    assert output == {
        "staged": {"bucket": names.bucket, "key": f"runs/{names.run}/staged/0.jsonl"},
        "read": 2,
        "valid": 1,
        "dead_lettered": 1,
    }
    assert aws.dead_letters() == [expected_letter(2, bad, error, cause)]
    records = aws.read_object(output["staged"]["key"]).splitlines()
    assert [json.loads(record)["line"] for record in records] == [3]


def test_parse_38_digit_number_accepted(aws, run_parse, make_event):
    digits = "1234567890123456789012345678901234567.8"
    line = _replace(make_event(), '"total":36.18', f'"total":{digits}')

    output = run_parse(line + b"\n")

    record = json.loads(aws.read_object(output["staged"]["key"]))
    assert record["item"]["data"]["M"]["total"] == {"N": digits}
    assert output["dead_lettered"] == 0


def test_parse_oversize_item_dead_lettered_via_s3(aws, names, run_parse, make_event,
                                                  expected_letter):  # fmt: skip
    # GIVEN a schema-valid message whose item is over 400 KB, so its dead letter is too
    metadata = {f"note{n:03d}": "x" * 500 for n in range(850)}
    bad = _line(_with_data(make_event(), metadata=metadata))

    # WHEN Parse reads it
    output = run_parse(bad + b"\n")

    # THEN the dead letter points to the original bytes in S3
    key = f"runs/{names.run}/dead-letters/1.bin"
    assert output["dead_lettered"] == 1
    assert aws.dead_letters() == [
        expected_letter(
            1,
            bad,
            "ItemLimitError",
            "$: item is 432346 bytes by DynamoDB's sizing rules; DynamoDB allows at most "
            "409600 bytes (400 KB)",
            message={"message_s3": {"bucket": names.bucket, "key": key}},
        )
    ]
    assert aws.read_object(key) == bad


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(b'{"note": "' + b"x" * 3000 + b'"', id="utf-8"),
        pytest.param(b'{"note": "' + b"\xff" * 3000 + b'"}', id="invalid-utf-8"),
    ],
)
def test_parse_dead_letter_over_limit_goes_to_s3(aws, names, load_handler,
                                                         parse_event, context,
                                                         whole_object_slice, bad):  # fmt: skip
    # GIVEN a queue whose maximum message size is smaller than the dead letter
    aws.sqs.set_queue_attributes(
        QueueUrl=names.queue_url, Attributes={"MaximumMessageSize": "2048"}
    )
    parse = load_handler("parse", DEAD_LETTER_MAX_BYTES="2048")
    body = b"\r\n" + bad + b"\r\n"
    batch = aws.put_batch(body)

    # WHEN Parse dead-letters it
    output = parse.handler(parse_event(batch, whole_object_slice(body)), context)

    # THEN the message carries message_s3 in place of the message, and S3 has the exact bytes
    key = f"runs/{names.run}/dead-letters/2.bin"
    [(letter, attributes)] = aws.dead_letters()
    assert output["dead_lettered"] == 1
    assert letter["message_s3"] == {"bucket": names.bucket, "key": key}
    assert "message" not in letter
    assert "message_base64" not in letter
    assert letter["line"] == 2
    assert aws.read_object(key) == bad


def test_parse_many_invalid_messages_each_dead_lettered(aws, run_parse):
    # 23 dead letters take three SendMessageBatch requests of at most 10 entries.
    body = b"".join(b'{"n": %d\n' % n for n in range(23))

    output = run_parse(body)

    letters = aws.dead_letters()
    assert output["dead_lettered"] == 23
    assert [letter["line"] for letter, _ in letters] == list(range(1, 24))
    assert {attributes["error_type"] for _, attributes in letters} == {"InvalidJsonError"}


def _raise_connection_error(**kwargs):
    raise EndpointConnectionError(endpoint_url="https://s3.us-east-1.amazonaws.com")


@pytest.mark.parametrize(
    ("arrange", "expected"),
    [
        pytest.param(
            lambda parse, stubber, monkeypatch: stubber.add_client_error(
                "get_object", service_error_code="SlowDown",
                service_message="Please reduce your request rate.", http_status_code=503,
            ),
            "An error occurred (SlowDown) when calling the GetObject operation: "
            "Please reduce your request rate.",
            id="throttled",
        ),
        pytest.param(
            lambda parse, stubber, monkeypatch: monkeypatch.setattr(
                parse.s3, "get_object", _raise_connection_error
            ),
            'Could not connect to the endpoint URL: "https://s3.us-east-1.amazonaws.com"',
            id="connection-error",
        ),
    ],
)  # fmt: skip
def test_parse_get_object_retryable_raises_transient(aws, names, parse, parse_event, context,
                                                      monkeypatch, arrange, expected):  # fmt: skip
    batch = aws.put_batch(b'{"n": 1}\n')
    slice_ = {"index": 0, "first_line": 1, "last_line": 1, "start_byte": 0, "end_byte": 8,
              "messages": 1}  # fmt: skip

    with Stubber(parse.s3) as stubber:
        arrange(parse, stubber, monkeypatch)
        with pytest.raises(TransientError) as raised:
            parse.handler(parse_event(batch, slice_), context)

    assert str(raised.value) == (
        f"GetObject s3://{names.bucket}/{names.batch_key} bytes=0-8 failed and may succeed "
        f"on retry: {expected}"
    )


def test_parse_changed_batch_raises_batch_changed(aws, names, parse, parse_event, context,
                                                  whole_object_slice):  # fmt: skip
    # GIVEN a slice planned for one version of the batch, and the batch then replaced
    body = b'{"n": 1}\n'
    batch = aws.put_batch(body)
    aws.put_batch(b'{"n": 2}\n{"n": 3}\n')

    with pytest.raises(BatchChangedError) as raised:
        parse.handler(parse_event(batch, whole_object_slice(body)), context)

    assert str(raised.value) == (
        f"s3://{names.bucket}/{names.batch_key} bytes=0-8: the object no longer has ETag "
        f"{batch['etag']}, so the slice's byte range is stale; start a new run for the new object"
    )


def test_parse_dead_letter_rejected_raises_after_staging(aws, names, parse, run_parse,
                                                         make_event, monkeypatch):  # fmt: skip
    # GIVEN SQS that rejects one entry of SendMessageBatch
    def send_message_batch(QueueUrl, Entries):  # noqa: N803 (boto3 parameter names)
        return {
            "Successful": [],
            "Failed": [
                {"Id": Entries[0]["Id"], "SenderFault": False, "Code": "InternalError",
                 "Message": "We encountered an internal error."}
            ],
        }  # fmt: skip

    monkeypatch.setattr(parse.sqs, "send_message_batch", send_message_batch)
    good = _line(make_event())

    # WHEN Parse dead-letters the invalid message on line 2
    with pytest.raises(DeadLetterError) as raised:
        run_parse(good + b"\n{\n")

    # THEN the error names the entry, and the valid message was staged before
    assert str(raised.value) == (
        "SendMessageBatch rejected 1 of 1 dead letters: line-2: InternalError (service fault) "
        "We encountered an internal error."
    )
    staged = json.loads(aws.read_object(f"runs/{names.run}/staged/0.jsonl"))
    assert staged["line"] == 1


def test_parse_decimal_numbers_kept_exact(aws, run_parse, make_event):
    line = _replace(
        make_event(), '"total":36.18', '"total":0.1000000000000000000000000000000000001'
    )

    output = run_parse(line + b"\n")

    record = json.loads(aws.read_object(output["staged"]["key"]))
    total = record["item"]["data"]["M"]["total"]["N"]
    assert total == "0.1000000000000000000000000000000000001"
    assert Decimal(total) != Decimal(float(total))
