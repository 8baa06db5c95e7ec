"""The mock's settings, frozen. Only `cli.py` reads the environment; it builds
one `MockConfig` and everything else receives it (or the fields it needs)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

DEFAULT_NETWORK = Path("config/networks/india.toml")
# A checkout's own config directory: the default network is found from any working
# directory (an installed image runs from /app, where the relative path holds).
PROJECT_DIR = Path(__file__).resolve().parent.parent


def resolve_network(path: Path) -> Path:
    """A relative network file that is not under the working directory is looked up
    in the project directory, as `bridge` finds `config/bridge.toml`."""
    if path.is_absolute() or path.exists():
        return path
    candidate = PROJECT_DIR / path
    return candidate if candidate.exists() else path


@dataclass(frozen=True)
class MockConfig:
    host: str = "127.0.0.1"
    port: int = 9090
    public_url: str = "http://127.0.0.1:9090"
    network: Path = DEFAULT_NETWORK
    speed: float = 1.0
    generate: int = 0
    seed: int = 1
    # Simulated seconds per meter tick. 180 s = 0.05 h, so every charging
    # period's TIME volume is an exact decimal and ticks fall on whole local
    # minutes (IST is UTC+05:30), which is where tariff windows switch.
    tick_seconds: int = 180
    # Pushes to the eMSP: bounded attempts, exponential backoff (real seconds).
    push_attempts: int = 5
    push_backoff: float = 0.2
    push_timeout: float = 10.0
    # CommandResponse.timeout we announce (seconds).
    command_timeout: int = 30
    # Simulated seconds between "charger accepted" and the session going ACTIVE.
    start_delay_seconds: int = 30
    # Simulated seconds a car stays plugged in after it is full, before the
    # driver unplugs on their own (parking time).
    park_after_full_seconds: int = 600
    # Push the whole network automatically after an eMSP registers with us.
    push_on_register: bool = True
    page_limit: int = 100
    max_page_limit: int = 1000
    # Publish endpoint URLs ending in "/" (`--trailing-slash`), as many CPO platforms
    # do: the eMSP must join paths to them without making "//".
    trailing_slash: bool = False
    # Simulated time at start (`--epoch`); None: the real time. `KEEP_REDIS=1 make run`
    # starts the new mock after the last timestamp the previous one wrote, so its
    # updates are not older than what the eMSP kept (they would be ignored as stale).
    epoch: datetime | None = None

    @property
    def base_url(self) -> str:
        return self.public_url.rstrip("/")
