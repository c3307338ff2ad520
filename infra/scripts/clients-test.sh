#!/usr/bin/env bash
# Generated clients against the real API: a TypeScript client (openapi-typescript types +
# openapi-fetch) and a Python client (openapi-python-client) are generated from
# functions/ingest-api/openapi.yaml, the hand-written tests in tests/clients/ are type-checked
# against them (tsc, mypy --strict) and then drive the local stack (reelay-local --no-demo, as
# infra/scripts/schemathesis.sh starts it, with the tenant key it prints once): connect an
# account through the OAuth flow, create a job, read it back, list it, replay it, and read the
# error envelope of a 401, 400s, a 422, a 404 and a 409. Exits non-zero when generation, a type
# check or a test fails.
#
#   infra/scripts/clients-test.sh                # both clients
#   infra/scripts/clients-test.sh python         # one of: typescript python
#
# The clients are generated on every run, never checked in: the document is the only source, so
# nothing can drift from it; a change of the document that breaks a client breaks this test.
# The generators are pinned (tests/clients/typescript/package-lock.json,
# tests/clients/python/requirements.txt) and installed into .tools/clients/ (git-ignored) only
# when a pin changes; the generated code and the reports stay in target/clients/ (git-ignored).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "${ROOT}"
SPEC="functions/ingest-api/openapi.yaml"
TOOLS="${ROOT}/.tools/clients"
WORK="${ROOT}/target/clients"
SRC="${ROOT}/tests/clients"
SECONDS=0

