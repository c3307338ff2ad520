#!/usr/bin/env bash
# Reelay's benchmark suite (`make bench`): prints figures, asserts nothing. Installs and starts the
# local AWS endpoint if it is not running, then runs, each comparing side by side in one run:
#   bench/micro (reelay-bench-micro all): 3 cost per published job, 4 cold start and footprint
#     against a hello-world lambda_runtime binary, 5 reconciler 100k/1 % due against 1k all due,
#     6 publisher memory streaming a 500 MiB clip;
#   bench/load (reelay-bench-load all): 1 saturation against a naive one-queue baseline,
#     2 isolation with 10 % of accounts throttled, 7 scheduling precision.
# Output also goes to target/bench/<UTC time>.txt. Flags after `--micro`/`--load` pass through.
#
#   infra/scripts/bench.sh [micro|load|all]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "${ROOT}"
WHICH="${1:-all}"
SECONDS=0

STARTED_EMULATOR=0
cleanup() {
  if [[ "${STARTED_EMULATOR}" == 1 ]]; then
    infra/scripts/aws-emulator.sh stop >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT

infra/scripts/aws-emulator.sh install
if ! infra/scripts/aws-emulator.sh status >/dev/null 2>&1; then
  STARTED_EMULATOR=1
fi
infra/scripts/aws-emulator.sh start >/dev/null
eval "$(infra/scripts/aws-emulator.sh env)"

OUT_DIR="${CARGO_TARGET_DIR:-${ROOT}/target}/bench"
mkdir -p "${OUT_DIR}"
OUT="${OUT_DIR}/$(date -u +%Y%m%dT%H%M%SZ).txt"
{
  echo "# Reelay benchmarks, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(uname -m), git $(git rev-parse --short HEAD)"
} | tee "${OUT}"

if [[ "${WHICH}" == micro || "${WHICH}" == all ]]; then
  echo "==> bench/micro: cost, cold start and footprint, reconciler, publisher memory" | tee -a "${OUT}"
  cargo run --quiet --locked -p reelay-bench-micro -- all 2>&1 | tee -a "${OUT}"
fi
if [[ "${WHICH}" == load || "${WHICH}" == all ]]; then
  echo "==> bench/load: saturation, isolation, scheduling precision" | tee -a "${OUT}"
  cargo run --quiet --locked -p reelay-bench-load -- all 2>&1 | tee -a "${OUT}"
fi
echo "==> benchmarks finished in ${SECONDS}s; figures in ${OUT}"
