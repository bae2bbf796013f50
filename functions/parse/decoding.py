"""Decoding of one message line: strict UTF-8, then JSON with Decimal numbers."""

import json
import re
from decimal import Decimal, InvalidOperation
from typing import Any

from ingest_common.errors import InvalidEncodingError, InvalidJsonError, ItemLimitError
from ingest_common.validation import render_value

# A JSON string, or a non-finite number token outside strings.
_STRING_OR_NON_FINITE = re.compile(r'"(?:[^"\\]|\\.)*"|(-?Infinity|NaN)')


class _NonFiniteNumberError(ValueError):
    def __init__(self, token: str) -> None:
        super().__init__(token)
        self.token = token


class _DuplicateKeyError(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def decode_line(raw: bytes, line: int, line_offset: int) -> str:
    """Decode a message line, without its line ending, as strict UTF-8.

    `line_offset` is the byte offset of the line in the batch object, so that the error can
    name the offset of the bad byte in the object. Raises InvalidEncodingError.
    """
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        bad = raw[error.start : error.end].hex(" ")
        raise InvalidEncodingError(
            f"line {line}, byte {error.start + 1} of the line (offset {line_offset + error.start} "
            f"in the object): invalid UTF-8, {error.reason} (bytes {bad})"
        ) from None


def load_json(text: str, line: int) -> Any:
    """Parse one JSON text with Decimal numbers.

    NaN, Infinity and duplicate keys in an object are rejected, because DynamoDB cannot store
    the first two and the third would silently drop a value. Raises InvalidJsonError naming
    the line and, where known, the column, or ItemLimitError for a number whose exponent
    Decimal cannot represent.
    """
    try:
        return json.loads(
            text,
            parse_float=Decimal,
            parse_int=Decimal,
            parse_constant=_reject_non_finite,
            object_pairs_hook=_reject_duplicate_keys,
        )
    except json.JSONDecodeError as error:
        # Some messages end in "at" and expect the position after them.
        if error.msg.endswith(" at"):
            raise InvalidJsonError(f"line {line}: {error.msg} column {error.colno}") from None
        raise InvalidJsonError(f"line {line}, column {error.colno}: {error.msg}") from None
    except _NonFiniteNumberError as error:
        column = _find_non_finite(text)
        raise InvalidJsonError(
            f"line {line}, column {column}: {error.token} is not valid JSON; numbers must be finite"
        ) from None
    except _DuplicateKeyError as error:
        raise InvalidJsonError(
            f"line {line}: duplicate key {render_value(error.key)} in one object"
        ) from None
    except RecursionError:
        raise InvalidJsonError(
            f"line {line}: arrays and objects are nested too deeply to parse"
        ) from None
    except InvalidOperation:
        # Decimal cannot represent an exponent beyond about 10**18 in magnitude.
        raise ItemLimitError(
            f"line {line}: a number's exponent is too large to represent; DynamoDB magnitudes "
            "run from 1E-130 to 9.9999999999999999999999999999999999999E+125"
        ) from None


def _reject_non_finite(token: str) -> Any:
    raise _NonFiniteNumberError(token)


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKeyError(key)
            seen.add(key)
    return result


def _find_non_finite(text: str) -> int:
    # The decoder stops at the first such token, so everything before it is valid JSON and
    # skipping whole strings is enough to find it.
    for match in _STRING_OR_NON_FINITE.finditer(text):
        if match.group(1):
            return match.start(1) + 1
    return 1
