#!/usr/bin/env bash
# A private Docker engine for `sam local` on machines without one (docs: shared/spec/local-tooling.md).
# Debian's docker.io/containerd/runc/tini/busybox-static are fetched with `apt-get download` and
# unpacked with `dpkg -x` under .docker-private/ (git-ignored); nothing is installed system-wide.
# dockerd runs with its own data root, exec root, unix socket and bridge (reelay-docker0), without
# touching iptables. `start` also makes the Lambda base image SAM builds its runtime image FROM
# (no registry here): busybox + the host's glibc, imported as public.ecr.aws/lambda/provided:al2023-x86_64.
#
#   infra/scripts/docker-private.sh install|start|env|stop|status|base-image|lambda-image|gateway
#   eval "$(infra/scripts/docker-private.sh env)"
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
STATE_DIR="${ROOT}/.docker-private"
PKG_DIR="${STATE_DIR}/debs"
PREFIX="${STATE_DIR}/root"
STAMP="${PREFIX}/.installed"
DATA_ROOT="${STATE_DIR}/data"
# dockerd's exec root holds the containerd socket: unix socket paths are limited to 108 bytes,
# so it lives under /tmp, named after this checkout.
EXEC_ROOT="/tmp/reelay-docker-$(printf '%s' "${ROOT}" | cksum | cut -d' ' -f1)"
SOCKET="${STATE_DIR}/docker.sock"
PID_FILE="${STATE_DIR}/dockerd.pid"
DOCKERD_PID_FILE="${STATE_DIR}/dockerd.own.pid"
LOG_FILE="${STATE_DIR}/dockerd.log"
# Bridge name and subnet are per checkout too, so two clones' engines never share a bridge.
CHECKOUT_SUM="$(printf '%s' "${ROOT}" | cksum | cut -d' ' -f1)"
BRIDGE="${REELAY_DOCKER_BRIDGE:-rly$(printf '%08x' "${CHECKOUT_SUM}" | cut -c1-8)}"
BRIDGE_CIDR="${REELAY_DOCKER_BRIDGE_CIDR:-172.29.$((CHECKOUT_SUM % 250)).1/24}"
BRIDGE_MARK="${STATE_DIR}/bridge.created"
START_TIMEOUT_S="${DOCKER_PRIVATE_START_TIMEOUT:-60}"
PACKAGES=(docker.io containerd runc tini busybox-static)
BASE_IMAGE="public.ecr.aws/lambda/provided:al2023-x86_64"
# SAM passes a function only its template variables and a fixed AWS_* set, so AWS_ENDPOINT_URL cannot
# reach it; the SDK reads endpoint_url from this shared config file instead, which a test writes into
# the mounted build directory (absent, it is ignored and the SDK uses AWS's endpoints).
AWS_CONFIG_IN_TASK="/var/task/.sam-local/aws-config"
# Bumped whenever the image's recipe changes, so an engine's existing image is remade.
BASE_IMAGE_REVISION="1"

