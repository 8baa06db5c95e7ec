"""Where the published specification files are, for the conformance suite only.

The repository stands alone: unit and integration tests use fixtures written
here (`tests/fixtures/`). Checks against files no one here wrote (the OCPI
2.2.1 examples, the Beckn 2.0 schemas, the implementation guide's examples)
live in `tests/conformance/` and read them from one directory:

    OBB_SPEC_DIR        default: ../shared next to the repository
        reference/ocpi/examples/            OCPI 2.2.1 example objects
        reference/ocpi-tariffs-peer/        a peer engine's tariff fixtures
        reference/beckn/protocol-specifications-v2/   Beckn 2.0 OpenAPI + EV packs
        examples/beckn/                     the implementation guide's examples

When the directory is missing the conformance tests are skipped and the test
summary says so in one line; `OBB_REQUIRE_SPEC=1` (set by `.ci/run`) turns a
missing directory into a failure, so CI always runs them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SPEC_DIR = Path(os.environ.get("OBB_SPEC_DIR") or ROOT.parent / "shared").resolve()
OCPI_EXAMPLES = SPEC_DIR / "reference" / "ocpi" / "examples"
OCPI_REFERENCE = SPEC_DIR / "reference" / "ocpi"
TARIFF_PEER = SPEC_DIR / "reference" / "ocpi-tariffs-peer"
BECKN_SPEC = SPEC_DIR / "reference" / "beckn" / "protocol-specifications-v2"
BECKN_EXAMPLES = SPEC_DIR / "examples" / "beckn"
REQUIRED = os.environ.get("OBB_REQUIRE_SPEC", "") not in ("", "0", "false", "no")


def available() -> bool:
    return (SPEC_DIR / "reference").is_dir()


def missing_reason(path: Path | None = None) -> str:
    where = path or SPEC_DIR
    return (f"conformance: spec files not found at {where} "
            "(set OBB_SPEC_DIR to the folder holding reference/ and examples/)")


def require(path: Path) -> Path:
    """`path` if it exists, else skip the calling test (fail when OBB_REQUIRE_SPEC=1)."""
    if not path.exists():
        if REQUIRED:
            pytest.fail(missing_reason(path))
        pytest.skip(missing_reason(path))
    return path


def files(directory: Path, pattern: str) -> list[Any]:
    """Sorted file names for `parametrize`; one skipped placeholder when the folder is
    missing, so a missing spec directory shows as a skip, never as zero tests."""
    if directory.is_dir():
        found = sorted(p.name for p in directory.glob(pattern))
        if found:
            return found
    return [pytest.param(None, marks=pytest.mark.skip(reason=missing_reason(directory)),
                         id="spec-missing")]
