"""Readable output: what the driver sees, and indented beneath it the protocol calls."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import TextIO

PAISA = Decimal("0.01")


def inr(amount: Decimal) -> str:
    q = amount.quantize(PAISA, ROUND_HALF_UP)
    return f"-₹{-q:,}" if q < 0 else f"₹{q:,}"


def kwh(value: Decimal) -> str:
    return f"{value.quantize(Decimal('0.001'), ROUND_HALF_UP)} kWh"


class Printer:
    """Writes to `out` (stdout for the command, a buffer in tests); dims the protocol
    lines on a terminal so the driver's story stands out."""

    def __init__(self, out: TextIO, color: bool = False) -> None:
        self.out = out
        self.color = color

    def _write(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def _style(self, code: str, text: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.color else text

    def title(self, text: str) -> None:
        self._write("")
        self._write(self._style("1", f"━━ {text} " + "━" * max(0, 76 - len(text))))

    def driver(self, icon: str, text: str) -> None:
        self._write(f"  {icon} {text}")

    def detail(self, text: str) -> None:
        """A second line of what the driver sees (quote lines, bill lines)."""
        self._write(f"       {text}")

    def amount(self, label: str, value: Decimal, width: int = 58) -> None:
        money = inr(value)
        dots = max(2, width - len(label) - len(money))
        self._write(f"       {label} {'·' * dots} {money}")

    def wire(self, text: str) -> None:
        self._write(self._style("2", f"         {text}"))

    def verdict(self, ok: bool, text: str) -> None:
        mark = self._style("32;1", "✓") if ok else self._style("31;1", "✗")
        self._write(f"  {mark} {text}")
