"""The Beckn harness of tests/beckn (a signing loopback BAP, the bridge on real Redis) for
the conformance suite."""

from tests.beckn.conftest import bap, bridge, bridge_key, settings  # noqa: F401
from tests.beckn.test_discover import catalog  # noqa: F401
