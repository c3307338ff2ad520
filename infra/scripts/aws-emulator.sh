#!/usr/bin/env bash
# Local AWS-compatible endpoint (DynamoDB, SQS FIFO, Secrets Manager) for tests and the local demo.
# Default: MiniStack (pinned); AWS_EMULATOR=moto switches to moto server. Everything lives under
# .aws-emulator/ (git-ignored); only the process this script started is ever signalled.
# AWS_EMULATOR=ministack-sam is the same MiniStack in a venv of its own with the SAM translator
# (CloudFormation's AWS::Serverless transform), started with AWS_ENDPOINT_URL naming itself so the
# Lambda functions it runs call it back: the deploy-local tier (infra/scripts/deploy-local.sh).
#
#   infra/scripts/aws-emulator.sh install|start|env|stop|reset|status
#   eval "$(infra/scripts/aws-emulator.sh env)"
#
# A private instance (the fault campaign restarts its own, never the shared one):
#   AWS_EMULATOR_RUN_DIR=DIR   pid, port and log files under DIR instead of .aws-emulator/
#   AWS_EMULATOR_PORT=N        listen on N (a restart keeps the endpoint) instead of a free port
#   AWS_EMULATOR_PERSIST_DIR=D MiniStack only: PERSIST_STATE=1 STATE_DIR=D (state saved on a
#                              graceful stop, reloaded on start)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
STATE_DIR="${ROOT}/.aws-emulator"
KIND="${AWS_EMULATOR:-ministack}"
MINISTACK_VERSION="1.5.33"
MOTO_PINS="moto[dynamodb,events]==5.2.5 flask flask-cors"
# The SAM CLI's own translator version (infra/scripts/tools.sh pins aws-sam-cli 1.170.0).
SAM_TRANSLATOR_VERSION="1.115.0"

case "${KIND}" in
  ministack)
    PINS="ministack==${MINISTACK_VERSION}"
    HEALTH_PATH="/_ministack/health"
    RESET_PATH="/_ministack/reset"
    ;;
  ministack-sam)
    # docker: MiniStack's client for LAMBDA_EXECUTOR=docker (deploy-local.sh --docker); unused otherwise.
    PINS="ministack==${MINISTACK_VERSION} aws-sam-translator==${SAM_TRANSLATOR_VERSION} docker==7.2.0"
    HEALTH_PATH="/_ministack/health"
    RESET_PATH="/_ministack/reset"
    ;;
  moto)
    PINS="${MOTO_PINS}"
    HEALTH_PATH="/moto-api/data.json"
    RESET_PATH="/moto-api/reset"
    ;;
  *)
    echo "AWS_EMULATOR must be ministack, ministack-sam or moto, got '${KIND}'" >&2
    exit 2
    ;;
esac

VENV="${STATE_DIR}/venv-${KIND}"
STAMP="${VENV}/.installed"
RUN_DIR="${AWS_EMULATOR_RUN_DIR:-${STATE_DIR}}"
PID_FILE="${RUN_DIR}/${KIND}.pid"
PORT_FILE="${RUN_DIR}/${KIND}.port"
LOG_FILE="${RUN_DIR}/${KIND}.log"
TMP_DIR="${RUN_DIR}/tmp"
FIXED_PORT="${AWS_EMULATOR_PORT:-}"
PERSIST_DIR="${AWS_EMULATOR_PERSIST_DIR:-}"
START_TIMEOUT_S="${AWS_EMULATOR_START_TIMEOUT:-30}"

install() {
  if [[ -f "${STAMP}" && "$(cat "${STAMP}")" == "${PINS}" ]]; then
    return 0
  fi
  mkdir -p "${STATE_DIR}"
  python3 -m venv "${VENV}"
  # The emulators pin botocore exactly, hence a venv of their own. pip's cache is left on.
  # shellcheck disable=SC2086 # PINS is a deliberate word list
  "${VENV}/bin/pip" install --quiet --disable-pip-version-check ${PINS}
  echo "${PINS}" >"${STAMP}"
  echo "${KIND} installed in ${VENV}" >&2
}

