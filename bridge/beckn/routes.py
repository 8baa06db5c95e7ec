"""`POST /beckn/{action}`: the BPP endpoints, and the table of action handlers.

Actions: discover, select, init, confirm, status, track, update, cancel,
rating, support. Until an action module registers its handler (the order
flows do it with `register_action("select", handle_select)`), the action
authenticates and validates like any other, then answers NACK 40001
"not implemented yet".
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import structlog
from aiohttp import web

from bridge.beckn.errors import NotApplicable
from bridge.beckn.profiles import DRAFT, LTS, profiles_on
from bridge.beckn.registry import KeyDirectory
from bridge.beckn.transport import BecknRequest, BecknServices, Handler, make_middleware, receive
from bridge.config import Settings

log = structlog.get_logger("bridge.beckn")

ACTIONS = ("discover", "select", "init", "confirm", "status", "track", "update", "cancel",
           "rating", "support")

BECKN = web.AppKey("beckn", BecknServices)


async def not_implemented(req: BecknRequest) -> None:
    raise NotApplicable(f"{req.action} is not implemented yet", {"action": req.action})


_HANDLERS: dict[str, Handler] = dict.fromkeys(ACTIONS, not_implemented)


def register_action(action: str, handler: Handler) -> None:
    """Plug in the handler of one Beckn action (called at import of its module)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown Beckn action {action!r}")
    _HANDLERS[action] = handler


def handlers() -> dict[str, Handler]:
    # discover registers itself on import; the order flows' modules do the same.
    from bridge.beckn import discover  # noqa: F401

    return _HANDLERS


def log_mode(settings: Settings) -> None:
    if settings.beckn_mode == "adapter":
        log.warning("beckn.adapter_mode", note="unsigned requests accepted from the adapter's "
                    "addresses only; callbacks unsigned to the adapter",
                    adapter_url=settings.beckn_adapter_url,
                    allow_from=settings.beckn_adapter_allow_from, bpp_uri=settings.bpp_uri)
        from bridge.beckn.callbacks import direct_signer

        if direct_signer(settings) is None:
            log.warning("beckn.TRACKING_PATCHES_UNSIGNED",
                        note="adapter mode without a signing key: live-tracking PATCHes go "
                        "to BAPs unsigned; set beckn.private_key / key_id to the adapter's key")
    elif not settings.beckn_verify:
        log.warning("beckn.SIGNATURES_NOT_VERIFIED",
                    note="BRIDGE_BECKN_VERIFY=off: anyone can call the BPP; local development only")


def beckn_extension(app: web.Application) -> None:
    """`bridge.app` extension: routes, middleware and services of the BPP."""
    from bridge.app import REDIS, SETTINGS

    settings = app[SETTINGS]
    redis = app[REDIS]
    services = BecknServices(settings=settings, redis=redis, keys=KeyDirectory(settings, redis),
                             handlers=handlers())
    app[BECKN] = services
    app.middlewares.append(make_middleware())
    log_mode(settings)

    async def post(request: web.Request) -> web.Response:
        return await receive(request, services)

    if settings.beckn_mode == "signed":
        # The registry's challenge (bridge/beckn/onboarding.py); behind an adapter the
        # adapter's keys are on the network and it onboards, not the bridge.
        from bridge.beckn.keyring import OwnKeys
        from bridge.beckn.onboarding import on_subscribe

        own = OwnKeys(settings)
        services.extra["own_keys"] = own

        async def challenge(request: web.Request) -> web.Response:
            return await on_subscribe(request, settings, redis, services.keys, own)

        app.router.add_post("/beckn/on_subscribe", challenge)  # before /beckn/{action}
    from bridge.beckn.on_catalog_publish import add_routes as add_publish_routes

    add_publish_routes(app, services)  # the CDS's results of our catalog publishes
    on = profiles_on(settings)
    if on & set(DRAFT):
        app.router.add_post("/beckn/{action}", post)
    if LTS in on:
        from bridge.beckn.lts_routes import add_routes

        add_routes(app, services, settings)

    async def lifecycle(_app: web.Application) -> AsyncIterator[None]:
        yield
        await services.keys.close()

    app.cleanup_ctx.append(lifecycle)
