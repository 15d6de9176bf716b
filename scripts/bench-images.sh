#!/usr/bin/env bash
# Image delivery benchmark: getting a built image into a node's containerd.
#
#   kind-load path: `docker save <image> | ctr images import` into a standalone containerd —
#                   what `kind load docker-image` and `k3d image import` do on every change.
#   ktwin:          `ktwin build` minus its engine build (content-tag check + push of what the
#                   registry lacks), then a containerd pull through the hosts.toml mirror
#                   config ktwin gives the nodes (`ktwin images verify --containerd`).
#
# Both paths start from the same image built by the same engine; the engine build itself is
# excluded from both. Each path has its own fresh containerd standing in for a node.
# Rows: cold (nothing anywhere), one layer changed (5 MB app layer), unchanged; then cold
# again with the engine's store unreadable (`KTWIN_LAYER_STORE=off`: the export fallback).
# Each engine gets its own registry, nodes and reference measurement: Docker (dockerd) and
# Podman (its API service), both started by scripts/test-env.sh.
#
# Usage: scripts/bench-images.sh [--engine docker|podman|both]   (default both;
#        BENCH_BASE_MB=200 BENCH_BASE_LAYERS=4 by default)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BASE_MB=${BENCH_BASE_MB:-200}
BASE_LAYERS=${BENCH_BASE_LAYERS:-4}
APP_MB=${BENCH_APP_MB:-5}
ENGINES=(docker podman)
while [ $# -gt 0 ]; do
  case $1 in
    --engine) case ${2:-} in docker|podman) ENGINES=("$2");; both) ;; *) echo "--engine docker|podman|both" >&2; exit 2;; esac; shift 2;;
    -h|--help) sed -n 2,20p "$0"; exit 0;;
    *) echo "unknown argument $1 (see --help)" >&2; exit 2;;
  esac
done

# shellcheck source=scripts/test-env.sh
source scripts/test-env.sh
for t in jq bc; do command -v $t >/dev/null || { apt-get update -qq && apt-get install -y -qq $t >/dev/null; }; done
cargo build --release --locked -q -p ktwin
KTWIN="$ROOT/target/release/ktwin"

WORK=$(mktemp -d -t ktwin-bench-images-XXXXXX)
CTRD_PIDS=()
export XDG_STATE_HOME="$WORK/state"
DOCKER_HOST_ORIG=${DOCKER_HOST:-}

# The engine CLI for one engine: docker, or podman against the test-env service.
eng() { # engine args...
  local e=$1; shift
  if [ "$e" = podman ]; then CONTAINER_HOST=$KTWIN_PODMAN_HOST podman --remote "$@"; else docker "$@"; fi
}
# ktwin, pointed at one engine the way a user's DOCKER_HOST points k3d at it.
ktwin_on() { # engine args...
  local e=$1; shift
  if [ "$e" = podman ]; then DOCKER_HOST=$KTWIN_PODMAN_HOST "$KTWIN" "$@"
  elif [ -n "$DOCKER_HOST_ORIG" ]; then DOCKER_HOST=$DOCKER_HOST_ORIG "$KTWIN" "$@"
  else env -u DOCKER_HOST "$KTWIN" "$@"; fi
}

cleanup() {
  set +e
  for p in "${CTRD_PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${CTRD_PIDS[@]}"; do while kill -0 "$p" 2>/dev/null; do sleep 0.1; done; done
  for e in "${ENGINES[@]}"; do
    eng "$e" rm -f "ktwin-bench-$$-$e" >/dev/null 2>&1
    eng "$e" volume rm -f "ktwin-bench-$$-$e-data" >/dev/null 2>&1
    for i in $(eng "$e" images --format '{{.Repository}}:{{.Tag}}' | grep -- "-$$-$e"); do
      eng "$e" rmi -f "$i" >/dev/null 2>&1
    done
  done
  rm -rf "$WORK"
  ktwin_test_env_cleanup
}
trap cleanup EXIT

start_containerd() { # dir
  local d=$1
  mkdir -p "$d"
  cat > "$d/config.toml" <<TOML
version = 2
root = "$d/root"
state = "$d/state"
[grpc]
  address = "$d/c.sock"
[ttrpc]
  address = "$d/t.sock"
[metrics]
  address = ""
TOML
  containerd --config "$d/config.toml" > "$d/log" 2>&1 &
  CTRD_PIDS+=($!)
  for _ in $(seq 1 100); do ctr --address "$d/c.sock" version >/dev/null 2>&1 && break; sleep 0.1; done
}

now() { date +%s.%N; }
elapsed() { echo "$(now) - $1" | bc -l; }

echo "preparing: ${BASE_LAYERS} × ${BASE_MB} MB incompressible base layers + ${APP_MB} MB app layer" >&2
mkdir -p "$WORK/ctx"
for i in $(seq 1 "$BASE_LAYERS"); do head -c "${BASE_MB}M" /dev/urandom > "$WORK/ctx/base$i.bin"; done

