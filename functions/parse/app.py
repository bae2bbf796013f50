"""Parse state: validate the messages of one slice, stage the valid ones, dead-letter the rest."""

import json
import os
from collections import Counter
from collections.abc import Iterator
from contextlib import closing
from decimal import DecimalException
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from boto3.dynamodb.types import TypeSerializer
from botocore.exceptions import ClientError
from decoding import decode_line, load_json
from item_limits import check_item

from ingest_common.clients import create_client, raise_transient
from ingest_common.contract import (
    BatchObject,
    ObjectRef,
    ParseInput,
    ParseOutput,
    Slice,
    StagedRecord,
)
from ingest_common.deadletter import DeadLetter, DeadLetterOrigin, DeadLetterQueue
from ingest_common.errors import BatchChangedError, InvalidMessageError, ItemLimitError
from ingest_common.lines import is_blank, iter_lines, strip_bom, strip_line_ending
from ingest_common.validation import validate_event

BATCH_BUCKET = os.environ["BATCH_BUCKET"]
DEAD_LETTER_QUEUE_URL = os.environ["DEAD_LETTER_QUEUE_URL"]
DEAD_LETTER_MAX_BYTES = int(os.environ["DEAD_LETTER_MAX_BYTES"])
READ_CHUNK_BYTES = 1024 * 1024
PARTITION_KEY = "source"
SORT_KEY = "id"

s3 = create_client("s3")
sqs = create_client("sqs")
dead_letters = DeadLetterQueue(
    sqs=sqs,
    s3=s3,
    queue_url=DEAD_LETTER_QUEUE_URL,
    bucket=BATCH_BUCKET,
    max_bytes=DEAD_LETTER_MAX_BYTES,
)
serializer = TypeSerializer()

logger = Logger(utc=True)
metrics = Metrics()


@logger.inject_lambda_context(correlation_id_path="execution", clear_state=True)
@metrics.log_metrics
def handler(event: ParseInput, context: LambdaContext) -> ParseOutput:
    run, slice_ = event["run"], event["slice"]
    logger.append_keys(run=run, slice=slice_["index"])

    records, rejected, read = _parse_slice(event["batch"], slice_)

    # Staging comes first so that a failure to stage leaves no dead letters for a retry to repeat.
    staged = _stage(run, slice_["index"], records)
    origin = DeadLetterOrigin(
        state="Parse", execution=event["execution"], run=run, batch=event["batch"]
    )
    dead_lettered = dead_letters.send(rejected, origin)

    _report(read, len(records), rejected, slice_)
    return {"staged": staged, "read": read, "valid": len(records), "dead_lettered": dead_lettered}


def _parse_slice(
    batch: BatchObject, slice_: Slice
) -> tuple[list[StagedRecord], list[DeadLetter], int]:
    """Read the slice's lines and sort each message into a staged record or a dead letter."""
    records: list[StagedRecord] = []
    rejected: list[DeadLetter] = []
    read = 0
    for line, offset, raw in _read_lines(batch, slice_):
        if is_blank(raw):
            continue
        read += 1
        try:
            records.append(_parse_message(raw, line, offset))
        except InvalidMessageError as error:
            rejected.append(DeadLetter(line, raw, type(error).__name__, str(error)))
    return records, rejected, read


def _read_lines(batch: BatchObject, slice_: Slice) -> Iterator[tuple[int, int, bytes]]:
    """Yield the number, byte offset and bytes (without line ending) of each line of the slice."""
    byte_range = f"bytes={slice_['start_byte']}-{slice_['end_byte']}"
    location = f"s3://{batch['bucket']}/{batch['key']} {byte_range}"
    with raise_transient(f"GetObject {location}"):
        try:
            response = s3.get_object(
                Bucket=batch["bucket"], Key=batch["key"], Range=byte_range, IfMatch=batch["etag"]
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "PreconditionFailed":
                raise
            raise BatchChangedError(
                f"{location}: the object no longer has ETag {batch['etag']}, so the slice's byte "
                "range is stale; start a new run for the new object"
            ) from error

        with closing(response["Body"]) as body:
            chunks: Iterator[bytes] = body.iter_chunks(READ_CHUNK_BYTES)
            offset = slice_["start_byte"]
            if offset == 0:
                removed, chunks = strip_bom(chunks)
                offset += removed
            line = slice_["first_line"]
            for text in iter_lines(chunks):
                yield line, offset, strip_line_ending(text)
                offset += len(text)
                line += 1


def _parse_message(raw: bytes, line: int, offset: int) -> StagedRecord:
    """Decode and validate one message and convert it to a staged record.

    Raises an InvalidMessageError subclass that names what is wrong.
    """
    text = decode_line(raw, line, offset)
    event = load_json(text, line)
    validate_event(event)
    check_item(event, PARTITION_KEY, SORT_KEY)
    return {"line": line, "raw": text, "item": _serialize(event)}


def _serialize(event: dict[str, Any]) -> dict[str, Any]:
    try:
        return {name: serializer.serialize(value) for name, value in event.items()}
    except (TypeError, DecimalException) as error:
        # check_item mirrors the serializer's rules, so this only catches a rule it misses.
        raise ItemLimitError(f"$: cannot be converted to DynamoDB JSON: {error!r}") from None


def _stage(run: str, index: int, records: list[StagedRecord]) -> ObjectRef:
    key = f"runs/{run}/staged/{index}.jsonl"
    body = "".join(
        json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n" for record in records
    )
    with raise_transient(f"PutObject s3://{BATCH_BUCKET}/{key}"):
        s3.put_object(
            Bucket=BATCH_BUCKET,
            Key=key,
            Body=body.encode("utf-8"),
            ContentType="application/x-ndjson",
        )
    return {"bucket": BATCH_BUCKET, "key": key}


def _report(read: int, valid: int, rejected: list[DeadLetter], slice_: Slice) -> None:
    if read != slice_["messages"]:
        logger.warning(
            "Slice has a different number of messages than Plan counted",
            extra={"read": read, "planned": slice_["messages"]},
        )
    metrics.add_metric(name="MessagesRead", unit=MetricUnit.Count, value=read)
    metrics.add_metric(name="MessagesValid", unit=MetricUnit.Count, value=valid)
    metrics.add_metric(name="MessagesDeadLettered", unit=MetricUnit.Count, value=len(rejected))
    logger.info(
        "Slice parsed",
        extra={
            "read": read,
            "valid": valid,
            "dead_lettered": len(rejected),
            "rejected_by_error": dict(Counter(letter.error for letter in rejected)),
        },
    )
