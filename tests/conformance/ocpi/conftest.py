"""The OCPI harness of tests/ocpi (a bridge on real Redis, a CPO double) for the conformance suite."""

from tests.ocpi.conftest import bridge, cpo, cpo_double, http  # noqa: F401
