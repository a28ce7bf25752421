"""The validation rules, as plain functions the agents call.

They mirror the checks of Confluent's microservices example: order details,
inventory and fraud, then an aggregate of the three verdicts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .records import CHECK_TYPES, FAIL, PASS, Order

FRAUD_LIMIT = 2000.0
FRAUD_SESSION_GAP_SECONDS = 3600.0


def check_details(order: Order) -> str:
    """ORDER_DETAILS_CHECK: quantity ≥ 1, price > 0, product and customer non-empty."""
    valid = order.quantity >= 1 and order.price > 0 and bool(order.product.strip()) and bool(order.customer_id.strip())
    return PASS if valid else FAIL


def check_inventory(order: Order, stock: int, reserved: int) -> str:
    """INVENTORY_CHECK: the order fits in stock minus what is already reserved."""
    return PASS if stock - reserved - order.quantity >= 0 else FAIL


def check_fraud(session: Mapping[str, Any] | None, order: Order, at: float) -> tuple[str, dict[str, Any] | None]:
    """FRAUD_CHECK over a session window with a one-hour inactivity gap.

    `session` is the customer's open session `{"start", "last", "total"}` (or
    None) and `at` the order's time in epoch seconds. Returns the verdict and
    the session to keep. A customer's total of quantity × price in one session
    must stay below 2000: the order that reaches it fails and is not counted,
    so a customer who overshoots once can still place smaller orders.
    """
    if session is None or at - float(session["last"]) > FRAUD_SESSION_GAP_SECONDS:
        session = {"start": at, "last": at, "total": 0.0}
    total = float(session["total"]) + order.quantity * order.price
    if total >= FRAUD_LIMIT:
        return FAIL, dict(session)
    return PASS, {"start": session["start"], "last": max(at, float(session["last"])), "total": total}


def decide(validations: Mapping[str, str]) -> str | None:
    """The order's state once all three verdicts are in: VALIDATED or FAILED.

    None while a verdict is missing. Waiting for all three, even after a FAIL,
    keeps the order's `validations` complete and lets the inventory service
    release exactly the reservations it made.
    """
    if any(check not in validations for check in CHECK_TYPES):
        return None
    if all(validations[check] == PASS for check in CHECK_TYPES):
        return "VALIDATED"
    return "FAILED"
