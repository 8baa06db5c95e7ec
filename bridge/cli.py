"""`bridge`: the command line. Subcommands live in `bridge.commands.*`."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from urllib.parse import urlsplit, urlunsplit

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from bridge.beckn.signing import KeyFileError
from bridge.config import ConfigError, load_settings
from bridge.logs import configure_logging

COMMAND_MODULES = (
    "bridge.commands.core",
    "bridge.commands.tariff",
    "bridge.commands.keys",
    "bridge.commands.registry",
    "bridge.commands.catalog",
    "bridge.commands.callbacks",
    "bridge.commands.journey",
    "bridge.commands.demo",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bridge", description=__doc__)
    parser.add_argument("--config", help="settings file (default: $BRIDGE_CONFIG or config/bridge.toml)")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # a feature still being written; the rest works
                continue
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings(os.environ, args.config)
    except ConfigError as exc:
        print(f"bridge: configuration error: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    try:
        code: int = args.func(args, settings) if _wants_settings(args) else args.func(args)
    except (RedisConnectionError, RedisTimeoutError) as exc:
        # Any command that needs Redis: one line, not a traceback.
        from bridge import redisconn

        print(f"bridge {args.command}: cannot reach Redis at {redisconn.describe(settings)}: "
              f"{_reason(exc)}", file=sys.stderr)
        return 1
    except KeyFileError as exc:
        # serve and the worker sign callbacks: without the key they would only fail
        # one callback after another, so they stop at once and say what to do.
        print(f"bridge {args.command}: beckn.private_key: {exc} "
              "(make one with `bridge keys generate`)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `bridge order X | head`: the reader left; no traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    return code


def redact_url(url: str) -> str:
    """The URL without its password (redis://:secret@host -> redis://:***@host)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def _wants_settings(args: argparse.Namespace) -> bool:
    return getattr(args, "needs_settings", True)


if __name__ == "__main__":
    sys.exit(main())
