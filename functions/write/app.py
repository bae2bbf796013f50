"""Write state: put the staged items of one slice into the table with BatchWriteItem."""

import json
import os
import random
import time
from contextlib import closing

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from ingest_common.clients import create_client, raise_transient
from ingest_common.contract import ObjectRef, StagedRecord, WriteInput, WriteOutput
from ingest_common.deadletter import DeadLetter, DeadLetterOrigin, DeadLetterQueue
from ingest_common.errors import UnprocessedItemsError
from ingest_common.lines import iter_lines

TABLE_NAME = os.environ["TABLE_NAME"]
BATCH_BUCKET = os.environ["BATCH_BUCKET"]
DEAD_LETTER_QUEUE_URL = os.environ["DEAD_LETTER_QUEUE_URL"]
DEAD_LETTER_MAX_BYTES = int(os.environ["DEAD_LETTER_MAX_BYTES"])
# Attempts per BatchWriteItem request, the first one included.
WRITE_MAX_ATTEMPTS = int(os.environ.get("WRITE_MAX_ATTEMPTS", "8"))
# Maximum random delay in seconds before the first resend. The maximum doubles with each attempt.
WRITE_BASE_DELAY_SECONDS = float(os.environ.get("WRITE_BASE_DELAY_SECONDS", "0.05"))
WRITE_MAX_DELAY_SECONDS = float(os.environ.get("WRITE_MAX_DELAY_SECONDS", "5"))
# Time kept back from the invocation's timeout to dead-letter what is left and return.
WRITE_DEADLINE_MARGIN_SECONDS = float(os.environ.get("WRITE_DEADLINE_MARGIN_SECONDS", "10"))
# BatchWriteItem takes at most 25 put requests.
MAX_BATCH_ITEMS = 25
PARTITION_KEY = "source"
SORT_KEY = "id"
READ_CHUNK_BYTES = 1024 * 1024

dynamodb = create_client("dynamodb")
s3 = create_client("s3")
sqs = create_client("sqs")
dead_letters = DeadLetterQueue(
    sqs=sqs,
    s3=s3,
    queue_url=DEAD_LETTER_QUEUE_URL,
    bucket=BATCH_BUCKET,
    max_bytes=DEAD_LETTER_MAX_BYTES,
)

logger = Logger(utc=True)
metrics = Metrics()

ItemKey = tuple[str, str]


@logger.inject_lambda_context(correlation_id_path="execution", clear_state=True)
@metrics.log_metrics
def handler(event: WriteInput, context: LambdaContext) -> WriteOutput:
    parsed = event["parsed"]
    logger.append_keys(run=event["run"], slice=event["slice"]["index"])
    deadline = (
        time.monotonic()
        + context.get_remaining_time_in_millis() / 1000
        - WRITE_DEADLINE_MARGIN_SECONDS
    )

    records = _read_staged(parsed["staged"])
    unique, duplicates = _collapse_duplicates(records)
    unwritten = _write_items(unique, deadline)

    dead_lettered = _dead_letter(unwritten, event)

    written = len(unique) - len(unwritten)
    _report(len(records), parsed["valid"], written, dead_lettered, duplicates)
    return {
        "read": parsed["read"],
        "written": written,
        "dead_lettered": parsed["dead_lettered"] + dead_lettered,
        "duplicates": duplicates,
    }


def _read_staged(staged: ObjectRef) -> list[StagedRecord]:
    location = f"s3://{staged['bucket']}/{staged['key']}"
    with raise_transient(f"GetObject {location}"):
        response = s3.get_object(Bucket=staged["bucket"], Key=staged["key"])
        with closing(response["Body"]) as body:
            return [json.loads(line) for line in iter_lines(body.iter_chunks(READ_CHUNK_BYTES))]


def _collapse_duplicates(records: list[StagedRecord]) -> tuple[list[StagedRecord], int]:
    """Keep the last record of each key, because the later line of a slice wins.

    Returns the kept records and the number of records dropped.
    """
    latest: dict[ItemKey, StagedRecord] = {}
    for record in records:
        key = _item_key(record["item"])
        earlier = latest.get(key)
        if earlier is not None:
            logger.warning(
                "Duplicate key in slice; the later line replaces the earlier one",
                extra={
                    "source": key[0],
                    "id": key[1],
                    "earlier_line": earlier["line"],
                    "later_line": record["line"],
                },
            )
        latest[key] = record
    return list(latest.values()), len(records) - len(latest)


