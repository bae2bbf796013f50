"""Messages between the local Lambda service and an execution environment process.

Each message is one JSON object in a ``multiprocessing.connection`` frame on a private socket
pair, so nothing that a handler prints can reach the channel.

Service to environment: ``{"type": "invoke", "request_id", "payload", "deadline_ms",
"invoked_function_arn"}``, where ``payload`` is the request body as text and ``deadline_ms`` is
a Unix time in milliseconds.

Environment to service: ``{"type": "ready", "init_seconds", ...counters}`` once the handler is
imported, or ``{"type": "init_error", "error"}`` and exit; then per invocation
``{"type": "result", "payload", ...counters}`` or ``{"type": "error", "error", ...counters}``.
``error`` is Lambda's error body without ``requestId``. The counters are ``clients_created``
and ``connections_opened`` since the process started.
"""

from __future__ import annotations

import json
from multiprocessing.connection import Connection
from typing import Any


def send_message(connection: Connection, message: dict[str, Any]) -> None:
    connection.send_bytes(json.dumps(message).encode("utf-8"))


def receive_message(connection: Connection) -> dict[str, Any]:
    """Return the next message. Raises EOFError when the other side has closed."""
    message: dict[str, Any] = json.loads(connection.recv_bytes().decode("utf-8"))
    return message