install() {
  if [[ -f "${STAMP}" && "$(cat "${STAMP}")" == "${PACKAGES[*]}" && -x "${PREFIX}/usr/sbin/dockerd" ]]; then
    return 0
  fi
  rm -rf "${PKG_DIR}" "${PREFIX}"
  mkdir -p "${PKG_DIR}" "${PREFIX}"
  # apt warns that it downloads as root (the folder is not _apt's): harmless, so quiet.
  (cd "${PKG_DIR}" && apt-get download "${PACKAGES[@]}" >/dev/null 2>&1) || {
    echo "apt-get download ${PACKAGES[*]} failed" >&2
    return 1
  }
  local deb
  for deb in "${PKG_DIR}"/*.deb; do
    dpkg -x "${deb}" "${PREFIX}"
  done
  echo "${PACKAGES[*]}" >"${STAMP}"
  echo "docker engine unpacked in ${PREFIX}" >&2
}

engine_path() {
  echo "${PREFIX}/usr/bin:${PREFIX}/usr/sbin:${PREFIX}/usr/libexec/docker/cli-plugins:${PATH}"
}

running_pid() {
  [[ -f "${PID_FILE}" ]] || return 1
  local pid
  pid="$(cat "${PID_FILE}")"
  [[ -n "${pid}" ]] && kill -0 "${pid}" 2>/dev/null || return 1
  echo "${pid}"
}

docker_cli() {
  DOCKER_HOST="unix://${SOCKET}" PATH="$(engine_path)" docker "$@"
}

make_bridge() {
  if ip link show "${BRIDGE}" >/dev/null 2>&1; then
    return 0
  fi
  ip link add "${BRIDGE}" type bridge
  ip addr add "${BRIDGE_CIDR}" dev "${BRIDGE}"
  ip link set "${BRIDGE}" up
  touch "${BRIDGE_MARK}"
}

start() {
  if running_pid >/dev/null; then
    base_image
    return 0
  fi
  install
  mkdir -p "${DATA_ROOT}" "${EXEC_ROOT}"
  make_bridge
  rm -f "${SOCKET}"
  # exec: $! is dockerd itself (it starts and stops its own containerd), so stop signals exactly it.
  (PATH="$(engine_path)" exec dockerd \
    --data-root "${DATA_ROOT}" --exec-root "${EXEC_ROOT}" \
    --pidfile "${DOCKERD_PID_FILE}" -H "unix://${SOCKET}" \
    --bridge "${BRIDGE}" --iptables=false --ip-masq=false --ip6tables=false \
    --storage-driver overlay2) >"${LOG_FILE}" 2>&1 &
  local pid=$!
  echo "${pid}" >"${PID_FILE}"
  local deadline=$((SECONDS + START_TIMEOUT_S))
  until docker_cli version >/dev/null 2>&1; do
    if ! kill -0 "${pid}" 2>/dev/null; then
      echo "dockerd exited during startup; log follows:" >&2
      tail -n 40 "${LOG_FILE}" >&2
      rm -f "${PID_FILE}"
      remove_bridge
      return 1
    fi
    if ((SECONDS >= deadline)); then
      echo "dockerd not ready after ${START_TIMEOUT_S}s; log follows:" >&2
      tail -n 40 "${LOG_FILE}" >&2
      stop
      return 1
    fi
    sleep 0.2
  done
  base_image
}

# The image SAM's runtime Dockerfile starts FROM. It only ADDs the emulator and runs `mv`/`chmod`,
# and the bootstrap is linked against glibc: busybox plus the host's loader and libraries suffice.
base_image() {
  if [[ "$(docker_cli image inspect --format '{{index .Config.Labels "org.reelay.base-image"}}' \
    "${BASE_IMAGE}" 2>/dev/null)" == "${BASE_IMAGE_REVISION}" ]]; then
    return 0
  fi
  local rootfs="${STATE_DIR}/base-rootfs"
  rm -rf "${rootfs}"
  mkdir -p "${rootfs}"/{bin,etc,lib64,tmp,var/task,var/runtime,opt,usr/lib/x86_64-linux-gnu}
  chmod 1777 "${rootfs}/tmp"
  cp "${PREFIX}/bin/busybox" "${rootfs}/bin/busybox"
  local tool
  for tool in sh mv chmod cp ls cat env mkdir rm; do
    ln -s busybox "${rootfs}/bin/${tool}"
  done
  ln -s ../bin "${rootfs}/usr/bin"
  cp -L /lib64/ld-linux-x86-64.so.2 "${rootfs}/lib64/"
  local lib
  for lib in libc.so.6 libm.so.6 libpthread.so.0 libdl.so.2 librt.so.1 libgcc_s.so.1; do
    cp -L "/lib/x86_64-linux-gnu/${lib}" "${rootfs}/usr/lib/x86_64-linux-gnu/"
  done
  ln -s usr/lib "${rootfs}/lib"
  printf 'root:x:0:0:root:/root:/bin/sh\nsbx_user1051:x:993:990::/home/sbx_user1051:/sbin/nologin\n' \
    >"${rootfs}/etc/passwd"
  printf 'root:x:0:\n' >"${rootfs}/etc/group"
  if [[ -f /etc/ssl/certs/ca-certificates.crt ]]; then
    mkdir -p "${rootfs}/etc/ssl/certs" "${rootfs}/etc/pki/tls/certs"
    cp /etc/ssl/certs/ca-certificates.crt "${rootfs}/etc/ssl/certs/"
    cp /etc/ssl/certs/ca-certificates.crt "${rootfs}/etc/pki/tls/certs/ca-bundle.crt"
  fi
  tar -C "${rootfs}" -c . | docker_cli import \
    --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin' \
    --change 'ENV LAMBDA_TASK_ROOT=/var/task' \
    --change 'ENV LAMBDA_RUNTIME_DIR=/var/runtime' \
    --change 'WORKDIR /var/task' \
    --change "ENV AWS_CONFIG_FILE=${AWS_CONFIG_IN_TASK}" \
    --change "LABEL org.reelay.base-image=${BASE_IMAGE_REVISION}" \
    - "${BASE_IMAGE}" >/dev/null
  rm -rf "${rootfs}"
  echo "base image ${BASE_IMAGE} made locally" >&2
}

# The image MiniStack runs a provided.* function in under LAMBDA_EXECUTOR=docker
# (public.ecr.aws/lambda/provided:al2023): the base image above plus the Lambda Runtime Interface
# Emulator from the SAM CLI wheel (infra/scripts/tools.sh install) and the official image's
# entrypoint contract (the handler name first; the RIE runs /var/runtime/bootstrap).
LAMBDA_IMAGE="public.ecr.aws/lambda/provided:al2023"
LAMBDA_IMAGE_REVISION="1"
lambda_image() {
  base_image
  if [[ "$(docker_cli image inspect --format '{{index .Config.Labels "org.reelay.lambda-image"}}' \
    "${LAMBDA_IMAGE}" 2>/dev/null)" == "${LAMBDA_IMAGE_REVISION}" ]]; then
    return 0
  fi
  local rie ctx="${STATE_DIR}/lambda-image"
  rie="$(ls "${ROOT}"/.tools/venv/lib/python3*/site-packages/samcli/local/rapid/aws-lambda-rie-x86_64 2>/dev/null | head -n1)"
  [[ -n "${rie}" ]] || {
    echo "no aws-lambda-rie-x86_64: run infra/scripts/tools.sh install first" >&2
    return 1
  }
  rm -rf "${ctx}"
  mkdir -p "${ctx}"
  cp "${rie}" "${ctx}/aws-lambda-rie"
  cat >"${ctx}/lambda-entrypoint.sh" <<'SH'
