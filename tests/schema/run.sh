#!/usr/bin/env bash
# Schema-driven API fuzzing: schemathesis (PyPI) generates requests for every operation of the
# OpenAPI document a running `roster serve` publishes, and checks that no response is a 5xx and
# that every response matches the document (status, content type, body schema).
#
# usage: tests/schema/run.sh [ROSTER_BINARY] [EXAMPLES_PER_OPERATION]
#   defaults: target/debug/roster (built by `cargo test`), 30
set -euo pipefail
cd "$(dirname "$0")/../.."
binary=${1:-target/debug/roster}
examples=${2:-30}
SCHEMATHESIS_VERSION=4.32.5

command -v st >/dev/null && st --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION" \
  || python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
       "schemathesis==$SCHEMATHESIS_VERSION"

work=$(mktemp -d)
trap 'kill "$server" 2>/dev/null || true; rm -rf "$work"' EXIT
database="sqlite://$work/roster.db"
plan=$("$binary" plans create "Schema fuzz" --default-region US --database "$database")
token=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["api_token"])' <<<"$plan")
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$binary" serve --listen "127.0.0.1:$port" --database "$database" \
  --sender log --sender-log "$work/messages.jsonl" 2>"$work/server.log" &
server=$!
python3 - "$port" <<'PY'
import sys, time, urllib.request
for _ in range(300):
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/readyz", timeout=1)
        break
    except OSError:
        time.sleep(0.1)
else:
    sys.exit("roster serve did not become ready")
PY

# The Sinch surface's path names the plan: fix it to the token's plan, so that requests reach
# the operations instead of all being refused with 403.
plan_id=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["service_plan_id"])' <<<"$plan")
cat >"$work/schemathesis.toml" <<TOML
[parameters]
"path.service_plan_id" = "$plan_id"
TOML
st --config-file "$work/schemathesis.toml" run "http://127.0.0.1:$port/openapi.json" \
  --header "Authorization: Bearer $token" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
  --max-examples "$examples" \
  --seed 20261123 \
  --workers 2 \
  --suppress-health-check all \
  || { echo "--- server log"; tail -50 "$work/server.log"; exit 1; }