def _write_items(records: list[StagedRecord], deadline: float) -> list[tuple[StagedRecord, str]]:
    """Write the records in requests of 25 and return those left unwritten, each with a cause."""
    unwritten: list[tuple[StagedRecord, str]] = []
    for start in range(0, len(records), MAX_BATCH_ITEMS):
        group = records[start : start + MAX_BATCH_ITEMS]
        if time.monotonic() >= deadline:
            cause = (
                "not written: the invocation reached its deadline "
                f"({WRITE_DEADLINE_MARGIN_SECONDS:g} s before its timeout) before this request"
            )
            unwritten.extend((record, cause) for record in group)
            continue
        unwritten.extend(_write_group(group, deadline))
    return unwritten


def _write_group(group: list[StagedRecord], deadline: float) -> list[tuple[StagedRecord, str]]:
    """Send one BatchWriteItem request and resend its UnprocessedItems within the bounds.

    Waits between attempts with exponential backoff and full jitter, and never sleeps past
    `deadline`. Returns the records still unprocessed, each with a cause.
    """
    by_key = {_item_key(record["item"]): record for record in group}
    requests = [{"PutRequest": {"Item": record["item"]}} for record in group]
    attempt = 1
    while True:
        with raise_transient(f"BatchWriteItem on table {TABLE_NAME}"):
            response = dynamodb.batch_write_item(RequestItems={TABLE_NAME: requests})
        requests = response.get("UnprocessedItems", {}).get(TABLE_NAME, [])
        if not requests:
            return []
        attempts = f"{attempt} attempt{'' if attempt == 1 else 's'}"
        if attempt >= WRITE_MAX_ATTEMPTS:
            cause = f"BatchWriteItem left the item unprocessed after {attempts}"
            break
        bound = min(WRITE_MAX_DELAY_SECONDS, WRITE_BASE_DELAY_SECONDS * 2 ** (attempt - 1))
        delay = random.uniform(0, bound)
        if time.monotonic() + delay >= deadline:
            cause = (
                f"BatchWriteItem left the item unprocessed after {attempts}, and the "
                "invocation reached its deadline before the next one"
            )
            break
        logger.warning(
            "BatchWriteItem left items unprocessed; resending",
            extra={"unprocessed": len(requests), "attempt": attempt, "delay_seconds": delay},
        )
        time.sleep(delay)
        attempt += 1
    return [(by_key[_item_key(request["PutRequest"]["Item"])], cause) for request in requests]


def _dead_letter(unwritten: list[tuple[StagedRecord, str]], event: WriteInput) -> int:
    if not unwritten:
        return 0
    logger.warning(
        "Items left unwritten are sent to the dead-letter queue",
        extra={"unwritten": len(unwritten)},
    )
    error = UnprocessedItemsError.__name__
    letters = [
        DeadLetter(record["line"], record["raw"].encode("utf-8"), error, cause)
        for record, cause in unwritten
    ]
    origin = DeadLetterOrigin(
        state="Write", execution=event["execution"], run=event["run"], batch=event["batch"]
    )
    return dead_letters.send(letters, origin)


def _item_key(item: dict[str, dict[str, str]]) -> ItemKey:
    return item[PARTITION_KEY]["S"], item[SORT_KEY]["S"]


def _report(staged: int, valid: int, written: int, dead_lettered: int, duplicates: int) -> None:
    if staged != valid:
        logger.warning(
            "Staged object has a different number of records than Parse reported",
            extra={"staged": staged, "valid": valid},
        )
    metrics.add_metric(name="MessagesWritten", unit=MetricUnit.Count, value=written)
    metrics.add_metric(name="MessagesDeadLettered", unit=MetricUnit.Count, value=dead_lettered)
    metrics.add_metric(name="DuplicateMessages", unit=MetricUnit.Count, value=duplicates)
    logger.info(
        "Slice written",
        extra={"written": written, "dead_lettered": dead_lettered, "duplicates": duplicates},
    )
