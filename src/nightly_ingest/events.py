"""Build the EventBridge event that starts a run, in the shape S3 delivers on AWS."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any


def object_created_event(
    *,
    bucket: str,
    key: str,
    size: int,
    etag: str,
    region: str,
    account: str,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Return the `Object Created` event that S3 sends to EventBridge for a new object.

    The fields follow the event structure documented for S3's EventBridge integration
    (detail version "0"), so the state machine reads the same paths locally and on AWS.
    """
    moment = now or datetime.now(UTC)
    timestamp = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Object Created",
        "source": "aws.s3",
        "account": account,
        "time": timestamp,
        "region": region,
        "resources": [f"arn:aws:s3:::{bucket}"],
        "detail": {
            "version": "0",
            "bucket": {"name": bucket},
            "object": {
                "key": key,
                "size": size,
                "etag": etag.strip('"'),
                "sequencer": f"{int(moment.timestamp() * 1_000_000):016X}",
            },
            "request-id": uuid.uuid4().hex[:16].upper(),
            "requester": account,
            "source-ip-address": "127.0.0.1",
            "reason": "PutObject",
        },
    }
