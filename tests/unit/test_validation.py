"""Tests of the message schemas and their validation: ingest_common/validation.py."""

from decimal import Decimal

import pytest

from ingest_common.errors import SchemaValidationError
from ingest_common.validation import (
    EVENT_TYPES,
    create_validator,
    is_rfc3339_date,
    is_rfc3339_date_time,
    json_path,
    render_value,
    validate_event,
)


def test_validation_event_types_one_schema_each():
    assert EVENT_TYPES == {
        "com.example.order.placed",
        "com.example.payment.captured",
        "com.example.shipment.dispatched",
    }


@pytest.mark.parametrize(
    "event_type",
    ["com.example.order.placed", "com.example.payment.captured",
     "com.example.shipment.dispatched"],
)  # fmt: skip
def test_validation_factory_events_valid(make_event, event_type):
    # The factory writes floats, which Parse would read as Decimal.
    event = make_event(event_type)

    validate_event(event)


@pytest.mark.parametrize(
    "value",
    [
        "2024-05-01T21:14:03Z",
        "2024-05-01t21:14:03z",
        "2024-05-01T21:14:03.512Z",
        "2024-05-01T21:14:03.123456789+02:00",
        "2024-05-01T21:14:03-23:59",
        "2024-02-29T00:00:00Z",
        "2016-12-31T23:59:60Z",
        "2016-12-31T18:59:60-05:00",
    ],
)
def test_validation_rfc3339_date_time_valid(value):
    assert is_rfc3339_date_time(value) is True


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("2024-05-01T21:14:03", id="no-offset"),
        pytest.param("2024-05-01 21:14:03Z", id="space-separator"),
        pytest.param("2024-05-01T21:14Z", id="no-seconds"),
        pytest.param("2023-02-29T00:00:00Z", id="not-a-leap-year"),
        pytest.param("2024-13-01T00:00:00Z", id="month-13"),
        pytest.param("2024-05-01T24:00:00Z", id="hour-24"),
        pytest.param("2024-05-01T21:14:03+24:00", id="offset-hour-24"),
        pytest.param("2024-05-01T21:14:03+02:60", id="offset-minute-60"),
        pytest.param("2024-05-01T12:00:60Z", id="leap-second-not-at-midnight"),
        pytest.param("2024-05-01T21:14:03.Z", id="empty-fraction"),
        pytest.param("2024-05-01T21:14:03+0200", id="offset-without-colon"),
        pytest.param("２０２４-05-01T21:14:03Z", id="non-ascii-digits"),
        pytest.param("2024-05-01T21:14:03Z\n", id="trailing-newline"),
    ],
)
def test_validation_rfc3339_date_time_invalid(value):
    assert is_rfc3339_date_time(value) is False


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-05-03", True),
        ("2024-02-29", True),
        ("2023-02-29", False),
        ("2024-5-3", False),
        ("2024-05-03T00:00:00Z", False),
        (20240503, True),
    ],
)
def test_validation_rfc3339_date(value, expected):
    assert is_rfc3339_date(value) is expected


@pytest.mark.parametrize(
    ("schema_type", "value", "expected"),
    [
        pytest.param("number", Decimal("12.50"), True, id="decimal-number"),
        pytest.param("integer", Decimal("2"), True, id="decimal-integer"),
        pytest.param("integer", Decimal("2.0"), True, id="decimal-integral-fraction"),
        pytest.param("integer", Decimal("2.5"), False, id="decimal-fraction"),
        pytest.param("integer", Decimal("1E+3"), True, id="decimal-exponent"),
        pytest.param("number", True, False, id="boolean-not-number"),
        pytest.param("number", "1", False, id="string-not-number"),
        pytest.param("string", Decimal("1"), False, id="decimal-not-string"),
    ],
)
def test_validation_decimal_types(schema_type, value, expected):
    validator = create_validator({"$schema": "https://json-schema.org/draft/2020-12/schema",
                                  "type": schema_type})  # fmt: skip

    assert validator.is_valid(value) is expected


def test_validation_data_error_names_json_path(make_event):
    event = make_event("com.example.shipment.dispatched")
    event["data"]["parcels"][0]["items"][0]["quantity"] = Decimal("0")

    with pytest.raises(SchemaValidationError) as raised:
        validate_event(event)

    assert str(raised.value) == (
        "$.data.parcels[0].items[0].quantity: 0 is less than the minimum of 1"
    )


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ([], "$"),
        (["data", "lines", 0, "sku"], "$.data.lines[0].sku"),
        (["data", "metadata", "utm source"], '$.data.metadata["utm source"]'),
        (["data", "metadata", ""], '$.data.metadata[""]'),
    ],
)
def test_validation_json_path(path, expected):
    assert json_path("$", path) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (Decimal("12.50"), "12.50"),
        ("abc", '"abc"'),
        (None, "null"),
        (True, "true"),
        ([Decimal("1"), {"a": "b"}], '[1, {"a": "b"}]'),
        ("x" * 100, '"' + "x" * 76 + "..."),
        (list(range(100)), "[" + ", ".join(map(str, range(22))) + "..."),
    ],
)
def test_validation_render_value_short_json(value, expected):
    assert render_value(value) == expected
