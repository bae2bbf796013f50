"""Dead-letter messages: build each body as docs/design.md fixes it and send them in batches."""

import base64
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from ingest_common.clients import raise_transient
from ingest_common.contract import DeadLetterBody, ObjectRef
from ingest_common.errors import DeadLetterError

# SendMessageBatch accepts at most 10 entries.
MAX_BATCH_ENTRIES = 10
# Maximum number of failed entries named in a DeadLetterError message. The rest are only counted.
_MAX_FAILURES_SHOWN = 5


@dataclass(frozen=True)
class DeadLetter:
    """A rejected message: its line number, its bytes without line ending, and the reason.

    `error` is the error class name and `cause` describes what was wrong and where.
    """

    line: int
    raw: bytes
    error: str
    cause: str


@dataclass(frozen=True)
class DeadLetterOrigin:
    """The state, execution, run and batch that every dead letter of one invocation shares."""

    state: str
    execution: str
    run: str
    batch: ObjectRef


@dataclass(frozen=True)
class _Entry:
    line: int
    body: str
    attributes: dict[str, dict[str, str]]
    size: int


class DeadLetterQueue:
    """Sender of dead letters to one SQS queue, with S3 for bodies over the queue's size limit.

    Built once per execution environment from module-level clients.
    """

    def __init__(self, *, sqs: Any, s3: Any, queue_url: str, bucket: str, max_bytes: int) -> None:
        self._sqs = sqs
        self._s3 = s3
        self._queue_url = queue_url
        self._bucket = bucket
        self._max_bytes = max_bytes

    def send(self, letters: Sequence[DeadLetter], origin: DeadLetterOrigin) -> int:
        """Send one SQS message per letter and return how many were sent.

        Raises DeadLetterError when SQS rejects any entry or a body cannot fit the queue even
        with its message moved to S3, and TransientError when SQS or S3 may succeed on retry.
        A retry sends again the letters that had already been sent.
        """
        entries = [self._build_entry(letter, origin) for letter in letters]
        for group in _group_entries(entries, self._max_bytes):
            self._send_group(group)
        return len(entries)

    def _build_entry(self, letter: DeadLetter, origin: DeadLetterOrigin) -> _Entry:
        attributes = {
            "error_type": {"DataType": "String", "StringValue": letter.error},
            "kind": {"DataType": "String", "StringValue": "message"},
        }
        attributes_size = sum(
            len(name) + len(value["DataType"]) + len(value["StringValue"].encode())
            for name, value in attributes.items()
        )
        body = _encode(build_body(letter, origin, _inline_message(letter.raw)))
        if len(body) + attributes_size > self._max_bytes:
            pointer = self._store_message(letter, origin.run)
            body = _encode(build_body(letter, origin, {"message_s3": pointer}))
        size = len(body) + attributes_size
        if size > self._max_bytes:
            raise DeadLetterError(
                f"dead letter for line {letter.line} is {size} bytes even with its message in "
                f"S3, over the queue's maximum of {self._max_bytes} bytes; shorten its cause "
                "or raise DeadLetterMaximumMessageSize"
            )
        return _Entry(line=letter.line, body=body, attributes=attributes, size=size)

    def _store_message(self, letter: DeadLetter, run: str) -> ObjectRef:
        key = f"runs/{run}/dead-letters/{letter.line}.bin"
        with raise_transient(f"PutObject s3://{self._bucket}/{key}"):
            self._s3.put_object(
                Bucket=self._bucket,
                Key=key,
                Body=letter.raw,
                ContentType="application/octet-stream",
            )
        return {"bucket": self._bucket, "key": key}

    def _send_group(self, group: list[_Entry]) -> None:
        request = [
            {
                "Id": f"line-{entry.line}",
                "MessageBody": entry.body,
                "MessageAttributes": entry.attributes,
            }
            for entry in group
        ]
        try:
            with raise_transient("SendMessageBatch"):
                response = self._sqs.send_message_batch(QueueUrl=self._queue_url, Entries=request)
        except ClientError as error:
            raise DeadLetterError(
                f"SendMessageBatch to {self._queue_url} failed: {error}"
            ) from error
        failed = response.get("Failed", [])
        if failed:
            raise DeadLetterError(_describe_failures(failed, len(group)))


def build_body(
    letter: DeadLetter, origin: DeadLetterOrigin, message: dict[str, Any]
) -> DeadLetterBody:
    """Build a dead-letter body with `message`, which contains one of the three message fields."""
    body: dict[str, Any] = {"kind": "message", **message}
    body.update(
        error=letter.error,
        cause=letter.cause,
        state=origin.state,
        execution=origin.execution,
        run=origin.run,
        batch={"bucket": origin.batch["bucket"], "key": origin.batch["key"]},
        line=letter.line,
    )
    return body  # type: ignore[return-value]


def _inline_message(raw: bytes) -> dict[str, str]:
    try:
        return {"message": raw.decode("utf-8")}
    except UnicodeDecodeError:
        return {"message_base64": base64.b64encode(raw).decode("ascii")}


def _encode(body: DeadLetterBody) -> str:
    # ASCII escapes keep every character within what SQS accepts and make the length in
    # characters equal to the size in bytes.
    return json.dumps(body, ensure_ascii=True, separators=(",", ":"))


def _group_entries(entries: list[_Entry], max_bytes: int) -> Iterator[list[_Entry]]:
    """Pack entries in order into SendMessageBatch requests.

    A request has at most 10 entries, and their sizes add up to at most the queue's maximum
    message size, which is never more than SQS's limit on a whole batch.
    """
    group: list[_Entry] = []
    group_size = 0
    for entry in entries:
        if group and (len(group) == MAX_BATCH_ENTRIES or group_size + entry.size > max_bytes):
            yield group
            group, group_size = [], 0
        group.append(entry)
        group_size += entry.size
    if group:
        yield group


def _describe_failures(failed: list[dict[str, Any]], total: int) -> str:
    described = "; ".join(
        f"{failure['Id']}: {failure.get('Code', '?')} "
        f"({'sender' if failure.get('SenderFault') else 'service'} fault) "
        f"{failure.get('Message', '')}".rstrip()
        for failure in failed[:_MAX_FAILURES_SHOWN]
    )
    more = len(failed) - _MAX_FAILURES_SHOWN
    suffix = f"; and {more} more" if more > 0 else ""
    return f"SendMessageBatch rejected {len(failed)} of {total} dead letters: {described}{suffix}"
