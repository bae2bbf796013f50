"""Fault injection: rules that make matching AWS calls fail, lose their effect or slow down.

A rule matches a service (as named in the SigV4 credential scope: ``lambda``, ``dynamodb``,
``sqs``, ``s3``, ``states``), an action (``Invoke``, ``PutItem``, ``SendMessage``, ... or ``*``),
and optionally a resource (a function, table, queue or bucket name) and a part of the request's
JSON body (``match_body``, compared key by key). After letting ``skip`` matching calls through,
it fires for the next ``times`` matching calls, or for every one when ``times`` is None. With
``share`` set, each of those calls fires only with that probability.

Kinds:

- ``error``: respond with HTTP ``status`` and AWS error ``error_code``, and do not forward the
  call.
  On a Lambda invocation it is an error of the Lambda service itself, which Step Functions
  reports as ``Lambda.<error_code>``.
- ``crash`` (Lambda only): the invocation fails as an unhandled function error with
  ``error_type`` and ``error_message``, without running the handler.
- ``timeout`` (Lambda only): the invocation fails at once as one that ran past the function's
  Timeout does, with error type ``Sandbox.Timedout``, without running the handler.
- ``unprocessed`` (DynamoDB BatchWriteItem only): the last ``items`` write requests come back
  as UnprocessedItems, and the rest is forwarded.
- ``drop``: respond with success without forwarding, so the call has no effect.
- ``delay``: wait ``seconds``, then go on. On a Lambda invocation the wait takes a concurrency
  slot, as a slow handler does.

Every fault that fires is logged at WARNING with the rule id.
"""

from __future__ import annotations

import io
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from werkzeug.datastructures import Headers
from werkzeug.wrappers import Request, Response

from .aws_calls import AwsCall, error_response, identify_call, json_response, success_response
from .exceptions import FaultRuleError

LOG = logging.getLogger(__name__)

FAULT_KINDS = ("error", "crash", "timeout", "unprocessed", "drop", "delay")
MAX_DELAY_SECONDS = 300.0
# boto3 client names that differ from the signing name that requests carry.
_SERVICE_ALIASES = {"stepfunctions": "states", "sfn": "states"}
_FIELDS = frozenset(
    {
        "service",
        "action",
        "kind",
        "resource",
        "match_body",
        "times",
        "skip",
        "share",
        "seed",
        "status",
        "error_code",
        "error_type",
        "error_message",
        "items",
        "seconds",
    }
)

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


