"""Validation of a decoded message against the CloudEvents envelope and its type's data schema.

The schemas are the JSON files in schemas/ beside this module: cloudevent.json for the envelope
and <type>.json for the data of each event type. Numbers are expected as Decimal, as Parse
decodes them, and the formats "date-time" and "date" are checked strictly (RFC 3339).
"""

import datetime
import json
import re
from collections.abc import Iterable, Sequence
from decimal import Decimal
from importlib import resources
from typing import Any, cast

from jsonschema import Draft202012Validator, FormatChecker, validators
from jsonschema.exceptions import ValidationError, best_match, relevance
from jsonschema.protocols import Validator

from ingest_common.errors import (
    EnvelopeValidationError,
    SchemaValidationError,
    UnknownEventTypeError,
)

ENVELOPE_SCHEMA_FILE = "cloudevent.json"
# Maximum length in characters of a bad value shown in a cause. A longer value is cut
# to end in "...".
MAX_VALUE_CHARS = 80
# Maximum number of schema errors described in a cause. The rest are only counted.
MAX_ERRORS_SHOWN = 3
# Maximum length in characters of a cause. A longer cause is cut to end in "...".
MAX_CAUSE_CHARS = 1000

_DATE_TIME = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]+)?"
    r"(?:[Zz]|([+-])([0-9]{2}):([0-9]{2}))"
)
_DATE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def is_rfc3339_date_time(value: object) -> bool:
    """Return whether `value` is an RFC 3339 date-time; values of other types pass.

    A leap second (:60) is accepted only at 23:59 UTC.
    """
    if not isinstance(value, str):
        return True
    match = _DATE_TIME.fullmatch(value)
    if match is None:
        return False
    year, month, day, hour, minute, second = (int(part) for part in match.group(1, 2, 3, 4, 5, 6))
    sign, offset_hours, offset_minutes = match.group(8, 9, 10)
    offset = datetime.timedelta()
    if sign is not None:
        if int(offset_hours) > 23 or int(offset_minutes) > 59:
            return False
        offset = datetime.timedelta(hours=int(offset_hours), minutes=int(offset_minutes))
        if sign == "-":
            offset = -offset
    try:
        local = datetime.datetime(year, month, day, hour, minute, min(second, 59))
    except ValueError:
        return False
    if second == 60:
        utc = local - offset
        return (utc.hour, utc.minute) == (23, 59)
    return second < 60


def is_rfc3339_date(value: object) -> bool:
    """Return whether `value` is an RFC 3339 full-date; values of other types pass."""
    if not isinstance(value, str):
        return True
    match = _DATE.fullmatch(value)
    if match is None:
        return False
    try:
        datetime.date(*(int(part) for part in match.groups()))
    except ValueError:
        return False
    return True


def _is_number(checker: Any, instance: object) -> bool:
    return isinstance(instance, Decimal) or Draft202012Validator.TYPE_CHECKER.is_type(
        instance, "number"
    )


def _is_integer(checker: Any, instance: object) -> bool:
    if isinstance(instance, Decimal):
        return instance.is_finite() and instance == instance.to_integral_value()
    return Draft202012Validator.TYPE_CHECKER.is_type(instance, "integer")


_FORMAT_CHECKER = FormatChecker(formats=())
_FORMAT_CHECKER.checks("date-time")(is_rfc3339_date_time)
_FORMAT_CHECKER.checks("date")(is_rfc3339_date)

_DecimalValidator = validators.extend(
    Draft202012Validator,
    type_checker=Draft202012Validator.TYPE_CHECKER.redefine_many(
        {"number": _is_number, "integer": _is_integer}
    ),
)


def create_validator(schema: dict[str, Any]) -> Validator:
    """Create a Draft 2020-12 validator that reads Decimal as a JSON number and asserts formats.

    Raises jsonschema.SchemaError when `schema` itself is not a valid schema.
    """
    _DecimalValidator.check_schema(schema)
    return _DecimalValidator(schema, format_checker=_FORMAT_CHECKER)