running_pid() {
  [[ -f "${PID_FILE}" ]] || return 1
  local pid
  pid="$(cat "${PID_FILE}")"
  [[ -n "${pid}" ]] && kill -0 "${pid}" 2>/dev/null || return 1
  echo "${pid}"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
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
  mkdir -p "${TMP_DIR}"
  local port pid persist=()
  port="${FIXED_PORT:-$(free_port)}"
  echo "${port}" >"${PORT_FILE}"
  if [[ -n "${PERSIST_DIR}" ]]; then
    mkdir -p "${PERSIST_DIR}"
    persist=(PERSIST_STATE=1 "STATE_DIR=${PERSIST_DIR}")
  fi
  if [[ "${KIND}" == "ministack" ]]; then
    # exec: $! is the server itself, so stop signals exactly that process.
    (cd "${RUN_DIR}" && exec env TMPDIR="${TMP_DIR}" GATEWAY_PORT="${port}" BIND_HOST=127.0.0.1 \
      LOG_LEVEL=WARNING "${persist[@]}" "${VENV}/bin/ministack") >>"${LOG_FILE}" 2>&1 &
  elif [[ "${KIND}" == "ministack-sam" ]]; then
    # MiniStack gives a provided.* function its own environment plus the function's variables,
    # and overrides AWS_ENDPOINT_URL with its own: the functions' SDK calls come back here.
    (cd "${RUN_DIR}" && exec env TMPDIR="${TMP_DIR}" GATEWAY_PORT="${port}" BIND_HOST=127.0.0.1 \
      LOG_LEVEL=WARNING AWS_ENDPOINT_URL="http://127.0.0.1:${port}" AWS_ACCESS_KEY_ID=test \
      AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 \
      "${persist[@]}" "${VENV}/bin/ministack") >>"${LOG_FILE}" 2>&1 &
  else
    (cd "${RUN_DIR}" && TMPDIR="${TMP_DIR}" \
      exec "${VENV}/bin/moto_server" -H 127.0.0.1 -p "${port}") >"${LOG_FILE}" 2>&1 &
  fi
  pid=$!
  echo "${pid}" >"${PID_FILE}"
  local deadline=$((SECONDS + START_TIMEOUT_S))
  until curl -fsS -o /dev/null "http://127.0.0.1:${port}${HEALTH_PATH}" 2>/dev/null; do
    if ! kill -0 "${pid}" 2>/dev/null; then
      echo "${KIND} exited during startup; log follows:" >&2
      cat "${LOG_FILE}" >&2
      rm -f "${PID_FILE}"
      return 1
    fi
    if ((SECONDS >= deadline)); then
      echo "${KIND} not healthy after ${START_TIMEOUT_S}s; log follows:" >&2
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
    echo "${KIND} is not running: run '$0 start' first" >&2
    return 1
  fi
  echo "export AWS_ENDPOINT_URL=$(endpoint) AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test" \
    "AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1"
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
    echo "${KIND} (pid ${pid}) ignored TERM for 10s; sending KILL" >&2
    kill -KILL "${pid}" 2>/dev/null || true
  fi
  rm -f "${PID_FILE}"
}

reset() {
  running_pid >/dev/null || {
    echo "${KIND} is not running" >&2
    return 1
  }
  curl -fsS -o /dev/null -X POST "$(endpoint)${RESET_PATH}"
}

status() {
  local pid
  if pid="$(running_pid)"; then
    echo "${KIND} running: pid ${pid}, $(endpoint)"
  else
    echo "${KIND} not running"
    return 1
  fi
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  env) print_env ;;
  stop) stop ;;
  reset) reset ;;
  status) status ;;
  *)
    echo "usage: $0 {install|start|env|stop|reset|status}  (AWS_EMULATOR=ministack|ministack-sam|moto)" >&2
    exit 2
    ;;
esac
