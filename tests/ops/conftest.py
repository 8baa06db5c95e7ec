"""The OCPI harness (a bridge on real Redis, a CPO double) for the operations tests."""

from tests.ocpi.conftest import bridge, cpo, cpo_double, http  # noqa: F401
