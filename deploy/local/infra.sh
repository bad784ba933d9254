#!/usr/bin/env bash
# Local infrastructure for `make run` and `make test`: RabbitMQ from Debian's package
# and FerretDB (SQLite backend) built with Go. Unattended and idempotent.
#
#   deploy/local/infra.sh install   install what is missing (apt, go build)
#   deploy/local/infra.sh start     start what is not running, wait until it answers
#   deploy/local/infra.sh stop      stop what this script started
#   deploy/local/infra.sh stop-rabbitmq | stop-ferretdb
#   deploy/local/infra.sh install-browser   Debian's chromium, for the browser tests
#   deploy/local/infra.sh status
#
# When JAUGE_AMQP_URL / JAUGE_MONGO_URL are set, that server is someone else's:
# nothing is installed or started for it.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
VAR=${JAUGE_INFRA_DIR:-$ROOT/var/infra}
TOOLS=$ROOT/.tools
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/jauge
FERRETDB_VERSION=v1.24.2
FERRETDB_MODULE=github.com/FerretDB/FerretDB
FERRETDB_BIN=${JAUGE_FERRETDB_BIN:-$TOOLS/bin/ferretdb}  # another binary: tests only
# the patches applied to the FerretDB source (see install_ferretdb); change the build id
# with them, so a binary built without them is rebuilt
FERRETDB_PATCHES=(
  "$ROOT/deploy/local/ferretdb-sqlite-id-index.patch"
  "$ROOT/deploy/local/ferretdb-sqlite-id-pushdown.patch"
  "$ROOT/deploy/local/ferretdb-sqlite-id-range.patch"
  "$ROOT/deploy/local/ferretdb-atomic-writes.patch"
)
FERRETDB_BUILD=$FERRETDB_VERSION+jauge.5
RABBIT_NODE=jauge@localhost
RABBIT_HOME=$VAR/rabbitmq
FERRET_HOME=$VAR/ferretdb
AMQP_PORT=5672
MGMT_PORT=15672
MONGO_PORT=${JAUGE_INFRA_MONGO_PORT:-27017}  # another port: tests only
START_TIMEOUT_S=${JAUGE_INFRA_START_TIMEOUT_S:-120}

