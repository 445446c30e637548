#!/usr/bin/env bash
# A live incident drill by hand (`make drill`): a payment outage injected at real speed
# into the local stack must page through Prometheus and Alertmanager to the webhook.
# tests/drills/test_live_drill.py runs the same drill and asserts its timeline.
#
# Starts what is missing: the stack, the migrations, a worker on the metrics port (unless one
# listens there already, e.g. `make demo`'s), a webhook receiver on 127.0.0.1:5001 (the
# receivers of alerts/alertmanager.yml) that prints every notification; then runs
# `salewatch simulate` in the foreground: normal traffic, the outage, normal traffic again
# (the alert resolves). Ctrl-C ends it early; what this script started is stopped on exit.
#
#   DRILL_METHOD   payment method that fails (default alipay)
#   DRILL_RATE     base events/s (default 100; flat: no daily curve, no sale spike)
#   DRILL_LEAD_S   normal traffic before the outage (default 120)
#   DRILL_OUTAGE_S outage length (default 240)
#   DRILL_AFTER_S  normal traffic after it (default 180)
set -euo pipefail
cd "$(dirname "$0")/.."

METHOD="${DRILL_METHOD:-alipay}"
RATE="${DRILL_RATE:-100}"
LEAD_S="${DRILL_LEAD_S:-120}"
OUTAGE_S="${DRILL_OUTAGE_S:-240}"
AFTER_S="${DRILL_AFTER_S:-180}"
STATE="${SALEWATCH_STATE_DIR:-.salewatch}"
METRICS_PORT="${SALEWATCH_METRICS_PORT:-9108}"
PROMETHEUS="http://127.0.0.1:${SALEWATCH_PROMETHEUS_PORT:-9090}"
ALERTMANAGER="http://127.0.0.1:${SALEWATCH_ALERTMANAGER_PORT:-9093}"
WORKER_LOG="$STATE/logs/drill-worker.log"
# One region (worker and simulator): few label sets per counter, so that Prometheus' rate()
# (which cannot count the first increment of a series it has never seen) sees a cold
# worker's payments at once.
REGIONS='["CN-GD"]'

started=()
cleanup() {
  for pid in "${started[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${started[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  done
}
trap cleanup EXIT

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# a running stack is used as it is (`stack up` would restart a service whose settings
# differ, and tansu loses every topic when it restarts)
salewatch stack status >/dev/null 2>&1 || salewatch stack up
salewatch migrate
# the stack's Prometheus reads alerts/*.rules.yml at start; pick up edits made since
curl -sf -X POST "$PROMETHEUS/-/reload" >/dev/null || echo "drill: Prometheus reload failed (promtool check rules alerts/*.rules.yml)"
mkdir -p "$STATE/logs"

if listening "$METRICS_PORT"; then
  echo "drill: a worker already serves :$METRICS_PORT; it counts the drill's events"
else
  SALEWATCH_REGIONS="$REGIONS" setsid salewatch worker --metrics-port "$METRICS_PORT" \
    >"$WORKER_LOG" 2>&1 </dev/null &
  started+=($!)
  echo "drill: worker started (pid $!, log $WORKER_LOG); waiting until it is ready..."
  for _ in $(seq 120); do
    grep -q "salewatch worker: ready" "$WORKER_LOG" 2>/dev/null && break
    kill -0 "$!" 2>/dev/null || { echo "drill: the worker exited:"; tail -20 "$WORKER_LOG"; exit 1; }
    sleep 0.5
  done
fi

if listening 5001; then
  echo "drill: 127.0.0.1:5001 is taken; watch Alertmanager instead"
else
  setsid python3 -u - <<'PY' &
import json
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, HTTPServer


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
        now = datetime.now(timezone.utc).strftime("%H:%M:%S")
        for alert in body["alerts"]:
            labels = ", ".join(f"{k}={v}" for k, v in sorted(alert["labels"].items()))
            print(f"\nwebhook {now} UTC: {alert['status']} to {body['receiver']}: {labels}", flush=True)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


HTTPServer(("127.0.0.1", 5001), Receiver).serve_forever()
PY
  started+=($!)
fi

now=$(date -u +%s)
at() { date -u -d "@$((now + $1))" +%H:%M:%S; }
cat <<TXT

Live drill: payment_outage:$METHOD from $(at "$LEAD_S") to $(at $((LEAD_S + OUTAGE_S))) UTC, $RATE events/s.
Expect SalePaymentFailureSpike{payment_method="$METHOD"} pending ~1 minute after the
outage starts, firing a minute later, at the webhook ~10 s after that (printed here), and
resolved a few minutes after the outage ends. Watch:
  Prometheus alerts   $PROMETHEUS/alerts
  success vs baseline $PROMETHEUS/graph?g0.expr=payment_method%3Asalewatch_payment_success%3Aratio_rate2m&g1.expr=payment_method%3Asalewatch_payment_success%3Aratio_baseline
  Alertmanager        $ALERTMANAGER/#/alerts
Without a trailing hour of history the baseline is the other methods' success now.

TXT
SALEWATCH_REGIONS="$REGIONS" salewatch simulate --rate "$RATE" --duration "$((LEAD_S + OUTAGE_S + AFTER_S))s" --speed 1 \
  --start "${now}000" --no-diurnal --no-spike \
  --incident "payment_outage:${METHOD}@${LEAD_S}s+${OUTAGE_S}s"