@dataclass
class FaultRule:
    """One fault rule and the number of calls it has matched and fired on."""

    id: str
    service: str
    action: str
    kind: str
    resource: str | None = None
    match_body: dict[str, Any] | None = None
    times: int | None = 1
    skip: int = 0
    share: float | None = None
    seed: int | None = None
    status: int | None = None
    error_code: str | None = None
    error_type: str | None = None
    error_message: str | None = None
    items: int | None = None
    seconds: float | None = None
    matched: int = 0
    fired: int = 0
    _random: random.Random = field(default_factory=random.Random, repr=False)

    @classmethod
    def from_document(cls, document: Any, rule_id: str) -> FaultRule:
        """Build a rule from its JSON form. Raises FaultRuleError naming the invalid field."""
        if not isinstance(document, dict):
            raise FaultRuleError(f"A fault rule must be a JSON object, not {document!r}.")
        unknown = sorted(set(document) - _FIELDS)
        if unknown:
            raise FaultRuleError(
                f"Unknown fault rule fields: {', '.join(unknown)}. "
                f"Known fields: {', '.join(sorted(_FIELDS))}."
            )
        service = _required_text_field(document, "service")
        service = _SERVICE_ALIASES.get(service, service)
        rule = cls(
            id=rule_id,
            service=service,
            action=_required_text_field(document, "action"),
            kind=_required_text_field(document, "kind"),
            resource=_text_field(document, "resource"),
            match_body=_object_field(document, "match_body"),
            times=_integer_field(document, "times", minimum=1, default=1),
            skip=_integer_field(document, "skip", minimum=0, default=0) or 0,
            share=_share_field(document),
            seed=_integer_field(document, "seed", minimum=None, default=None),
            status=_integer_field(document, "status", minimum=400, default=None, maximum=599),
            error_code=_text_field(document, "error_code"),
            error_type=_text_field(document, "error_type"),
            error_message=_text_field(document, "error_message"),
            items=_integer_field(document, "items", minimum=1, default=None),
            seconds=_seconds_field(document),
        )
        rule._check_kind()
        rule._random = random.Random(rule.seed)
        if rule.error_message is None and rule.kind in ("error", "crash"):
            rule.error_message = f"Injected by local AWS fault rule {rule_id}."
        return rule

    def _check_kind(self) -> None:
        """Check that the kind has the fields it needs and suits the service and action."""
        if self.kind not in FAULT_KINDS:
            raise FaultRuleError(
                f"Fault kind {self.kind!r} is unknown. Known kinds: {', '.join(FAULT_KINDS)}."
            )
        needed = {
            "error": ("status", "error_code"),
            "crash": ("error_type",),
            "timeout": (),
            "unprocessed": ("items",),
            "delay": ("seconds",),
            "drop": (),
        }[self.kind]
        missing = [name for name in needed if getattr(self, name) is None]
        if missing:
            raise FaultRuleError(f"A fault of kind {self.kind} needs {', '.join(missing)}.")
        if self.kind == "crash" and (self.service, self.action) != ("lambda", "Invoke"):
            raise FaultRuleError(
                f"Only a Lambda Invoke can crash, not {self.service} {self.action}. "
                "Use kind error for an error of the service."
            )
        if self.kind == "timeout" and (self.service, self.action) != ("lambda", "Invoke"):
            raise FaultRuleError(
                f"Only a Lambda Invoke can time out, not {self.service} {self.action}. "
                "Use kind delay to slow down a call, or kind error for an error of the service."
            )
        if self.kind == "unprocessed" and (self.service, self.action) != (
            "dynamodb",
            "BatchWriteItem",
        ):
            raise FaultRuleError(
                f"Only DynamoDB BatchWriteItem returns unprocessed items, not {self.service} "
                f"{self.action}."
            )
        if self.kind == "drop" and self.service == "lambda":
            raise FaultRuleError(
                "A Lambda invocation cannot be dropped, because its caller waits for a result. "
                "Use kind crash or error."
            )

    def matches(self, call: AwsCall) -> bool:
        """Return whether the call is one that this rule is about, whether or not it fires."""
        if call.service != self.service or self.action not in ("*", call.action):
            return False
        if self.resource is not None and self.resource not in call.resources:
            return False
        if self.match_body is not None:
            return call.document is not None and _contains(call.document, self.match_body)
        return True

    def count_match(self) -> bool:
        """Count one matching call and return whether the rule fires on it."""
        self.matched += 1
        if self.matched <= self.skip:
            return False
        if self.times is not None and self.fired >= self.times:
            return False
        if self.share is not None and self._random.random() >= self.share:
            return False
        self.fired += 1
        return True

    def describe(self) -> str:
        """Describe what the fault does to a call, for the server log."""
        if self.kind == "error":
            return f"HTTP {self.status} {self.error_code}"
        if self.kind == "crash":
            return f"unhandled function error {self.error_type}"
        if self.kind == "timeout":
            return "function timed out (Sandbox.Timedout)"
        if self.kind == "unprocessed":
            return f"last {self.items} write requests returned as UnprocessedItems"
        if self.kind == "delay":
            return f"delayed {self.seconds:g} s"
        return "returned success without forwarding"

    def to_dict(self) -> dict[str, Any]:
        document = {
            name: getattr(self, name)
            for name in ("id", *sorted(_FIELDS), "matched", "fired")
            if getattr(self, name) is not None
        }
        # None means every matching call, so it is kept.
        document["times"] = self.times
        return document