CLIENTS=("$@")
[[ ${#CLIENTS[@]} -gt 0 ]] || CLIENTS=(typescript python)
for c in "${CLIENTS[@]}"; do
  [[ "${c}" == typescript || "${c}" == python ]] || {
    echo "usage: $0 [typescript] [python]" >&2
    exit 2
  }
done
wants() { [[ " ${CLIENTS[*]} " == *" $1 "* ]]; }
step() { printf '==> %s (%ss)\n' "$*" "${SECONDS}" >&2; }

stamp_of() { cat "$@" | sha256sum | cut -d' ' -f1; }

# --- generators, installed only when their pins change --------------------------------------
NPM_DIR="${TOOLS}/npm"
PY_VENV="${TOOLS}/python"
if wants typescript; then
  stamp="$(stamp_of "${SRC}/typescript/package.json" "${SRC}/typescript/package-lock.json")"
  if [[ "$(cat "${NPM_DIR}/.installed" 2>/dev/null || true)" != "${stamp}" ]]; then
    step "installing openapi-typescript, openapi-fetch, typescript into .tools/clients/npm (npm ci)"
    rm -rf "${NPM_DIR}"
    mkdir -p "${NPM_DIR}"
    cp "${SRC}/typescript/package.json" "${SRC}/typescript/package-lock.json" "${NPM_DIR}/"
    (cd "${NPM_DIR}" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error >/dev/null)
    echo "${stamp}" >"${NPM_DIR}/.installed"
  fi
fi
if wants python; then
  stamp="$(stamp_of "${SRC}/python/requirements.txt")"
  if [[ "$(cat "${PY_VENV}/.installed" 2>/dev/null || true)" != "${stamp}" ]]; then
    step "installing openapi-python-client, pytest, mypy into .tools/clients/python"
    rm -rf "${PY_VENV}"
    python3 -m venv "${PY_VENV}"
    "${PY_VENV}/bin/pip" install --quiet --disable-pip-version-check -r "${SRC}/python/requirements.txt"
    "${PY_VENV}/bin/pip" check >/dev/null
    echo "${stamp}" >"${PY_VENV}/.installed"
  fi
fi

# --- generate and type-check, before any stack is started ----------------------------------
rm -rf "${WORK}"
mkdir -p "${WORK}"
if wants typescript; then
  step "generating the TypeScript client (openapi-typescript) and type-checking the test (tsc)"
  TS="${WORK}/typescript"
  mkdir -p "${TS}"
  cp "${SRC}/typescript/client.test.ts" "${SRC}/typescript/tsconfig.json" "${SRC}/typescript/package.json" "${TS}/"
  ln -s "${NPM_DIR}/node_modules" "${TS}/node_modules"
  "${NPM_DIR}/node_modules/.bin/openapi-typescript" "${SPEC}" -o "${TS}/schema.ts" >"${WORK}/typescript-generate.log" 2>&1 ||
    { cat "${WORK}/typescript-generate.log" >&2; echo "!! openapi-typescript failed" >&2; exit 1; }
  "${NPM_DIR}/node_modules/.bin/tsc" -p "${TS}" ||
    { echo "!! the TypeScript test does not type-check against the client generated from ${SPEC}" >&2; exit 1; }
fi
if wants python; then
  step "generating the Python client (openapi-python-client) and type-checking the test (mypy --strict)"
  PY="${WORK}/python"
  mkdir -p "${PY}"
  PATH="${PY_VENV}/bin:${PATH}" "${PY_VENV}/bin/openapi-python-client" generate --path "${SPEC}" \
    --output-path "${PY}/reelay_client" --meta none >"${WORK}/python-generate.log" 2>&1 ||
    { cat "${WORK}/python-generate.log" >&2; echo "!! openapi-python-client failed" >&2; exit 1; }
  # A part of the document the generator cannot express is left out of the client with a
  # warning. The one known and accepted: GET /v1/openapi.yaml answers YAML, which it does not
  # parse (the operation is generated, without a typed body). Any other warning fails the run.
  unexpected="$(grep '^WARNING' "${WORK}/python-generate.log" | grep -v '^WARNING parsing GET /v1/openapi.yaml within default\.$' || true)"
  if [[ -n "${unexpected}" ]]; then
    cat "${WORK}/python-generate.log" >&2
    echo "!! openapi-python-client left parts of ${SPEC} out of the client:" >&2
    echo "${unexpected}" >&2
    exit 1
  fi
  MYPYPATH="${PY}" "${PY_VENV}/bin/mypy" --config-file "${SRC}/python/mypy.ini" \
    --cache-dir "${TOOLS}/mypy-cache" "${SRC}/python/test_client.py" ||
    { echo "!! the Python test does not type-check against the client generated from ${SPEC}" >&2; exit 1; }
fi

# --- the local stack, as schemathesis.sh starts it ------------------------------------------
BIN="${REELAY_LOCAL_BIN:-}"
if [[ -z "${BIN}" ]]; then
  step "building the local runner"
  cargo build --quiet --locked -p reelay-local
  BIN="${CARGO_TARGET_DIR:-${ROOT}/target}/debug/reelay-local"
fi

# The AWS endpoint: started here only if it is not running, and then stopped at the end.
EMULATOR_STARTED=""
infra/scripts/aws-emulator.sh status >/dev/null 2>&1 || EMULATOR_STARTED=1
infra/scripts/aws-emulator.sh start >/dev/null
eval "$(infra/scripts/aws-emulator.sh env)"

RUNNER_PID=""
# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() {
  if [[ -n "${RUNNER_PID}" ]] && kill -0 "${RUNNER_PID}" 2>/dev/null; then
    kill -INT "${RUNNER_PID}" 2>/dev/null || true
    for _ in $(seq 1 20); do kill -0 "${RUNNER_PID}" 2>/dev/null || break; sleep 0.5; done
    kill "${RUNNER_PID}" 2>/dev/null || true
  fi
  if [[ -n "${EMULATOR_STARTED}" ]]; then
    infra/scripts/aws-emulator.sh stop >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT
# The runner's stdout holds the tenant's key: shown only with it blanked out.
show_runner_output() {
  sed -e 's/\(API key (shown once): *\).*/\1<redacted>/' -e 's/REELAY_KEY=[^ ]*/REELAY_KEY=<redacted>/' \
    "${WORK}/stdout" >&2
}

step "starting the local stack (no demo; its own tables and queues)"
# Created before the runner starts: the loop below reads it at once (a missing file would end
# the script under set -e before the background shell has opened it).
: >"${WORK}/stdout"
"${BIN}" --no-demo --port 0 --log-file "${WORK}/reelay-local.log" >"${WORK}/stdout" 2>&1 &
RUNNER_PID=$!
API="" KEY=""
for _ in $(seq 1 240); do
  API="$(sed -n 's/^ *API  *\(http[^ ]*\).*/\1/p' "${WORK}/stdout" | head -1)"
  KEY="$(sed -n 's/.*API key (shown once): *\([^ ]*\).*/\1/p' "${WORK}/stdout" | head -1)"
  [[ -n "${API}" && -n "${KEY}" ]] && break
  kill -0 "${RUNNER_PID}" 2>/dev/null || { show_runner_output; echo "!! reelay-local exited" >&2; exit 1; }
  sleep 0.5
done
[[ -n "${API}" && -n "${KEY}" ]] || { show_runner_output; echo "!! reelay-local did not come up" >&2; exit 1; }
echo "    API ${API}" >&2
export REELAY_API="${API}" REELAY_KEY="${KEY}"

# --- the tests ---------------------------------------------------------------------------
# The key must not reach the console or the reports even when a test fails: pytest prints a
# failing test's arguments (the client, whose repr holds the Authorization header) in its long
# tracebacks, hence --tb=short, and every line is filtered for the key (rl_ + 64 hex digits) and
# any long hex run that could be part of it.
redact() { sed -u -E -e "s/${KEY}/<redacted key>/g" -e 's/rl_[0-9a-f]+/rl_<redacted>/g' -e 's/[0-9a-f]{24,}/<redacted hex>/g'; }
declare -A RESULT
if wants typescript; then
  step "TypeScript client against the local stack (node --test)"
  status=0
  node --test --test-reporter=spec "${TS}/out/client.test.js" 2>&1 | redact | tee "${WORK}/typescript.out" || status=$?
  RESULT[typescript]="${status}"
fi
if wants python; then
  step "Python client against the local stack (pytest)"
  status=0
  PYTHONPATH="${PY}" PYTHONDONTWRITEBYTECODE=1 "${PY_VENV}/bin/pytest" -p no:cacheprovider -q --tb=short \
    --junitxml "${WORK}/python.xml" "${SRC}/python/test_client.py" 2>&1 | redact | tee "${WORK}/python.out" || status=$?
  [[ ! -f "${WORK}/python.xml" ]] || { redact <"${WORK}/python.xml" >"${WORK}/python.xml.tmp" && mv "${WORK}/python.xml.tmp" "${WORK}/python.xml"; }
  RESULT[python]="${status}"
fi

result=0
for c in "${CLIENTS[@]}"; do
  if [[ "${RESULT[${c}]}" == 0 ]]; then
    echo "    ${c}: ok" >&2
  else
    echo "    ${c}: FAIL (exit ${RESULT[${c}]})" >&2
    result=1
  fi
done
step "clients-test.sh finished (generated clients and reports in target/clients/)"
exit "${result}"