#!/bin/sh
if [ $# -ne 1 ]; then echo "entrypoint requires the handler name to be the first argument" 1>&2; exit 142; fi
export _HANDLER="$1"
if [ -z "${AWS_LAMBDA_RUNTIME_API}" ]; then
  exec /usr/local/bin/aws-lambda-rie /var/runtime/bootstrap
else
  exec /var/runtime/bootstrap
fi
SH
  chmod 755 "${ctx}/aws-lambda-rie" "${ctx}/lambda-entrypoint.sh"
  cat >"${ctx}/Dockerfile" <<DOCKERFILE
FROM ${BASE_IMAGE}
COPY aws-lambda-rie /usr/local/bin/aws-lambda-rie
COPY lambda-entrypoint.sh /lambda-entrypoint.sh
LABEL org.reelay.lambda-image=${LAMBDA_IMAGE_REVISION}
ENTRYPOINT ["/lambda-entrypoint.sh"]
DOCKERFILE
  docker_cli build -q -t "${LAMBDA_IMAGE}" "${ctx}" >/dev/null
  rm -rf "${ctx}"
  echo "Lambda image ${LAMBDA_IMAGE} (with the RIE) made locally" >&2
}

print_env() {
  if ! running_pid >/dev/null; then
    echo "the private docker engine is not running: run '$0 start' first" >&2
    return 1
  fi
  echo "export DOCKER_HOST=unix://${SOCKET}"
}

# The host's address on the engine's bridge: what a container dials to reach a host service.
gateway() {
  echo "${BRIDGE_CIDR%/*}"
}

remove_bridge() {
  if [[ -f "${BRIDGE_MARK}" ]]; then
    ip link del "${BRIDGE}" 2>/dev/null || true
    rm -f "${BRIDGE_MARK}"
  fi
}

stop() {
  local pid
  if pid="$(running_pid)"; then
    kill -TERM "${pid}" 2>/dev/null || true
    local _
    for _ in $(seq 1 150); do
      kill -0 "${pid}" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "${pid}" 2>/dev/null; then
      echo "dockerd (pid ${pid}) ignored TERM for 15s; sending KILL" >&2
      kill -KILL "${pid}" 2>/dev/null || true
    fi
  fi
  rm -f "${PID_FILE}" "${SOCKET}"
  remove_bridge
  # What dockerd leaves mounted under its exec root is gone with it; the directory is ours.
  rm -rf "${EXEC_ROOT}" 2>/dev/null || true
}

status() {
  local pid
  if pid="$(running_pid)"; then
    echo "dockerd running: pid ${pid}, unix://${SOCKET}, bridge ${BRIDGE}"
  else
    echo "dockerd not running"
    return 1
  fi
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  env) print_env ;;
  stop) stop ;;
  status) status ;;
  base-image) base_image ;;
  lambda-image) lambda_image ;;
  gateway) gateway ;;
  *)
    echo "usage: $0 {install|start|env|stop|status|base-image|lambda-image|gateway}" >&2
    exit 2
    ;;
esac
