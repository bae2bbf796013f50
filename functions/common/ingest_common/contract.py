"""Typed inputs and outputs of the states, the slice and the staged record.

These mirror the state contracts of docs/design.md and the Payload blocks of
statemachine/ingest.asl.json.
"""

from typing import Any, NotRequired, TypedDict


class ObjectRef(TypedDict):
    """Location of an S3 object."""

    bucket: str
    key: str


class BatchObject(TypedDict):
    """The batch object as Plan read it. `etag` is S3's ETag, quotes included."""

    bucket: str
    key: str
    size: int
    etag: str


class Slice(TypedDict):
    """A run of whole lines of the batch.

    Lines are numbered from 1 over every physical line of the object. `start_byte` and
    `end_byte` are inclusive, as in an HTTP Range header. `messages` counts the non-blank lines.
    """

    index: int
    first_line: int
    last_line: int
    start_byte: int
    end_byte: int
    messages: int


class PlanInput(TypedDict):
    run: str
    execution: str
    bucket: str
    key: str
    slice_size: int


class PlanOutput(TypedDict):
    batch: BatchObject
    manifest: ObjectRef
    slices: int
    messages: int


class ParseInput(TypedDict):
    run: str
    execution: str
    batch: BatchObject
    slice: Slice


class ParseOutput(TypedDict):
    staged: ObjectRef
    read: int
    valid: int
    dead_lettered: int


class WriteInput(TypedDict):
    run: str
    execution: str
    batch: BatchObject
    slice: Slice
    parsed: ParseOutput


class WriteOutput(TypedDict):
    read: int
    written: int
    dead_lettered: int
    duplicates: int


class Outcome(WriteOutput):
    """A slice's counts as RecordOutcome stores them in the ledger's `outcome` attribute.

    `failed_state` is null when Write succeeded, else "Parse" or "Write".
    """

    failed_state: str | None


class ReconcileInput(TypedDict):
    run: str
    execution: str
    batch: BatchObject
    slices: int
    messages: int


class ReconcileOutput(TypedDict):
    run: str
    batch: BatchObject
    slices: int
    read: int
    written: int
    dead_lettered: int
    duplicates: int


class StagedRecord(TypedDict):
    """One line of a staged object: a valid message ready for BatchWriteItem.

    `raw` is the message line as decoded, without its line ending. `item` is in DynamoDB JSON.
    """

    line: int
    raw: str
    item: dict[str, Any]


class DeadLetterBody(TypedDict):
    """Body of a dead-letter message of kind "message".

    Exactly one of `message`, `message_base64` and `message_s3` is present.
    """

    kind: str
    message: NotRequired[str]
    message_base64: NotRequired[str]
    message_s3: NotRequired[ObjectRef]
    error: str
    cause: str
    state: str
    execution: str
    run: str
    batch: ObjectRef
    line: int
