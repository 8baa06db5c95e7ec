"""Fault switches: what the mock does wrong on purpose, set through the admin
API (`POST /admin/faults/{kind}`) or `ocpi-mock fault KIND`. The switches are
plain data consulted by the pusher, the command handler and the simulator;
the actions that happen at once (power cut, PATCH for an unknown session,
re-sent CDR) live in `actions.py`."""

from __future__ import annotations

from dataclasses import dataclass, field

COMMAND_MODES = ("reject", "no-result", "timeout", "fail")
KINDS = ("power-cut", "offline-charger", "command", "duplicate-patches", "out-of-order-patches",
         "unknown-session-patch", "duplicate-cdr", "slow-emsp", "slow-mock", "lost-active-push")


@dataclass
class CommandFault:
    mode: str  # reject: CommandResponse REJECTED; no-result: never POST the CommandResult;
    #            timeout: CommandResult TIMEOUT after the announced timeout; fail: FAILED
    command: str | None  # only this CommandType, or any
    remaining: int  # how many commands it applies to


@dataclass
class Faults:
    emsp_delay: float = 0.0  # real seconds added before every push to the eMSP
    mock_delay: float = 0.0  # real seconds added before every OCPI answer of the mock
    commands: list[CommandFault] = field(default_factory=list)
    duplicate_patches: dict[str, int] = field(default_factory=dict)  # session id or "*" -> count
    out_of_order: dict[str, int] = field(default_factory=dict)  # session id or "*" -> count
    duplicate_cdrs: int = 0  # the next N CDRs are POSTed twice
    # the next N sessions' PUT ACTIVE never reaches the eMSP (as when every retry failed
    # while it was down); their meter PATCHes, which carry no status, do
    lost_active: int = 0
    offline: dict[tuple[str, str], float] = field(default_factory=dict)  # (loc, evse) -> CDR delay

    def take_command_fault(self, command: str) -> CommandFault | None:
        for rule in self.commands:
            if rule.remaining > 0 and rule.command in (None, command):
                rule.remaining -= 1
                if rule.remaining == 0:
                    self.commands.remove(rule)
                return rule
        return None

    def _take(self, table: dict[str, int], session_id: str) -> bool:
        for key in (session_id, "*"):
            if table.get(key, 0) > 0:
                table[key] -= 1
                if table[key] == 0:
                    del table[key]
                return True
        return False

    def take_duplicate_patch(self, session_id: str) -> bool:
        return self._take(self.duplicate_patches, session_id)

    def take_out_of_order(self, session_id: str) -> bool:
        return self._take(self.out_of_order, session_id)

    def take_duplicate_cdr(self) -> bool:
        if self.duplicate_cdrs > 0:
            self.duplicate_cdrs -= 1
            return True
        return False

    def take_lost_active(self) -> bool:
        if self.lost_active > 0:
            self.lost_active -= 1
            return True
        return False

    def clear(self) -> None:
        self.__init__()  # type: ignore[misc]

    def describe(self) -> dict[str, object]:
        return {
            "emsp_delay": self.emsp_delay, "mock_delay": self.mock_delay,
            "commands": [vars(c) for c in self.commands],
            "duplicate_patches": self.duplicate_patches, "out_of_order": self.out_of_order,
            "duplicate_cdrs": self.duplicate_cdrs, "lost_active": self.lost_active,
            "offline": [{"location_id": k[0], "evse_uid": k[1], "cdr_delay": v}
                        for k, v in self.offline.items()],
        }
