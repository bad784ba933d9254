#!/usr/bin/env bash
# A three-node RabbitMQ cluster on this machine, from Debian's rabbitmq-server (the same
# package infra.sh starts its single node from): `make cluster` / `make cluster-stop`.
#
#   deploy/local/cluster.sh start    start the nodes that are not running, join them
#   deploy/local/cluster.sh stop     stop the three nodes
#   deploy/local/cluster.sh status   each node, and the cluster as node 1 sees it
#   deploy/local/cluster.sh urls     JAUGE_AMQP_URL for the services: every node, commas
#   deploy/local/cluster.sh start-node N | kill-node N   one node (fault drills)
#
# Each node has its own name (jauge-c<N>@localhost), AMQP port (5681-5683), distribution
# port (25681-25683), data folder
# (var/cluster/node<N>) and the cluster's shared Erlang cookie (var/cluster/.erlang.cookie,
# reached through HOME, the way the Erlang runtime and the CLI tools look for it). Node 1
# serves the management UI (http://127.0.0.1:15681/, guest / guest); nodes 2 and 3 run
# its agent only. The single node of infra.sh (5672) is left alone: both can run at once.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# a test runs a cluster of its own beside `make cluster`'s: folder, names, ports
CLUSTER_HOME=${JAUGE_CLUSTER_DIR:-$ROOT/var/cluster}
NAME=${JAUGE_CLUSTER_NAME:-jauge-c}
NODES=(1 2 3)
AMQP_BASE=${JAUGE_CLUSTER_AMQP_BASE:-5680}
DIST_BASE=${JAUGE_CLUSTER_DIST_BASE:-25680}
MGMT_PORT=${JAUGE_CLUSTER_MANAGEMENT_PORT:-15681}
START_TIMEOUT_S=${JAUGE_INFRA_START_TIMEOUT_S:-120}
RABBIT_BIN=/usr/lib/rabbitmq/bin

