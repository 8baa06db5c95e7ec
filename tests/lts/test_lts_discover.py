"""LTS discover on the running bridge: `message.intent.textSearch`, and filters written in
the LTS's own names (`provider.id`, `resourceAttributes`) answered by the same search
engine and indexes as the draft's discover; each answer a catalog of Resources and Offers
per CPO. (The conformance suite runs these under the LTS validator.)"""

from __future__ import annotations

from typing import Any

from tests.journey.conftest import World
from tests.lts.conftest import LtsBap
from tests.lts.test_lts_journey import discover_charger


def resources(m: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for c in m["message"]["catalogs"] for r in c["resources"]]


async def test_discover_by_text_and_by_the_lts_names(world: World, lts: LtsBap) -> None:
    txn = "lts-discover-1"
    await discover_charger(lts, txn)  # the catalog is rendered (asked until it shows)

    by_text = await lts.call("discover", txn, {"intent": {"textSearch": "Maddur"}})
    found = resources(by_text)
    assert found and {r["id"].split(":")[2] for r in found} == {"tpc-hwy-mdr"}, [
        r["id"] for r in found]
    assert {c["provider"]["id"] for c in by_text["message"]["catalogs"]} == {"IN-TPC"}

    by_cpo = await lts.call("discover", txn, {"intent": {"filters": {
        "type": "jsonpath", "expression": "$[?@.provider.id == 'IN-ZEO']"}}})
    assert by_cpo["message"]["catalogs"], by_cpo["message"]
    assert {c["provider"]["id"] for c in by_cpo["message"]["catalogs"]} == {"IN-ZEO"}
    assert all(r["id"].startswith("IN:ZEO:") for r in resources(by_cpo))

    both = await lts.call("discover", txn, {"intent": {"textSearch": "Maddur", "filters": {
        "type": "jsonpath",
        "expression": "$[?@.resourceAttributes.connectorType == 'CHAdeMO']"}}})
    chademo = resources(both)
    assert [r["id"] for r in chademo] == ["IN:TPC:tpc-hwy-mdr:tpc-mdr-2:2"], chademo
    offers = both["message"]["catalogs"][0]["offers"]
    assert {rid for o in offers for rid in o["resourceIds"]} == {chademo[0]["id"]}

    nothing = await lts.call("discover", txn, {"intent": {"textSearch": "Maddur", "filters": {
        "type": "jsonpath", "expression": "$[?@.provider.id == 'IN-ZEO']"}}})
    assert nothing["message"]["catalogs"] == [], nothing["message"]
