"""Tests of the Plan state: functions/plan/app.py."""

import json

import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from ingest_common.errors import TransientError

# Eight physical lines: blank lines, CRLF endings, a whitespace-only line and no final LF.
MIXED_BODY = (
    b'{"n":1}\n'  # line 1, bytes 0-7
    b"\n"  # line 2, byte 8
    b'{"n":2}\r\n'  # line 3, bytes 9-17
    b" \t\r\n"  # line 4, bytes 18-21
    b'{"n":3}\n'  # line 5, bytes 22-29
    b'{"n":4}\n'  # line 6, bytes 30-37
    b"\n"  # line 7, byte 38
    b'{"n":5}'  # line 8, bytes 39-45
)


@pytest.fixture
def plan(load_handler):
    return load_handler("plan")


@pytest.fixture
def run_plan(aws, names, plan, context):
    """Store `body` as the batch, run Plan on it and return (output, stored manifest)."""

    def run(body: bytes, slice_size: int = 2):
        aws.put_batch(body)
        event = {
            "run": names.run,
            "bucket": names.bucket,
            "key": names.batch_key,
            "slice_size": slice_size,
        }
        output = plan.handler(event, context)
        manifest = json.loads(aws.read_object(output["manifest"]["key"]))
        return output, manifest

    return run


def test_plan_mixed_lines_exact_manifest(aws, names, run_plan):
    # GIVEN a batch with blank lines, CRLF, a whitespace-only line and no final newline
    # WHEN Plan cuts it into slices of 2 messages
    output, manifest = run_plan(MIXED_BODY, slice_size=2)

    # THEN blank lines trailing a slice's last message stay in that slice
    assert manifest == [
        {
            "index": 0,
            "first_line": 1,
            "last_line": 4,
            "start_byte": 0,
            "end_byte": 21,
            "messages": 2,
        },
        {
            "index": 1,
            "first_line": 5,
            "last_line": 7,
            "start_byte": 22,
            "end_byte": 38,
            "messages": 2,
        },
        {
            "index": 2,
            "first_line": 8,
            "last_line": 8,
            "start_byte": 39,
            "end_byte": 45,
            "messages": 1,
        },
    ]
    etag = aws.s3.head_object(Bucket=names.bucket, Key=names.batch_key)["ETag"]
    assert output == {
        "batch": {"bucket": names.bucket, "key": names.batch_key, "size": 46, "etag": etag},
        "manifest": {"bucket": names.bucket, "key": f"runs/{names.run}/slices.json"},
        "slices": 3,
        "messages": 5,
    }


def test_plan_slices_cover_object_without_gaps(run_plan):
    output, manifest = run_plan(MIXED_BODY, slice_size=1)

    assert [(s["start_byte"], s["end_byte"]) for s in manifest] == [
        (0, 8),
        (9, 21),
        (22, 29),
        (30, 38),
        (39, 45),
    ]
    assert [s["messages"] for s in manifest] == [1, 1, 1, 1, 1]
    assert output["slices"] == 5


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"", id="empty-object"),
        pytest.param(b"\n \r\n\t\n", id="only-blank-lines"),
        pytest.param(b"\xef\xbb\xbf", id="only-bom"),
        pytest.param(b"\xef\xbb\xbf\r\n", id="bom-then-crlf"),
    ],
)
def test_plan_no_messages_empty_manifest(run_plan, body):
    output, manifest = run_plan(body)

    assert manifest == []
    assert output["slices"] == 0
    assert output["messages"] == 0
    assert output["batch"]["size"] == len(body)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(
            b'\xef\xbb\xbf{"n":1}\n',
            [{"index": 0, "first_line": 1, "last_line": 1, "start_byte": 0, "end_byte": 10,
              "messages": 1}],
            id="bom-before-message",
        ),
        pytest.param(
            b'\xef\xbb\xbf\n{"n":1}\n',
            [{"index": 0, "first_line": 1, "last_line": 2, "start_byte": 0, "end_byte": 11,
              "messages": 1}],
            id="bom-on-blank-first-line",
        ),
        pytest.param(
            b'\xef\xbb\xbf  \r\n{"n":1}',
            [{"index": 0, "first_line": 1, "last_line": 2, "start_byte": 0, "end_byte": 13,
              "messages": 1}],
            id="bom-whitespace-crlf",
        ),
    ],
)  # fmt: skip
def test_plan_bom_not_counted_as_content(run_plan, body, expected):
    _, manifest = run_plan(body)

    assert manifest == expected


