#!/usr/bin/env bash
# Lint, start the real local stack (if not already up), run all tests, stop what we started.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== lint"
ruff check .
ruff format --check .
mypy

echo "== browser and snippet tooling"
if ! command -v chromium >/dev/null 2>&1; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null
fi
npm ci --prefix collector/snippet --no-audit --no-fund --loglevel=error

started_stack=0
if ! salewatch stack status >/dev/null 2>&1; then
  echo "== stack up"
  salewatch stack up
  started_stack=1
fi
cleanup() { if [ "$started_stack" = 1 ]; then salewatch stack down || true; fi; }
trap cleanup EXIT

echo "== tests"
python3 -m pytest "$@"
