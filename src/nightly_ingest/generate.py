"""Generate a realistic nightly batch: CloudEvents of the sample types, some of them malformed."""

from __future__ import annotations

import json
import random
import string
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import IO, Any

SPEC_VERSION = "1.0"
BATCH_DAY = datetime(2026, 12, 3, tzinfo=UTC)
SOURCES = {
    "com.example.order.placed": "/shop/orders",
    "com.example.payment.captured": "/shop/payments",
    "com.example.shipment.dispatched": "/shop/shipping",
}
CURRENCIES = ["EUR", "USD", "GBP", "SEK", "JPY"]
CARRIERS = ["dhl", "ups", "fedex", "usps", "royal_mail", "postnl"]
COUNTRIES = ["SE", "DE", "FR", "GB", "US", "JP", "NL"]


@dataclass
class BatchCounts:
    """Counts and malformed line numbers of a generated batch."""

    messages: int
    bad: int
    bad_lines: list[int]
    """Line numbers (from 1, blank lines included) of the malformed messages."""


def generate_batch(out: IO[bytes], *, messages: int, seed: int, bad_share: float) -> BatchCounts:
    """Write `messages` lines of CloudEvents to `out`; about `bad_share` of them are malformed.

    The same arguments always give the same bytes. Every message has a distinct
    `(source, id)`, so the table ends with one item per valid message. A few blank lines and
    CRLF line endings are mixed in because upstream exporters produce both.
    """
    rng = random.Random(seed)
    bad_lines: list[int] = []
    line_number = 0
    for number in range(messages):
        moment = BATCH_DAY + timedelta(milliseconds=number * 800 + rng.randrange(800))
        if rng.random() < bad_share:
            line = _malformed_message(rng, number, moment)
            bad_lines.append(line_number + 1)
        else:
            line = _encode(_valid_event(rng, number, moment))
        ending = b"\r\n" if rng.random() < 0.02 else b"\n"
        out.write(line + ending)
        line_number += 1
        if rng.random() < 0.005:
            out.write(b"\n")
            line_number += 1
    return BatchCounts(messages=messages, bad=len(bad_lines), bad_lines=bad_lines)


def _valid_event(rng: random.Random, number: int, moment: datetime) -> dict[str, Any]:
    event_type = rng.choice(list(SOURCES))
    event: dict[str, Any] = {
        "specversion": SPEC_VERSION,
        "id": f"{number:08d}-{rng.getrandbits(32):08x}",
        "source": SOURCES[event_type],
        "type": event_type,
        "time": _timestamp(moment),
        "datacontenttype": "application/json",
        "data": DATA_BUILDERS[event_type](rng, moment),
    }
    if rng.random() < 0.3:
        event["subject"] = event["data"]["order_id"]
    return event


def _order_placed(rng: random.Random, moment: datetime) -> dict[str, Any]:
    lines = []
    for _ in range(rng.randint(1, 12)):
        line: dict[str, Any] = {
            "sku": _sku(rng),
            "quantity": rng.randint(1, 5),
            "unit_price": _money(rng, 1, 400),
        }
        if rng.random() < 0.5:
            line["name"] = " ".join(rng.choices(_WORDS, k=rng.randint(1, 4))).title()
        if rng.random() < 0.2:
            line["discount"] = _money(rng, 0, 20)
        lines.append(line)
    customer: dict[str, Any] = {
        "customer_id": _reference(rng, "cus"),
        "email": f"customer{rng.randint(1, 2_000_000)}@example.com",
    }
    if rng.random() < 0.6:
        customer["loyalty_tier"] = rng.choice(["bronze", "silver", "gold", "platinum"])
    order: dict[str, Any] = {
        "order_id": _reference(rng, "ord"),
        "customer": customer,
        "lines": lines,
        "currency": rng.choice(CURRENCIES),
        "total": _money(rng, 1, 5000),
        "placed_at": _timestamp(moment - timedelta(seconds=rng.randint(0, 600))),
    }
    if rng.random() < 0.8:
        order["shipping"] = {
            "method": rng.choice(["standard", "express", "pickup"]),
            "cost": _money(rng, 0, 40),
            "address": _address(rng),
        }
    if rng.random() < 0.1:
        order["discount_code"] = rng.choice(["WINTER10", "WELCOME", "VIP-2026"])
    if rng.random() < 0.25:
        order["metadata"] = {
            "channel": rng.choice(["web", "ios", "android", "store"]),
            "note": " ".join(rng.choices(_WORDS, k=rng.randint(3, 60))),
        }
    return order


