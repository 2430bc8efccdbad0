#!/usr/bin/env bash
# Upload benchmark (not a test): release pixdrop against nginx storing the same multipart
# bodies to disk, with wrk, on this machine. Prints a Markdown table.
#
#   scripts/bench.sh [SECONDS_PER_RUN] [RUNS] [CONNECTIONS]      (defaults: 10 3 16)
#
# Needs wrk and nginx (Debian packages; installed when missing and apt-get is available).
# Everything listens on 127.0.0.1, on ports picked here, and is stopped by pid at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

SECS=${1:-10}
RUNS=${2:-3}
CONNS=${3:-16}
THREADS=2

need() { command -v "$1" >/dev/null 2>&1; }
if ! need wrk || ! need nginx && [ ! -x /usr/sbin/nginx ]; then
  apt-get update -qq && apt-get install -y -qq wrk nginx-light >/dev/null
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

cargo build --release --quiet --bin pixdrop --example bench_tool
BIN=target/release/pixdrop
TOOL=target/release/examples/bench_tool

WORK=$(mktemp -d /tmp/pixdrop-bench.XXXXXX)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

BOUNDARY=----pixdropBench7MA4YWxkTrZu0gW
make_body() { # image → multipart body
  { printf -- '--%s\r\nContent-Disposition: form-data; name="Profile"; filename="photo.jpg"\r\nContent-Type: image/jpeg\r\n\r\n' "$BOUNDARY"
    cat "$1"
    printf -- '\r\n--%s--\r\n' "$BOUNDARY"; } > "$2"
}

for side in 256 1024; do
  "$TOOL" jpeg "$side" "$WORK/photo$side.jpg"
  make_body "$WORK/photo$side.jpg" "$WORK/body$side"
done

# --- pixdrop ---------------------------------------------------------------------------
PORT=$(free_port)
export PIXDROP_ADMIN_PASSWORD=bench-admin-password
export PIXDROP_TENANT_DEFAULTS__UPLOADS_PER_MINUTE=100000000
export PIXDROP_TENANT_DEFAULTS__MAX_LIVE_PICTURES=100000000
export PIXDROP_LOG=warn
"$BIN" serve --listen "127.0.0.1:$PORT" --data-dir "$WORK/pixdrop-data" 2>"$WORK/pixdrop.log" &
PIXDROP_PID=$!
PIDS+=("$PIXDROP_PID")
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break; sleep 0.1; done

curl -fs -c "$WORK/jar" -H 'Content-Type: application/json' \
  -d "{\"email\":\"admin@localhost\",\"password\":\"$PIXDROP_ADMIN_PASSWORD\"}" \
  "http://127.0.0.1:$PORT/api/login" >/dev/null
TOKEN=$(awk '$6=="AtmoAuthToken_default"{print $7}' "$WORK/jar")
CSRF=$(awk '$6=="Csrf-Token_default"{print $7}' "$WORK/jar")

