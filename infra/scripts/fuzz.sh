#!/usr/bin/env bash
# cargo-fuzz targets of fuzz/ (webhook signature + parsers, job request parsers, SQS envelope),
# each for a bounded time, then a table: target, runs, corpus, crashes. Exits non-zero on a crash.
#
#   infra/scripts/fuzz.sh [seconds-per-target]     # default 60
#   FUZZ_TARGETS="job_request sqs_envelope" infra/scripts/fuzz.sh 30
#   FUZZ_SANITIZER=address infra/scripts/fuzz.sh 60  # ASan (RUSTC_BOOTSTRAP=1; not tried here)
#
# The toolchain here is stable only. With `-s none` cargo-fuzz passes only stable rustc flags
# (sancov passes, `--cfg fuzzing`, debug assertions), so stable builds it as is; a sanitizer
# (FUZZ_SANITIZER=address, cargo-fuzz's own default) needs `-Zsanitizer`, which stable accepts
# only with RUSTC_BOOTSTRAP=1 (exported below for that case). None is the default: the code
# under test is `forbid(unsafe_code)`, so coverage guidance plus Rust's panics and the targets'
# asserts are what find bugs. `-O` fuzzes the optimised build with debug assertions on.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SECONDS_PER_TARGET="${1:-60}"
CARGO_FUZZ_VERSION="0.13.1"
TOOLS="${ROOT}/.tools/cargo-fuzz"
export PATH="${TOOLS}/bin:${PATH}"
SANITIZER="${FUZZ_SANITIZER:-none}"
if [[ "${SANITIZER}" != none ]]; then
  export RUSTC_BOOTSTRAP=1
fi
# fuzz/ is its own workspace with its own target dir; a shared CARGO_TARGET_DIR would mix
# instrumented and plain artefacts.
unset CARGO_TARGET_DIR

if [[ "$("${TOOLS}/bin/cargo-fuzz" --version 2>/dev/null || true)" != "cargo-fuzz ${CARGO_FUZZ_VERSION}" ]]; then
  echo "==> installing cargo-fuzz ${CARGO_FUZZ_VERSION} into .tools/cargo-fuzz" >&2
  cargo install --locked --quiet "cargo-fuzz@${CARGO_FUZZ_VERSION}" --root "${TOOLS}"
fi

cd "${ROOT}/fuzz"
read -r -a TARGETS <<<"${FUZZ_TARGETS:-$(cargo fuzz list | tr '\n' ' ')}"
FLAGS=(-s "${SANITIZER}" -O)

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
