"""structlog set-up: JSON lines in production, pretty in a terminal.

Per-request context (`request_id`, OCPI/Beckn correlation ids, party) is bound
with `structlog.contextvars` by the HTTP middlewares, so every line logged
while serving a request carries it.

Secrets never reach the output: code logs token *fingerprints*
(`fingerprint()`), never tokens, and `redact_secrets` is a last line of
defence that masks any value under a key that names a secret.
"""

from __future__ import annotations

import hashlib
import logging
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any

import orjson
import structlog

SECRET_KEYS = frozenset(
    {
        "token",
        "token_a",
        "token_b",
        "token_c",
        "authorization",
        "private_key",
        "signature",
        "password",
        "otp",
        "secret",
    }
)
MASK = "***"


def fingerprint(secret: str) -> str:
    """A short, stable, non-reversible name for a secret, safe to log."""
    return hashlib.sha256(secret.encode()).hexdigest()[:10]


def _redact(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: (MASK if str(k).lower() in SECRET_KEYS else _redact(v)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact(v) for v in value]
    return value


def redact_secrets(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: mask values whose key names a secret, at any depth."""
    for key in list(event_dict):
        if key.lower() in SECRET_KEYS:
            event_dict[key] = MASK
        else:
            event_dict[key] = _redact(event_dict[key])
    return event_dict


def _orjson_dumps(obj: Any, default: Any = None) -> str:
    return orjson.dumps(obj, default=default or str).decode()


class _Stderr:
    """Whatever `sys.stderr` is at the time of writing (test runners swap it)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure_logging(level: str = "info", fmt: str = "auto") -> None:
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    renderer: Any = (
        structlog.processors.JSONRenderer(serializer=_orjson_dumps)
        if use_json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact_secrets,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
        ),
        logger_factory=structlog.PrintLoggerFactory(file=_Stderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=True,
    )