log() { printf '[cluster] %s\n' "$*" >&2; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
node_name() { echo "$NAME$1@localhost"; }
amqp_port() { echo $((AMQP_BASE + $1)); }
node_home() { echo "$CLUSTER_HOME/node$1"; }

# the CLI tools and the nodes read the cookie from $HOME/.erlang.cookie
cookie() {
  mkdir -p "$CLUSTER_HOME"
  if [ ! -s "$CLUSTER_HOME/.erlang.cookie" ]; then
    (umask 077; head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' > "$CLUSTER_HOME/.erlang.cookie")
  fi
  chmod 400 "$CLUSTER_HOME/.erlang.cookie"
}

node_env() { # N
  local home; home=$(node_home "$1")
  export HOME=$CLUSTER_HOME
  export RABBITMQ_NODENAME; RABBITMQ_NODENAME=$(node_name "$1")
  export RABBITMQ_MNESIA_BASE=$home/mnesia
  export RABBITMQ_LOG_BASE=$home/log
  export RABBITMQ_ENABLED_PLUGINS_FILE=$home/enabled_plugins
  export RABBITMQ_CONFIG_FILE=$home/rabbitmq
  export RABBITMQ_ADVANCED_CONFIG_FILE=$home/advanced.config
  export RABBITMQ_PID_FILE=$home/rabbitmq.pid
  export RABBITMQ_CONF_ENV_FILE=$home/rabbitmq-env.conf
  # a node that fails to boot writes its crash dump here, not where it was started
  export ERL_CRASH_DUMP=$home/log/erl_crash.dump
  # distribution port: distinct per node
  export RABBITMQ_DIST_PORT=$((DIST_BASE + $1))
}

ctl() { # N args...: rabbitmqctl against node N
  local n=$1; shift
  (node_env "$n"; "$RABBIT_BIN/rabbitmqctl" -n "$(node_name "$n")" "$@")
}

write_config() { # N
  local n=$1 home; home=$(node_home "$n")
  mkdir -p "$home/mnesia" "$home/log"
  if [ "$n" = 1 ]; then
    echo '[rabbitmq_management,rabbitmq_consistent_hash_exchange].' > "$home/enabled_plugins"
  else
    echo '[rabbitmq_management_agent,rabbitmq_consistent_hash_exchange].' > "$home/enabled_plugins"
  fi
  {
    echo "listeners.tcp.default = 127.0.0.1:$(amqp_port "$n")"
    if [ "$n" = 1 ]; then
      echo "management.tcp.ip = 127.0.0.1"
      echo "management.tcp.port = $MGMT_PORT"
    fi
    echo "loopback_users.guest = true"
    echo "log.console = false"
    echo "log.file.level = warning"
    # a node that comes back must not pause the others: no minority in a 3-node cluster
    echo "cluster_partition_handling = pause_minority"
    # the others join node 1 as they first boot (it is up by then): no stop/join/start
    echo "cluster_formation.peer_discovery_backend = classic_config"
    echo "cluster_formation.classic_config.nodes.1 = $(node_name 1)"
  } > "$home/rabbitmq.conf"
  echo '[].' > "$home/advanced.config"
  : > "$home/rabbitmq-env.conf"
}

node_ready() { # N: up, or gone (then fail at once rather than wait)
  if ! kill -0 "$(cat "$(node_home "$1")/launcher.pid")" 2>/dev/null; then
    log "node $1 exited: see $(node_home "$1")/log/stdout.log"; exit 1
  fi
  # rabbitmqctl starts a VM of its own (a second of CPU): not before the port listens
  port_open "$(amqp_port "$1")" && ctl "$1" await_startup --timeout 1 >/dev/null 2>&1
}

wait_for() { # what, command...
  local what=$1; shift
  local deadline=$((SECONDS + START_TIMEOUT_S))
  until "$@"; do
    if [ $SECONDS -ge $deadline ]; then log "$what did not answer within ${START_TIMEOUT_S}s"; return 1; fi
    sleep 0.5
  done
}

start_node() { # N
  local n=$1 home; home=$(node_home "$n")
  if port_open "$(amqp_port "$n")"; then log "node $n: already running"; return; fi
  cookie
  write_config "$n"
  log "node $n: starting $(node_name "$n") on port $(amqp_port "$n") (logs in $home/log)"
  (node_env "$n"; nohup "$RABBIT_BIN/rabbitmq-server" </dev/null >"$home/log/stdout.log" 2>&1 &
   echo $! > "$home/launcher.pid")
  wait_for "node $n" node_ready "$n"
}

join() { # N: into node 1's cluster, unless it is in already
  local n=$1
  if ctl 1 cluster_status --formatter json 2>/dev/null | grep -q "\"$(node_name "$n")\""; then
    return
  fi
  log "node $n: joining $(node_name 1)"
  ctl "$n" stop_app >/dev/null
  ctl "$n" join_cluster "$(node_name 1)" >/dev/null
  ctl "$n" start_app >/dev/null
}

start() {
  [ -x "$RABBIT_BIN/rabbitmq-server" ] || "$ROOT/deploy/local/infra.sh" install
  start_node 1
  # the two others boot side by side (each boot is mostly waiting): 8 s less a start
  local pids=()
  for n in 2 3; do start_node "$n" & pids+=($!); done
  for pid in "${pids[@]}"; do wait "$pid" || exit 1; done
  for n in 2 3; do join "$n"; done
  wait_for "management" curl -fsS -o /dev/null -u guest:guest "http://127.0.0.1:$MGMT_PORT/api/overview"
  log "cluster: $(running_nodes) node(s) running; management http://127.0.0.1:$MGMT_PORT/"
}

running_nodes() {
  curl -fsS -u guest:guest "http://127.0.0.1:$MGMT_PORT/api/nodes" 2>/dev/null \
    | grep -o '"running":true' | wc -l
}

stop_node() { # N
  local n=$1
  if port_open "$(amqp_port "$n")"; then
    log "node $n: stopping"
    ctl "$n" stop >/dev/null 2>&1 || true
  fi
}

kill_node() { # N: SIGKILL, as a crash (fault drills)
  local pid; pid=$(cat "$(node_home "$1")/rabbitmq.pid" 2>/dev/null || true)
  if [ -n "$pid" ]; then kill -KILL "$pid" 2>/dev/null || true; fi
  local deadline=$((SECONDS + 30))
  while port_open "$(amqp_port "$1")" && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
}

urls() {
  local list=()
  for n in "${NODES[@]}"; do list+=("amqp://guest:guest@127.0.0.1:$(amqp_port "$n")/"); done
  (IFS=,; echo "${list[*]}")
}

case "${1:-}" in
  start) start ;;
  stop) for n in 3 2 1; do stop_node "$n"; done ;;
  kill) for n in 3 2 1; do kill_node "$n"; done ;;  # a throwaway cluster (tests): no clean stop
  status)
    for n in "${NODES[@]}"; do
      if port_open "$(amqp_port "$n")"; then echo "node $n: up ($(node_name "$n"), $(amqp_port "$n"))"
      else echo "node $n: down"; fi
    done
    ctl 1 cluster_status 2>/dev/null || true ;;
  urls) urls ;;
  start-node) start_node "$2" ;;
  kill-node) kill_node "$2" ;;
  ctl) shift; ctl "$@" ;;
  *) echo "usage: $0 start|stop|kill|status|urls|start-node N|kill-node N|ctl N args..." >&2; exit 2 ;;
esac
