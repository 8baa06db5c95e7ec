#!/usr/bin/env bash
# Print the path of a Chromium for the driver-page browser tests, installing one if needed.
# Order: $CHROMIUM, then `chromium` on PATH, then Debian's package when we are root (with a
# Devanagari font, so the Hindi pages render in screenshots). Playwright drives it; its own
# browser download is not used (it cannot be fetched on these machines).
# Exit 1 with a reason when there is none: the browser tests then fail and say why.
set -euo pipefail

works() { [ -n "$1" ] && [ -x "$1" ] && "$1" --version >/dev/null 2>&1; }

for cand in "${CHROMIUM:-}" "$(command -v chromium 2>/dev/null || true)" /usr/bin/chromium; do
  if works "$cand"; then
    if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1 && \
        ! dpkg -s fonts-lohit-deva >/dev/null 2>&1; then
      (DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
         fonts-lohit-deva || true) >&2
    fi
    echo "$cand"; exit 0
  fi
done

if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "ensure-chromium: installing Debian's chromium" >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
     --no-install-recommends chromium fonts-lohit-deva) >&2
  if works /usr/bin/chromium; then echo /usr/bin/chromium; exit 0; fi
fi
echo "ensure-chromium: no chromium found, and cannot install Debian's package (needs root" \
     "and apt-get): the browser tests will fail" >&2
exit 1
