"""The in-process world of the journey tests (real Redis, bridge, worker, mock CPO), with
the mock at `make run`'s speed."""

import pytest

from tests.journey.conftest import bridge_overrides, profile, world  # noqa: F401


@pytest.fixture
def speed() -> int:
    return 120
