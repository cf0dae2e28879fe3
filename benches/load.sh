#!/usr/bin/env bash
# Load test of `baton serve` on loopback with wrk (Debian package `wrk`), side by side
# with an empty axum handler (`baton serve --ceiling`) as the ceiling on the same machine.
#
#   bash benches/load.sh            # after `cargo run --release -- quickstart`
#
# Measures: decisions/s and p50/p99/p99.9 latency at 50 candidates (a 10-action x
# 5-channel catalog, benches/load.toml), the same against the empty handler, our
# throughput as a fraction of it, the server's CPU time per request (user + system, from
# /proc, less noisy than throughput when wrk shares the cores), and events/s ingested
# durably (one event per request, and 100 per request). Settings: DURATION (default 15s), CONNECTIONS (32), THREADS (1),
# DATA (data/quickstart), MODELS (models), PORT (18080).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-15s}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-1}
DATA=${DATA:-data/quickstart}
MODELS=${MODELS:-models}
PORT=${PORT:-18080}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/baton/target}"

if ! command -v wrk >/dev/null; then
  echo "installing wrk (Debian package)"
  if [ "$(id -u)" = 0 ]; then apt-get install -y wrk >/dev/null; else sudo apt-get install -y wrk >/dev/null; fi
fi
[ -d "$DATA/events" ] || { echo "no data in $DATA: run \`cargo run --release -- quickstart --no-serve\` first"; exit 1; }
[ -f "$MODELS/response/aliases.json" ] || { echo "no response model in $MODELS: run the quickstart first"; exit 1; }
# the same profile and features as the tests, so one build serves both
cargo test --release --no-run >/dev/null
BIN="$CARGO_TARGET_DIR/release/baton"

WORK=$(mktemp -d)
SERVER_PID=
cleanup() { [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
# a scratch copy of the history, so the load's write-ahead log does not touch $DATA
mkdir -p "$WORK/data"
cp -r "$DATA/events" "$DATA/customers.parquet" "$WORK/data/"
AS_OF=$(date -u -d "2025-01-01 + 120 days" +%Y-%m-%dT12:00:00Z)

cat > "$WORK/decide.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local n = 0
request = function()
  n = n + 1
  local body = string.format('{"customer_id":"c%07d","ts":"$AS_OF","limit":3}', (n * 7919) % 20000)
  return wrk.format(nil, "/v1/decide", nil, body)
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT rps=%.0f requests=%d p50_us=%d p99_us=%d p999_us=%d errors=%d\n",
    summary.requests / (summary.duration / 1e6), summary.requests, latency:percentile(50), latency:percentile(99),
    latency:percentile(99.9), summary.errors.status + summary.errors.connect + summary.errors.read
    + summary.errors.write + summary.errors.timeout))
end
LUA
cat > "$WORK/events.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-ndjson"
local per = tonumber(os.getenv("PER") or "1")
local n = 0
request = function()
  local lines = {}
  for i = 1, per do
    n = n + 1
    lines[i] = string.format('{"customer_id":"load%d","ts":"$AS_OF","event_type":"page_view","channel":"web"}', n % 50000)
  end
  return wrk.format(nil, "/v1/events", nil, table.concat(lines, "\n"))
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT rps=%.0f requests=%d p50_us=%d p99_us=%d p999_us=%d errors=%d\n",
    summary.requests / (summary.duration / 1e6), summary.requests, latency:percentile(50), latency:percentile(99),
    latency:percentile(99.9), summary.errors.status + summary.errors.connect + summary.errors.read
    + summary.errors.write + summary.errors.timeout))
end
LUA

start_server() { # args: extra flags
  "$BIN" --quiet --config benches/load.toml --data "$WORK/data" --models "$MODELS" serve --addr "127.0.0.1:$PORT" "$@" >"$WORK/server.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 600); do
    if curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 || curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$PORT/v1/decide" 2>/dev/null | grep -q 200; then return; fi
    sleep 0.2
  done
  echo "server did not start:"; cat "$WORK/server.log"; exit 1
}
stop_server() { kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=; }
# CPU time (user + system, clock ticks) the server process has used so far
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$SERVER_PID/stat"; }
run_wrk() { # script, label; appends the server's CPU µs per request
  local t0 out t1; t0=$(cpu_ticks)
  out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --timeout 5s -s "$1" "http://127.0.0.1:$PORT" | grep RESULT)
  t1=$(cpu_ticks)
  local n; n=$(sed -E 's/.*requests=([0-9]+).*/\1/' <<<"$out")
  echo "$2 $out $(awk -v d=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" -v n="$n" 'BEGIN { printf "server_cpu_us_per_req=%.1f", d / hz * 1e6 / n }')"
}

echo "machine: $(nproc) cores, $(uname -r); wrk -t$THREADS -c$CONNECTIONS -d$DURATION"
start_server --ceiling
CEIL=$(run_wrk "$WORK/decide.lua" "empty-axum")
stop_server
start_server
curl -s -H 'content-type: application/json' -d "{\"customer_id\":\"c0000001\",\"ts\":\"$AS_OF\"}" "http://127.0.0.1:$PORT/v1/decide" | head -c 300; echo
OURS=$(run_wrk "$WORK/decide.lua" "baton-decide")
# events on a fresh log: the decide run leaves hundreds of MB of decision records written
# but not yet synced, and the first durable append would wait for all of them to reach the
# disk (one stall of about half a second here), which traffic that mixes events with
# decisions never builds up
stop_server
rm -rf "$WORK/data/wal"
start_server
EV1=$(PER=1 run_wrk "$WORK/events.lua" "events-1/req")
EV100=$(PER=100 run_wrk "$WORK/events.lua" "events-100/req")
stop_server
echo "$CEIL"; echo "$OURS"; echo "$EV1"; echo "$EV100"
rps() { sed -E 's/.*rps=([0-9]+).*/\1/' <<<"$1"; }
awk -v a="$(rps "$OURS")" -v b="$(rps "$CEIL")" 'BEGIN { printf "decide throughput = %.3f of the empty-handler ceiling\n", a / b }'
cpu() { sed -E 's/.*server_cpu_us_per_req=([0-9.]+).*/\1/' <<<"$1"; }
awk -v a="$(cpu "$OURS")" -v b="$(cpu "$CEIL")" 'BEGIN { printf "server CPU per decision = %.1f us (empty handler %.1f us): %.1f us of our own work\n", a, b, a - b }'
awk -v r="$(rps "$EV1")" 'BEGIN { printf "events ingested durably, 1 per request: %d/s\n", r }'
awk -v r="$(rps "$EV100")" 'BEGIN { printf "events ingested durably, 100 per request: %d/s\n", r * 100 }'
