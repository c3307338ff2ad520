#!/usr/bin/env bash
# The deploy-local tier (`make deploy-local`): template.yaml deployed with `sam deploy` to a local
# AWS endpoint (MiniStack with CloudFormation's SAM transform), the seven functions running there as
# Lambda functions (provided.al2023 bootstraps, SQS event source mappings, the HTTP API, the
# EventBridge schedule), then README's going-live steps against it: the stage secrets and a tenant
# with reelay-admin, accounts connected through OAuth, the demo batch of `make run` submitted
# through the deployed API's URL and followed to TikTok (the simulators), the summary judged as
# `make run` judges it, then the logs, metrics and dashboard the stack produced.
#
# What MiniStack cannot do of the template is not faked; it is listed in infra/DEPLOY-LOCAL.md
# with a reproduction each, and this script says where it steps in:
#   - FunctionErrorsAlarm (a metric-math alarm) is left out of the deployed template;
#   - the HTTP API's routes, which SAM puts in the API's OpenAPI Body (ignored by MiniStack), are
#     created from that Body with the API Gateway v2 API after the deploy;
#   - PublicBaseUrl is a local relay to the API's execute-api host (what a custom domain is on
#     AWS: README "The stable URL TikTok needs").
#
#   infra/scripts/deploy-local.sh [--no-build] [--docker] [--deadline SECONDS] [--keep]
#     --no-build   deploy the existing .aws-sam/build (sam build --config-env local) as it is
#     --docker     MiniStack runs each function in a container (LAMBDA_EXECUTOR=docker) on the
#                  private engine (infra/scripts/docker-private.sh, root: it adds a bridge), in
#                  an image with the RIE made locally; the simulators listen on the bridge
#                  address so the containers reach them. Default: MiniStack's own executor, the
#                  bootstrap as a host process behind MiniStack's Runtime API.
#     --deadline   seconds the demo jobs get to settle (default 600; the clock is real)
#     --keep       leave the endpoint, simulators and relay running at the end, passed or
#                  failed (it prints how to reach and stop them)
#
# Everything it starts (its own MiniStack, the simulators, the relay) is stopped on exit; it never
# touches another emulator. Exits non-zero if any step or check fails.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "${ROOT}"
BUILD=1
DEADLINE=600
KEEP=0
DOCKER=0
STARTED_ENGINE=0
while (($#)); do
  case "$1" in
    --no-build) BUILD=0 ;;
    --keep) KEEP=1 ;;
    --docker) DOCKER=1 ;;
    --deadline)
      DEADLINE="$2"
      shift
      ;;
    -h | --help)
      sed -n '2,32p' "$0"
      exit 0
      ;;
    *)
      echo "unknown argument: $1" >&2
      exit 2
      ;;
  esac
  shift
done

export SAM_CLI_TELEMETRY=0
export AWS_EMULATOR=ministack-sam
RUN_DIR="${ROOT}/.aws-emulator/deploy-local"
export AWS_EMULATOR_RUN_DIR="${RUN_DIR}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/reelay-deploy-local.XXXXXX")"
TARGET="${CARGO_TARGET_DIR:-${ROOT}/target}"
PY="${ROOT}/.aws-emulator/venv-ministack-sam/bin/python"
STACK="reelay-local"
STAGE="local"
PIDS=()
RESULTS=()
T0="$(date +%s.%N)"

elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
step() { printf '\n--> %s (%ss)\n' "$*" "$(elapsed "${T0}")"; }
timed() {
  local label="$1" t
  shift
  t="$(date +%s.%N)"
  "$@"
  RESULTS+=("$(printf '%-44s %8ss' "${label}" "$(elapsed "${t}")")")
}
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}
# first_line FILE PID: waits for a started server's first stdout line (its URL).
first_line() {
  local file="$1" pid="$2" _
  for _ in $(seq 1 300); do
    if [[ -s "${file}" ]]; then
      head -n1 "${file}"
      return 0
    fi
    kill -0 "${pid}" 2>/dev/null || break
    sleep 0.1
  done
  echo "a server did not start; its output:" >&2
  cat "${file}" "${file%.out}.err" >&2 2>/dev/null || true
  return 1
}