def _payment_captured(rng: random.Random, moment: datetime) -> dict[str, Any]:
    kind = rng.choice(["card", "card", "paypal", "bank_transfer", "gift_card"])
    method: dict[str, Any] = {"kind": kind}
    if kind == "card":
        method["card"] = {
            "brand": rng.choice(["visa", "mastercard", "amex", "discover"]),
            "last4": f"{rng.randint(0, 9999):04d}",
            "expiry_month": rng.randint(1, 12),
            "expiry_year": rng.randint(2027, 2032),
        }
    currency = rng.choice(CURRENCIES)
    payment: dict[str, Any] = {
        "payment_id": _reference(rng, "pay"),
        "order_id": _reference(rng, "ord"),
        "amount": {"value": _money(rng, 1, 5000), "currency": currency},
        "method": method,
        "captured_at": _timestamp(moment),
    }
    if rng.random() < 0.3:
        payment["fees"] = [
            {
                "kind": rng.choice(["processing", "cross_border", "chargeback_reserve"]),
                "amount": {"value": _money(rng, 0, 30), "currency": currency},
            }
            for _ in range(rng.randint(1, 3))
        ]
    if rng.random() < 0.5:
        payment["risk_score"] = float(f"{rng.uniform(0, 100):.4f}")
    if rng.random() < 0.4:
        payment["processor_reference"] = "".join(rng.choices(string.hexdigits.lower(), k=24))
    return payment


def _shipment_dispatched(rng: random.Random, moment: datetime) -> dict[str, Any]:
    parcels = []
    for number in range(rng.randint(1, 4)):
        parcel: dict[str, Any] = {
            "parcel_id": f"P{number + 1}",
            "weight_kg": float(f"{rng.uniform(0.1, 30):.3f}"),
            "items": [
                {"sku": _sku(rng), "quantity": rng.randint(1, 5)} for _ in range(rng.randint(1, 6))
            ],
        }
        if rng.random() < 0.7:
            parcel["dimensions_cm"] = {
                "length": rng.randint(10, 120),
                "width": rng.randint(10, 80),
                "height": float(f"{rng.uniform(2, 60):.1f}"),
            }
        parcels.append(parcel)
    address = _address(rng)
    shipment: dict[str, Any] = {
        "shipment_id": _reference(rng, "shp"),
        "order_id": _reference(rng, "ord"),
        "carrier": rng.choice(CARRIERS),
        "tracking_number": "".join(rng.choices(string.digits + string.ascii_uppercase, k=14)),
        "parcels": parcels,
        "destination": {key: address[key] for key in ("city", "postal_code", "country")},
        "dispatched_at": _timestamp(moment),
    }
    if rng.random() < 0.6:
        shipment["service_level"] = rng.choice(["economy", "standard", "express", "same_day"])
    if rng.random() < 0.5:
        earliest = moment.date() + timedelta(days=rng.randint(1, 3))
        latest = earliest + timedelta(days=rng.randint(0, 4))
        shipment["estimated_delivery"] = {
            "earliest": earliest.isoformat(),
            "latest": latest.isoformat(),
        }
    return shipment


DATA_BUILDERS: dict[str, Callable[[random.Random, datetime], dict[str, Any]]] = {
    "com.example.order.placed": _order_placed,
    "com.example.payment.captured": _payment_captured,
    "com.example.shipment.dispatched": _shipment_dispatched,
}


def _malformed_message(rng: random.Random, number: int, moment: datetime) -> bytes:
    """Return one malformed line, of a kind chosen with realistic weights."""
    kind = rng.choices(list(_MALFORMERS), weights=[w for w, _ in _MALFORMERS.values()])[0]
    _, malform = _MALFORMERS[kind]
    return malform(rng, _valid_event(rng, number, moment))


def _truncated_json(rng: random.Random, event: dict[str, Any]) -> bytes:
    encoded = _encode(event)
    return encoded[: rng.randint(1, len(encoded) - 1)]


def _invalid_utf8(rng: random.Random, event: dict[str, Any]) -> bytes:
    encoded = _encode(event)
    cut = rng.randint(1, len(encoded) - 1)
    return encoded[:cut] + b"\xff\xfe" + encoded[cut:]


