# Starts a throw-away PostgreSQL 15 cluster and an S3-compatible server (moto) on
# loopback and exports where they are. Source it (`. .ci/services.sh`) from the
# repository root; `sr_services_stop` stops both and removes their files. Needs the
# Debian package postgresql-15 and PyPI moto[server] (.ci/run installs both).
#
# Exports: SR_TEST_POSTGRES (a superuser URL), SR_REQUIRE_POSTGRES=1,
# SR_TEST_S3_ENDPOINT, SR_TEST_S3_BUCKET, SR_TEST_S3_KEY_ID, SR_TEST_S3_SECRET.
# A throw-away cluster owned by the postgres user (PostgreSQL refuses to run as root),
# with scram-sha-256 authentication on 127.0.0.1 only, and a moto server that checks
# request signatures after the setup script's four unauthenticated actions.
sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
pgbin=/usr/lib/postgresql/15/bin
export PATH="$pgbin:$PATH" # psql, pg_dump and pgbench of the same version
pgroot=$(mktemp -d /tmp/sr-ci-pg.XXXXXX)
motopid=""
sr_services_stop() {
  [ -n "$motopid" ] && kill "$motopid" 2>/dev/null || true
  $sudo runuser -u postgres -- "$pgbin/pg_ctl" -D "$pgroot/data" -m immediate stop >/dev/null 2>&1 || true
  $sudo rm -rf "$pgroot"
}
chmod 755 "$pgroot"
pgopts=""
[ -n "${SR_PG_NO_FSYNC:-}" ] && pgopts="-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
printf 'ci-superuser-password\n' > "$pgroot/pw"
$sudo chown -R postgres "$pgroot"
pgport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
$sudo runuser -u postgres -- "$pgbin/initdb" -D "$pgroot/data" -U postgres \
  --pwfile="$pgroot/pw" -A scram-sha-256 -E UTF8 --locale=C.UTF-8 >/dev/null
$sudo runuser -u postgres -- "$pgbin/pg_ctl" -D "$pgroot/data" -l "$pgroot/log" -w start \
  -o "-c listen_addresses=127.0.0.1 -c port=$pgport -c unix_socket_directories=$pgroot -c max_connections=500 $pgopts" >/dev/null
s3port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
INITIAL_NO_AUTH_ACTION_COUNT=4 python3 -m moto.server -H 127.0.0.1 -p "$s3port" \
  >"$pgroot/moto.log" 2>&1 &
motopid=$!
s3up=""
for _ in $(seq 100); do
  # A bare TCP connect: an HTTP request could count as one of the four actions.
  python3 -c "import socket; socket.create_connection(('127.0.0.1', $s3port), 1)" 2>/dev/null && { s3up=1; break; }
  sleep 0.2
done
if [ -z "$s3up" ]; then
  echo "moto did not start; its log:" >&2; cat "$pgroot/moto.log" >&2; return 1
fi
read -r s3key s3secret < <(python3 .ci/s3-setup.py "http://127.0.0.1:$s3port" strongroom-test)
export SR_TEST_POSTGRES="postgres://postgres:ci-superuser-password@127.0.0.1:$pgport/postgres"
export SR_REQUIRE_POSTGRES=1
export SR_TEST_S3_ENDPOINT="http://127.0.0.1:$s3port" SR_TEST_S3_BUCKET=strongroom-test
export SR_TEST_S3_KEY_ID="$s3key" SR_TEST_S3_SECRET="$s3secret"
echo "PostgreSQL on 127.0.0.1:$pgport, S3 (moto) on 127.0.0.1:$s3port"
