"""The network file and --generate."""

from __future__ import annotations

from datetime import UTC, datetime

from ocpi_mock.network import load_network
from tests.conftest import ROOT

NET = ROOT / "config" / "networks" / "india.toml"
NOW = datetime(2024, 1, 1, tzinfo=UTC)


def test_india_network_shape() -> None:
    net = load_network(NET, NOW)
    assert {p.party_id for p in net.parties} == {"TPC", "ZEO", "STK"}
    assert len(net.locations) >= 12
    assert {"Bengaluru", "Pune", "New Delhi"} <= {loc.city for loc in net.locations}
    standards = {c.standard for loc in net.locations for e in loc.evses or [] for c in e.connectors}
    assert {"IEC_62196_T2_COMBO", "CHADEMO", "IEC_62196_T2", "IEC_60309_2_single_16",
            "GBT_DC"} <= {str(s) for s in standards}
    assert any(not loc.opening_times.twentyfourseven for loc in net.locations
               if loc.opening_times)
    evses = {e.evse_id: e for loc in net.locations for e in loc.evses or []}
    assert "IN*TPC*E1001*1" in evses
    assert "RESERVABLE" in {str(c) for c in evses["IN*TPC*E1301*1"].capabilities or []}
    for party in ("TPC", "ZEO", "STK"):
        dc = next(t for t in net.tariffs if t.id == f"{party}-DC")
        dims = {str(c.type) for el in dc.elements for c in el.price_components}
        assert dims == {"FLAT", "ENERGY", "TIME", "PARKING_TIME"}
        assert dc.min_price and dc.max_price
        assert all(c.vat == 18 for el in dc.elements for c in el.price_components)
        assert any(el.restrictions and el.restrictions.start_time == "18:00" for el in dc.elements)


def test_generate_is_deterministic() -> None:
    a = load_network(NET, NOW, generate=50, seed=7)
    b = load_network(NET, NOW, generate=50, seed=7)
    c = load_network(NET, NOW, generate=50, seed=8)
    dump = [loc.to_json_dict() for loc in a.locations]
    assert dump == [loc.to_json_dict() for loc in b.locations]
    assert dump != [loc.to_json_dict() for loc in c.locations]
    assert len({loc.id for loc in a.locations}) == len(a.locations)


def test_default_network_is_found_from_any_directory(tmp_path, monkeypatch) -> None:
    # `ocpi-mock serve` run outside the checkout (an operator's shell, a systemd unit)
    # used to stop with "config/networks/india.toml: No such file or directory".
    from pathlib import Path

    from ocpi_mock.config import DEFAULT_NETWORK, resolve_network

    monkeypatch.chdir(tmp_path)
    assert resolve_network(DEFAULT_NETWORK) == NET
    (tmp_path / "config" / "networks").mkdir(parents=True)
    own = tmp_path / "config" / "networks" / "india.toml"
    own.write_text("")
    assert resolve_network(DEFAULT_NETWORK).resolve() == own  # the working directory's first
    assert resolve_network(Path("nowhere.toml")) == Path("nowhere.toml")  # errors name the path given
