"""AWS clients with explicit timeouts and retries, and the mapping of retryable failures."""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionError, HTTPClientError

from ingest_common.errors import TransientError

CONNECT_TIMEOUT_SECONDS = 5
READ_TIMEOUT_SECONDS = 20
# Retries after the first attempt, so a call is tried at most four times before it fails.
MAX_RETRY_ATTEMPTS = 3
# An execution environment serves one invocation at a time and the functions make their AWS
# calls one after another. The second connection covers an S3 response body that is still
# open while another request goes out.
MAX_POOL_CONNECTIONS = 2

# Error codes that botocore's "standard" retry mode treats as throttling or transient
# (botocore 1.43, botocore/retries/standard.py). They still mean "try again later" once
# botocore's own attempts are used up.
_RETRYABLE_ERROR_CODES = frozenset(
    {
        "BandwidthLimitExceeded",
        "EC2ThrottledException",
        "InternalError",
        "InternalServerError",
        "LimitExceededException",
        "PriorRequestNotComplete",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "RequestThrottledException",
        "RequestTimeout",
        "RequestTimeoutException",
        "ServiceUnavailable",
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "TooManyRequestsException",
        "TransactionInProgressException",
    }
)
_RETRYABLE_STATUS_CODES = frozenset({500, 502, 503, 504})


def client_config() -> Config:
    """Build the botocore configuration that every client of the functions uses."""
    return Config(
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
        read_timeout=READ_TIMEOUT_SECONDS,
        retries={"mode": "standard", "max_attempts": MAX_RETRY_ATTEMPTS},
        max_pool_connections=MAX_POOL_CONNECTIONS,
    )


def create_client(service: str) -> Any:
    """Create a boto3 client for `service`, meant to be called once at module import.

    The endpoint, region and credentials come from the environment as usual, so the local AWS
    is reached by setting AWS_ENDPOINT_URL.
    """
    return boto3.client(service, config=client_config())  # type: ignore[call-overload]


def is_retryable(error: Exception) -> bool:
    """Return whether `error` from botocore means that the same call may succeed later."""
    if isinstance(error, ConnectionError | HTTPClientError):
        return True
    if not isinstance(error, ClientError):
        return False
    code = error.response.get("Error", {}).get("Code", "")
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return code in _RETRYABLE_ERROR_CODES or status in _RETRYABLE_STATUS_CODES


@contextmanager
def raise_transient(action: str) -> Iterator[None]:
    """Re-raise a retryable botocore error inside the block as TransientError.

    The state machine retries a state that fails with TransientError. Any other error
    propagates unchanged. `action` names the call in the message, e.g. "GetObject s3://b/k".
    """
    try:
        yield
    except (ClientError, ConnectionError, HTTPClientError) as error:
        if not is_retryable(error):
            raise
        raise TransientError(f"{action} failed and may succeed on retry: {error}") from error