def load_schemas() -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Read the envelope schema and every event type's data schema, keyed by type."""
    folder = resources.files("ingest_common").joinpath("schemas")
    envelope: dict[str, Any] = {}
    data_schemas: dict[str, dict[str, Any]] = {}
    for entry in folder.iterdir():
        if not entry.name.endswith(".json"):
            continue
        schema = json.loads(entry.read_text(encoding="utf-8"))
        if entry.name == ENVELOPE_SCHEMA_FILE:
            envelope = schema
        else:
            data_schemas[entry.name.removesuffix(".json")] = schema
    if not envelope:
        raise FileNotFoundError(f"{ENVELOPE_SCHEMA_FILE} is missing from {folder}")
    return envelope, data_schemas


_ENVELOPE_SCHEMA, _DATA_SCHEMAS = load_schemas()
_ENVELOPE_VALIDATOR = create_validator(_ENVELOPE_SCHEMA)
# Looked up by the message's type only, so that a type can never name a file to open.
_DATA_VALIDATORS = {
    event_type: create_validator(schema) for event_type, schema in _DATA_SCHEMAS.items()
}
EVENT_TYPES = frozenset(_DATA_VALIDATORS)


def validate_event(event: object) -> None:
    """Validate a decoded message: envelope first, then the data schema of its type.

    Raises EnvelopeValidationError, UnknownEventTypeError or SchemaValidationError with a cause
    that names the JSON path, the bad value where it is short, and what was expected.
    """
    errors = list(_ENVELOPE_VALIDATOR.iter_errors(event))
    if errors:
        raise EnvelopeValidationError(describe_errors(errors, "$"))
    event = cast(dict[str, Any], event)  # the envelope schema requires an object

    event_type = event["type"]
    validator = _DATA_VALIDATORS.get(event_type)
    if validator is None:
        raise UnknownEventTypeError(
            f"$.type: {render_value(event_type)} is not a known event type; "
            f"expected one of {', '.join(sorted(EVENT_TYPES))}"
        )
    if "data" not in event:
        raise SchemaValidationError(f"$: 'data' is a required property for type {event_type}")

    errors = list(validator.iter_errors(event["data"]))
    if errors:
        raise SchemaValidationError(describe_errors(errors, "$.data"))


def describe_errors(errors: Sequence[ValidationError], root: str) -> str:
    """Describe the most relevant of `errors` as "<JSON path>: <message>" and count the rest.

    At most MAX_ERRORS_SHOWN errors are described, the most relevant first, joined by "; ".
    """
    ranked = sorted(errors, key=relevance, reverse=True)
    described = "; ".join(
        _describe_error(best_match([error]), root) for error in ranked[:MAX_ERRORS_SHOWN]
    )
    more = len(ranked) - MAX_ERRORS_SHOWN
    if more > 0:
        described += f"; and {more} more"
    return _truncate(described, MAX_CAUSE_CHARS)


def _describe_error(error: ValidationError, root: str) -> str:
    message = error.message
    instance_repr = repr(error.instance)
    if instance_repr in message:
        message = message.replace(instance_repr, render_value(error.instance), 1)
    elif not isinstance(error.instance, dict | list):
        # Messages such as const's "'1.0' was expected" leave out the value that failed.
        message += f", got {render_value(error.instance)}"
    return f"{json_path(root, error.absolute_path)}: {message}"


def json_path(root: str, path: Iterable[str | int]) -> str:
    """Render a path of keys and indexes as a JSONPath below `root`, e.g. "$.data.lines[0].sku"."""
    rendered = root
    for element in path:
        if isinstance(element, int):
            rendered += f"[{element}]"
        elif _IDENTIFIER.fullmatch(element):
            rendered += f".{element}"
        else:
            rendered += f"[{json.dumps(element)}]"
    return rendered


def render_value(value: object, limit: int = MAX_VALUE_CHARS) -> str:
    """Render a decoded JSON value as JSON text of at most `limit` characters."""
    return _truncate(_render(value, limit), limit)


def _render(value: object, limit: int) -> str:
    # Stops descending once the text is longer than `limit`, so a huge value costs little.
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value[: limit + 1], ensure_ascii=False)
    if isinstance(value, list):
        parts: list[str] = []
        for item in value:
            parts.append(_render(item, limit))
            if sum(map(len, parts)) > limit:
                break
        return "[" + ", ".join(parts) + "]"
    if isinstance(value, dict):
        parts = []
        for key, item in value.items():
            parts.append(f"{json.dumps(key, ensure_ascii=False)}: {_render(item, limit)}")
            if sum(map(len, parts)) > limit:
                break
        return "{" + ", ".join(parts) + "}"
    return json.dumps(value, default=str)


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
