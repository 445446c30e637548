#!/usr/bin/env bash
# A simulated sale on the local stack: stack up, migrate, worker in the background,
# simulator in the foreground, then where to look. `scripts/demo.sh stop` stops it all.
set -euo pipefail
cd "$(dirname "$0")/.."

STATE="${SALEWATCH_STATE_DIR:-.salewatch}"
PIDFILE="$STATE/worker.pid"
LOG="$STATE/logs/worker.log"
METRICS_PORT="${SALEWATCH_METRICS_PORT:-9108}"
RATE="${DEMO_RATE:-100}"
DURATION="${DEMO_DURATION:-120s}"

stop_worker() {
  if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
    kill "$(cat "$PIDFILE")"; for _ in $(seq 50); do kill -0 "$(cat "$PIDFILE")" 2>/dev/null || break; sleep 0.2; done
  fi
  rm -f "$PIDFILE"
}

if [ "${1:-}" = "stop" ]; then
  stop_worker
  salewatch stack down
  exit 0
fi

salewatch stack up
salewatch migrate
stop_worker
mkdir -p "$STATE/logs"
setsid salewatch worker >"$LOG" 2>&1 < /dev/null &
echo $! >"$PIDFILE"
echo "worker started (pid $(cat "$PIDFILE"), log $LOG); waiting until it is ready..."
for _ in $(seq 120); do
  grep -q "salewatch worker: ready" "$LOG" 2>/dev/null && break
  kill -0 "$(cat "$PIDFILE")" 2>/dev/null || { echo "worker exited:"; tail -20 "$LOG"; exit 1; }
  sleep 0.5
done

salewatch simulate --rate "$RATE" --duration "$DURATION" --speed 1 --spike-at 60s --spike-multiplier 20

cat <<TXT

Demo running (the worker keeps consuming; stop everything with: make demo-stop)
  live metrics   http://127.0.0.1:${METRICS_PORT}/metrics
  Prometheus     http://127.0.0.1:9090/graph?g0.expr=sum%20by%20(topic)%20(rate(salewatch_events_valid_total%5B1m%5D))
  ClickHouse     curl -s 'http://127.0.0.1:8123/?query=SELECT+event_type,count()+FROM+salewatch.orders_raw+FINAL+GROUP+BY+event_type'
TXT
echo
echo "Orders stored in ClickHouse by type:"
curl -s 'http://127.0.0.1:8123/?query=SELECT+event_type,count()+FROM+salewatch.orders_raw+FINAL+GROUP+BY+event_type+ORDER+BY+event_type'
echo "Counted live by the worker (/metrics):"
curl -s "http://127.0.0.1:${METRICS_PORT}/metrics" \
  | grep -E '^salewatch_(events_valid_total|funnel_sessions_total)' | grep -v ' 0.0$' || true
echo "Per-minute funnel rollups in ClickHouse (windows close 3 minutes after they end):"
curl -s 'http://127.0.0.1:8123/?query=SELECT+window_start,step,sum(sessions)+FROM+salewatch.funnel_1m+FINAL+GROUP+BY+window_start,step+ORDER+BY+window_start+DESC,step+LIMIT+10'

