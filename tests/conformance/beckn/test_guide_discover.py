"""The implementation guide's discover example (read from the spec directory) is accepted."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from bridge.store.catalog import CatalogStore
from tests import spec
from tests.beckn.conftest import Bridge, LoopbackBap, run_worker
from tests.beckn.test_discover import ids


async def test_guide_example_01_is_accepted(bridge: Bridge, bap: LoopbackBap,
                                            catalog: CatalogStore) -> None:
    body = json.loads(spec.require(spec.BECKN_EXAMPLES / "01-discover.json").read_text())
    # Fresh timestamp/ids, our test BAP as the sender; the rest as the guide has it.
    body["context"].update(bap_id="bap.test", bap_uri=bap.bap_uri,
                           timestamp=datetime.now(UTC).isoformat().replace("+00:00", "Z"))
    status, ack = await bridge.post("discover", body, bap)
    assert (status, ack["ack_status"]) == (200, "ACK"), ack
    await run_worker(bridge.settings)
    (cb,) = bap.callbacks()
    # "CCS2" from text and filter, latitude 12..13 from the guide's filter dialect
    assert ids(cb) == ["loc-mg/e1/1", "loc-ind/e1/1"]
    assert cb["context"]["domain"] == "deg:ev-charging"