log() { printf '[infra] %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
own_rabbit() { [ -z "${JAUGE_AMQP_URL:-}" ]; }
own_mongo() { [ -z "${JAUGE_MONGO_URL:-}" ]; }

rabbit_env() {
  export RABBITMQ_NODENAME=$RABBIT_NODE
  export RABBITMQ_MNESIA_BASE=$RABBIT_HOME/mnesia
  export RABBITMQ_LOG_BASE=$RABBIT_HOME/log
  export RABBITMQ_ENABLED_PLUGINS_FILE=$RABBIT_HOME/enabled_plugins
  export RABBITMQ_CONFIG_FILE=$RABBIT_HOME/rabbitmq
  export RABBITMQ_ADVANCED_CONFIG_FILE=$RABBIT_HOME/advanced.config
  export RABBITMQ_PID_FILE=$RABBIT_HOME/rabbitmq.pid
  export RABBITMQ_CONF_ENV_FILE=$RABBIT_HOME/rabbitmq-env.conf
}

install_rabbitmq() {
  if [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ]; then
    log "rabbitmq-server: installed"
    return
  fi
  log "rabbitmq-server: installing Debian's package"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  # policy-rc.d keeps the package from starting a system-wide node: we start our own
  as_root env DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 \
    apt-get install -y -qq --no-install-recommends rabbitmq-server curl >/dev/null
}

ferretdb_built() {  # $1: a binary; true if it is this build
  # the version is read whole, not piped to `grep -q`: grep leaving early made
  # pipefail report the binary's SIGPIPE, and a built binary looked unbuilt
  local version
  [ -x "$1" ] && [ "$(cat "$1.build" 2>/dev/null)" = "$FERRETDB_BUILD" ] &&
    version=$("$1" --version 2>/dev/null) && [[ $version == *"$FERRETDB_VERSION"* ]]
}

install_ferretdb() {
  if ferretdb_built "$FERRETDB_BIN"; then
    log "ferretdb $FERRETDB_BUILD: built"
    return
  fi
  mkdir -p "$TOOLS/bin" "$CACHE"
  local cached=$CACHE/ferretdb-$FERRETDB_BUILD
  if ferretdb_built "$cached"; then
    log "ferretdb $FERRETDB_BUILD: from the build cache"
    # a rename, not a copy over it: the binary may be running ("Text file busy")
    cp "$cached" "$FERRETDB_BIN.tmp" && mv -f "$FERRETDB_BIN.tmp" "$FERRETDB_BIN"
    cp "$cached.build" "$FERRETDB_BIN.build"
    return
  fi
  command -v go >/dev/null || { log "Go is needed to build FerretDB"; exit 1; }
  log "ferretdb $FERRETDB_VERSION: building with go (a few minutes the first time)"
  # `go install $FERRETDB_MODULE/cmd/ferretdb@$FERRETDB_VERSION` cannot be used as is:
  # the module proxy refuses the version list that its deprecation check reads, and
  # the module zip lacks the generated build/version/version.txt, without which the
  # binary panics at start. So: the same module from the same proxy, the file that
  # FerretDB's docs say to write by hand, then `go install` of the same command.
  local dir
  dir=$(go mod download -json "$FERRETDB_MODULE@$FERRETDB_VERSION" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
  [ -d "$dir" ] || { log "could not download $FERRETDB_MODULE@$FERRETDB_VERSION"; exit 1; }
  local src=$TOOLS/src/ferretdb-$FERRETDB_VERSION
  rm -rf "$src"; mkdir -p "$(dirname "$src")"
  cp -r "$dir" "$src"; chmod -R u+w "$src"
  echo "$FERRETDB_VERSION" > "$src/build/version/version.txt"
  # a repository of its own: inside the project's tree, `git apply` resolves a patch's
  # paths from the project's root and skips, silently, those it does not find there
  (cd "$src" && git init -q) || { log "could not prepare $src"; exit 1; }
  local patch applied
  for patch in "${FERRETDB_PATCHES[@]}"; do
    applied=$(cd "$src" && git apply --verbose "$patch" 2>&1) && [[ $applied != *Skipped* ]] ||
      { log "could not apply $patch: $applied"; exit 1; }
  done
  (cd "$src" && GOBIN="$TOOLS/bin" GOFLAGS=-buildvcs=false go install ./cmd/ferretdb)
  echo "$FERRETDB_BUILD" > "$FERRETDB_BIN.build"
  cp "$FERRETDB_BIN" "$cached.tmp" && mv "$cached.tmp" "$cached"
  cp "$FERRETDB_BIN.build" "$cached.build"
  rm -rf "$src"
}

install_browser() {
  # the browser tests drive Debian's Chromium (no browser download of a test tool's own)
  if [ -x /usr/bin/chromium ]; then log "chromium: installed"; return; fi
  log "chromium: installing Debian's package"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
}

write_rabbit_config() {
  mkdir -p "$RABBIT_HOME/mnesia" "$RABBIT_HOME/log"
  # the consistent-hash exchange partitions progress-svc's events (docs/decisions.md)
  echo '[rabbitmq_management,rabbitmq_consistent_hash_exchange].' > "$RABBIT_HOME/enabled_plugins"
  cat > "$RABBIT_HOME/rabbitmq.conf" <<CONF
listeners.tcp.default = 127.0.0.1:$AMQP_PORT
management.tcp.ip = 127.0.0.1
management.tcp.port = $MGMT_PORT
loopback_users.guest = true
log.console = false
log.file.level = warning
CONF
  echo '[].' > "$RABBIT_HOME/advanced.config"
  : > "$RABBIT_HOME/rabbitmq-env.conf"
}

rabbit_ready() {
  port_open $AMQP_PORT && curl -fsS -o /dev/null -u guest:guest "http://127.0.0.1:$MGMT_PORT/api/overview"
}

# Probes are quiet: while a server starts, each failed probe is expected, and its
# output (a curl error, a pymongo traceback of 35 lines) is not news to anyone. Only
# the outcome is shown, and on failure one line that says where the server's log is.
wait_for() { # name, log file or folder, command...
  local name=$1 logs=$2; shift 2
  local deadline=$((SECONDS + START_TIMEOUT_S))
  log "$name: waiting for it to answer (up to ${START_TIMEOUT_S}s)"
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then
      log "$name did not answer within ${START_TIMEOUT_S}s: see $logs"
      return 1
    fi
    sleep 0.5
  done
  log "$name: ready"
}

start_rabbitmq() {
  if rabbit_ready >/dev/null 2>&1; then log "rabbitmq: already running"; return; fi
  if port_open $AMQP_PORT; then
    wait_for rabbitmq "$RABBIT_HOME/log" rabbit_ready; return
  fi
  write_rabbit_config
  rabbit_env
  log "rabbitmq: starting node $RABBIT_NODE (logs in $RABBIT_HOME/log)"
  nohup /usr/lib/rabbitmq/bin/rabbitmq-server </dev/null >"$RABBIT_HOME/log/stdout.log" 2>&1 &
  echo $! > "$RABBIT_HOME/launcher.pid"
  wait_for rabbitmq "$RABBIT_HOME/log" rabbit_ready
}

mongo_ping() { # exit status only: 0 when the server answers a ping, else 1, no traceback
  MONGO_PORT=$MONGO_PORT "${JAUGE_PYTHON:-python3}" - <<'PY'
import os
import sys

try:
    from pymongo import MongoClient
except ImportError:
    print("[infra] pymongo is missing: run `make deps` first", file=sys.stderr)
    sys.exit(1)
url = f"mongodb://127.0.0.1:{os.environ['MONGO_PORT']}/"
try:
    with MongoClient(url, serverSelectionTimeoutMS=500) as client:
        answered = client.admin.command("ping").get("ok") == 1
except Exception:  # not up yet (ServerSelectionTimeoutError), or not a MongoDB
    answered = False
sys.exit(0 if answered else 1)
PY
}

start_ferretdb() {
  if mongo_ping; then
    # a rebuild renames the new binary over the old one: a store started before runs on
    local pid
    pid=$(cat "$FERRET_HOME/ferretdb.pid" 2>/dev/null) || pid=
    if [ -n "$pid" ] && [[ $(readlink "/proc/$pid/exe" 2>/dev/null) == *" (deleted)" ]]; then
      log "ferretdb: already running, an older build (make infra-stop, then infra-start)"
    else
      log "ferretdb: already running"
    fi
    return
  fi
  if port_open $MONGO_PORT; then
    # a FerretDB busy enough to miss a 500 ms ping is still there: starting a second
    # one would fail to bind and leave its dead pid in ferretdb.pid (seen in a soak)
    wait_for ferretdb "$FERRET_HOME/ferretdb.log" mongo_ping; return
  fi
  mkdir -p "$FERRET_HOME/data"
  log "ferretdb: starting (data in $FERRET_HOME/data)"
  nohup "$FERRETDB_BIN" --handler=sqlite --sqlite-url="file:$FERRET_HOME/data/" \
    --state-dir="$FERRET_HOME" --listen-addr="127.0.0.1:$MONGO_PORT" \
    --debug-addr="127.0.0.1:0" --telemetry=disable --log-level=warn \
    </dev/null >"$FERRET_HOME/ferretdb.log" 2>&1 &
  echo $! > "$FERRET_HOME/ferretdb.pid"
  wait_for ferretdb "$FERRET_HOME/ferretdb.log" mongo_ping
}

stop_rabbitmq() {
  rabbit_env
  if [ -f "$RABBIT_HOME/launcher.pid" ]; then
    log "rabbitmq: stopping"
    /usr/lib/rabbitmq/bin/rabbitmqctl -n "$RABBIT_NODE" stop >/dev/null 2>&1 \
      || kill "$(cat "$RABBIT_HOME/launcher.pid")" 2>/dev/null || true
    rm -f "$RABBIT_HOME/launcher.pid"
  fi
}

stop_ferretdb() {
  if [ -f "$FERRET_HOME/ferretdb.pid" ]; then
    log "ferretdb: stopping"
    kill "$(cat "$FERRET_HOME/ferretdb.pid")" 2>/dev/null || true
    rm -f "$FERRET_HOME/ferretdb.pid"
  fi
}

case "${1:-}" in
  install)
    own_rabbit && install_rabbitmq
    own_mongo && install_ferretdb
    ;;
  start)
    own_rabbit && start_rabbitmq
    own_mongo && start_ferretdb
    ;;
  stop)
    own_rabbit && stop_rabbitmq
    own_mongo && stop_ferretdb
    ;;
  install-browser) install_browser ;;
  stop-rabbitmq) own_rabbit && stop_rabbitmq ;;
  stop-ferretdb) own_mongo && stop_ferretdb ;;
  status)
    if rabbit_ready >/dev/null 2>&1; then echo "rabbitmq: up"; else echo "rabbitmq: down"; fi
    if port_open $MONGO_PORT && mongo_ping; then echo "ferretdb: up"; else echo "ferretdb: down"; fi
    ;;
  *) echo "usage: $0 install|start|stop|stop-rabbitmq|stop-ferretdb|status" >&2; exit 2 ;;
esac
exit 0
