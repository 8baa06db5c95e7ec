"""Money: `Decimal` amounts, currency minor units, and one rounding rule.

Amounts are never `float`. Every computation keeps full `Decimal` precision and
rounds once, at the end, to the currency's minor unit (ISO 4217 exponent) with
ROUND_HALF_UP: the OCPI 2.2.1 tariff examples (mod_tariffs, "Simple Tariff
example with alternative URL": 5.625 -> 5.63, 6.2375 -> 6.24) need half-up;
banker's rounding would print 5.62.

Before that one rounding, the exact amount is first brought to 12 decimals: Decimal's 28
significant digits leave noise in the last digit when a price is divided before it is
multiplied (0.36 per hour for 50 s can come out 0.004999...9 instead of 0.005), and two
exact ways of summing the same charge (the tariff engine's fast path and its general
walk) then rounded a true half cent to 0.00 and 0.01. No real amount lies within 1e-12
of a half-unit boundary without being on it.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

ZERO = Decimal(0)
ONE = Decimal(1)
HUNDRED = Decimal(100)
_DENOISE = Decimal("1E-12")

# ISO 4217 exponents that differ from 2; everything else has two decimals.
_EXPONENTS: dict[str, int] = {
    "BHD": 3, "BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "IQD": 3, "ISK": 0, "JOD": 3,
    "JPY": 0, "KMF": 0, "KRW": 0, "KWD": 3, "LYD": 3, "OMR": 3, "PYG": 0, "RWF": 0,
    "TND": 3, "UGX": 0, "UYI": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0, "XPF": 0,
}
_QUANTA: dict[int, Decimal] = {n: Decimal(1).scaleb(-n) for n in range(4)}


def minor_unit(currency: str) -> Decimal:
    """The smallest amount of `currency` (0.01 for INR and EUR, 1 for JPY)."""
    return _QUANTA[_EXPONENTS.get(currency.upper(), 2)]


def round_money(amount: Decimal, currency: str) -> Decimal:
    """Round `amount` to the currency's minor unit, half up."""
    return _half_up(amount, minor_unit(currency))


def _half_up(amount: Decimal, quantum: Decimal) -> Decimal:
    """`amount` to `quantum`, half up, after the last digits' noise is dropped (only
    where 12 decimals fit in Decimal's 28 digits: amounts under 10^15)."""
    if amount.is_finite() and amount.adjusted() < 15:
        amount = amount.quantize(_DENOISE)
    return amount.quantize(quantum, rounding=ROUND_HALF_UP)


class PriceAmount:
    """An amount excluding and including VAT (OCPI `Price`, §16.5). Immutable by convention.

    A plain slotted class rather than a frozen dataclass: the tariff engine
    creates several per evaluation and frozen dataclasses are slow to build.
    """

    __slots__ = ("excl_vat", "incl_vat")

    def __init__(self, excl_vat: Decimal, incl_vat: Decimal) -> None:
        self.excl_vat = excl_vat
        self.incl_vat = incl_vat

    def __repr__(self) -> str:
        return f"PriceAmount(excl_vat={self.excl_vat!r}, incl_vat={self.incl_vat!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PriceAmount):
            return NotImplemented
        return self.excl_vat == other.excl_vat and self.incl_vat == other.incl_vat

    def __hash__(self) -> int:
        return hash((self.excl_vat, self.incl_vat))

    def __add__(self, other: PriceAmount) -> PriceAmount:
        return PriceAmount(self.excl_vat + other.excl_vat, self.incl_vat + other.incl_vat)

    def __sub__(self, other: PriceAmount) -> PriceAmount:
        return PriceAmount(self.excl_vat - other.excl_vat, self.incl_vat - other.incl_vat)

    def rounded(self, currency: str) -> PriceAmount:
        return self.quantized(minor_unit(currency))

    def quantized(self, quantum: Decimal) -> PriceAmount:
        return PriceAmount(_half_up(self.excl_vat, quantum), _half_up(self.incl_vat, quantum))

    def to_json(self) -> dict[str, float]:
        return {"excl_vat": decimal_to_json(self.excl_vat), "incl_vat": decimal_to_json(self.incl_vat)}


PRICE_ZERO = PriceAmount(ZERO, ZERO)


def decimal_to_json(value: Decimal) -> float:
    """A JSON number for a `Decimal`, for output only.

    JSON has one number type. Money here is already rounded to its minor unit,
    and float's shortest repr prints any such amount exactly ("5.63"), so the
    conversion happens at the serialisation edge and never feeds arithmetic.
    """
    return float(value)


def money(value: str | int | Decimal) -> Decimal:
    """Parse an amount from configuration text without going through float."""
    if isinstance(value, float):  # pragma: no cover - guarded by callers' types
        raise TypeError("money must not be a float")
    return Decimal(value)
