#!/usr/bin/env bash
# Run Sinch's own SDKs (Python `sinch`, Node `@sinch/sms`) against a running
# Roster and check every Groups API operation through them.
#
# usage: tests/sdk/run.sh BASE_URL PLAN_ID TOKEN
#   e.g. tests/sdk/run.sh http://127.0.0.1:8080 myplan mytoken
#
# BASE_URL is the scheme://host:port the server listens on (no /xms path).
# PLAN_ID/TOKEN must be a service plan id and its API token known to the server.
# Set PYTHON to use another interpreter (default: python3).
set -euo pipefail

if [ "$#" -ne 3 ]; then
  echo "usage: $0 BASE_URL PLAN_ID TOKEN" >&2
  exit 2
fi
BASE_URL=$1
PLAN_ID=$2
TOKEN=$3

HERE=$(cd "$(dirname "$0")" && pwd)
PYTHON=${PYTHON:-python3}
SINCH_PY_VERSION=2.3.0   # the Node versions are pinned in package.json / package-lock.json

run() {
  echo "+ $*"
  "$@"
}

run "$PYTHON" -m pip install --quiet --disable-pip-version-check "sinch==$SINCH_PY_VERSION"
if [ ! -d "$HERE/node_modules" ]; then
  (cd "$HERE" && run npm ci --no-audit --no-fund)
fi

passed=0
failed=0
tally() {
  if "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
}
tally run "$PYTHON" "$HERE/sinch_groups.py" "$BASE_URL" "$PLAN_ID" "$TOKEN"
tally run node "$HERE/sinch_groups.mjs" "$BASE_URL" "$PLAN_ID" "$TOKEN"

echo "sdk: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
