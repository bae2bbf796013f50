"""Errors raised by the nightly-ingest functions.

The class names are part of the contract: Lambda reports a raised exception's class name as the
error type, the state machine's Retry and Catch match on it, and the dead-letter body's `error`
field repeats it. Rename none of them without changing statemachine/ingest.asl.json.
"""


class IngestError(Exception):
    """Base class of every error that the nightly-ingest functions raise on purpose."""


class InvalidMessageError(IngestError):
    """Base class of the errors that reject one message, which is then dead-lettered alone."""


class InvalidEncodingError(InvalidMessageError):
    """A line of the batch is not valid UTF-8."""


class InvalidJsonError(InvalidMessageError):
    """A line of the batch is not one valid JSON value."""


class EnvelopeValidationError(InvalidMessageError):
    """A message does not satisfy the CloudEvents 1.0 envelope schema."""


class UnknownEventTypeError(InvalidMessageError):
    """A message's `type` has no schema, so its data cannot be validated."""


class SchemaValidationError(InvalidMessageError):
    """A message's `data` does not satisfy the schema of its event type."""


class ItemLimitError(InvalidMessageError):
    """A message cannot be stored as a DynamoDB item because it breaks one of DynamoDB's limits."""


class UnprocessedItemsError(IngestError):
    """BatchWriteItem left items unprocessed after every allowed attempt."""


class TransientError(IngestError):
    """An AWS call failed in a way that may succeed when the state is run again."""


class DeadLetterError(IngestError):
    """Messages could not be sent to the dead-letter queue."""


class BatchChangedError(IngestError):
    """The batch object changed after Plan cut it into slices, so the byte ranges are stale."""


class ReconciliationError(IngestError):
    """The run's ledger does not account for every message of the batch."""
