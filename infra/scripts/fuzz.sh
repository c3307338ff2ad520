#!/usr/bin/env bash
# cargo-fuzz targets of fuzz/ (webhook signature + parsers, job request parsers, SQS envelope),
# each for a bounded time, then a table: target, runs, corpus, crashes. Exits non-zero on a crash.
#
#   infra/scripts/fuzz.sh [seconds-per-target]     # default 60
#   FUZZ_TARGETS="job_request sqs_envelope" infra/scripts/fuzz.sh 30
#
# The toolchain here is stable only. cargo-fuzz passes `-Z` flags, which stable rustc accepts
# with RUSTC_BOOTSTRAP=1; `-s none` leaves AddressSanitizer out (the code under test is
# `forbid(unsafe_code)` safe Rust, so libFuzzer's coverage + Rust's panics/asserts are what
# find bugs), and `-O` fuzzes the optimised build with debug assertions on.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SECONDS_PER_TARGET="${1:-60}"
CARGO_FUZZ_VERSION="0.13.1"
TOOLS="${ROOT}/.tools/cargo-fuzz"
export PATH="${TOOLS}/bin:${PATH}"
export RUSTC_BOOTSTRAP=1
# fuzz/ is its own workspace with its own target dir; a shared CARGO_TARGET_DIR would mix
# instrumented and plain artefacts.
unset CARGO_TARGET_DIR

if [[ "$("${TOOLS}/bin/cargo-fuzz" --version 2>/dev/null || true)" != "cargo-fuzz ${CARGO_FUZZ_VERSION}" ]]; then
  echo "==> installing cargo-fuzz ${CARGO_FUZZ_VERSION} into .tools/cargo-fuzz" >&2
  cargo install --locked --quiet "cargo-fuzz@${CARGO_FUZZ_VERSION}" --root "${TOOLS}"
fi

cd "${ROOT}/fuzz"
read -r -a TARGETS <<<"${FUZZ_TARGETS:-$(cargo fuzz list | tr '\n' ' ')}"
FLAGS=(-s none -O)

echo "==> building ${#TARGETS[@]} targets (first build: several minutes)" >&2
cargo fuzz build "${FLAGS[@]}" >&2

LOGS="$(mktemp -d)"
trap 'rm -rf "${LOGS}"' EXIT
failed=0
rows=()
for t in "${TARGETS[@]}"; do
  corpus="corpus/${t}"
  mkdir -p "${corpus}" "artifacts/${t}"
  before="$(find "artifacts/${t}" -type f | wc -l)"
  seeds=()
  [[ -d "seeds/${t}" ]] && seeds=("seeds/${t}")
  echo "==> ${t}: ${SECONDS_PER_TARGET}s" >&2
  status=0
  # -rss_limit_mb: a parser that balloons on a small input is a finding too.
  cargo fuzz run "${FLAGS[@]}" "${t}" "${corpus}" "${seeds[@]}" -- \
    -max_total_time="${SECONDS_PER_TARGET}" -rss_limit_mb=1024 -max_len=65536 \
    -print_final_stats=1 >"${LOGS}/${t}.log" 2>&1 || status=$?
  runs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "${LOGS}/${t}.log" | grep -o '[0-9]*$' | tail -1)"
  after="$(find "artifacts/${t}" -type f | wc -l)"
  crashes=$((after - before))
  if [[ "${status}" != 0 && "${crashes}" == 0 ]]; then
    crashes="?"  # libFuzzer failed without an artefact (build or setup problem)
  fi
  if [[ "${status}" != 0 || "${crashes}" != 0 ]]; then
    failed=1
    echo "!! ${t} failed (exit ${status}); last lines of its log:" >&2
    tail -40 "${LOGS}/${t}.log" >&2
    find "artifacts/${t}" -type f -newer "${LOGS}" >&2 || true
  fi
  rows+=("$(printf '%-18s %12s %8s %8s' "${t}" "${runs:-?}" "$(find "${corpus}" -type f | wc -l)" "${crashes}")")
done

printf '%-18s %12s %8s %8s\n' target runs corpus crashes
printf '%s\n' "${rows[@]}"
echo "(${SECONDS_PER_TARGET}s per target; corpus in fuzz/corpus/, crashes in fuzz/artifacts/)"
exit "${failed}"
