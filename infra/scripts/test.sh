#!/usr/bin/env bash
# Reelay's whole test suite, from a fresh clone: installs the project-local tools and the local AWS
# endpoints, starts them, runs every check, and stops what it started. `make test` calls this.
#
# Steps: fmt check, clippy -D warnings, the template rules, `sam validate --lint` and cfn-lint,
# every cargo test (unit, property, simulator, endpoint conformance, adapters) against MiniStack,
# then the DynamoDB suites again with DynamoDB pointed at AWS's DynamoDB Local, then Schemathesis
# against openapi.yaml (infra/scripts/schemathesis.sh), then the generated TypeScript and Python
# clients against the local stack (infra/scripts/clients-test.sh), then the sam local tier
# (infra/scripts/sam-local-test.sh: sam build + sam local invoke of all six functions), then the
# deploy-local tier (infra/scripts/deploy-local.sh: the same build deployed to MiniStack with
# sam deploy, the going-live steps and the demo through the deployed API).
# The CI-sized fault campaign (tests/campaign/tests) and the security suites (bad input, tenant
# isolation, IAM rules) are ordinary cargo tests, so they run in the workspace step.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "${ROOT}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# A suite run builds everything once from clean, so incremental caches and debug info are disk
# with no use: on a fresh clone the caches were 4.3 GB of an 11.9 GB target and debug info about
# 1.5 GB more (test executables 3.97 → 2.69 GB, rlibs 2.10 → 1.91 GB; verify 65 against 66),
# and CI's disk filled. A developer who wants either sets the variable before `make test`.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
export CARGO_PROFILE_DEV_DEBUG="${CARGO_PROFILE_DEV_DEBUG:-false}"
export CARGO_PROFILE_DEV_STRIP="${CARGO_PROFILE_DEV_STRIP:-debuginfo}"
SECONDS=0

step() { printf '\n==> %s (%ss)\n' "$*" "${SECONDS}"; }

# Stop only the endpoints this run started; one already running (a developer's) is left alone.
STARTED=()
cleanup() {
  for script in "${STARTED[@]}"; do
    "${script}" stop >/dev/null 2>&1 || true
  done
}
trap cleanup EXIT
start_endpoint() {
  local script="$1"
  if ! "${script}" status >/dev/null 2>&1; then
    STARTED+=("${script}")
  fi
  "${script}" start >/dev/null
}

step "installing project-local tools (SAM CLI, cfn-lint, cargo-lambda) and emulators"
infra/scripts/tools.sh install
infra/scripts/aws-emulator.sh install
infra/scripts/dynamodb-local.sh install
eval "$(infra/scripts/tools.sh env)"

step "rustfmt"
cargo fmt --all -- --check

step "clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "template: sam validate --lint, cfn-lint, Reelay's own rules"
AWS_DEFAULT_REGION=us-east-1 sam validate --lint --template-file template.yaml
cfn-lint template.yaml
cargo run --quiet --locked -p reelay-template -- check --template template.yaml

step "starting the local AWS endpoints"
start_endpoint infra/scripts/aws-emulator.sh
start_endpoint infra/scripts/dynamodb-local.sh
eval "$(infra/scripts/aws-emulator.sh env)"
eval "$(infra/scripts/dynamodb-local.sh env)"

step "cargo test (workspace) against ${AWS_ENDPOINT_URL}"
cargo test --workspace --locked --no-fail-fast

step "DynamoDB suites against AWS DynamoDB Local (${DYNAMODB_LOCAL_ENDPOINT})"
AWS_ENDPOINT_URL_DYNAMODB="${DYNAMODB_LOCAL_ENDPOINT}" \
  cargo test --locked -p endpoint-conformance --test dynamodb
AWS_ENDPOINT_URL_DYNAMODB="${DYNAMODB_LOCAL_ENDPOINT}" \
  cargo test --locked -p reelay-aws --test dynamo

step "Schemathesis: every operation of openapi.yaml on the local stack, with and without auth"
LOCAL_BIN="${CARGO_TARGET_DIR:-${ROOT}/target}/debug/reelay-local"
if [[ -x "${LOCAL_BIN}" ]]; then export REELAY_LOCAL_BIN="${LOCAL_BIN}"; fi
SCHEMATHESIS_MAX_TIME="${SCHEMATHESIS_MAX_TIME:-40}" infra/scripts/schemathesis.sh

step "generated clients: TypeScript and Python from openapi.yaml against the local stack"
infra/scripts/clients-test.sh

step "sam local tier: sam build (x86_64) and sam local invoke of every function"
infra/scripts/sam-local-test.sh

step "deploy-local tier: sam deploy of template.yaml to MiniStack, the going-live steps and the demo through the deployed API"
# The sam local tier just built .aws-sam/build (sam build --config-env local): deployed as it is.
infra/scripts/deploy-local.sh --no-build

step "all checks passed in ${SECONDS}s"