wrk_script() { # body file → lua script
  cat > "$WORK/post.lua" <<LUA
local f = io.open("$1", "rb"); local body = f:read("*a"); f:close()
wrk.method = "POST"
wrk.body = body
wrk.headers["Content-Type"] = "multipart/form-data; boundary=$BOUNDARY"
wrk.headers["Cookie"] = "AtmoAuthToken_default=$TOKEN"
wrk.headers["X-Csrf-Token_default"] = "$CSRF"
local bad = 0
response = function(status, headers, body) if status ~= 200 then bad = bad + 1 end end
done = function(summary, latency, requests)
  io.write(string.format("RESULT %.1f %.2f %.2f %d %d\n", summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, summary.errors.status, summary.requests))
end
LUA
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
minmax() { sort -n | awk 'NR==1{min=$1} {max=$1} END {printf "%s–%s", min, max}'; }

run_wrk() { # url → appends "rps p50 p99 errors" lines to $WORK/runs
  : > "$WORK/runs"
  for _ in $(seq "$RUNS"); do
    wrk -t"$THREADS" -c"$CONNS" -d"${SECS}s" -s "$WORK/post.lua" "$1" | awk '/^RESULT/{print $2, $3, $4, $5, $6}' >> "$WORK/runs"
  done
}

declare -A PIX_RPS PIX_RANGE PIX_P50 PIX_P99 PIX_ERR NGX_RPS NGX_RANGE BARE_RPS
for side in 256 1024; do
  wrk_script "$WORK/body$side"
  run_wrk "http://127.0.0.1:$PORT/api/dropbox/pictures"
  PIX_RPS[$side]=$(cut -d' ' -f1 "$WORK/runs" | median)
  PIX_RANGE[$side]=$(cut -d' ' -f1 "$WORK/runs" | minmax)
  PIX_P50[$side]=$(cut -d' ' -f2 "$WORK/runs" | median)
  PIX_P99[$side]=$(cut -d' ' -f3 "$WORK/runs" | median)
  PIX_ERR[$side]=$(awk '{s+=$4} END {print s+0}' "$WORK/runs")
done
PEAK_RSS_KB=$(awk '/VmHWM/{print $2}' "/proc/$PIXDROP_PID/status")
kill -TERM "$PIXDROP_PID"; wait "$PIXDROP_PID" || true

# --- nginx: receive and persist each body to a file (the ceiling) -------------------------
NPORT=$(free_port); NBACK=$(free_port)
mkdir -p "$WORK/nginx/bodies" "$WORK/nginx/logs"
cat > "$WORK/nginx/nginx.conf" <<CONF
worker_processes 2;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/logs/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $WORK/nginx/bodies 1 2;
  server {
    listen 127.0.0.1:$NPORT;
    location / {
      client_max_body_size 16m;
      client_body_buffer_size 16m;
      client_body_in_file_only on;
      proxy_pass http://127.0.0.1:$NBACK/done;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
    }
  }
  server { listen 127.0.0.1:$NBACK; location /done { return 200 "1001"; } }
}
CONF
"$NGINX" -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx" -g 'daemon off;' &
NGINX_PID=$!
PIDS+=("$NGINX_PID")
for _ in $(seq 50); do curl -fs -X POST -d x "http://127.0.0.1:$NPORT/" >/dev/null 2>&1 && break; sleep 0.1; done
for side in 256 1024; do
  wrk_script "$WORK/body$side"
  run_wrk "http://127.0.0.1:$NPORT/"
  NGX_RPS[$side]=$(cut -d' ' -f1 "$WORK/runs" | median)
  NGX_RANGE[$side]=$(cut -d' ' -f1 "$WORK/runs" | minmax)
done
kill -TERM "$NGINX_PID"; wait "$NGINX_PID" 2>/dev/null || true

# --- the bare intake, no HTTP, auth or storage, on the same cores -------------------------
for side in 256 1024; do
  BARE_RPS[$side]=$(for _ in $(seq "$RUNS"); do "$TOOL" ingest "$WORK/photo$side.jpg" "$SECS" "$(nproc)"; done | median)
done

echo
echo "pixdrop upload benchmark — $(nproc) cores, wrk $THREADS threads × $CONNS connections, ${SECS}s × $RUNS runs (medians, min–max)"
echo
echo "| image | pixdrop req/s | p50 ms | p99 ms | non-200 | nginx persist req/s | pixdrop / nginx | bare intake img/s | pixdrop / bare |"
echo "|---|---|---|---|---|---|---|---|---|"
for side in 256 1024; do
  size=$(stat -c %s "$WORK/photo$side.jpg")
  r1=$(awk -v a="${PIX_RPS[$side]}" -v b="${NGX_RPS[$side]}" 'BEGIN{printf "%.3f", a/b}')
  r2=$(awk -v a="${PIX_RPS[$side]}" -v b="${BARE_RPS[$side]}" 'BEGIN{printf "%.2f", a/b}')
  echo "| ${side}² JPEG ($((size / 1024)) KB) | ${PIX_RPS[$side]} (${PIX_RANGE[$side]}) | ${PIX_P50[$side]} | ${PIX_P99[$side]} | ${PIX_ERR[$side]} | ${NGX_RPS[$side]} (${NGX_RANGE[$side]}) | $r1 | ${BARE_RPS[$side]} | $r2 |"
done
echo
echo "pixdrop peak RSS over the whole run: $((PEAK_RSS_KB / 1024)) MiB"
# nginx kept every body; deleting them all makes this ext4 slow to create files for a while.
rm -rf "$WORK"; sync
