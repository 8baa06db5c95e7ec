"""Token authorization, as a CPO does it before letting a charger start.

A token is accepted when it is `valid` and either known to us with a
whitelist that allows local decisions (ALWAYS, ALLOWED, ALLOWED_OFFLINE), or
the eMSP's real-time authorization (`POST {tokens}/{uid}/authorize`) answers
ALLOWED. Unknown tokens, `valid: false`, and any other `allowed` answer
(BLOCKED, EXPIRED, NO_CREDIT, NOT_ALLOWED) are refused, as is a failed call.
"""

from __future__ import annotations

from dataclasses import dataclass

import structlog

from bridge.ocpi.errors import OcpiClientError
from bridge.ocpi.models import AuthMethod, AuthorizationInfo, Token
from ocpi_mock.pusher import NotRegistered
from ocpi_mock.runtime import Mock

log = structlog.get_logger("ocpi_mock.tokens")

LOCAL_OK = {"ALWAYS", "ALLOWED", "ALLOWED_OFFLINE"}


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str  # ALLOWED, or why not (AllowedType value or a short text)
    token: Token | None
    authorization_reference: str | None
    auth_method: AuthMethod


def find_token(mock: Mock, uid: str, token_type: str | None,
               party: tuple[str, str] | None = None) -> Token | None:
    for (cc, pid, tuid), token in mock.state.tokens.items():
        if tuid != uid or (token_type and str(token.type) != token_type):
            continue
        if party is None or (cc, pid) == (party[0].upper(), party[1].upper()):
            return token
    return None


async def authorize(mock: Mock, *, uid: str, token_type: str, command_token: Token | None,
                    location_id: str, evse_uid: str | None, party: tuple[str, str],
                    authorization_reference: str | None = None) -> Decision:
    """`command_token` is the Token object a command carries (auth method COMMAND);
    without it a driver presented `uid` at the charger (WHITELIST / AUTH_REQUEST)."""
    method_local = AuthMethod.COMMAND if command_token else AuthMethod.WHITELIST
    known = find_token(mock, uid, token_type,
                       (command_token.country_code, command_token.party_id)
                       if command_token else None)
    if command_token is not None and not command_token.valid:
        return Decision(False, "token not valid", command_token, None, method_local)
    if known is not None and not known.valid:
        return Decision(False, "token not valid", known, None, method_local)
    if known is not None and str(known.whitelist) in LOCAL_OK:
        return Decision(True, "ALLOWED", known, authorization_reference, method_local)

    # unknown token, or whitelist NEVER: ask the eMSP in real time
    body = {"location_id": location_id}
    if evse_uid:
        body["evse_uids"] = [evse_uid]  # type: ignore[assignment]
    try:
        answer = await mock.push.authorize(uid, token_type, body, party)
        info = AuthorizationInfo.model_validate(answer)
    except (OcpiClientError, NotRegistered, ValueError) as exc:
        log.info("authorize.failed", uid_fp=_fp(uid), error=str(exc))
        return Decision(False, "real-time authorization failed", known or command_token, None,
                        method_local)
    allowed = str(info.allowed)
    method = AuthMethod.COMMAND if command_token else AuthMethod.AUTH_REQUEST
    if allowed != "ALLOWED":
        return Decision(False, allowed, info.token, None, method)
    # the last authorization_reference given by the eMSP wins (CDR spec)
    ref = info.authorization_reference or authorization_reference
    return Decision(True, "ALLOWED", info.token, ref, method)


def _fp(uid: str) -> str:
    from bridge.logs import fingerprint

    return fingerprint(uid)
