#!/usr/bin/env bash
# Project-local build/deploy tools: SAM CLI, cfn-lint and cargo-lambda (with zig) in .tools/venv.
# Versions are pinned so `sam validate --lint` and `sam build` behave the same on every machine.
#
#   infra/scripts/tools.sh install   # idempotent (stamp file records the pinned set)
#   eval "$(infra/scripts/tools.sh env)"
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TOOLS_DIR="${ROOT}/.tools"
VENV="${TOOLS_DIR}/venv"
STAMP="${TOOLS_DIR}/.installed"

AWS_SAM_CLI_VERSION="1.170.0"
CFN_LINT_VERSION="1.58.0"
CARGO_LAMBDA_VERSION="1.9.2"
PINS="aws-sam-cli==${AWS_SAM_CLI_VERSION} cfn-lint==${CFN_LINT_VERSION} cargo-lambda==${CARGO_LAMBDA_VERSION}"

export SAM_CLI_TELEMETRY=0

install() {
  if [[ -f "${STAMP}" && "$(cat "${STAMP}")" == "${PINS}" && -x "${VENV}/bin/sam" ]]; then
    echo "tools already installed: ${PINS}" >&2
    return 0
  fi
  mkdir -p "${TOOLS_DIR}"
  python3 -m venv "${VENV}"
  # shellcheck disable=SC2086 # PINS is a deliberate word list
  "${VENV}/bin/pip" install --quiet --disable-pip-version-check ${PINS}
  echo "${PINS}" >"${STAMP}"
  echo "tools installed in ${VENV}: ${PINS}" >&2
}

print_env() {
  echo "export PATH=\"${VENV}/bin:\${PATH}\""
  echo "export SAM_CLI_TELEMETRY=0"
}

case "${1:-}" in
  install) install ;;
  env) print_env ;;
  *)
    echo "usage: $0 {install|env}" >&2
    exit 2
    ;;
esac
