#!/usr/bin/env bash
# Reelay locally, in one command (`make run`): installs and starts the local AWS endpoint, then
# runs infra/local's `reelay-local`, which provisions template.yaml's resources, starts the
# Ssemble and TikTok simulators, runs every function's real handler (SQS event source mappings,
# the reconciler's schedule, the HTTP API on localhost), connects demo TikTok accounts through
# OAuth, submits a demo batch, shows its progress and ends with a summary checked against the
# simulators. Exits non-zero if a promise is broken or a job is stuck.
#
#   infra/scripts/run-local.sh [--serve] [--time-scale 60] [--deadline 180] [--port N] ...
#   (every flag: cargo run -p reelay-local -- --help)
#
# Upstreams: SSEMBLE_API_BASE_URL, TIKTOK_API_BASE_URL, TIKTOK_AUTH_BASE_URL (and SSEMBLE_API_KEY,
# TIKTOK_CLIENT_KEY, TIKTOK_CLIENT_SECRET) point the run at external servers instead.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "${ROOT}"
SECONDS=0

STARTED_EMULATOR=0
cleanup() {
  # Only stop the endpoint this run started; another run or test suite may be using one.
  if [[ "${STARTED_EMULATOR}" == 1 ]]; then
    infra/scripts/aws-emulator.sh stop >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT

echo "==> building the local runner (first build compiles the workspace: a few minutes)"
cargo build --quiet --locked -p reelay-local
BIN="${CARGO_TARGET_DIR:-${ROOT}/target}/debug/reelay-local"

echo "==> starting the local AWS endpoint (MiniStack; installed into .aws-emulator/ on first use)"
if ! infra/scripts/aws-emulator.sh status >/dev/null 2>&1; then
  STARTED_EMULATOR=1
fi
infra/scripts/aws-emulator.sh start >/dev/null
eval "$(infra/scripts/aws-emulator.sh env)"
echo "    ${AWS_ENDPOINT_URL}  (ready after ${SECONDS}s)"

status=0
"${BIN}" "$@" || status=$?
echo "==> make run finished in ${SECONDS}s (exit ${status})"
exit "${status}"
