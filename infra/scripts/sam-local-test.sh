#!/usr/bin/env bash
# The sam local tier: `sam build --config-env local` (cargo-lambda, x86_64), then `sam local invoke`
# of every function with its fixture (tests/sam-local/events/) against stage `local` resources in
# MiniStack, asserting on each answer. Proves the template, the build and the bootstrap together.
#
# Where no Docker engine is given (DOCKER_HOST unset), a private one is used
# (infra/scripts/docker-private.sh, with a locally made base image; no registry is needed).
# Containers sit on that engine's bridge; MiniStack listens on 127.0.0.1 only, so a relay started
# here listens on the bridge's host address and forwards to it. SAM hands a function only its
# template variables and a fixed AWS_* set (AWS_ENDPOINT_URL cannot get through), so the endpoint
# reaches the SDK as `endpoint_url` in the shared config file the base image names
# (AWS_CONFIG_FILE=/var/task/.sam-local/aws-config), written into each built function's directory
# for the run and removed afterwards.
#
# Everything this script started (engine, emulator, relay) is stopped on exit; anything already
# running is used and left alone. Exits non-zero if any step or assertion fails.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "${ROOT}"
EVENTS="tests/sam-local/events"
BUILD_DIR="${ROOT}/.aws-sam/build"
INVOKE_TIMEOUT_S="${SAM_LOCAL_INVOKE_TIMEOUT:-180}"
export SAM_CLI_TELEMETRY=0

WORK="$(mktemp -d "${TMPDIR:-/tmp}/reelay-sam-local.XXXXXX")"
STARTED_ENGINE=0
STARTED_EMULATOR=0
RELAY_PID=""
FAILED=0
RESULTS=()
T0="$(date +%s.%N)"

elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
step() { printf '\n--> %s (%ss)\n' "$*" "$(elapsed "${T0}")"; }
timed() {
  # timed LABEL CMD...: runs CMD, records its duration under LABEL.
  local label="$1" t
  shift
  t="$(date +%s.%N)"
  "$@"
  RESULTS+=("$(printf '%-34s %8ss' "${label}" "$(elapsed "${t}")")")
}

