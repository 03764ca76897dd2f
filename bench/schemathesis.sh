#!/usr/bin/env bash
# Schema-driven fuzzing of the whole API with schemathesis (PyPI), against a real
# server on loopback: every operation, with an operator's token and a tenant
# administrator's token, checking for 5xx and for responses the OpenAPI document does
# not list. Usage: bench/schemathesis.sh [path/to/strongroom] [max examples per op]
# Prints the run summaries; the figures go into BENCHMARKS.md / the closing note.
set -euo pipefail
bin=${1:-target/release/strongroom}
examples=${2:-30}
st=$(command -v schemathesis || echo "$HOME/.local/bin/schemathesis")
work=$(mktemp -d)
trap 'kill $(cat "$work/pid" 2>/dev/null) 2>/dev/null || true; rm -rf "$work"' EXIT
printf '[regions.eu]\n' > "$work/config.toml"
port=18543
"$bin" --config "$work/config.toml" serve --data-dir "$work/data" --listen "127.0.0.1:$port" > "$work/out.log" 2> "$work/err.log" &
echo $! > "$work/pid"
for _ in $(seq 100); do grep -q "listening on" "$work/out.log" && break; sleep 0.2; done
url="https://127.0.0.1:$port"
cacert="$work/data/tls/cert.pem"
admin() { "$bin" --config "$work/config.toml" --data-dir "$work/data" "$@"; }
pw="correct horse battery staple 42"
echo "$pw" | admin operator create --email op@st.example --password-stdin > /dev/null
op=$(curl -s --cacert "$cacert" -H 'content-type: application/json' \
  -d "{\"email\":\"op@st.example\",\"password\":\"$pw\"}" "$url/v1/operator/sessions" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
curl -s --cacert "$cacert" -H "authorization: Bearer $op" -H 'content-type: application/json' \
  -d '{"slug":"acme","display_name":"Acme","region":"eu"}' "$url/v1/tenants" > /dev/null
echo "$pw" | admin user create --tenant acme --email admin@acme.example --role admin --password-stdin > /dev/null
user=$(curl -s --cacert "$cacert" -H 'content-type: application/json' \
  -d "{\"email\":\"admin@acme.example\",\"password\":\"$pw\"}" "$url/v1/t/acme/sessions" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
# A record type and a record, so the records endpoints have something to find.
curl -s --cacert "$cacert" -X PUT -H "authorization: Bearer $user" -H 'content-type: application/json' \
  -d '{"schema":{"type":"object","properties":{"batch_no":{"type":"string"}}},"signature_policy":{"steps":[{"meaning":"approved","permission":"records:approve"}]},"searchable":["batch_no"]}' \
  "$url/v1/t/acme/record-types/batch" > /dev/null
curl -s --cacert "$cacert" -H "authorization: Bearer $user" -H 'content-type: application/json' \
  -d '{"type":"batch","content":{"batch_no":"B-1"}}' "$url/v1/t/acme/records" > /dev/null
run() {
  local who=$1 token=$2
  echo "=== schemathesis as $who"
  # The run must not sign its own session out (or delete its own account) half-way.
  "$st" run "$url/openapi.json" --tls-verify "$cacert" -H "Authorization: Bearer $token" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance \
    --exclude-path /v1/t/{tenant}/sessions/current --max-examples "$examples" \
    --generation-deterministic --no-color --workers 2 2>&1 | tail -${ST_TAIL:-25} || true
}
run operator "$op"
run tenant-admin "$user"
echo "=== server 5xx in the access log"
grep -c '"status":5' "$work/err.log" || true
