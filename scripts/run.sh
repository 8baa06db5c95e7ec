#!/usr/bin/env bash
# `make run`: Redis (data under var/redis), the bridge, a worker and the mock CPO,
# connected by the OCPI credentials handshake; then the demo journeys, then it
# keeps everything running until Ctrl-C (RUN_ONCE=1: stop after the demo).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv
REDIS_SERVER=${REDIS_SERVER:-$(scripts/ensure-redis.sh)}
REDIS_PORT=${REDIS_PORT:-6390}
BRIDGE_PORT=${BRIDGE_PORT:-8080}
MOCK_PORT=${MOCK_CPO_PORT:-9090}
export REDIS_URL="redis://127.0.0.1:${REDIS_PORT}/0"
export BRIDGE_PORT BRIDGE_PUBLIC_URL="http://127.0.0.1:${BRIDGE_PORT}"
export MOCK_CPO_PORT=$MOCK_PORT MOCK_CPO_PUBLIC_URL="http://127.0.0.1:${MOCK_PORT}"
export BRIDGE_LOG_FORMAT=${BRIDGE_LOG_FORMAT:-json}
# The demo BAP (`bridge demo`) serves the registry lookup for its own key: the bridge
# asks it for the BAP's public key to verify the signed requests.
DEMO_BAP_PORT=${DEMO_BAP_PORT:-7070}
export BRIDGE_BECKN_REGISTRY_URL=${BRIDGE_BECKN_REGISTRY_URL:-http://127.0.0.1:${DEMO_BAP_PORT}}
# The mock runs --speed 120 (a 30-minute charge in 15 s), so the bridge's real-time windows
# shrink with it: tracking PATCHes every second, a session silent for 5 s is interrupted.
export BRIDGE_JOURNEY_TRACK_INTERVAL=${BRIDGE_JOURNEY_TRACK_INTERVAL:-1}
export BRIDGE_JOURNEY_INTERRUPT_AFTER=${BRIDGE_JOURNEY_INTERRUPT_AFTER:-5}
export BRIDGE_JOURNEY_WATCHDOG_EVERY=${BRIDGE_JOURNEY_WATCHDOG_EVERY:-1}
# The demo's reservation is for a slot 3 hours ahead: send RESERVE_NOW at once so the
# charger shows RESERVED at the CPO during the demo (the default is 30 min before).
export BRIDGE_JOURNEY_RESERVE_LEAD_MINUTES=${BRIDGE_JOURNEY_RESERVE_LEAD_MINUTES:-240}
mkdir -p var/redis var/log var/keys

pids=()
cleanup() {
  echo; echo "== stopping"
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

supervise() {  # name, log file, command...: start it again whenever it exits (a crash, kill -9)
  local name=$1 log=$2
  shift 2
  (
    child=
    trap '[ -n "$child" ] && kill "$child" 2>/dev/null; exit 0' TERM INT
    while true; do
      "$@" >>"$log" 2>&1 &
      child=$!
      wait "$child" && rc=0 || rc=$?
      echo "$(date -u +%FT%TZ) supervise: $name exited ($rc), starting it again in 1 s" >>"$log"
      sleep 1
    done
  ) &
  pids+=($!)
}

wait_http() {  # url, name
  for _ in $(seq 1 100); do
    if "$VENV/bin/python" -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1], timeout=1)" "$1" 2>/dev/null; then return 0; fi
    sleep 0.2
  done
  echo "$2 did not come up at $1 (see var/log/)"; exit 1
}

echo "== redis-server ($REDIS_SERVER) on 127.0.0.1:$REDIS_PORT, AOF in var/redis"
"$REDIS_SERVER" --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$PWD/var/redis" \
  --appendonly yes --appendfsync everysec --save 60 1 >var/log/redis.log 2>&1 &
pids+=($!)
for _ in $(seq 1 50); do "$VENV/bin/python" -c "import redis,sys; redis.Redis(port=int(sys.argv[1])).ping()" "$REDIS_PORT" 2>/dev/null && break; sleep 0.1; done
if [ "${KEEP_REDIS:-0}" != "1" ]; then
  # Each run starts from an empty database. KEEP_REDIS=1 keeps the data: the new mock
  # then registers again from the same versions URL (which replaces its registration)
  # and its clock starts after the kept objects' timestamps (see below).
  echo "== empty database (KEEP_REDIS=1 keeps the previous run's data)"
  "$VENV/bin/python" -c "import redis,sys; redis.Redis(port=int(sys.argv[1])).flushdb()" "$REDIS_PORT"
