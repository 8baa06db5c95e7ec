"""Pure parts of the transport, settings and logging: tables of cases."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bridge.config import ConfigError, load_settings
from bridge.logs import MASK, redact_secrets
from bridge.ocpi.client import next_link
from bridge.ocpi.errors import InvalidParameters
from bridge.ocpi.models import format_datetime
from bridge.ocpi.transport import Page, envelope, page_headers, parse_page, token_candidates
from bridge.store.ocpi_store import merge_patch


def b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


@pytest.mark.parametrize("header, expected", [
    (None, []),
    ("", []),
    ("Bearer abc", []),
    ("Token", []),
    (f"Token {b64('abc-123')}", ["abc-123", b64("abc-123")]),
    ("Token ebf3b399-779f-4497-9b9d-ac6ad3cc44d2", ["ebf3b399-779f-4497-9b9d-ac6ad3cc44d2"]),
    (f"token {b64('x')}", ["x", b64("x")]),
])
def test_token_candidates(header, expected) -> None:
    assert token_candidates(header) == expected


@pytest.mark.parametrize("query, expected", [
    ({}, Page(0, 50, None, None)),
    ({"offset": "10", "limit": "5"}, Page(10, 5, None, None)),
    ({"limit": "5000"}, Page(0, 100, None, None)),
    ({"date_from": "2026-11-25T10:00:00Z"},
     Page(0, 50, datetime(2026, 11, 25, 10, tzinfo=UTC), None)),
    ({"date_to": "2026-11-25T10:00:00"},
     Page(0, 50, None, datetime(2026, 11, 25, 10, tzinfo=UTC))),
])
def test_parse_page(query, expected) -> None:
    assert parse_page(query, 50, 100) == expected


@pytest.mark.parametrize("query", [{"offset": "x"}, {"limit": "-1"}, {"date_from": "yesterday"}])
def test_parse_page_errors(query) -> None:
    with pytest.raises(InvalidParameters):
        parse_page(query, 50, 100)


@pytest.mark.parametrize("page, total, link", [
    (Page(0, 10, None, None), 25, '<http://h/x?offset=10&limit=10>; rel="next"'),
    (Page(20, 10, None, None), 25, None),
    (Page(0, 10, datetime(2026, 1, 1, tzinfo=UTC), None), 11,
     '<http://h/x?offset=10&limit=10&date_from=2026-01-01T00%3A00%3A00Z>; rel="next"'),
])
def test_page_headers(page, total, link) -> None:
    headers = page_headers("http://h/x", page, total)
    assert headers["X-Total-Count"] == str(total) and headers["X-Limit"] == str(page.limit)
    assert headers.get("Link") == link
    if link:
        assert next_link(link) == link[1:link.index(">")]


@pytest.mark.parametrize("header, url", [
    (None, None), ("", None),
    ('<https://a/b?offset=5>; rel="next"', "https://a/b?offset=5"),
    ("<https://a/b?offset=5>; rel=next", "https://a/b?offset=5"),
])
def test_next_link(header, url) -> None:
    assert next_link(header) == url


def test_envelope_shape() -> None:
    now = datetime(2026, 11, 25, 10, 0, 0, 123000, tzinfo=UTC)
    assert envelope([1], now=now) == {"data": [1], "status_code": 1000,
                                      "status_message": "Success",
                                      "timestamp": "2026-11-25T10:00:00.123Z"}
    assert "data" not in envelope(None, 2001, "bad", now=now)
    assert format_datetime(datetime(2026, 1, 1)) == "2026-01-01T00:00:00Z"


@pytest.mark.parametrize("stored, patch, append, expected", [
    ({"a": 1, "b": 2}, {"b": 3}, (), {"a": 1, "b": 3}),
    ({"p": [1]}, {"p": [2]}, ("p",), {"p": [1, 2]}),
    ({}, {"p": [2]}, ("p",), {"p": [2]}),
    ({"p": [1]}, {"p": [2]}, (), {"p": [2]}),
])
def test_merge_patch(stored, patch, append, expected) -> None:
    assert merge_patch(stored, patch, append) == expected


def test_settings_from_file_and_env(tmp_path: Path) -> None:
    cfg = tmp_path / "b.toml"
    cfg.write_text('[server]\nport = 9000\n[ocpi]\nparty_id = "abc"\n[beckn]\nverify = true\n')
    s = load_settings({"BRIDGE_CONFIG": str(cfg), "BRIDGE_PORT": "9100",
                       "REDIS_URL": "redis://r:1/2", "BRIDGE_BECKN_VERIFY": "off"})
    assert (s.port, s.ocpi_party_id, s.redis_url, s.beckn_verify) == (9100, "ABC", "redis://r:1/2",
                                                                     False)
    with pytest.raises(Exception):
        s.port = 1  # type: ignore[misc]  # frozen


@pytest.mark.parametrize("content, env", [
    ("[server]\nport = 'x'\n", {}),
    ("[server\n", {}),
    ("port = 1\n", {}),
    ("", {"BRIDGE_OCPI_COUNTRY_CODE": "IND"}),
])
def test_settings_errors(tmp_path: Path, content: str, env: dict[str, str]) -> None:
    cfg = tmp_path / "b.toml"
    cfg.write_text(content)
    with pytest.raises(ConfigError):
        load_settings(env, cfg)


def test_missing_named_config_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        load_settings({"BRIDGE_CONFIG": str(tmp_path / "nope.toml")})


def test_redact_secrets_masks_at_any_depth() -> None:
    event = {"event": "x", "token": "s3cret", "nested": {"Authorization": "Token abc",
                                                         "ok": [{"otp": "1234", "n": 1}]}}
    out = redact_secrets(None, "info", event)
    assert out["token"] == MASK
    assert out["nested"]["Authorization"] == MASK
    assert out["nested"]["ok"][0] == {"otp": MASK, "n": 1}