# A project of one image, `image`, in `dir`, with its registry for `engine`.
project() { # dir image engine port
  local d=$1 image=$2 e=$3 port=$4
  mkdir -p "$d/app"
  {
    echo "FROM scratch"
    for i in $(seq 1 "$BASE_LAYERS"); do
      ln -f "$WORK/ctx/base$i.bin" "$d/app/base$i.bin"
      echo "COPY base$i.bin /base$i.bin"
    done
    echo "COPY app.bin /app.bin"
  } > "$d/app/Dockerfile"
  head -c "${APP_MB}M" /dev/urandom > "$d/app/app.bin"
  cat > "$d/ktwin.yaml" <<YAML
apiVersion: ktwin.dev/v1alpha1
kind: Project
name: bench
registry:
  name: ktwin-bench-$$-$e
  hostPort: $port
images:
  - image: $image
    context: app
YAML
}

ROWS=()
run_row() { # engine label node-kind-sock node-ktwin-sock   (KTWIN_LAYER_STORE passes through)
  local e=$1 label=$2 sock_kind=$3 sock_ktwin=$4
  local t json ref ktwin_push pull kind ktwin_total outcome bytes via bg wall
  t=$(now)
  # shellcheck disable=SC2086 # BUILD_FLAGS is a word list
  json=$(ktwin_on "$e" build -o json ${BUILD_FLAGS:-})
  wall=$(elapsed "$t")
  ref=$(jq -r '.[0].reference' <<<"$json")
  outcome=$(jq -r '.[0].outcome' <<<"$json")
  via=$(jq -r '.[0].via' <<<"$json")
  bytes=$(jq -r '.[0].bytesPushed' <<<"$json")
  if [ "$outcome" = skipped ]; then
    # Nothing built: the whole command (hashing the context, one HEAD) is the delivery.
    ktwin_push=$wall
    pull=0
  else
    ktwin_push=$(jq -r '.[0].seconds - .[0].buildSeconds' <<<"$json")
    pull=$(ktwin_on "$e" images verify --containerd "$sock_ktwin" -o json | jq -r '.[0].seconds')
  fi
  ktwin_total=$(echo "$ktwin_push + $pull" | bc -l)
  # An engine push left running in the background (after an export push) must not share
  # the CPU with the reference measurement: wait for it first.
  bg=$(jq -r '.[0].background.pid // empty' <<<"$json")
  local bg_note=""
  if [ -n "$bg" ]; then
    t=$(now)
    while kill -0 "$bg" 2>/dev/null; do sleep 0.2; done
    bg_note=$(printf '  (the engine'"'"'s background push then ran %.1f s more; not part of delivery)' "$(elapsed "$t")")
  fi
  t=$(now)
  eng "$e" save "$ref" | ctr --address "$sock_kind" -n k8s.io images import --all-platforms --digests - >/dev/null
  kind=$(elapsed "$t")
  ROWS+=("$(printf '%-7s %-16s %10.2f s %10.2f s %8.2f s %8.2f s %9.1f× %12s %10.1f MB' "$e" "$label" "$kind" "$ktwin_total" "$ktwin_push" "$pull" "$(echo "$kind / $ktwin_total" | bc -l)" "$via" "$(echo "$bytes / 1000000" | bc -l)")")
  [ -z "$bg_note" ] || ROWS+=("$bg_note")
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

VERSIONS=()
for e in "${ENGINES[@]}"; do
  port=$(free_port)
  P="$WORK/$e/proj"; F="$WORK/$e/fallback"
  project "$P" "ghcr.io/bench/app-$$-$e" "$e" "$port"
  project "$F" "ghcr.io/bench/fallback-$$-$e" "$e" "$port"
  (cd "$P" && ktwin_on "$e" registry up >/dev/null)
  for n in kind ktwin kind-fb ktwin-fb; do start_containerd "$WORK/$e/node-$n"; done
  N="$WORK/$e"
  echo "$e: cold…" >&2
  cd "$P"
  run_row "$e" cold "$N/node-kind/c.sock" "$N/node-ktwin/c.sock"
  echo "$e: one layer changed…" >&2
  head -c "${APP_MB}M" /dev/urandom > "$P/app/app.bin"
  run_row "$e" "layer changed" "$N/node-kind/c.sock" "$N/node-ktwin/c.sock"
  echo "$e: unchanged…" >&2
  run_row "$e" unchanged "$N/node-kind/c.sock" "$N/node-ktwin/c.sock"
  echo "$e: cold, store unreadable (fallback)…" >&2
  cd "$F"
  # As `ktwin up`/`dev` do it: the engine's one-time background push waits until the nodes
  # have pulled (`--no-engine-push` here, since the bench pulls by hand).
  KTWIN_LAYER_STORE=off BUILD_FLAGS=--no-engine-push run_row "$e" "cold, no store" "$N/node-kind-fb/c.sock" "$N/node-ktwin-fb/c.sock"
  cd "$WORK"
  VERSIONS+=("$e $(eng "$e" version -f '{{.Server.Version}}')")
done

TOTAL_MB=$((BASE_MB * BASE_LAYERS + APP_MB))
echo
echo "image: ${TOTAL_MB} MB (${BASE_LAYERS} × ${BASE_MB} MB incompressible + ${APP_MB} MB app), $(nproc) cores, engines: ${VERSIONS[*]}, containerd $(containerd --version | awk '{print $3}')"
printf '%-7s %-16s %12s %12s %10s %10s %10s %12s %13s\n' "engine" "case" "kind-load" "ktwin" "push" "pull" "ratio" "via" "bytes pushed"
for r in "${ROWS[@]}"; do echo "$r"; done
