#!/usr/bin/env bash
# AWS DynamoDB Local (AWS's own engine) as a second DynamoDB endpoint for cross-checking the
# conformance tests. The jar ships inside the npm tarball of amplify-dynamodb-simulator; it runs on
# the machine's Java (>= 11). Its endpoint is exported as DYNAMODB_LOCAL_ENDPOINT, never as
# AWS_ENDPOINT_URL, so it cannot shadow the main emulator.
#
#   infra/scripts/dynamodb-local.sh install|start|env|stop|status
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
STATE_DIR="${ROOT}/.aws-emulator"
PKG="amplify-dynamodb-simulator@2.9.30"
DIR="${STATE_DIR}/dynamodb-local"
STAMP="${DIR}/.installed"
PID_FILE="${STATE_DIR}/dynamodb-local.pid"
PORT_FILE="${STATE_DIR}/dynamodb-local.port"
LOG_FILE="${STATE_DIR}/dynamodb-local.log"
START_TIMEOUT_S="${DYNAMODB_LOCAL_START_TIMEOUT:-60}"

install() {
  if [[ -f "${STAMP}" && "$(cat "${STAMP}")" == "${PKG}" ]]; then
    return 0
  fi
  command -v java >/dev/null || {
    echo "java (>= 11) is required for DynamoDB Local" >&2
    return 1
  }
  rm -rf "${DIR}"
  mkdir -p "${DIR}"
  local tarball
  tarball="$(cd "${DIR}" && npm pack --silent "${PKG}")"
  tar -xzf "${DIR}/${tarball}" -C "${DIR}" package/emulator
  rm -f "${DIR:?}/${tarball}"
  echo "${PKG}" >"${STAMP}"
  echo "DynamoDB Local installed in ${DIR}" >&2
}

running_pid() {
  [[ -f "${PID_FILE}" ]] || return 1
  local pid
  pid="$(cat "${PID_FILE}")"
  [[ -n "${pid}" ]] && kill -0 "${pid}" 2>/dev/null || return 1
  echo "${pid}"
}

endpoint() {
  echo "http://127.0.0.1:$(cat "${PORT_FILE}")"
}

start() {
  if running_pid >/dev/null; then
    endpoint
    return 0
  fi
  install
  local port pid emulator="${DIR}/package/emulator"
  port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')"
  echo "${port}" >"${PORT_FILE}"
  # -sharedDb: one database whatever the access key/region, like the other emulators.
  (cd "${STATE_DIR}" && exec java -Djava.library.path="${emulator}/DynamoDBLocal_lib" \
    -jar "${emulator}/DynamoDBLocal.jar" -inMemory -sharedDb -port "${port}") >"${LOG_FILE}" 2>&1 &
  pid=$!
  echo "${pid}" >"${PID_FILE}"
  local deadline=$((SECONDS + START_TIMEOUT_S))
  # Any HTTP answer (DynamoDB Local replies 400 to a bare GET) means the server is listening.
  until curl -s -o /dev/null "http://127.0.0.1:${port}/" 2>/dev/null; do
    if ! kill -0 "${pid}" 2>/dev/null; then
      echo "DynamoDB Local exited during startup; log follows:" >&2
      cat "${LOG_FILE}" >&2
      rm -f "${PID_FILE}"
      return 1
    fi
    if ((SECONDS >= deadline)); then
      echo "DynamoDB Local not up after ${START_TIMEOUT_S}s; log follows:" >&2
      cat "${LOG_FILE}" >&2
      stop
      return 1
    fi
    sleep 0.1
  done
  endpoint
}

print_env() {
  if ! running_pid >/dev/null; then
    echo "DynamoDB Local is not running: run '$0 start' first" >&2
    return 1
  fi
  echo "export DYNAMODB_LOCAL_ENDPOINT=$(endpoint)"
}

stop() {
  local pid
  if ! pid="$(running_pid)"; then
    rm -f "${PID_FILE}"
    return 0
  fi
  kill -TERM "${pid}" 2>/dev/null || true
  local _
  for _ in $(seq 1 100); do
    kill -0 "${pid}" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "${pid}" 2>/dev/null; then
    kill -KILL "${pid}" 2>/dev/null || true
  fi
  rm -f "${PID_FILE}"
}

status() {
  local pid
  if pid="$(running_pid)"; then
    echo "dynamodb-local running: pid ${pid}"
  else
    echo "dynamodb-local not running"
    return 1
  fi
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  env) print_env ;;
  stop) stop ;;
  status) status ;;
  *)
    echo "usage: $0 {install|start|env|stop|status}" >&2
    exit 2
    ;;
esac