class FaultInjector:
    """The fault rules of one server, matched against every call that reaches it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        self._next_number = 1

    @property
    def active(self) -> bool:
        """Whether any rule is set, so that requests must be inspected."""
        return bool(self._rules)

    def add(self, document: Any) -> FaultRule:
        """Add a rule from its JSON form and return it. Raises FaultRuleError when invalid."""
        with self._lock:
            rule = FaultRule.from_document(document, f"fault-{self._next_number}")
            self._next_number += 1
            self._rules.append(rule)
        LOG.info("Added fault rule %s: %s", rule.id, json.dumps(rule.to_dict()))
        return rule

    def rules(self) -> list[dict[str, Any]]:
        with self._lock:
            return [rule.to_dict() for rule in self._rules]

    def remove(self, rule_id: str) -> bool:
        """Remove one rule. Returns False when no rule has that id."""
        with self._lock:
            remaining = [rule for rule in self._rules if rule.id != rule_id]
            removed = len(remaining) != len(self._rules)
            self._rules = remaining
        if removed:
            LOG.info("Removed fault rule %s", rule_id)
        return removed

    def clear(self) -> int:
        """Remove every rule and return how many there were."""
        with self._lock:
            count = len(self._rules)
            self._rules = []
        LOG.info("Cleared %d fault rules", count)
        return count

    def take(self, call: AwsCall) -> FaultRule | None:
        """Return the first rule that fires on ``call``, or None, and log the fault that fires.

        The call counts as matched on each rule up to the one that fires.
        """
        if not self._rules:
            return None
        fired = None
        with self._lock:
            # A call that one rule fires on is not seen by the rules after it.
            for rule in self._rules:
                if rule.matches(call) and rule.count_match():
                    fired = rule
                    break
        if fired is not None:
            resources = f" on {', '.join(call.resources)}" if call.resources else ""
            LOG.warning(
                "Injected fault %s (%s) into %s %s%s: %s",
                fired.id,
                fired.kind,
                call.service,
                call.action,
                resources,
                fired.describe(),
            )
        return fired

    def handle(
        self, environ: dict[str, Any], start_response: Callable[..., Any], forward: WsgiApp
    ) -> Iterable[bytes]:
        """Serve one AWS API request: apply the rule that fires on it, or forward it unchanged."""
        body = _read_body(environ)
        call = identify_call(environ, body)
        rule = self.take(call) if call is not None else None
        if rule is None or call is None:
            return forward(environ, start_response)
        if rule.kind == "delay":
            time.sleep(rule.seconds or 0.0)
            return forward(environ, start_response)
        if rule.kind == "error":
            assert rule.status is not None and rule.error_code is not None
            message = rule.error_message or ""
            response = error_response(call, rule.status, rule.error_code, message)
        elif rule.kind == "drop":
            response = success_response(call, body)
        else:
            response = _hold_back_items(rule, call, environ, forward)
        return response(environ, start_response)


def _hold_back_items(
    rule: FaultRule, call: AwsCall, environ: dict[str, Any], forward: WsgiApp
) -> Response:
    """Forward a BatchWriteItem without its last ``rule.items`` write requests.

    The requests held back are returned as UnprocessedItems, merged into moto's response.
    """
    document = call.document or {}
    request_items = document.get("RequestItems")
    if not isinstance(request_items, dict):
        status, headers, body = _call(forward, environ)
        return Response(body, status=status, headers=headers)

    remaining = rule.items or 0
    withheld: dict[str, list[Any]] = {}
    forwarded: dict[str, list[Any]] = {}
    for table in reversed(list(request_items)):
        requests = list(request_items[table])
        count = 0 if rule.resource not in (None, table) else min(remaining, len(requests))
        remaining -= count
        if count:
            withheld[table] = requests[len(requests) - count :]
        if len(requests) > count:
            forwarded[table] = requests[: len(requests) - count]
    if not forwarded:
        return json_response(call, {"UnprocessedItems": withheld}, 200, {})

    new_body = json.dumps({**document, "RequestItems": forwarded}).encode("utf-8")
    status, headers, body = _call(forward, _with_body(environ, new_body))
    if status != 200:
        return Response(body, status=status, headers=headers)

    result = json.loads(body)
    unprocessed = result.get("UnprocessedItems") or {}
    for table, requests in withheld.items():
        unprocessed.setdefault(table, []).extend(requests)
    result["UnprocessedItems"] = unprocessed
    request_id = Headers(headers).get("x-amzn-RequestId", "")
    return json_response(call, result, 200, {"x-amzn-RequestId": request_id})


def _contains(actual: Any, pattern: Any) -> bool:
    """Return whether ``actual`` has every key of ``pattern`` with a matching value.

    Objects are compared key by key, recursively; other values, lists included, by equality.
    """
    if isinstance(pattern, dict):
        return isinstance(actual, dict) and all(
            key in actual and _contains(actual[key], value) for key, value in pattern.items()
        )
    return bool(actual == pattern)


def _read_body(environ: dict[str, Any]) -> bytes:
    """Read the request body and put it back, so that the request can still be forwarded."""
    body = Request(environ).get_data(cache=False, parse_form_data=False)
    _with_body(environ, body)
    return body


def _with_body(environ: dict[str, Any], body: bytes) -> dict[str, Any]:
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    environ.pop("HTTP_TRANSFER_ENCODING", None)
    return environ


def _call(app: WsgiApp, environ: dict[str, Any]) -> tuple[int, list[tuple[str, str]], bytes]:
    """Call a WSGI app and return its status code, headers and whole body."""
    captured: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        captured["status"] = int(status.split(" ", 1)[0])
        captured["headers"] = headers
        return lambda data: None

    chunks = app(environ, start_response)
    try:
        body = b"".join(chunks)
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
    headers = [
        (name, value)
        for name, value in captured["headers"]
        if name.lower() not in ("content-length", "x-amz-crc32")
    ]
    return captured["status"], headers, body


def _required_text_field(document: Mapping[str, Any], name: str) -> str:
    value = _text_field(document, name)
    if value is None:
        raise FaultRuleError(f"A fault rule needs {name}.")
    return value


def _text_field(document: Mapping[str, Any], name: str) -> str | None:
    value = document.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise FaultRuleError(f"Fault rule field {name} must be a non-empty string, not {value!r}.")
    return value


def _object_field(document: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    value = document.get(name)
    if value is not None and not isinstance(value, dict):
        raise FaultRuleError(f"Fault rule field {name} must be a JSON object, not {value!r}.")
    return value


def _integer_field(
    document: Mapping[str, Any],
    name: str,
    *,
    minimum: int | None,
    default: int | None,
    maximum: int | None = None,
) -> int | None:
    if name not in document:
        return default
    value = document[name]
    if value is None and name == "times":
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise FaultRuleError(f"Fault rule field {name} must be an integer, not {value!r}.")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        bounds = f"at least {minimum}" if maximum is None else f"from {minimum} to {maximum}"
        raise FaultRuleError(f"Fault rule field {name} must be {bounds}, not {value}.")
    return value


def _share_field(document: Mapping[str, Any]) -> float | None:
    value = document.get("share")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
        raise FaultRuleError(
            f"Fault rule field share must be a number above 0 and at most 1, not {value!r}."
        )
    return float(value)


def _seconds_field(document: Mapping[str, Any]) -> float | None:
    value = document.get("seconds")
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not 0 < value <= MAX_DELAY_SECONDS
    ):
        raise FaultRuleError(
            f"Fault rule field seconds must be a number above 0 and at most "
            f"{MAX_DELAY_SECONDS:g}, not {value!r}."
        )
    return float(value)
