#!/usr/bin/env bash
# The endpoint conformance suite: every test against the project's local AWS endpoint (MiniStack),
# then the DynamoDB tests again against AWS's DynamoDB Local. Starts what is not running and stops
# only what it started. Extra arguments go to `cargo test` (e.g. a test-name filter).
#
#   tests/endpoint-conformance/run.sh            # both endpoints
#   DYNAMODB_LOCAL=0 tests/endpoint-conformance/run.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "${ROOT}"
EMULATOR=infra/scripts/aws-emulator.sh
DDB_LOCAL=infra/scripts/dynamodb-local.sh
started=()

cleanup() {
  local script
  for script in "${started[@]}"; do
    "${script}" stop || true
  done
}
trap cleanup EXIT

if ! "${EMULATOR}" status >/dev/null 2>&1; then
  "${EMULATOR}" start >/dev/null
  started+=("${EMULATOR}")
fi
eval "$("${EMULATOR}" env)"

echo "== all conformance tests against ${AWS_ENDPOINT_URL} (${AWS_EMULATOR:-ministack})" >&2
cargo test --no-fail-fast -p endpoint-conformance "$@"

if [[ "${DYNAMODB_LOCAL:-1}" == "1" ]]; then
  if [[ ! -f .aws-emulator/dynamodb-local.pid ]] || ! kill -0 "$(cat .aws-emulator/dynamodb-local.pid)" 2>/dev/null; then
    "${DDB_LOCAL}" start >/dev/null
    started+=("${DDB_LOCAL}")
  fi
  eval "$("${DDB_LOCAL}" env)"
  echo "== DynamoDB tests against DynamoDB Local ${DYNAMODB_LOCAL_ENDPOINT}" >&2
  # The SDK's service-specific endpoint variable takes precedence over AWS_ENDPOINT_URL.
  AWS_ENDPOINT_URL_DYNAMODB="${DYNAMODB_LOCAL_ENDPOINT}" cargo test -p endpoint-conformance --test dynamodb -- dynamodb_
fi
