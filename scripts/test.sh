#!/usr/bin/env bash
# The whole test suite: formatting, lints, then every test twice, against both backend
# pairs: SQLite + local files, and PostgreSQL + S3-compatible storage (moto's server).
# It installs what the machine lacks (Debian's postgresql, PyPI's moto[server]), starts a
# PostgreSQL server and an S3 server on loopback ports it picks, and stops both by pid.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings

# --- services for the PostgreSQL + S3 run --------------------------------------------------
pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }
missing=()
[ -z "$(pg_bin)" ] && missing+=(postgresql)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v runuser >/dev/null 2>&1 || missing+=(util-linux)
if [ "${#missing[@]}" -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
PG_BIN=$(pg_bin)
if ! python3 -c 'import moto.server, flask, flask_cors' 2>/dev/null; then
  python3 -m pip install -q 'moto[server]'
fi
id postgres >/dev/null 2>&1 || useradd --system --home-dir /nonexistent postgres

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
WORK=$(mktemp -d /tmp/pixdrop-test.XXXXXX)
chmod 755 "$WORK"
PG_PID=""; MOTO_PID=""
cleanup() {
  [ -n "$MOTO_PID" ] && kill "$MOTO_PID" 2>/dev/null || true
  # The postmaster's own pid (runuser does not pass signals on): fast shutdown.
  if [ -f "$WORK/pg/data/postmaster.pid" ]; then
    kill -INT "$(head -n 1 "$WORK/pg/data/postmaster.pid")" 2>/dev/null || true
  fi
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

PG_PORT=$(free_port)
mkdir -p "$WORK/pg"
chown postgres "$WORK/pg"
AS_POSTGRES=()
[ "$(id -u)" = 0 ] && AS_POSTGRES=(runuser -u postgres --)
"${AS_POSTGRES[@]}" "$PG_BIN/initdb" -D "$WORK/pg/data" -U postgres --auth=trust -E UTF8 >"$WORK/initdb.log"
# Test data need not survive a power cut: no fsync, so the suite stays fast.
"${AS_POSTGRES[@]}" "$PG_BIN/postgres" -D "$WORK/pg/data" -h 127.0.0.1 -p "$PG_PORT" -k "$WORK/pg" \
  -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=400 \
  >"$WORK/pg.log" 2>&1 &
PG_PID=$!

MOTO_PORT=$(free_port)
python3 -m moto.server -H 127.0.0.1 -p "$MOTO_PORT" >"$WORK/moto.log" 2>&1 &
MOTO_PID=$!

for _ in $(seq 150); do
  "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" && curl -fs "http://127.0.0.1:$MOTO_PORT/" >/dev/null 2>&1 && break
  sleep 0.2
done
"$PG_BIN/pg_isready" -h 127.0.0.1 -p "$PG_PORT"
curl -fs -X PUT "http://127.0.0.1:$MOTO_PORT/pixdrop-test" >/dev/null

# --- the runs --------------------------------------------------------------------------------
echo "== SQLite + local files"
cargo test --all-targets

echo "== PostgreSQL + S3 (moto), scale-out tests included"
PXTEST_PG="postgres://postgres@127.0.0.1:$PG_PORT/postgres" \
PXTEST_S3_ENDPOINT="http://127.0.0.1:$MOTO_PORT" \
PXTEST_S3_BUCKET=pixdrop-test \
PXTEST_PG_BIN="$PG_BIN" \
  cargo test --test api -- --include-ignored
