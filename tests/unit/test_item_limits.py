"""Tests of DynamoDB's item limits: functions/parse/item_limits.py."""

import importlib
from decimal import Decimal

import pytest

from ingest_common.errors import ItemLimitError


@pytest.fixture
def item_limits(monkeypatch):
    monkeypatch.syspath_prepend(str(importlib.import_module("pathlib").Path(__file__).resolve()
                                    .parents[2] / "functions" / "parse"))  # fmt: skip
    return importlib.import_module("item_limits")


def _item(**attributes):
    return {"source": "s", "id": "i", **attributes}


def test_item_limits_size_by_dynamodb_rules(item_limits):
    # GIVEN an item of every JSON type. An attribute counts its name's bytes plus its value's
    # bytes, and a map or list adds 3 bytes plus 1 byte per element.
    item = _item(
        n=Decimal("123.45"),  # 1 + 4 bytes for 5 significant digits
        flag=True,  # 4 + 1
        none=None,  # 4 + 1
        list=[Decimal("1"), "ab"],  # 4 + 3 + (2 + 1) + (2 + 1)
        map={"k": "v"},  # 3 + 3 + (1 + 1 + 1)
    )

    # THEN the size adds up: source 7, id 3, n 5, flag 5, none 5, list 13, map 9
    assert item_limits.check_item(item, "source", "id") == 47


@pytest.mark.parametrize(
    ("number", "size"),
    [
        ("0", 1),
        ("1", 2),
        ("12", 2),
        ("123", 3),
        ("100", 2),
        ("0.001", 2),
        ("-1", 3),
        ("12345678901234567890123456789012345678", 20),
    ],
)
def test_item_limits_number_size(item_limits, number, size):
    assert item_limits.number_size(Decimal(number)) == size


@pytest.mark.parametrize(
    ("item", "cause"),
    [
        pytest.param(_item(tags=set()), "$.tags: empty set; DynamoDB does not store empty sets",
                     id="empty-set"),
        pytest.param({"source": "s"}, "$.id: sort key must be a non-empty string, got null",
                     id="missing-sort-key"),
        pytest.param(_item(source=""), '$.source: partition key must be a non-empty string, got ""',
                     id="empty-partition-key"),
        pytest.param(_item(id=Decimal("7")), "$.id: sort key must be a non-empty string, got 7",
                     id="numeric-sort-key"),
        pytest.param(_item(**{"n" * 65536: "x"}),
                     "$: attribute name of 65536 bytes; DynamoDB allows at most 65535",
                     id="attribute-name-too-long"),
        pytest.param(_item(n=Decimal("-1E+126")),
                     "$.n: number -1E+126 is out of DynamoDB's range; magnitudes run from 1E-130 "
                     "to 9.9999999999999999999999999999999999999E+125",
                     id="negative-number-too-large"),
    ],
)  # fmt: skip
def test_item_limits_rejects(item_limits, item, cause):
    with pytest.raises(ItemLimitError) as raised:
        item_limits.check_item(item, "source", "id")

    assert str(raised.value) == cause


def test_item_limits_nesting_depth(item_limits):
    # GIVEN values nested 32 and 33 containers deep
    deepest_allowed = "leaf"
    for _ in range(32):
        deepest_allowed = [deepest_allowed]
    too_deep = [deepest_allowed]

    item_limits.check_item(_item(a=deepest_allowed), "source", "id")
    with pytest.raises(ItemLimitError) as raised:
        item_limits.check_item(_item(a=too_deep), "source", "id")

    assert str(raised.value) == (
        "$.a" + "[0]" * 32 + ": nested 33 levels deep; DynamoDB allows at most 32"
    )


def test_item_limits_400_kb_boundary(item_limits):
    # GIVEN items of exactly 409,600 bytes and one byte more
    filler = 409_600 - 7 - 3 - len("pad")

    assert item_limits.check_item(_item(pad="x" * filler), "source", "id") == 409_600
    with pytest.raises(ItemLimitError) as raised:
        item_limits.check_item(_item(pad="x" * (filler + 1)), "source", "id")

    assert str(raised.value) == (
        "$: item is 409601 bytes by DynamoDB's sizing rules; DynamoDB allows at most "
        "409600 bytes (400 KB)"
    )


def test_item_limits_non_empty_set_sized(item_limits):
    assert item_limits.check_item(_item(tags={"ab", "c"}), "source", "id") == 7 + 3 + 4 + 3
