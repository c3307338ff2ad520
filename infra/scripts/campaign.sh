#!/usr/bin/env bash
# Reelay's fault-injection campaign (tests/campaign): thousands of jobs across many TikTok
# accounts through the whole local stack while the simulators inject upstream faults, functions
# are killed at step boundaries and the campaign's own local AWS endpoint is restarted once.
# Prints the report and exits non-zero if a promise is broken.
#
#   infra/scripts/campaign.sh [--ci] [--jobs N] [--accounts N] [--seed N] [--time-scale X]
#                             [--chaos S] [--chaos-max S] [--drain S] [--log-file PATH] ...
#                             (every flag: --help)
#
# The campaign starts and restarts ITS OWN MiniStack (own port, own state dir under the run
# directory); the shared instance (.aws-emulator/ministack.port) is never stopped or reset.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "${ROOT}"
SECONDS=0

echo "==> installing MiniStack into .aws-emulator/ if needed"
infra/scripts/aws-emulator.sh install

echo "==> building the campaign (dev profile: debug assertions on; kills never rely on unwinding)"
cargo build --quiet -p reelay-campaign --bin reelay-campaign
BIN="${CARGO_TARGET_DIR:-${ROOT}/target}/debug/reelay-campaign"

status=0
"${BIN}" "$@" || status=$?
echo "==> campaign finished in ${SECONDS}s (exit ${status})"
exit "${status}"