def test_plan_bom_inside_object_is_content(run_plan):
    # A byte order mark after the first byte is part of a line, so the line is a message.
    _, manifest = run_plan(b'{"n":1}\n\xef\xbb\xbf\n')

    assert [s["messages"] for s in manifest] == [2]


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 5, 8, 1024])
def test_plan_planner_chunk_size_same_slices(plan, chunk_size):
    # GIVEN the same bytes delivered in chunks of different sizes, with a BOM and CRLF split
    body = b"\xef\xbb\xbf \r\n" + MIXED_BODY + b"\r\n\n" + MIXED_BODY
    whole = plan.SlicePlanner(2)
    whole.scan([body])
    chunked = plan.SlicePlanner(2)

    # WHEN the planner scans the chunks
    chunked.scan(body[i : i + chunk_size] for i in range(0, len(body), chunk_size))

    # THEN the slices and counts do not depend on where the chunks end
    assert chunked.slices() == whole.slices()
    assert chunked.messages == whole.messages == 10
    assert chunked.size == whole.size == len(body)


def test_plan_slices_match_parse_counts(aws, names, run_plan, load_handler, context):
    # Plan and Parse must count the same messages, or Reconcile fails the run.
    output, manifest = run_plan(MIXED_BODY + b"\r\n\xef\xbb\xbf\n\n" + MIXED_BODY, slice_size=3)
    parse = load_handler("parse")

    reads = [
        parse.handler(
            {
                "run": names.run,
                "execution": names.execution,
                "batch": output["batch"],
                "slice": slice_,
            },
            context,
        )["read"]
        for slice_ in manifest
    ]

    assert reads == [s["messages"] for s in manifest]
    assert sum(reads) == output["messages"] == 11


@pytest.mark.parametrize(
    "slice_size",
    [pytest.param(0, id="zero"), pytest.param(-1, id="negative"),
     pytest.param("2", id="string"), pytest.param(True, id="boolean")],
)  # fmt: skip
def test_plan_invalid_slice_size_raises(aws, names, plan, context, slice_size):
    event = {"run": names.run, "bucket": names.bucket, "key": names.batch_key,
             "slice_size": slice_size}  # fmt: skip

    with pytest.raises(ValueError) as raised:
        plan.handler(event, context)

    assert str(raised.value) == f"slice_size must be a positive integer, got {slice_size!r}"


def test_plan_throttled_get_raises_transient(names, plan, context):
    event = {"run": names.run, "bucket": names.bucket, "key": names.batch_key, "slice_size": 2}

    with Stubber(plan.s3) as stubber:
        stubber.add_client_error(
            "get_object",
            service_error_code="SlowDown",
            service_message="Please reduce your request rate.",
            http_status_code=503,
        )
        with pytest.raises(TransientError) as raised:
            plan.handler(event, context)

    assert str(raised.value) == (
        f"GetObject s3://{names.bucket}/{names.batch_key} failed and may succeed on retry: "
        "An error occurred (SlowDown) when calling the GetObject operation: "
        "Please reduce your request rate."
    )


def test_plan_missing_object_raises_client_error(names, plan, context):
    # A missing batch is not worth retrying, so the error is not a TransientError.
    event = {"run": names.run, "bucket": names.bucket, "key": "incoming/absent.jsonl",
             "slice_size": 2}  # fmt: skip

    with pytest.raises(ClientError) as raised:
        plan.handler(event, context)

    assert raised.value.response["Error"]["Code"] == "NoSuchKey"
