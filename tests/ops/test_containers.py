"""The container set-up: the compose file is valid to Compose itself, the production image
runs as a non-root user with a health check and without the mock CPO, and the lock file
pins every dependency with hashes."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import tomllib
from pathlib import Path

import yaml

from tests.conftest import ROOT

DOCKERFILE = (ROOT / "Dockerfile").read_text()
LOCK = (ROOT / "requirements.lock").read_text()


def compose_command() -> list[str]:
    proc = subprocess.run([str(ROOT / "scripts" / "ensure-compose.sh")], capture_output=True,
                          text=True, timeout=600, check=False)
    assert proc.returncode == 0, f"no docker compose to validate with: {proc.stderr.strip()}"
    return shlex.split(proc.stdout.strip())


def stage(name: str) -> str:
    """The lines of one Dockerfile stage."""
    m = re.search(rf"^FROM \S+ AS {name}\n(.*?)(?=^FROM |\Z)", DOCKERFILE, re.S | re.M)
    assert m, f"no stage {name}"
    return m.group(1)


def test_compose_file_is_valid_to_compose(tmp_path: Path) -> None:
    cmd = compose_command()
    env = {**os.environ, "BRIDGE_PUBLIC_URL": "https://emsp.example.org"}
    for profile in ([], ["--profile", "demo"]):
        proc = subprocess.run([*cmd, "-f", str(ROOT / "docker-compose.yml"), *profile, "config"],
                              capture_output=True, text=True, timeout=120, env=env, check=False,
                              cwd=ROOT)
        assert proc.returncode == 0, proc.stderr
    bad = tmp_path / "docker-compose.yml"
    bad.write_text((ROOT / "docker-compose.yml").read_text().replace(
        'test: ["CMD", "redis-cli", "ping"]', 'tset: ["CMD", "redis-cli", "ping"]', 1))
    proc = subprocess.run([*cmd, "-f", str(bad), "config", "-q"], capture_output=True, text=True,
                          timeout=120, env=env, check=False)
    assert proc.returncode != 0  # the validation is real


def test_compose_services_are_supervised_and_wait_for_health() -> None:
    doc = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = doc["services"]
    for name in ("redis", "bridge", "worker"):
        assert services[name]["restart"] == "unless-stopped", name
    assert "healthcheck" in services["redis"] and "healthcheck" in services["worker"]
    for name in ("bridge", "worker"):
        assert services[name]["depends_on"]["redis"] == {"condition": "service_healthy"}
        assert services[name]["build"]["target"] == "bridge"
    env = doc["x-bridge-env"]
    assert "bridge:" not in env["BRIDGE_PUBLIC_URL"]  # no internal host name in drivers' links
    assert services["mock-cpo"]["profiles"] == ["demo"]
    assert services["mock-cpo"]["build"]["target"] == "mock"


def test_production_image_is_non_root_healthchecked_and_mock_free() -> None:
    prod = stage("bridge")
    assert re.search(r"^USER obb$", prod, re.M) and "HEALTHCHECK" in prod and "/readyz" in prod
    assert "ocpi_mock" not in prod and "rm -f /usr/local/bin/ocpi-mock" in prod
    assert "STOPSIGNAL SIGTERM" in prod
    assert "--require-hashes -r requirements.lock" in stage("deps")
    assert re.search(r"^USER obb$", stage("mock"), re.M)


def test_lock_pins_every_dependency_with_hashes() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pinned = {m.group(1).lower().replace("_", "-"): m.group(2)
              for m in re.finditer(r"^([A-Za-z0-9_.\-]+)==(\S+)", LOCK, re.M)}
    for req in project["dependencies"]:
        name = re.split(r"[<>=!~\[ ;]", req, maxsplit=1)[0].lower().replace("_", "-")
        assert name in pinned, f"{name} is not in requirements.lock: run `make lock`"
    blocks = re.split(r"\n(?=[A-Za-z0-9])", LOCK.split("\n", 1)[1])
    for block in blocks:
        if "==" in block:
            assert "--hash=sha256:" in block, block.splitlines()[0]
