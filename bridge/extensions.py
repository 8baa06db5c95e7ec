"""Where the optional parts of the bridge plug into the app and the worker.

Kept in one place so `bridge.app` and `bridge.worker` stay independent of the
Beckn side (DESIGN principle 2: the OCPI package never imports the Beckn one).
"""

from __future__ import annotations

from typing import Any


def app_extensions() -> tuple[Any, ...]:
    return ()


def worker_extensions() -> None:
    """Add the feature packages' jobs and start-up hooks to bridge.worker."""
