"""A phone in a real headless Chromium: Debian's `chromium`, driven by playwright.

Playwright's own browser download does not work on these machines, so it is pointed
at the system Chromium (`CHROMIUM`, set by `make test` from scripts/ensure-chromium.sh,
else `chromium` on PATH). No Chromium is a failure that says why, never a skip.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT

SHOTS = ROOT / "var" / "screenshots"
PHONE = {"width": 390, "height": 844}
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def expect(locator: Any) -> Any:
    """playwright's `expect` (it polls without evaluating strings: the pages' CSP forbids eval)."""
    from playwright.async_api import expect as pw_expect

    return pw_expect(locator)


def chromium_path() -> str:
    for cand in (os.environ.get("CHROMIUM"), shutil.which("chromium"), "/usr/bin/chromium"):
        if cand and os.access(cand, os.X_OK):
            return cand
    pytest.fail("no Chromium for the driver-page browser tests: run `make test` (it installs "
                "Debian's chromium as root, scripts/ensure-chromium.sh) or set CHROMIUM=path",
                pytrace=False)


@asynccontextmanager
async def phone(profile: Path, *, javascript: bool = True,
                locale: str = "en-IN") -> AsyncIterator[Any]:
    """A browser context like a 390x844 phone (mobile: the viewport meta is honoured), with a
    new empty profile."""
    try:
        from playwright.async_api import async_playwright
    except ImportError as exc:  # a dev dependency: pip install -e '.[dev]'
        pytest.fail(f"playwright is not installed ({exc}): run `make test`", pytrace=False)
    executable = chromium_path()
    async with async_playwright() as p:
        ctx = await p.chromium.launch_persistent_context(
            str(profile), executable_path=executable, headless=True, args=FLAGS,
            viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True,
            locale=locale, java_script_enabled=javascript, timeout=30_000)
        try:
            yield ctx
        finally:
            await ctx.close()


async def shot(page: Any, name: str) -> Path:
    """A full-page screenshot under var/screenshots/ for review."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path


async def layout(page: Any) -> dict[str, Any]:
    """Widths (a page laid out for the phone: its layout viewport is the device's width
    and nothing scrolls sideways), the smallest text, and the worst text contrast."""
    return dict(await page.evaluate(_LAYOUT_JS))


_LAYOUT_JS = """
() => {
  function rgba(c) {
    const m = c.match(/rgba?\\(([^)]+)\\)/);
    if (!m) { return null; }
    const p = m[1].split(',').map(parseFloat);
    return {r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1};
  }
  function lum(c) {
    const f = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b);
  }
  function background(el) {
    for (; el; el = el.parentElement) {
      const c = rgba(getComputedStyle(el).backgroundColor);
      if (c && c.a > 0.99) { return c; }
    }
    return {r: 255, g: 255, b: 255, a: 1};
  }
  let contrast = 99, contrastAt = '', font = 99, fontAt = '';
  for (const el of document.querySelectorAll('body *')) {
    const own = Array.from(el.childNodes).some(n => n.nodeType === 3 && n.textContent.trim());
    if (!own || el.closest('.sr-only') || el.closest('script')) { continue; }
    const st = getComputedStyle(el);
    if (st.display === 'none' || st.visibility === 'hidden') { continue; }
    const fg = rgba(st.color), bg = background(el);
    const a = lum(fg), b = lum(bg);
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    const label = el.tagName + ' ' + el.textContent.trim().slice(0, 40);
    if (ratio < contrast) { contrast = ratio; contrastAt = label; }
    const size = parseFloat(st.fontSize);
    if (size < font) { font = size; fontAt = label; }
  }
  return {innerWidth: window.innerWidth, scrollWidth: document.documentElement.scrollWidth,
          bodyWidth: document.body.scrollWidth, contrast, contrastAt, font, fontAt,
          lang: document.documentElement.lang};
}
"""


def assert_phone_layout(m: dict[str, Any], width: int) -> None:
    assert m["innerWidth"] == width, m  # laid out for the phone (viewport meta), not 980 px
    assert m["scrollWidth"] <= width and m["bodyWidth"] <= width, m  # no sideways scroll
    assert m["font"] >= 15, m  # readable
    assert m["contrast"] >= 4.5, m  # WCAG AA for text


async def live_text(page: Any, name: str) -> str:
    return str(await page.locator(f"[data-live='{name}']").first.inner_text()).strip()


async def dl_rows(page: Any) -> dict[str, str]:
    return dict(await page.evaluate("""() => Object.fromEntries(
        Array.from(document.querySelectorAll('dl div')).filter(d =>
            d.querySelectorAll('dt').length === 1 && d.querySelectorAll('dd').length === 1)
        .map(d => [d.querySelector('dt').innerText.trim(), d.querySelector('dd').innerText.trim()]))"""))


async def bill(page: Any) -> tuple[list[tuple[str, str]], str]:
    """The first table's (title, amount) lines and its total amount, as shown."""
    got = await page.evaluate("""() => {
        const t = document.querySelector('table');
        return [Array.from(t.querySelectorAll('tbody tr')).map(tr =>
                    [tr.querySelector('th').innerText.trim(), tr.querySelector('td').innerText.trim()]),
                t.querySelector('tfoot td').innerText.trim()];
    }""")
    return [(a, b) for a, b in got[0]], str(got[1])


async def until(check: Callable[[], Awaitable[Any]], timeout: float, what: str) -> Any:
    """Wait for `check()` to return something true; fail with `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        got = await check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


def amount(shown: str) -> Decimal:
    """₹1,234.50 / −₹20.00 as shown, back to a Decimal."""
    return Decimal(shown.replace("−", "-").replace("₹", "").replace(",", ""))
