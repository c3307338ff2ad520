#!/usr/bin/env bash
# Reelay locally: the local AWS endpoint, the resources template.yaml declares, and the Ssemble and
# TikTok simulators. `make run` calls this; `--serve` keeps everything up until Ctrl-C.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "${ROOT}"
SERVE=0
for arg in "$@"; do
  case "${arg}" in
    --serve) SERVE=1 ;;
    *) echo "usage: $0 [--serve]" >&2; exit 2 ;;
  esac
done

RUN_DIR="${ROOT}/.aws-emulator/run"
mkdir -p "${RUN_DIR}"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "${pid}" 2>/dev/null || true; done
  infra/scripts/aws-emulator.sh stop >/dev/null 2>&1 || true
}
trap cleanup EXIT

echo "==> building the local tools and simulators"
cargo build --quiet --locked -p reelay-template -p ssemble-sim -p tiktok-sim
BIN="${CARGO_TARGET_DIR:-${ROOT}/target}/debug"

echo "==> starting the local AWS endpoint"
infra/scripts/aws-emulator.sh start >/dev/null
eval "$(infra/scripts/aws-emulator.sh env)"
echo "    ${AWS_ENDPOINT_URL}"

echo "==> creating the resources template.yaml declares (stage local)"
"${BIN}/reelay-template" provision --template template.yaml --stage local >"${RUN_DIR}/env.sh"
# shellcheck disable=SC1091
source "${RUN_DIR}/env.sh"
sed 's/^/    /' "${RUN_DIR}/env.sh"

start_sim() { # name, then its flags; prints its URL
  local name="$1"; shift
  "${BIN}/${name}" --port 0 "$@" >"${RUN_DIR}/${name}.out" 2>"${RUN_DIR}/${name}.log" &
  PIDS+=("$!")
  for _ in $(seq 1 100); do
    if grep -qm1 '^http' "${RUN_DIR}/${name}.out" 2>/dev/null; then
      grep -m1 '^http' "${RUN_DIR}/${name}.out"
      return 0
    fi
    sleep 0.1
  done
  echo "${name} did not start; its log:" >&2
  cat "${RUN_DIR}/${name}.log" >&2
  return 1
}

echo "==> starting the simulators"
SSEMBLE_API_BASE_URL="$(start_sim ssemble-sim)"
TIKTOK_API_BASE_URL="$(start_sim tiktok-sim)"
export SSEMBLE_API_BASE_URL TIKTOK_API_BASE_URL
echo "    Ssemble simulator: ${SSEMBLE_API_BASE_URL}"
echo "    TikTok simulator:  ${TIKTOK_API_BASE_URL}"

echo
echo "The local stack is up. The Lambda handlers are wired in the pipeline issue; until then this"
echo "run ends here."
if [[ "${SERVE}" == 1 ]]; then
  echo "Serving until Ctrl-C."
  wait
fi