fi

if [ ! -f var/keys/bridge-x25519.key ] && "$VENV/bin/bridge" keys --help >/dev/null 2>&1; then
  "$VENV/bin/bridge" keys generate >var/log/keys.log 2>&1 || true
fi

# serve and worker run under a supervisor that starts them again if they die (a worker
# also outlives Redis restarts by itself; the supervisor is for everything else).
: >var/log/bridge.log
: >var/log/worker.log
echo "== bridge serve on $BRIDGE_PUBLIC_URL, supervised (log: var/log/bridge.log)"
supervise serve var/log/bridge.log "$VENV/bin/bridge" serve
echo "== bridge worker, supervised (log: var/log/worker.log)"
supervise worker var/log/worker.log "$VENV/bin/bridge" worker
wait_http "$BRIDGE_PUBLIC_URL/readyz" "bridge"

if "$VENV/bin/ocpi-mock" --help >/dev/null 2>&1; then
  echo "== mock CPO on $MOCK_CPO_PUBLIC_URL (log: var/log/mock.log)"
  # 15-simulated-second meter ticks: at speed 120 that is 8 Session PATCHes a second,
  # so the bridge sees the kWh and ₹ grow smoothly and stops close to the target.
  MOCK_EPOCH=()
  if [ "${KEEP_REDIS:-0}" = "1" ]; then
    # The kept data carries the previous mock's (fast) simulated time: start the new mock
    # just after its latest last_updated, or its updates would be ignored as stale.
    LATEST=$("$VENV/bin/python" - "$REDIS_PORT" <<'PY'
import sys
from datetime import UTC, datetime, timedelta
import redis
r = redis.Redis(port=int(sys.argv[1]))
ms = [int(s) for m in ("locations", "tariffs", "sessions", "cdrs")
      for _, s in r.zrevrange(f"obb:ocpi:idx:{m}", 0, 0, withscores=True)]
if ms and max(ms) / 1000 > datetime.now(UTC).timestamp():
    t = datetime.fromtimestamp(max(ms) / 1000, UTC) + timedelta(minutes=1)
    print(t.strftime("%Y-%m-%dT%H:%M:%SZ"))
PY
)
    if [ -n "$LATEST" ]; then
      echo "== kept data runs to $LATEST (simulated): the mock's clock starts there"
      MOCK_EPOCH=(--epoch "$LATEST")
    fi
  fi
  "$VENV/bin/ocpi-mock" serve --speed "${MOCK_SPEED:-120}" --tick "${MOCK_TICK:-15}" \
    "${MOCK_EPOCH[@]}" >var/log/mock.log 2>&1 &
  pids+=($!)
  wait_http "$MOCK_CPO_PUBLIC_URL/admin/health" "mock CPO"
  # One token A for the mock's three parties (a token A registers exactly the parties it
  # names). With KEEP_REDIS=1 the mock registers again from the same versions URL, and
  # that replaces its previous registration (docs/protocol-notes.md, "Credentials").
  echo "== OCPI handshake: bridge cpo invite IN-TPC IN-ZEO IN-STK + ocpi-mock connect"
  TOKEN_A=$("$VENV/bin/bridge" cpo invite IN-TPC IN-ZEO IN-STK | tail -n 1)
  "$VENV/bin/ocpi-mock" connect "$BRIDGE_PUBLIC_URL/ocpi/versions" "$TOKEN_A"
  "$VENV/bin/bridge" cpo list
fi

demo_rc=0
if "$VENV/bin/bridge" demo --help >/dev/null 2>&1; then
  echo "== demo journeys (demo BAP on 127.0.0.1:$DEMO_BAP_PORT)"
  "$VENV/bin/bridge" demo --bap-port "$DEMO_BAP_PORT" --mock-url "$MOCK_CPO_PUBLIC_URL" || demo_rc=$?
fi

if [ "${RUN_ONCE:-0}" = "1" ]; then exit "$demo_rc"; fi
echo "== running; Ctrl-C to stop"
wait
