"""Tests of dead-letter sending: functions/common/ingest_common/deadletter.py."""

import json

import pytest
from botocore.exceptions import ClientError

from ingest_common.deadletter import DeadLetter, DeadLetterOrigin, DeadLetterQueue, build_body
from ingest_common.errors import DeadLetterError, TransientError


@pytest.fixture
def origin(names):
    return DeadLetterOrigin(
        state="Parse",
        execution=names.execution,
        run=names.run,
        batch={"bucket": names.bucket, "key": names.batch_key, "size": 10, "etag": '"e"'},
    )


@pytest.fixture
def make_queue(aws, names):
    """Factory of a DeadLetterQueue on the mocked queue, with the queue's size limit set."""

    def make(max_bytes=None):
        max_bytes = max_bytes or names.max_message_bytes
        aws.sqs.set_queue_attributes(
            QueueUrl=names.queue_url, Attributes={"MaximumMessageSize": str(max_bytes)}
        )
        return DeadLetterQueue(
            sqs=aws.sqs,
            s3=aws.s3,
            queue_url=names.queue_url,
            bucket=names.bucket,
            max_bytes=max_bytes,
        )

    return make


@pytest.fixture
def send_calls(aws, monkeypatch):
    """Record the entry ids of every SendMessageBatch request while still sending it."""
    calls = []
    send = aws.sqs.send_message_batch

    def send_message_batch(QueueUrl, Entries):  # noqa: N803 (boto3 parameter names)
        calls.append([entry["Id"] for entry in Entries])
        return send(QueueUrl=QueueUrl, Entries=Entries)

    monkeypatch.setattr(aws.sqs, "send_message_batch", send_message_batch)
    return calls


def _letter(line=7, raw=b'{"id": 1}', error="EnvelopeValidationError", cause="$.id: bad"):
    return DeadLetter(line=line, raw=raw, error=error, cause=cause)


def test_deadletter_body_fields_in_design_order(aws, names, make_queue, origin):
    make_queue().send([_letter()], origin)

    [message] = aws.sqs.receive_message(QueueUrl=names.queue_url, MessageAttributeNames=["All"])[
        "Messages"
    ]
    expected = {
        "kind": "message",
        "message": '{"id": 1}',
        "error": "EnvelopeValidationError",
        "cause": "$.id: bad",
        "state": "Parse",
        "execution": names.execution,
        "run": names.run,
        "batch": {"bucket": names.bucket, "key": names.batch_key},
        "line": 7,
    }
    # Comparing the text, not the parsed body, also checks the order of the fields.
    assert message["Body"] == json.dumps(expected, separators=(",", ":"))
    assert message["MessageAttributes"] == {
        "error_type": {"StringValue": "EnvelopeValidationError", "DataType": "String"},
        "kind": {"StringValue": "message", "DataType": "String"},
    }


def test_deadletter_non_ascii_escaped(aws, names, make_queue, origin):
    # GIVEN a message with accents, an emoji and a control character
    raw = '{"name": "Zoë 🚚", "bad": "\x01"}'.encode()

    make_queue().send([_letter(raw=raw, cause='$.name: "Zoë" is not allowed')], origin)

    # THEN the body is pure ASCII and decodes back to the original text
    [message] = aws.sqs.receive_message(QueueUrl=names.queue_url)["Messages"]
    assert message["Body"].isascii()
    assert json.loads(message["Body"])["message"] == raw.decode()
    assert json.loads(message["Body"])["cause"] == '$.name: "Zoë" is not allowed'


def test_deadletter_invalid_utf8_sent_as_base64(aws, make_queue, origin):
    make_queue().send([_letter(raw=b"\xff\xfe{")], origin)

    [(body, _)] = aws.dead_letters()
    assert body["message_base64"] == "//57"
    assert "message" not in body


def test_deadletter_ten_entries_per_request(aws, make_queue, origin, send_calls):
    letters = [_letter(line=n) for n in range(1, 24)]

    sent = make_queue().send(letters, origin)

    assert sent == 23
    assert [len(call) for call in send_calls] == [10, 10, 3]
    assert send_calls[2] == ["line-21", "line-22", "line-23"]
    assert [body["line"] for body, _ in aws.dead_letters()] == list(range(1, 24))


