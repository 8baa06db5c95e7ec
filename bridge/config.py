"""Settings: a TOML file plus environment overrides, in one frozen object.

This is the only module that reads the environment. Everything else receives
the `Settings` instance it needs as an argument.

Which file, whatever the current directory: `--config PATH`, else
`$BRIDGE_CONFIG`, else the project's `config/bridge.toml` (next to the
`bridge` package). A named file that does not exist is an error; without any
file the built-in defaults apply.

TOML sections are flattened: `[ocpi] party_id` is the field `ocpi_party_id`
and is overridden by `BRIDGE_OCPI_PARTY_ID`; `[server]` keys have no prefix
(`port` <- `BRIDGE_PORT`). `REDIS_URL` is accepted beside `BRIDGE_REDIS_URL`.

Relative file paths (`PATH_FIELDS`) are resolved once, here: in a config file
against the file's own directory, in the environment against the current
directory, built-in defaults against the project directory. `public_url`
left unset follows `host` and `port` (also after `replace(port=...)`).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from functools import lru_cache
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

PROJECT_DIR = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = PROJECT_DIR / "config" / "bridge.toml"
# Settings that name files: resolved to absolute paths by `load_settings`.
PATH_FIELDS = ("beckn_private_key", "beckn_encryption_key", "beckn_keyring", "beckn_static_keys",
               "journey_pricing_policy")


class ConfigError(Exception):
    """The configuration file or an environment override is invalid."""


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    # [server]
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    # "" = follow host and port: http://{host}:{port} (127.0.0.1 for a wildcard host)
    public_url: str = ""
    # SO_REUSEPORT: several `bridge serve` processes listen on one host:port and the kernel
    # spreads connections between them (docs/scaling.md, "Many processes")
    reuse_port: bool = False
    redis_url: str = "redis://127.0.0.1:6379/0"
    # Where the data lives (docs/scaling.md): one Redis at `redis_url` (the default), or
    # the primary a Sentinel set names (`redis_sentinels` "host:port,host:port" and its
    # `redis_sentinel_service`; the queues then live there too). `redis_password` is the
    # data nodes' AUTH password in the Sentinel form (in the single form it is in the URL).
    redis_sentinels: str = ""
    redis_sentinel_service: str = "obb"
    # ... or a Redis Cluster ("host:port,..." of some of its nodes), cut into `redis_shards`
    # logical shards (0: 1 on one Redis, 12 on a Cluster; fixed for the life of the data).
    # arq needs one primary: with a Cluster the queues are on `queue_redis_url` or the
    # primary of `queue_redis_sentinels` / `queue_redis_sentinel_service`, and jobs reach
    # them through the relay (bridge/journey/relay.py).
    redis_cluster_nodes: str = ""
    redis_shards: int = Field(0, ge=0, le=1024)
    queue_redis_url: str = ""
    queue_redis_sentinels: str = ""
    queue_redis_sentinel_service: str = "obb-queue"
    queue_redis_wait_replicas: int = Field(0, ge=0, le=16)  # the queues' own WAIT barrier
    redis_password: str = ""
    # The WAIT barrier: every write is acknowledged by this many replicas before the bridge
    # acts on it (0 = off; 1 with Sentinel), within `redis_wait_timeout` seconds, else it
    # is an error like an unreachable Redis and the step is tried again.
    redis_wait_replicas: int = Field(0, ge=0, le=16)
    redis_wait_timeout: float = Field(2.0, gt=0)
    # Start even if Redis does not persist acknowledged writes (no AOF, no replicas
    # required to write): tests and benchmarks only (`--allow-volatile-redis`).
    redis_allow_volatile: bool = False
    # A running job's in-progress mark lasts this long and is renewed while it runs:
    # a killed worker's jobs run again within it (arq's own mark lasted 610 s).
    worker_job_lease: float = Field(15.0, ge=2)
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: str = "info"
    access_log: bool = True  # one line per request (bridge.metrics); off only for benchmarks
    shutdown_timeout: float = Field(20.0, ge=0)  # SIGTERM: seconds in-flight work may take
    # The worker's /metrics port: 9108 in config/bridge.toml; 0 (off) when built in code
    # (tests run many workers on one host)
    worker_metrics_port: int = Field(0, ge=0, le=65535)
    # Slow clients: seconds to send a request's headers / its body (then 408, or closed)
    header_timeout: float = Field(10.0, gt=0)
    body_timeout: float = Field(15.0, gt=0)
    tracing: Literal["off", "console", "otlp"] = "off"  # OpenTelemetry (bridge.tracing)
    tracing_endpoint: str = ""  # otlp: the collector's traces URL (default localhost:4318)
    tracing_service: str = "ocpi-beckn-bridge"

    # [ocpi]
    ocpi_country_code: str = Field("IN", min_length=2, max_length=2)
    ocpi_party_id: str = Field("BKN", min_length=3, max_length=3)
    ocpi_business_name: str = "ocpi-beckn-bridge eMSP"
    ocpi_business_website: str | None = None
    ocpi_request_timeout: float = 10.0
    ocpi_page_limit: int = Field(100, ge=1)
    ocpi_max_page_limit: int = Field(1000, ge=1)
    ocpi_events_maxlen: int = Field(200_000, ge=1000)
    # The worker pulls every party's changes this often (minutes; 0 = never), except the
    # parties listed in sync_skip ("IN-TPC,IN-ZEO"): those that push reliably.
    ocpi_sync_interval: int = Field(60, ge=0, le=1440)
    ocpi_sync_skip: str = ""
    # Requests per CPO platform (its token), shared by every serve process (a Redis bucket)
    ocpi_rate_limit: str = "1000/s burst 2000"
    # Outbound OCPI URLs taken from peers (bridge.urlguard): safe by default. Loopback is
    # for local development, `make run`, the tests and the demo; private ranges for
    # closed networks. Link-local, multicast and unspecified addresses are never called.
    ocpi_allow_loopback_urls: bool = False
    ocpi_allow_private_urls: bool = False

    # [beckn]
    beckn_subscriber_id: str = "bridge.example.org"
    beckn_key_id: str = "bridge-key-1"
    beckn_private_key: str = "var/keys/bridge-ed25519.key"
    # X25519 key the registry encrypts its on_subscribe challenge to (bridge/beckn/onboarding.py);
    # "" = bridge-x25519.key beside private_key
    beckn_encryption_key: str = ""
    # The key ring (bridge/beckn/keyring.py): which key signs when, written by `bridge keys
    # rotate`; "" = keyring.json beside private_key. Absent: one key, key_id with
    # private_key and encryption_key.
    beckn_keyring: str = ""
    # Rotation: seconds between publishing a new key and signing with it (every process
    # switches at the same instant, read from the key ring; the old key stays registered).
    beckn_key_overlap: float = Field(900.0, ge=2)
    beckn_key_validity_days: int = Field(365, ge=1)  # valid_until we publish for a key
    beckn_registry_url: str = ""
    # The registry's own subscriber_id: only it may send on_subscribe challenges ("" = any
    # subscriber whose key the registry or static_keys know; see docs/beckn.md).
    beckn_registry_subscriber_id: str = ""
    beckn_registry_country: str = "IND"  # country / city of our subscription record
    beckn_registry_city: str = ""
    beckn_subscribe_timeout: float = Field(60.0, gt=0)  # wait for on_subscribe and SUBSCRIBED
    # Our bpp_uri on the network (callbacks' context, catalogs, the registry's
    # subscriber_url). "" = {public_url}/beckn; behind an adapter: its receiver's URL.
    beckn_bpp_uri: str = ""
    beckn_verify: bool = True
    beckn_domain: str = "beckn.one:deg:ev-charging"
    # Also accepted in context.domain (the guide's examples say "deg:ev-charging").
    beckn_domain_aliases: str = "deg:ev-charging"
    beckn_version: str = "2.0.0"
    beckn_mode: Literal["signed", "adapter"] = "signed"
    beckn_adapter_url: str = ""  # adapter mode: on_* go to {adapter_url}/on_{action}, unsigned
    # adapter mode: the addresses requests may come from (the adapter's receiver), comma-
    # separated IPs or CIDR networks. Anything else is refused (10001).
    beckn_adapter_allow_from: str = "127.0.0.0/8,::1"
    beckn_static_keys: str = ""  # JSON file of subscriber records (closed networks)
    beckn_registry_cache_ttl: int = Field(3600, ge=0)
    beckn_max_clock_skew: float = Field(300.0, ge=0)
    # expires - created of a request's signature at most (a signature valid for years is
    # a replayable credential)
    beckn_max_signature_lifetime: int = Field(3600, ge=1)
    beckn_max_body: int = Field(1_048_576, ge=1024)  # bytes of a Beckn request body
    beckn_rate_limit: str = "50/s burst 200"  # requests per BAP (verified), all processes
    # Closed networks whose key records carry no subscriber_url: the URL prefixes our
    # callbacks may go to (comma-separated). Else bap_uri must be under the registered URL.
    beckn_callback_allow: str = ""
    # registry lookups per claimed subscriber (a flood of made-up key ids stays a trickle)
    beckn_registry_lookup_limit: str = "10/min burst 10"
    beckn_signature_ttl: int = Field(300, ge=1)
    beckn_dedupe_ttl: int = Field(86400, ge=60)
    beckn_callback_timeout: float = Field(10.0, gt=0)
    beckn_callback_max_attempts: int = Field(50, ge=1)  # a bound; the deadline decides
    beckn_callback_backoff: float = Field(1.0, gt=0)
    beckn_callback_max_backoff: float = Field(3600.0, gt=0)
    beckn_callback_default_ttl: float = Field(60.0, gt=0)
    beckn_discover_max_limit: int = Field(100, ge=1)
    # Catalog publish to the network's Catalog Discovery Service (bridge/beckn/catalog_publish.py)
    # which profile catalog publish speaks: rc2 (POST {cds_url}/catalog/publish, the
    # draft's Catalog Publish) or lts (the same path, Beckn 2.0 LTS; results at our
    # /catalog/on_publish)
    beckn_publish_profile: Literal["rc2", "lts"] = "rc2"
    beckn_cds_url: str = ""  # the CDS's Beckn base URL ({cds_url}/catalog/publish); "" = off
    beckn_cds_subscriber_id: str = ""  # only it may send on_catalog_publish ("" = any known)
    beckn_publish_delay: float = Field(10.0, ge=0)  # a CPO's changes are published this late
    beckn_publish_batch_items: int = Field(500, ge=1)  # items per publish request at most
    beckn_publish_batch_bytes: int = Field(1_000_000, ge=1024)  # body bytes per request at most
    beckn_publish_retries: int = Field(5, ge=1)  # tries of one request (network, 5xx, 429)
    beckn_publish_backoff: float = Field(1.0, gt=0)  # first retry delay, doubled each try ...
    beckn_publish_max_backoff: float = Field(300.0, gt=0)  # ... and per CPO, up to this
    beckn_network_id: str = ""  # beckn:networkId of our items; empty: the request's network_id
    # Wire profile (bridge/beckn/profiles.py): how messages to a BAP are written. The
    # network default, and the BAPs (comma-separated bap_ids) that get the guide's dialect.
    beckn_wire_profile: Literal["rc2", "guide"] = "rc2"
    beckn_guide_bap_ids: str = ""
    # Which profiles are served: rc2 and guide on /beckn/{action}, lts on the LTS paths
    # (/discover, /select, ...). Both families at once is the default.
    beckn_profiles: str = "rc2,guide,lts"

    # [journey] orders, payments, live tracking, interruptions, settlement
    journey_pricing_policy: str = "config/pricing.toml"
    journey_payment_mode: Literal["PREPAID", "HOLD", "POSTPAID"] = "PREPAID"
    journey_walk_in_minutes: int = Field(15, ge=0)  # a START within this is "now" (walk-in)
    journey_otp_digits: int = Field(4, ge=4, le=8)
    journey_otp_max_attempts: int = Field(5, ge=1)
    journey_track_interval: float = Field(5.0, ge=0)  # at most one PATCH per order per interval
    journey_interrupt_after: float = Field(120.0, gt=0)  # no session update for this long
    journey_outage_end_after: float = Field(1800.0, gt=0)  # ... and the order ends on its data
    journey_watchdog_every: float = Field(15.0, gt=0)
    journey_command_grace: float = Field(10.0, ge=0)  # added to the CPO's CommandResponse.timeout
    # A command the CPO cannot be reached for is retried (same uid) this long before giving up.
    journey_command_retry_for: float = Field(300.0, ge=0)
    # START_SESSION attempts (each its own command) before a start that fails is final.
    journey_start_attempts: int = Field(3, ge=1)
    # An order's Session/CDR is pulled from the CPO when no push came for this long.
    journey_reconcile_after: float = Field(60.0, gt=0)
    journey_reserve_lead_minutes: int = Field(30, ge=0)  # RESERVE_NOW this long before a slot
    journey_car_max_kw: float = Field(50.0, gt=0)  # charging model when the car is unknown
    # how soon a refund reaches the driver, as the refund terms say it (ISO 8601 duration;
    # the sandbox refunds at once, a UPI PSP within days)
    journey_refund_within: str = "P3D"
    journey_support_phone: str = "+91-80-4000-0000"
    journey_support_email: str = "support@example.org"
    journey_support_url: str = "https://example.org/support"

    # [test] fault injection (tests/chaos): the process kills itself (SIGKILL) at this named
    # point, "name" or "name@N", or the first reached of several, comma-separated
    # (bridge/crashpoints.py). Empty in production.
    test_crash_point: str = ""
    test_crash_after: float = Field(0.0, ge=0)  # seconds of uptime before the points are armed

    @field_validator("public_url")
    @classmethod
    def _strip_slash(cls, v: str) -> str:
        return v.rstrip("/")

    @field_validator("test_crash_point")
    @classmethod
    def _crash_point(cls, v: str) -> str:
        if v:
            from bridge.crashpoints import parse_all

            parse_all(v)  # ValueError names the known points
        return v

    @model_validator(mode="after")
    def _derive_public_url(self) -> Settings:
        if not self.public_url:
            host = "127.0.0.1" if self.host in ("", "0.0.0.0", "::") else self.host
            host = f"[{host}]" if ":" in host else host
            object.__setattr__(self, "public_url", f"http://{host}:{self.port}")
            object.__setattr__(self, "_public_url_derived", True)
        return self

    _public_url_derived: bool = PrivateAttr(default=False)

    @field_validator("ocpi_rate_limit", "beckn_rate_limit", "beckn_registry_lookup_limit")
    @classmethod
    def _limit(cls, v: str) -> str:
        from bridge.ratelimit import parse_limit

        parse_limit(v)  # ValueError says what is expected
        return v

    @field_validator("beckn_adapter_allow_from")
    @classmethod
    def _allow_from(cls, v: str) -> str:
        parse_networks(v)  # ValueError names the bad entry
        return v

    @model_validator(mode="after")
    def _adapter_needs_url(self) -> Settings:
        # Without it the callbacks would go unsigned straight to the BAPs.
        if self.beckn_mode == "adapter" and not self.beckn_adapter_url:
            raise ValueError("beckn.mode = \"adapter\" needs beckn.adapter_url (the adapter's "
                             "caller endpoint, where callbacks go to be signed)")
        return self

    @property
    def encryption_key_path(self) -> str:
        return self.beckn_encryption_key or os.path.join(
            os.path.dirname(self.beckn_private_key), "bridge-x25519.key")

    @property
    def keyring_path(self) -> str:
        return self.beckn_keyring or os.path.join(os.path.dirname(self.beckn_private_key),
                                                  "keyring.json")

    @property
    def bpp_uri(self) -> str:
        """Our `bpp_uri` on the network: `beckn.bpp_uri`, else `{public_url}/beckn`."""
        return self.beckn_bpp_uri.rstrip("/") or f"{self.public_url}/beckn"

    @property
    def adapter_networks(self) -> tuple[IPv4Network | IPv6Network, ...]:
        return parse_networks(self.beckn_adapter_allow_from)

    @field_validator("beckn_profiles")
    @classmethod
    def _profiles(cls, v: str) -> str:
        names = [p.strip() for p in v.split(",") if p.strip()]
        unknown = sorted(set(names) - {"rc2", "guide", "lts"})
        if unknown or not names:
            raise ValueError(f"beckn.profiles: {', '.join(unknown) or 'none'}: name one or more "
                             "of rc2, guide, lts")
        return ",".join(names)

    @model_validator(mode="after")
    def _default_profile_on(self) -> Settings:
        on = self.beckn_profiles.split(",")
        if self.beckn_publish_profile == "lts" and "lts" not in on:
            raise ValueError("beckn.publish_profile \"lts\" needs lts among beckn.profiles "
                             "(the CDS's results come to /catalog/on_publish)")
        if ("rc2" in on or "guide" in on) and self.beckn_wire_profile not in on:
            raise ValueError(f"beckn.wire_profile {self.beckn_wire_profile!r} is not among "
                             f"beckn.profiles ({self.beckn_profiles})")
        return self

    @property
    def lts_bpp_uri(self) -> str:
        """Our `bppUri` on the LTS paths (no prefix): `beckn.bpp_uri` when set (behind an
        adapter, its receiver), else `public_url`."""
        return self.beckn_bpp_uri.rstrip("/") or self.public_url

    @field_validator("redis_sentinels", "redis_cluster_nodes", "queue_redis_sentinels")
    @classmethod
    def _nodes(cls, v: str) -> str:
        parse_nodes(v)  # ValueError says what is expected
        return v

    @model_validator(mode="after")
    def _one_data_store(self) -> Settings:
        if self.redis_cluster_nodes.strip() and self.redis_sentinels.strip():
            raise ValueError("redis_cluster_nodes and redis_sentinels name two places for the "
                             "data: set one (docs/scaling.md)")
        if self.redis_cluster_nodes.strip() and not (self.queue_redis_url.strip()
                                                     or self.queue_redis_sentinels.strip()):
            raise ValueError("redis_cluster_nodes needs queue_redis_url or queue_redis_sentinels: "
                             "arq's queues need one primary (docs/scaling.md)")
        return self

    @field_validator("ocpi_country_code", "ocpi_party_id")
    @classmethod
    def _upper(cls, v: str) -> str:
        return v.upper()

    @property
    def ocpi_base_url(self) -> str:
        return f"{self.public_url}/ocpi"

    def replace(self, **changes: Any) -> Settings:
        """A copy with some fields changed, validated again (tests, CLI flags). A derived
        `public_url` is derived again (so `bridge serve --port N` advertises port N)."""
        values = self.model_dump()
        if self._public_url_derived:
            values["public_url"] = ""
        return Settings.model_validate({**values, **changes})


@lru_cache(maxsize=16)
def parse_networks(value: str) -> tuple[IPv4Network | IPv6Network, ...]:
    """"10.1.2.3, 10.0.0.0/8, ::1" -> networks (a bare address is a /32 or /128)."""
    out: list[IPv4Network | IPv6Network] = []
    for part in value.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            out.append(ip_network(part, strict=False))
        except ValueError as exc:
            raise ValueError(f"not an IP address or network: {part!r}") from exc
    return tuple(out)


def parse_nodes(text: str) -> list[tuple[str, int]]:
    """"h1:26379, h2:26379" -> [("h1", 26379), ("h2", 26379)] ("" -> [])."""
    out: list[tuple[str, int]] = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        host, sep, port = item.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"not a host:port list: {text!r} (say e.g. '10.0.0.1:26379,10.0.0.2:26379')")
        out.append((host.strip("[]"), int(port)))
    return out


def _flatten(doc: Mapping[str, Any]) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for section, values in doc.items():
        if not isinstance(values, Mapping):
            raise ConfigError(f"top-level key {section!r} must be a [section]")
        prefix = "" if section == "server" else f"{section}_"
        for key, value in values.items():
            flat[f"{prefix}{key}"] = value
    return flat


def load_settings(environ: Mapping[str, str], path: str | Path | None = None) -> Settings:
    """Build the settings from a TOML file and an environment mapping.

    `environ` is passed in (normally `os.environ`) so that tests need no
    monkeypatching and no other module ever touches the process environment.
    """
    named = path or environ.get("BRIDGE_CONFIG")
    cfg_path = Path(named).expanduser() if named else DEFAULT_CONFIG
    values: dict[str, Any] = {}
    if cfg_path.exists() and not cfg_path.is_dir():
        try:
            values = _flatten(tomllib.loads(cfg_path.read_text()))
        except (tomllib.TOMLDecodeError, OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{cfg_path}: {exc}") from exc
        _resolve_paths(values, cfg_path.resolve().parent)
    elif named:
        raise ConfigError(f"config file {cfg_path} does not exist")

    if "REDIS_URL" in environ:
        values["redis_url"] = environ["REDIS_URL"]
    from_env: dict[str, Any] = {}
    for name in Settings.model_fields:
        env_name = f"BRIDGE_{name.upper()}"
        if env_name in environ:
            from_env[name] = environ[env_name]
    _resolve_paths(from_env, Path.cwd())
    values.update(from_env)
    for name in PATH_FIELDS:  # built-in defaults belong to the project directory
        if name not in values:
            default = Settings.model_fields[name].default
            values[name] = os.path.normpath(PROJECT_DIR / default) if default else default
    try:
        return Settings.model_validate(values)
    except ValidationError as exc:
        raise ConfigError(str(exc)) from exc


def _resolve_paths(values: dict[str, Any], base: Path) -> None:
    for name in PATH_FIELDS:
        value = values.get(name)
        if isinstance(value, str) and value and not Path(value).expanduser().is_absolute():
            values[name] = os.path.normpath(base / Path(value).expanduser())
