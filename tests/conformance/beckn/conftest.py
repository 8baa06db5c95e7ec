"""The conformance suite's Beckn fixtures: the scenario fixtures of the discover, journey
and demo tests (imported, not copied), and an inspector plugged into their test BAPs
that checks every body the BAP receives.

    rc2     each body against the published rc2 schema (tests/conformance/beckn/rc2.py)
    guide   each order message against the guide's example of the same step: every
            field path the example has must be there (tests/conformance/beckn/guide.py)

The scenarios run once per profile (`profile` is parametrized here).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.beckn.conftest import bap, bridge, bridge_key, settings  # noqa: F401
from tests.beckn.test_discover import catalog  # noqa: F401
from tests.conformance.beckn import rc2
from tests.journey.conftest import bridge_overrides, speed, world  # noqa: F401
from tests.lts.conftest import lts  # noqa: F401
from tests.spec import require


@dataclass
class Inspector:
    """Counts the bodies checked and keeps every violation, with its JSON path."""

    profile: str
    schema: rc2.Rc2 | None = None
    checked: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    violations: list[Any] = field(default_factory=list)

    def __call__(self, kind: str, body: Any) -> None:
        self.checked += 1
        self.by_kind[kind] = self.by_kind.get(kind, 0) + 1
        self.violations += self.check(kind, body)

    def check(self, kind: str, body: Any) -> list[Any]:
        if self.profile == "rc2":
            assert self.schema is not None
            if kind == "ack":
                return self.schema.ack(body)
            if kind == "track":
                return self.schema.session_patch(body)
            return self.schema.callback(kind, body)
        from tests.conformance.beckn import guide

        return guide.check(kind, body, self.schema)

    def report(self) -> str:
        lines = [f"{self.checked} bodies checked ({self.profile}): {self.by_kind}",
                 f"{len(self.violations)} violations"]
        lines += [f"  {v}" for v in self.violations[:40]]
        return "\n".join(lines)

    def assert_clean(self, least: int = 1) -> None:
        print(self.report())
        assert self.checked >= least, self.report()
        assert not self.violations, self.report()


@pytest.fixture(params=["rc2", "guide"])
def profile(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def inspector(profile: str) -> Inspector:
    require(rc2.RC2)
    return Inspector(profile, rc2.shared())
