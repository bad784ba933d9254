#!/usr/bin/env bash
# `make run`: start what is not running, run the services until Ctrl-C, then stop
# everything this run started (and nothing that was already running before it).
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export JAUGE_PYTHON=$ROOT/.venv/bin/python
INFRA=$ROOT/deploy/local/infra.sh

before=$("$INFRA" status)
stop_started() {
  grep -q "rabbitmq: up" <<<"$before" || "$INFRA" stop-rabbitmq
  grep -q "ferretdb: up" <<<"$before" || "$INFRA" stop-ferretdb
}
trap stop_started EXIT
"$INFRA" start || exit 1
# the services get the Ctrl-C from the terminal; the stack stops them gracefully
"$JAUGE_PYTHON" "$ROOT/deploy/local/stack.py" run
