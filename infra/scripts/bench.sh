#!/usr/bin/env bash
# Reelay's benchmark suite (`make bench`): prints figures, asserts nothing. Installs and starts the
# local AWS endpoint if it is not running, then runs, each comparing side by side in one run:
#   bench/micro (reelay-bench-micro all): 3 cost per published job and the whole AWS bill a day at
#     100/1,000/10,000 accounts, 4 cold start and footprint against a hello-world lambda_runtime
#     binary, 5 reconciler 100k/1 % due against 1k all due, 6 publisher memory streaming a 500 MiB
#     clip;
#   bench/load (reelay-bench-load all): 1 saturation against a naive one-queue baseline,
#     2 isolation with 10 % of accounts throttled, 7 scheduling precision; then
#     (reelay-bench-load day) 8 a simulated day, 100 accounts × 15 posts at time scale 60
#     (about 26 minutes: a day is 1,440 s real).
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
  # Cold start compares release bootstraps built the way `sam build` builds them (cargo-lambda,
  # x86_64, the workspace's release profile) with a hello-world built by the same command.
  echo "==> building the seven bootstraps and the hello-world baseline with cargo-lambda (release)"
  infra/scripts/tools.sh install
  eval "$(infra/scripts/tools.sh env)"
  LAMBDA_TARGET="${ROOT}/target/sam"
  CARGO_TARGET_DIR="${LAMBDA_TARGET}" cargo lambda build --release --locked \
    --target x86_64-unknown-linux-gnu \
    -p ingest-api -p render-submitter -p ssemble-webhook -p tiktok-webhook -p publisher -p reconciler \
    -p client-webhooks
  CARGO_TARGET_DIR="${LAMBDA_TARGET}" cargo lambda build --release --locked \
    --target x86_64-unknown-linux-gnu -p reelay-bench-micro --no-default-features --bin hello-lambda
  # The harness itself in release (its in-process handlers' durations are the billed figures),
  # without LTO: only the bootstraps above are the measured artifacts.
  echo "==> bench/micro: cost, cold start and footprint, reconciler, publisher memory" | tee -a "${OUT}"
  CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
    cargo build --quiet --release --locked -p reelay-bench-micro --bin reelay-bench-micro
  "${CARGO_TARGET_DIR:-${ROOT}/target}/release/reelay-bench-micro" all \
    --bootstraps "${LAMBDA_TARGET}/lambda" 2>&1 | grep -v '"_aws"' | tee -a "${OUT}"
fi
if [[ "${WHICH}" == load || "${WHICH}" == all ]]; then
  # Dev profile, as measured in bench/load/README.md; the publisher's metric lines are dropped.
  echo "==> bench/load: saturation, isolation, scheduling precision" | tee -a "${OUT}"
  cargo build --quiet --locked -p reelay-bench-load
  "${CARGO_TARGET_DIR:-${ROOT}/target}/debug/reelay-bench-load" all 2>&1 | grep -v '"_aws"' \
    | tee -a "${OUT}"
  echo "==> bench/load: a simulated day (100 accounts × 15 posts, time scale 60)" | tee -a "${OUT}"
  "${CARGO_TARGET_DIR:-${ROOT}/target}/debug/reelay-bench-load" day --time-scale 60 2>&1 \
    | grep -v '"_aws"' | tee -a "${OUT}"
fi
echo "==> benchmarks finished in ${SECONDS}s; figures in ${OUT}"
