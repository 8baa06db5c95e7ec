"""`bridge`: the command line. Subcommands live in `bridge.commands.*`."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from bridge.config import ConfigError, load_settings
from bridge.logs import configure_logging

COMMAND_MODULES = (
    "bridge.commands.core",
    "bridge.commands.tariff",
    "bridge.commands.keys",
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
    code: int = args.func(args, settings) if _wants_settings(args) else args.func(args)
    return code


def _wants_settings(args: argparse.Namespace) -> bool:
    return getattr(args, "needs_settings", True)


if __name__ == "__main__":
    sys.exit(main())