def _missing_id(rng: random.Random, event: dict[str, Any]) -> bytes:
    del event["id"]
    return _encode(event)


def _wrong_spec_version(rng: random.Random, event: dict[str, Any]) -> bytes:
    event["specversion"] = "0.3"
    return _encode(event)


def _unknown_type(rng: random.Random, event: dict[str, Any]) -> bytes:
    event["type"] = "com.example.refund.requested"
    return _encode(event)


def _schema_violation(rng: random.Random, event: dict[str, Any]) -> bytes:
    data = event["data"]
    victim = rng.choice(sorted(data))
    data[victim] = rng.choice([None, "not-a-number", 12, [], True])
    # Replacing a field can by chance leave a valid message, so also drop a required field.
    data.pop(sorted(data)[0])
    return _encode(event)


def _bad_timestamp(rng: random.Random, event: dict[str, Any]) -> bytes:
    event["time"] = "yesterday at noon"
    return _encode(event)


def _not_a_number(rng: random.Random, event: dict[str, Any]) -> bytes:
    encoded = _encode(event).decode()
    return encoded.replace('"data":{', '"data":{"risk_score":NaN,', 1).encode()


def _too_many_digits(rng: random.Random, event: dict[str, Any]) -> bytes:
    # Valid JSON and valid for the schema, but DynamoDB keeps at most 38 significant digits.
    event["type"] = "com.example.order.placed"
    event["source"] = SOURCES["com.example.order.placed"]
    event["data"] = _order_placed(rng, BATCH_DAY)
    event["data"]["total"] = 0
    digits = "".join(rng.choices(string.digits[1:], k=41))
    return _encode(event).replace(b'"total":0', f'"total":{digits}.5'.encode(), 1)


def _oversized(rng: random.Random, event: dict[str, Any]) -> bytes:
    # A valid message whose item would exceed DynamoDB's 400 KB limit.
    event["type"] = "com.example.order.placed"
    event["source"] = SOURCES["com.example.order.placed"]
    event["data"] = _order_placed(rng, BATCH_DAY)
    event["data"]["metadata"] = {f"part{n}": "x" * 500 for n in range(850)}
    return _encode(event)


def _not_an_object(rng: random.Random, event: dict[str, Any]) -> bytes:
    return _encode([event])


_MALFORMERS: dict[str, tuple[int, Callable[[random.Random, dict[str, Any]], bytes]]] = {
    "truncated_json": (20, _truncated_json),
    "invalid_utf8": (8, _invalid_utf8),
    "missing_id": (10, _missing_id),
    "wrong_spec_version": (6, _wrong_spec_version),
    "unknown_type": (10, _unknown_type),
    "schema_violation": (20, _schema_violation),
    "bad_timestamp": (8, _bad_timestamp),
    "not_a_number": (6, _not_a_number),
    "too_many_digits": (6, _too_many_digits),
    "not_an_object": (4, _not_an_object),
    "oversized": (2, _oversized),
}

_WORDS = (
    "please leave the parcel at the back door ring twice gift wrap fragile handle with care "
    "deliver after five call on arrival no plastic thanks"
).split()


def _address(rng: random.Random) -> dict[str, Any]:
    address = {
        "line1": f"{rng.randint(1, 250)} {rng.choice(['Main', 'Harbour', 'Station', 'Mill'])} St",
        "city": rng.choice(["Stockholm", "Berlin", "Lyon", "Leeds", "Austin", "Osaka", "Utrecht"]),
        "postal_code": f"{rng.randint(10000, 99999)}",
        "country": rng.choice(COUNTRIES),
    }
    if rng.random() < 0.3:
        address["line2"] = f"c/o {rng.choice(['Reception', 'Warehouse B', 'Mailroom'])}"
    if rng.random() < 0.5:
        address["name"] = rng.choice(["A. Lindqvist", "J. Meyer", "C. Dubois", "K. Tanaka"])
    return address


def _sku(rng: random.Random) -> str:
    return "SKU-" + "".join(rng.choices(string.ascii_uppercase + string.digits, k=8))


def _reference(rng: random.Random, prefix: str) -> str:
    return f"{prefix}_" + "".join(rng.choices(string.ascii_letters + string.digits, k=16))


def _money(rng: random.Random, low: int, high: int) -> float:
    return float(f"{rng.uniform(low, high):.2f}")


def _timestamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _encode(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