def test_deadletter_request_within_queue_size(aws, make_queue, origin, send_calls):
    # GIVEN dead letters of about 1,500 bytes and a queue limit of 4,096 bytes, which also
    # bounds the whole request
    letters = [_letter(line=n, raw=b"x" * 1200) for n in range(1, 6)]

    make_queue(max_bytes=4096).send(letters, origin)

    assert send_calls == [["line-1", "line-2"], ["line-3", "line-4"], ["line-5"]]


def test_deadletter_size_limit_boundary(aws, names, make_queue, origin):
    # GIVEN two letters: one whose message and attributes fill the queue's limit exactly, and
    # one a byte longer
    max_bytes = 2048
    attributes = len("error_type") + len("String") + len("InvalidJsonError")
    attributes += len("kind") + len("String") + len("message")
    empty = build_body(_letter(error="InvalidJsonError"), origin, {"message": ""})
    room = max_bytes - attributes - len(json.dumps(empty, separators=(",", ":")))
    fits = _letter(line=1, raw=b"x" * room, error="InvalidJsonError")
    over = _letter(line=2, raw=b"x" * (room + 1), error="InvalidJsonError")

    make_queue(max_bytes=max_bytes).send([fits, over], origin)

    # THEN the first is sent inline and the second through S3
    [(first, _), (second, _)] = aws.dead_letters()
    assert first["message"] == "x" * room
    assert second["message_s3"] == {
        "bucket": names.bucket,
        "key": f"runs/{names.run}/dead-letters/2.bin",
    }
    assert aws.read_object(f"runs/{names.run}/dead-letters/2.bin") == b"x" * (room + 1)


def test_deadletter_pointer_over_limit_raises(make_queue, origin):
    letter = _letter(line=3, raw=b"x" * 2000, cause="c" * 1200)

    with pytest.raises(DeadLetterError) as raised:
        make_queue(max_bytes=1024).send([letter], origin)

    assert str(raised.value) == (
        "dead letter for line 3 is 1686 bytes even with its message in S3, over the queue's "
        "maximum of 1024 bytes; shorten its cause or raise DeadLetterMaximumMessageSize"
    )


def test_deadletter_failed_entries_raise(aws, make_queue, origin, monkeypatch):
    # GIVEN SQS that rejects 7 of the 10 entries of a request
    def send_message_batch(QueueUrl, Entries):  # noqa: N803 (boto3 parameter names)
        return {
            "Successful": [{"Id": entry["Id"]} for entry in Entries[7:]],
            "Failed": [
                {"Id": entry["Id"], "SenderFault": True, "Code": "InvalidParameterValue",
                 "Message": "Message must be shorter than 1024 bytes."}
                for entry in Entries[:7]
            ],
        }  # fmt: skip

    monkeypatch.setattr(aws.sqs, "send_message_batch", send_message_batch)

    with pytest.raises(DeadLetterError) as raised:
        make_queue().send([_letter(line=n) for n in range(1, 11)], origin)

    failure = "InvalidParameterValue (sender fault) Message must be shorter than 1024 bytes."
    assert str(raised.value) == (
        "SendMessageBatch rejected 7 of 10 dead letters: "
        + "; ".join(f"line-{n}: {failure}" for n in range(1, 6))
        + "; and 2 more"
    )


@pytest.mark.parametrize(
    ("code", "status", "expected_error"),
    [
        pytest.param("AWS.SimpleQueueService.NonExistentQueue", 400, DeadLetterError,
                     id="missing-queue"),
        pytest.param("AccessDenied", 403, DeadLetterError, id="access-denied"),
        pytest.param("RequestThrottled", 400, TransientError, id="throttled"),
        pytest.param("InternalError", 500, TransientError, id="internal-error"),
    ],
)  # fmt: skip
def test_deadletter_client_error_classified(aws, make_queue, origin, monkeypatch, code, status,
                                            expected_error):  # fmt: skip
    error = ClientError(
        {"Error": {"Code": code, "Message": "failed"},
         "ResponseMetadata": {"HTTPStatusCode": status}},
        "SendMessageBatch",
    )  # fmt: skip

    def send_message_batch(**kwargs):
        raise error

    monkeypatch.setattr(aws.sqs, "send_message_batch", send_message_batch)

    with pytest.raises(expected_error) as raised:
        make_queue().send([_letter()], origin)

    assert raised.value.__cause__ is error


def test_deadletter_nothing_to_send_makes_no_request(make_queue, origin, send_calls):
    assert make_queue().send([], origin) == 0
    assert send_calls == []
