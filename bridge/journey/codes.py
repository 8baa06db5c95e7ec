"""Order state codes shared by every wire profile (the fulfilment's status code and what
the driver is told)."""

from __future__ import annotations

from bridge.orders import State

# Internal state -> (beckn:state, fulfillment status code, human name).
FULFILLMENT: dict[State, tuple[str, str, str]] = {
    State.DRAFT: ("DRAFT", "PENDING", "Not booked yet"),
    State.QUOTED: ("QUOTED", "PENDING", "Quoted"),
    State.INITIALIZED: ("INITIALIZED", "PENDING", "Awaiting payment and confirmation"),
    State.PAYMENT_PENDING: ("PAYMENT-PENDING", "PENDING", "Payment in progress"),
    State.CONFIRMED: ("CONFIRMED", "PENDING", "Charging Pending"),
    State.RESERVED: ("CONFIRMED", "RESERVED", "Charger reserved for your slot"),
    State.ACTIVE: ("ACTIVE", "ACTIVE", "Charging in progress"),
    State.INTERRUPTED: ("ACTIVE", "CONNECTION-INTERRUPTED",
                        "Charging connection lost. Retrying automatically. If this continues, "
                        "please check your cable"),
    State.COMPLETED: ("COMPLETED", "COMPLETED", "Charging completed"),
    State.CANCELLED: ("CANCELLED", "CANCELLED", "Booking cancelled"),
    State.EXPIRED: ("CANCELLED", "NO-SHOW", "Slot released: the car did not arrive in time"),
    State.FAILED: ("CANCELLED", "FAILED", "The charger could not start the session"),
}
