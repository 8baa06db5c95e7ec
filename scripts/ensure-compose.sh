#!/usr/bin/env bash
# Print a command that validates compose files (`docker compose` or `docker-compose`),
# installing Debian's docker-compose package when running as root and none is found.
# Used by tests/ops/test_containers.py; no Docker engine is needed for `config`.
set -euo pipefail
if docker compose version >/dev/null 2>&1; then echo "docker compose"; exit 0; fi
if command -v docker-compose >/dev/null 2>&1; then echo "docker-compose"; exit 0; fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "ensure-compose: installing Debian's docker-compose" >&2
  (DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker-compose \
    || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
         --no-install-recommends docker-compose; }) >&2
  if command -v docker-compose >/dev/null 2>&1; then echo "docker-compose"; exit 0; fi
fi
echo "ensure-compose: no docker compose could be found or installed" >&2
exit 1
