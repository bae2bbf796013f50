"""DynamoDB's limits on an item, checked before the item is staged.

BatchWriteItem rejects a whole request when one of its items breaks a limit, so a bad item is
caught here and dead-lettered alone. The limits are those of the DynamoDB Developer Guide
("Quotas in Amazon DynamoDB" and "Item sizes and formats").
"""

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from ingest_common.errors import ItemLimitError
from ingest_common.validation import json_path, render_value

MAX_ITEM_BYTES = 400 * 1024
MAX_PARTITION_KEY_BYTES = 2048
MAX_SORT_KEY_BYTES = 1024
MAX_ATTRIBUTE_NAME_BYTES = 65535
MAX_NESTING_DEPTH = 32
MAX_NUMBER_DIGITS = 38
# Adjusted exponents (the exponent of the first significant digit) that DynamoDB stores:
# magnitudes from 1E-130 to 9.9999999999999999999999999999999999999E+125.
MIN_NUMBER_EXPONENT = -130
MAX_NUMBER_EXPONENT = 125
# Overhead of a map or list, as documented, and of each of its elements. The per-element byte
# is an estimate beyond the documented formula that errs on the large side.
_CONTAINER_BYTES = 3
_ELEMENT_BYTES = 1


def check_item(item: dict[str, Any], partition_key: str, sort_key: str) -> int:
    """Raise ItemLimitError unless DynamoDB can store `item`, and return its size in bytes.

    Checks the key attributes (present, non-empty strings within their size limits), numbers
    (at most 38 digits, within DynamoDB's range), sets (not empty), attribute names, nesting
    depth and the 400 KB item size.
    """
    _check_key(item, partition_key, MAX_PARTITION_KEY_BYTES, "partition")
    _check_key(item, sort_key, MAX_SORT_KEY_BYTES, "sort")
    size = sum(
        _name_size(name, "$") + _value_size(value, json_path("$", [name]), depth=1)
        for name, value in item.items()
    )
    if size > MAX_ITEM_BYTES:
        raise ItemLimitError(
            f"$: item is {size} bytes by DynamoDB's sizing rules; DynamoDB allows at most "
            f"{MAX_ITEM_BYTES} bytes (400 KB)"
        )
    return size


def number_size(number: Decimal) -> int:
    """Size of a DynamoDB number in bytes: 1 byte per two significant digits, plus 1.

    Leading and trailing zeros are not significant. A negative number counts 1 byte more, which
    errs on the large side where the documented formula is an approximation.
    """
    digits = "".join(map(str, number.as_tuple().digits)).strip("0")
    size = 1 + (len(digits) + 1) // 2
    return size + 1 if number.is_signed() and digits else size


def _check_key(item: dict[str, Any], name: str, max_bytes: int, role: str) -> None:
    value = item.get(name)
    path = json_path("$", [name])
    if not isinstance(value, str) or not value:
        raise ItemLimitError(
            f"{path}: {role} key must be a non-empty string, got {render_value(value)}"
        )
    size = len(_encode(value, path))
    if size > max_bytes:
        raise ItemLimitError(
            f"{path}: {role} key is {size} bytes; DynamoDB allows at most {max_bytes}"
        )


def _value_size(value: Any, path: str, depth: int) -> int:
    if isinstance(value, bool) or value is None:
        return 1
    if isinstance(value, str):
        return len(_encode(value, path))
    if isinstance(value, Decimal):
        _check_number(value, path)
        return number_size(value)
    if isinstance(value, dict):
        _check_depth(depth, path)
        return _CONTAINER_BYTES + sum(
            _name_size(name, path)
            + _value_size(element, json_path(path, [name]), depth + 1)
            + _ELEMENT_BYTES
            for name, element in value.items()
        )
    if isinstance(value, list):
        _check_depth(depth, path)
        return _CONTAINER_BYTES + sum(
            _value_size(element, f"{path}[{index}]", depth + 1) + _ELEMENT_BYTES
            for index, element in enumerate(value)
        )
    if isinstance(value, set | frozenset):
        return _set_size(value, path)
    if isinstance(value, bytes):
        return len(value)
    raise TypeError(f"{path}: {type(value).__name__} has no DynamoDB type")


def _set_size(members: Iterable[Any], path: str) -> int:
    # JSON has no sets, so a decoded message never reaches this. It guards other callers.
    members = list(members)
    if not members:
        raise ItemLimitError(f"{path}: empty set; DynamoDB does not store empty sets")
    return sum(_value_size(member, path, depth=1) for member in members)


def _check_number(number: Decimal, path: str) -> None:
    if number.is_zero():
        return
    digits = len(number.as_tuple().digits)
    if digits > MAX_NUMBER_DIGITS:
        raise ItemLimitError(
            f"{path}: number {render_value(number)} has {digits} digits; DynamoDB allows at "
            f"most {MAX_NUMBER_DIGITS}"
        )
    if not MIN_NUMBER_EXPONENT <= number.adjusted() <= MAX_NUMBER_EXPONENT:
        raise ItemLimitError(
            f"{path}: number {render_value(number)} is out of DynamoDB's range; magnitudes "
            "run from 1E-130 to 9.9999999999999999999999999999999999999E+125"
        )


def _check_depth(depth: int, path: str) -> None:
    if depth > MAX_NESTING_DEPTH:
        raise ItemLimitError(
            f"{path}: nested {depth} levels deep; DynamoDB allows at most {MAX_NESTING_DEPTH}"
        )


def _name_size(name: str, parent: str) -> int:
    if not name:
        raise ItemLimitError(
            f"{parent}: empty attribute name; DynamoDB requires at least one character"
        )
    size = len(_encode(name, parent))
    if size > MAX_ATTRIBUTE_NAME_BYTES:
        raise ItemLimitError(
            f"{parent}: attribute name of {size} bytes; DynamoDB allows at most "
            f"{MAX_ATTRIBUTE_NAME_BYTES}"
        )
    return size


def _encode(text: str, path: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as error:
        bad = text[error.start : error.end].encode("unicode_escape").decode("ascii")
        raise ItemLimitError(
            f"{path}: string contains {bad}, a lone surrogate that has no UTF-8 form, so "
            "DynamoDB cannot store it"
        ) from None