cleanup() {
  local rc=$? pid
  set +e
  if ((KEEP)); then
    echo
    echo "left running (--keep): endpoint ${AWS_ENDPOINT_URL:-?}, pids ${PIDS[*]:-}; logs in ${WORK}"
    echo "  eval \"\$(AWS_EMULATOR=ministack-sam AWS_EMULATOR_RUN_DIR=${RUN_DIR} infra/scripts/aws-emulator.sh env)\""
    echo "  stop: kill ${PIDS[*]:-}; AWS_EMULATOR=ministack-sam AWS_EMULATOR_RUN_DIR=${RUN_DIR} infra/scripts/aws-emulator.sh stop"
    exit "${rc}"
  fi
  for pid in "${PIDS[@]}"; do
    kill -TERM "${pid}" 2>/dev/null
  done
  for pid in "${PIDS[@]}"; do
    wait "${pid}" 2>/dev/null
  done
  infra/scripts/aws-emulator.sh stop >/dev/null 2>&1
  # The engine last: the function containers go with it.
  if ((STARTED_ENGINE)); then infra/scripts/docker-private.sh stop >/dev/null 2>&1; fi
  if ((rc != 0)); then
    echo "deploy-local FAILED; logs kept in ${WORK} and ${RUN_DIR}/ministack-sam.log" >&2
  else
    rm -rf "${WORK}"
  fi
  exit "${rc}"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step "tools (SAM CLI), the local endpoint with the SAM transform, Reelay's operator CLI and simulators"
timed "install tools" infra/scripts/tools.sh install
eval "$(infra/scripts/tools.sh env)"
timed "install MiniStack + SAM translator" infra/scripts/aws-emulator.sh install
if infra/scripts/aws-emulator.sh status >/dev/null 2>&1; then
  echo "a deploy-local endpoint is already running (${RUN_DIR}): stop it first" >&2
  trap - EXIT
  exit 1
fi
UPSTREAM_HOST=127.0.0.1
CHECK_MODE=""
if ((DOCKER)); then
  timed "install private engine" infra/scripts/docker-private.sh install
  if ! infra/scripts/docker-private.sh status >/dev/null 2>&1; then
    STARTED_ENGINE=1
  fi
  timed "start engine, Lambda image with the RIE" infra/scripts/docker-private.sh start
  infra/scripts/docker-private.sh lambda-image
  # MiniStack's environment: its docker client's engine, and the executor.
  eval "$(infra/scripts/docker-private.sh env)"
  export DOCKER_HOST LAMBDA_EXECUTOR=docker
  UPSTREAM_HOST="$(infra/scripts/docker-private.sh gateway)"
  CHECK_MODE=docker
fi
mkdir -p "${RUN_DIR}"
: >"${RUN_DIR}/ministack-sam.log"
timed "start MiniStack" infra/scripts/aws-emulator.sh start >/dev/null
eval "$(infra/scripts/aws-emulator.sh env)"
EMU_PORT="${AWS_ENDPOINT_URL##*:}"
if ((DOCKER)); then
  # MiniStack hands a container AWS_ENDPOINT_URL=http://host.docker.internal:<its port>, that
  # host being the bridge's address; MiniStack itself listens on 127.0.0.1 only.
  "${PY}" infra/scripts/deploy_local.py relay "${UPSTREAM_HOST}" "${EMU_PORT}" \
    >"${WORK}/relay.out" 2>"${WORK}/relay.err" &
  PIDS+=($!)
  first_line "${WORK}/relay.out" "${PIDS[-1]}" >/dev/null
fi
timed "cargo build (reelay-admin, simulators, driver)" \
  cargo build --quiet --locked -p reelay-admin -p ssemble-sim -p tiktok-sim -p reelay-local --bins
ADMIN=("${TARGET}/debug/reelay-admin" --stage "${STAGE}")

if ((BUILD)); then
  step "sam build --config-env local (cargo-lambda, x86_64)"
  timed "sam build" sam build --config-env local
elif [[ ! -f .aws-sam/build/template.yaml ]]; then
  echo "--no-build, but there is no .aws-sam/build/template.yaml (run sam build --config-env local)" >&2
  exit 1
fi

step "the simulators (real clock), and a stable public URL for the stage"
PUBLIC_PORT="$(free_port)"
PUBLIC_BASE_URL="http://127.0.0.1:${PUBLIC_PORT}"
SSEMBLE_KEY="sk_ssemble_$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
TIKTOK_CLIENT_KEY="deploy_local_$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')"
TIKTOK_CLIENT_SECRET="$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')"
# The simulator takes any well-formed key (a placeholder secret is not one, so a stage secret
# left unset fails the renders); TikTok's app credentials go through the environment.
"${TARGET}/debug/ssemble-sim" --host "${UPSTREAM_HOST}" --seed 1 --clip-bytes 2097152 \
  >"${WORK}/ssemble.out" 2>"${WORK}/ssemble.err" &
PIDS+=($!)
SSEMBLE_API_BASE_URL="$(first_line "${WORK}/ssemble.out" "${PIDS[-1]}")"
TIKTOK_SIM_CLIENT_KEY="${TIKTOK_CLIENT_KEY}" TIKTOK_SIM_CLIENT_SECRET="${TIKTOK_CLIENT_SECRET}" \
  "${TARGET}/debug/tiktok-sim" --host "${UPSTREAM_HOST}" --seed 1 \
  --webhook-url "${PUBLIC_BASE_URL}/webhooks/tiktok" \
  >"${WORK}/tiktok.out" 2>"${WORK}/tiktok.err" &
PIDS+=($!)
TIKTOK_API_BASE_URL="$(first_line "${WORK}/tiktok.out" "${PIDS[-1]}")"
echo "Ssemble simulator ${SSEMBLE_API_BASE_URL}, TikTok simulator ${TIKTOK_API_BASE_URL}"
echo "PublicBaseUrl ${PUBLIC_BASE_URL}"

step "sam deploy of template.yaml to ${AWS_ENDPOINT_URL} (stack ${STACK})"
DEPLOY_T0_MS="$(($(date +%s) * 1000))"
# MiniStack cannot create a metric-math alarm: left out, named (infra/DEPLOY-LOCAL.md).
"${PY}" infra/scripts/deploy_local.py template .aws-sam/build/template.yaml \
  .aws-sam/build/deploy-local.json FunctionErrorsAlarm
"${PY}" -c 'import boto3; boto3.client("s3").create_bucket(Bucket="reelay-deploy-local")'
deploy() {
  sam deploy --template-file .aws-sam/build/deploy-local.json --stack-name "${STACK}" \
    --s3-bucket reelay-deploy-local --s3-prefix "${STACK}" --capabilities CAPABILITY_IAM \
    --no-confirm-changeset --no-fail-on-empty-changeset --no-progressbar \
    --parameter-overrides "Stage=${STAGE} Architecture=x86_64 LogLevel=INFO" \
    "PublicBaseUrl=${PUBLIC_BASE_URL} SsembleApiBaseUrl=${SSEMBLE_API_BASE_URL}" \
    "TikTokApiBaseUrl=${TIKTOK_API_BASE_URL} TikTokAuthBaseUrl=${TIKTOK_API_BASE_URL}" \
    >"${WORK}/deploy.log" 2>&1 || {
    tail -n 60 "${WORK}/deploy.log" >&2
    return 1
  }
  grep -E "^(CREATE|UPDATE)_COMPLETE|Successfully|Error" "${WORK}/deploy.log" | tail -n 3
}
timed "sam deploy (package, upload, create stack)" deploy
eval "$("${PY}" infra/scripts/deploy_local.py outputs "${STACK}")"
API_ID="$("${PY}" -c 'import boto3,sys; print([r["PhysicalResourceId"] for r in boto3.client("cloudformation").list_stack_resources(StackName=sys.argv[1])["StackResourceSummaries"] if r["LogicalResourceId"]=="HttpApi"][0])' "${STACK}")"
# MiniStack ignores the API's OpenAPI Body, where SAM puts every route (infra/DEPLOY-LOCAL.md).
timed "HTTP API routes from the template's Body" "${PY}" infra/scripts/deploy_local.py routes "${STACK}"
"${PY}" infra/scripts/deploy_local.py proxy "${PUBLIC_PORT}" "${API_ID}" "${EMU_PORT}" \
  >"${WORK}/proxy.out" 2>"${WORK}/proxy.err" &
PIDS+=($!)
first_line "${WORK}/proxy.out" "${PIDS[-1]}" >/dev/null
[[ "${STACK_PublicBaseUrl}" == "${PUBLIC_BASE_URL}" ]] || {
  echo "the stack's PublicBaseUrl output is ${STACK_PublicBaseUrl}, expected ${PUBLIC_BASE_URL}" >&2
  exit 1
}
echo "API ${API_ID}: ${STACK_PublicBaseUrl} (OAuth redirect ${STACK_OAuthRedirectUrl})"

step "going live: the stage secrets and a tenant with reelay-admin"
# Before any request reaches the API: the ingest function reads the TikTok app secret once per
# cold start, so an environment started on the placeholder keeps it (README, Deploying with SAM).
printf '%s' "${SSEMBLE_KEY}" | "${ADMIN[@]}" secret set ssemble
printf '%s' "${TIKTOK_CLIENT_SECRET}" | "${ADMIN[@]}" secret set tiktok-app --client-key "${TIKTOK_CLIENT_KEY}"
code="$(curl -s -o /dev/null -w '%{http_code}' "${STACK_PublicBaseUrl}/v1/openapi.yaml")"
[[ "${code}" == 200 ]] || {
  echo "GET ${STACK_PublicBaseUrl}/v1/openapi.yaml answered ${code}" >&2
  exit 1
}
echo "GET ${STACK_PublicBaseUrl}/v1/openapi.yaml: 200"
# The key is printed once by reelay-admin; here it goes straight to the driver, never to the log.
REELAY_API_KEY="$("${ADMIN[@]}" tenant create tenant_demo --name "Deploy-local demo")"
export REELAY_API_KEY
[[ "${REELAY_API_KEY}" == rl_* ]] || {
  echo "reelay-admin tenant create printed no rl_ key" >&2
  exit 1
}
echo "tenant tenant_demo created (key not shown)"

step "the demo batch through the deployed API (real clock, deadline ${DEADLINE}s)"
demo() {
  TABLE_NAME="${STACK_TableName}" SSEMBLE_API_BASE_URL="${SSEMBLE_API_BASE_URL}" \
    TIKTOK_API_BASE_URL="${TIKTOK_API_BASE_URL}" REELAY_API_URL="${STACK_PublicBaseUrl}" \
    "${TARGET}/debug/reelay-deployed" --deadline "${DEADLINE}" | tee "${WORK}/demo.out"
}
timed "demo: connect, submit, published (end to end)" demo

step "operator's view: reelay-admin on the deployed stage"
"${ADMIN[@]}" accounts list tenant_demo
"${ADMIN[@]}" jobs list --state render_failed

step "the deployed stack's schedule, event source mappings, logs, metrics and dashboard"
timed "checks" "${PY}" infra/scripts/deploy_local.py check "${STACK}" "${DEPLOY_T0_MS}" ${CHECK_MODE}

printf '\n%s\n' "deploy-local tier (stack ${STACK} on ${AWS_ENDPOINT_URL}):"
printf '  %s\n' "${RESULTS[@]}"
printf '  %-44s %8ss\n' "total" "$(elapsed "${T0}")"
echo "deploy-local tier passed"