cleanup() {
  local rc=$?
  set +e
  if [[ -n "${RELAY_PID}" ]]; then
    kill -TERM "${RELAY_PID}" 2>/dev/null
    wait "${RELAY_PID}" 2>/dev/null
  fi
  rm -rf "${BUILD_DIR:?}"/*/.sam-local
  if ((STARTED_EMULATOR)); then infra/scripts/aws-emulator.sh stop >/dev/null 2>&1; fi
  if ((STARTED_ENGINE)); then infra/scripts/docker-private.sh stop >/dev/null 2>&1; fi
  rm -rf "${WORK}"
  exit "${rc}"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step "tools (SAM CLI, cargo-lambda), the private docker engine, the AWS emulator"
timed "install tools" infra/scripts/tools.sh install
eval "$(infra/scripts/tools.sh env)"
if [[ -z "${DOCKER_HOST:-}" ]]; then
  timed "install private engine" infra/scripts/docker-private.sh install
  if ! infra/scripts/docker-private.sh status >/dev/null 2>&1; then
    STARTED_ENGINE=1
  fi
  timed "start engine (+ base image)" infra/scripts/docker-private.sh start
  eval "$(infra/scripts/docker-private.sh env)"
  GATEWAY="$(infra/scripts/docker-private.sh gateway)"
else
  # A given engine: the host's address on its default bridge.
  GATEWAY="$(docker network inspect bridge --format '{{(index .IPAM.Config 0).Gateway}}')"
fi
infra/scripts/aws-emulator.sh install
if ! infra/scripts/aws-emulator.sh status >/dev/null 2>&1; then
  STARTED_EMULATOR=1
fi
timed "start MiniStack" infra/scripts/aws-emulator.sh start >/dev/null
eval "$(infra/scripts/aws-emulator.sh env)"
EMULATOR_PORT="${AWS_ENDPOINT_URL##*:}"

step "provisioning stage local (isolated suffix) in ${AWS_ENDPOINT_URL}"
SUFFIX="sam$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')"
cat >"${WORK}/seed.json" <<'EOF'
{"SsembleSecret": {"apiKey": "sam-local-ssemble-key"},
 "TikTokAppSecret": {"clientKey": "sam_local_client_key", "clientSecret": "sam-local-client-secret"}}
EOF
# Upstream APIs point at a closed local port: nothing in this tier may reach the internet.
provision() {
  cargo run --quiet --locked -p reelay-template -- provision --template template.yaml \
    --stage local --suffix "${SUFFIX}" --secrets-seed "${WORK}/seed.json" \
    --param PublicBaseUrl=http://127.0.0.1:9 --param SsembleApiBaseUrl=http://127.0.0.1:9 \
    --param TikTokApiBaseUrl=http://127.0.0.1:9 --param TikTokAuthBaseUrl=http://127.0.0.1:9 \
    >"${WORK}/provisioned.env"
}
timed "provision (reelay-template)" provision

# --env-vars: per function (logical id), the template's own variable names with the provisioned
# values (SAM would otherwise pass each Ref as the resource's logical id).
(
  set +u
  # shellcheck disable=SC1091 # generated above
  source "${WORK}/provisioned.env"
  set -u
  python3 - template.yaml >"${WORK}/env-vars.json" <<'EOF'
import json, os, re, sys

# The template's YAML has intrinsic-function tags; only Environment variable names are needed,
# so it is read as text: each function's `Variables:` block under `Environment:`.
text = open(sys.argv[1]).read()
functions, current, in_vars, indent = {}, None, False, 0
for line in text.splitlines():
    m = re.match(r"^  (\w+):\s*$", line)
    if m:
        current, in_vars = m.group(1), False
        continue
    if current is None:
        continue
    if re.match(r"^\s+Type: AWS::Serverless::Function\s*$", line):
        functions.setdefault(current, [])
    v = re.match(r"^(\s+)Variables:\s*$", line)
    if v:
        in_vars, indent = True, len(v.group(1))
        continue
    if in_vars:
        k = re.match(r"^(\s+)([A-Z][A-Z0-9_]*):", line)
        if k and len(k.group(1)) > indent:
            functions.setdefault(current, []).append(k.group(2))
        elif line.strip() and not line.strip().startswith("#"):
            in_vars = False
env = {
    fn: {k: os.environ[k] for k in keys if k in os.environ}
    for fn, keys in functions.items()
}
for fn in env:
    env[fn]["RUST_LOG"] = "info"
json.dump(env, sys.stdout, indent=2, sort_keys=True)
EOF
)
for fn in IngestApiFunction SsembleWebhookFunction TikTokWebhookFunction \
  RenderSubmitterFunction PublisherFunction ReconcilerFunction ClientWebhooksFunction; do
  if ! jq -e --arg fn "${fn}" '.[$fn].TABLE_NAME' "${WORK}/env-vars.json" >/dev/null; then
    echo "env-vars: ${fn} has no TABLE_NAME; provision output was:" >&2
    cat "${WORK}/provisioned.env" >&2
    exit 1
  fi
done

step "sam build --config-env local (cargo-lambda, x86_64)"
timed "sam build" sam build --config-env local

# The relay: the bridge's host address -> MiniStack on loopback.
python3 - "${GATEWAY}" "${EMULATOR_PORT}" >"${WORK}/relay.log" 2>&1 <<'EOF' &
import asyncio, sys

listen_host, target_port = sys.argv[1], int(sys.argv[2])

async def pipe(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()

async def handle(client_reader, client_writer):
    try:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", target_port)
    except OSError:
        client_writer.close()
        return
    await asyncio.gather(pipe(client_reader, up_writer), pipe(up_reader, client_writer))

async def main():
    server = await asyncio.start_server(handle, listen_host, 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()

asyncio.run(main())
EOF
RELAY_PID=$!
for _ in $(seq 1 50); do
  [[ -s "${WORK}/relay.log" ]] && break
  sleep 0.1
done
RELAY_PORT="$(head -n1 "${WORK}/relay.log")"
[[ "${RELAY_PORT}" =~ ^[0-9]+$ ]] || {
  echo "relay did not start: $(cat "${WORK}/relay.log")" >&2
  exit 1
}
CONTAINER_ENDPOINT="http://${GATEWAY}:${RELAY_PORT}"
for dir in "${BUILD_DIR}"/*Function; do
  mkdir -p "${dir}/.sam-local"
  printf '[default]\nregion = %s\nendpoint_url = %s\n' "${AWS_REGION}" "${CONTAINER_ENDPOINT}" \
    >"${dir}/.sam-local/aws-config"
done

# invoke FUNCTION EVENT JQ_ASSERTION: the answer (stdout's JSON) must satisfy the jq filter.
invoke() {
  local fn="$1" event="$2" check="$3" t status="ok" out="${WORK}/${1}.out" log="${WORK}/${1}.log"
  step "sam local invoke ${fn} -e ${event}"
  t="$(date +%s.%N)"
  if ! timeout "${INVOKE_TIMEOUT_S}" sam local invoke "${fn}" --config-env local --skip-pull-image \
    --env-vars "${WORK}/env-vars.json" -e "${EVENTS}/${event}" >"${out}" 2>"${log}"; then
    status="FAILED (sam local invoke exited non-zero)"
  elif ! tail -n1 "${out}" | jq -e "${check}" >/dev/null 2>&1; then
    status="FAILED (answer does not satisfy: ${check})"
  fi
  local took
  took="$(elapsed "${t}")"
  echo "answer: $(tail -n1 "${out}" | cut -c1-600)"
  if [[ "${status}" != ok ]]; then
    FAILED=1
    echo "${fn}: ${status}; its log follows" >&2
    tail -n 40 "${log}" >&2
  fi
  RESULTS+=("$(printf '%-34s %8ss  %s' "invoke ${fn}" "${took}" "${status}")")
}

# An HTTP answer's body as JSON, whether or not it came base64-encoded.
BODY='(if .isBase64Encoded then (.body | @base64d) else .body end | fromjson)'
invoke IngestApiFunction ingest-api-create-job-no-key.json \
  ".statusCode == 401 and (${BODY} | .error.code == \"unauthenticated\") and .headers[\"x-request-id\"] == \"id\""
invoke SsembleWebhookFunction ssemble-webhook-forged-token.json \
  ".statusCode == 404 and (${BODY} | .error.code == \"not_found\")"
invoke TikTokWebhookFunction tiktok-webhook-forged-signature.json \
  ".statusCode == 401 and (${BODY} | .error.code == \"signature_invalid\")"
# Unknown job acknowledged; the undecodable body failed, and the FIFO batch stops there.
invoke RenderSubmitterFunction render-submitter-fifo-batch.json \
  '[.batchItemFailures[].itemIdentifier] == ["7a8b9c0d-1e2f-4a3b-8c4d-5e6f7a8b9c0d", "c3d4e5f6-a7b8-4c9d-8e0f-1a2b3c4d5e6f"]'
invoke PublisherFunction publisher-fifo-batch.json \
  '[.batchItemFailures[].itemIdentifier] == ["5d6e7f80-9a1b-4c2d-8e3f-4a5b6c7d8e9f", "a1b2c3d4-e5f6-4a7b-9c8d-0e1f2a3b4c5d"]'
# A fresh stage: nothing is due, nothing failed.
invoke ReconcilerFunction reconciler-scheduled.json \
  'has("due") and has("moved") and .due == 0 and .failed == 0'
# One function, two triggers: a stream batch with nothing to send, a delivery that is not one.
invoke ClientWebhooksFunction client-webhooks-stream.json \
  '.batchItemFailures == []'
invoke ClientWebhooksFunction client-webhooks-delivery.json \
  '[.batchItemFailures[].itemIdentifier] == ["9f8e7d6c-5b4a-4c3d-8e2f-1a0b9c8d7e6f"]'

printf '\n%s\n' "sam local tier (stage local-${SUFFIX}, containers reach MiniStack at ${CONTAINER_ENDPOINT}):"
printf '  %s\n' "${RESULTS[@]}"
printf '  %-34s %8ss\n' "total" "$(elapsed "${T0}")"
if ((FAILED)); then
  echo "sam local tier FAILED" >&2
  exit 1
fi
echo "sam local tier passed"
