#!/usr/bin/env bash
# Tier-2 test environment, sourced by scripts/test.sh: a real Docker engine, Debian's
# Distribution registry packaged as an image built FROM scratch, containerd and a static
# busybox. Installs what is missing; starts dockerd only if no engine answers, and
# ktwin_test_env_cleanup stops only what this script started.
# Also a rootful Podman API service (`podman system service`) on a socket and store of its own
# under a temp dir, for the Podman pass of the tier-2 tests.
# Exports: DOCKER_HOST (when it started dockerd), KTWIN_REGISTRY_IMAGE, KTWIN_TIER2=1,
# KTWIN_PODMAN_HOST (the Podman service's socket URL) and CONTAINERS_CONF for it.

_ktwin_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
_ktwin_missing=()
command -v dockerd >/dev/null || _ktwin_missing+=(docker.io)
command -v docker-registry >/dev/null || _ktwin_missing+=(docker-registry)
command -v containerd >/dev/null || _ktwin_missing+=(containerd)
command -v podman >/dev/null || _ktwin_missing+=(podman)
command -v runc >/dev/null || _ktwin_missing+=(runc)
[ -x /bin/busybox ] && file -L /bin/busybox 2>/dev/null | grep -q "statically linked" || _ktwin_missing+=(busybox-static)
command -v file >/dev/null || _ktwin_missing+=(file)
if [ ${#_ktwin_missing[@]} -gt 0 ]; then
  echo "test-env: installing ${_ktwin_missing[*]}" >&2
  _ktwin_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive _ktwin_root apt-get install -y -qq "${_ktwin_missing[@]}" >/dev/null
fi

KTWIN_STARTED_DOCKERD_PID=""
if ! docker info >/dev/null 2>&1; then
  KTWIN_DOCKERD_DIR=$(mktemp -d -t ktwin-dockerd-XXXXXX)
  echo "test-env: no engine answers; starting dockerd (state in $KTWIN_DOCKERD_DIR)" >&2
  _sudo=""; [ "$(id -u)" -eq 0 ] || _sudo=sudo
  $_sudo dockerd --host "unix://$KTWIN_DOCKERD_DIR/docker.sock" \
    --data-root /var/lib/ktwin-test-docker --exec-root "$KTWIN_DOCKERD_DIR/exec" \
    --pidfile "$KTWIN_DOCKERD_DIR/dockerd.pid" > "$KTWIN_DOCKERD_DIR/dockerd.log" 2>&1 &
  export DOCKER_HOST="unix://$KTWIN_DOCKERD_DIR/docker.sock"
  for _ in $(seq 1 120); do
    docker info >/dev/null 2>&1 && break
    sleep 0.5
  done
  # The daemon's own PID (not a sudo wrapper's), so cleanup ends exactly what was started.
  KTWIN_STARTED_DOCKERD_PID=$(cat "$KTWIN_DOCKERD_DIR/dockerd.pid" 2>/dev/null)
  if ! docker info >/dev/null 2>&1; then
    echo "test-env: dockerd did not come up; its log:" >&2
    tail -30 "$KTWIN_DOCKERD_DIR/dockerd.log" >&2
    return 1 2>/dev/null || exit 1
  fi
fi

# Podman: its own store, run dir and socket under a temp dir, so runs never collide and
# nothing of a user's Podman is touched. Test-only engine settings go in CONTAINERS_CONF:
# this sandbox runs containers only with runc (crun stops at "cgroups in hybrid mode not
# supported") and with default ulimits within its hard limits (soft = hard).
KTWIN_STARTED_PODMAN_PID=""
KTWIN_PODMAN_DIR=$(mktemp -d -t ktwin-podman-XXXXXX)
cat > "$KTWIN_PODMAN_DIR/containers.conf" <<'CONF'
[engine]
runtime = "runc"
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=2048:2048"]
CONF
export CONTAINERS_CONF="$KTWIN_PODMAN_DIR/containers.conf"
_ktwin_podman_args=(--root "$KTWIN_PODMAN_DIR/root" --runroot "$KTWIN_PODMAN_DIR/run"
  --tmpdir "$KTWIN_PODMAN_DIR/tmp")
ktwin_podman_local() { # the same store, without the service (for cleanup only)
  _ktwin_root env CONTAINERS_CONF="$CONTAINERS_CONF" podman "${_ktwin_podman_args[@]}" "$@"
}
_sudo=""; [ "$(id -u)" -eq 0 ] || _sudo=sudo
# `env` execs podman, so $! is the service's own PID (or sudo's, which passes signals on).
$_sudo env CONTAINERS_CONF="$CONTAINERS_CONF" podman "${_ktwin_podman_args[@]}" \
  system service --time=0 "unix://$KTWIN_PODMAN_DIR/podman.sock" \
  > "$KTWIN_PODMAN_DIR/service.log" 2>&1 &
KTWIN_STARTED_PODMAN_PID=$!
export KTWIN_PODMAN_HOST="unix://$KTWIN_PODMAN_DIR/podman.sock"
for _ in $(seq 1 60); do
  CONTAINER_HOST=$KTWIN_PODMAN_HOST podman --remote version >/dev/null 2>&1 && break
  sleep 0.5
done
if ! CONTAINER_HOST=$KTWIN_PODMAN_HOST podman --remote version >/dev/null 2>&1; then
  echo "test-env: the Podman service did not come up; its log:" >&2
  tail -30 "$KTWIN_PODMAN_DIR/service.log" >&2
  return 1 2>/dev/null || exit 1
fi
echo "test-env: Podman $(podman --version | awk '{print $3}') service on $KTWIN_PODMAN_HOST" >&2

ktwin_test_env_cleanup() {
  if [ -n "$KTWIN_STARTED_PODMAN_PID" ]; then
    # Everything in this store is the tests' own (it was created empty above).
    ktwin_podman_local rm -a -f -t 0 >/dev/null 2>&1 || true
    _ktwin_root kill "$KTWIN_STARTED_PODMAN_PID" 2>/dev/null || true
    for _ in $(seq 1 40); do _ktwin_root kill -0 "$KTWIN_STARTED_PODMAN_PID" 2>/dev/null || break; sleep 0.25; done
    # conmon of an exec session can outlive its container; each names this store's dir.
    for _p in $(pgrep -f -- "conmon .*$KTWIN_PODMAN_DIR/" 2>/dev/null || true); do
      _ktwin_root kill "$_p" 2>/dev/null || true
    done
    ktwin_podman_local unmount -a -f >/dev/null 2>&1 || true
    # A layer or shm mount left under the store would make rm fail (none found is fine).
    { grep -o " $KTWIN_PODMAN_DIR/[^ ]*" /proc/mounts || true; } | sort -r | while read -r _m; do
      _ktwin_root umount "$_m" 2>/dev/null || true
    done
    _ktwin_root rm -rf "$KTWIN_PODMAN_DIR" || echo "test-env: could not remove $KTWIN_PODMAN_DIR" >&2
    KTWIN_STARTED_PODMAN_PID=""
  fi
  if [ -n "$KTWIN_STARTED_DOCKERD_PID" ]; then
    _ktwin_root kill "$KTWIN_STARTED_DOCKERD_PID" 2>/dev/null || true
    for _ in $(seq 1 40); do kill -0 "$KTWIN_STARTED_DOCKERD_PID" 2>/dev/null || break; sleep 0.25; done
    # A network namespace a container left mounted under the exec root would make rm fail.
    for _ns in "$KTWIN_DOCKERD_DIR"/exec/netns/*; do
      if [ -e "$_ns" ]; then _ktwin_root umount "$_ns" 2>/dev/null || true; fi
    done
    rm -rf "$KTWIN_DOCKERD_DIR" || echo "test-env: could not remove $KTWIN_DOCKERD_DIR" >&2
  fi
}

# The registry image: Debian's registry binary and the libraries ldd lists, FROM scratch.
export KTWIN_REGISTRY_IMAGE="ktwin-test/registry:debian"
if ! docker image inspect "$KTWIN_REGISTRY_IMAGE" >/dev/null 2>&1; then
  _ctx=$(mktemp -d -t ktwin-registry-image-XXXXXX)
  mkdir -p "$_ctx/rootfs/bin" "$_ctx/rootfs/etc/docker/registry" "$_ctx/rootfs/var/lib/registry"
  cp /usr/bin/docker-registry "$_ctx/rootfs/bin/registry"
  for _lib in $(ldd /usr/bin/docker-registry 2>/dev/null | grep -o '/[^ ]*'); do
    cp --parents -L "$_lib" "$_ctx/rootfs/"
  done
  cat > "$_ctx/rootfs/etc/docker/registry/config.yml" <<'YAML'
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: /var/lib/registry
  delete:
    enabled: true
http:
  addr: :5000
YAML
  cat > "$_ctx/Dockerfile" <<'DOCKERFILE'
FROM scratch
COPY rootfs/ /
EXPOSE 5000
VOLUME ["/var/lib/registry"]
ENTRYPOINT ["/bin/registry"]
CMD ["serve", "/etc/docker/registry/config.yml"]
DOCKERFILE
  docker build -q -t "$KTWIN_REGISTRY_IMAGE" "$_ctx" >/dev/null
  rm -rf "$_ctx"
  echo "test-env: built $KTWIN_REGISTRY_IMAGE from Debian's docker-registry" >&2
fi
# The same image in the Podman store (Podman names an image without a registry localhost/…).
docker save "$KTWIN_REGISTRY_IMAGE" | CONTAINER_HOST=$KTWIN_PODMAN_HOST podman --remote load -q >/dev/null
export KTWIN_TIER2=1
