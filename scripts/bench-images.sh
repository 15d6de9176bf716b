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
# Rows: cold (nothing anywhere), one layer changed (5 MB app layer), unchanged.
#
# Usage: scripts/bench-images.sh            (BENCH_BASE_MB=200 BENCH_BASE_LAYERS=4 by default)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BASE_MB=${BENCH_BASE_MB:-200}
BASE_LAYERS=${BENCH_BASE_LAYERS:-4}
APP_MB=${BENCH_APP_MB:-5}

# shellcheck source=scripts/test-env.sh
source scripts/test-env.sh
for t in jq bc; do command -v $t >/dev/null || { apt-get update -qq && apt-get install -y -qq $t >/dev/null; }; done
cargo build --release --locked -q -p ktwin
KTWIN="$ROOT/target/release/ktwin"

WORK=$(mktemp -d -t ktwin-bench-images-XXXXXX)
NAME="ktwin-bench-$$"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
CTRD_PIDS=()
export XDG_STATE_HOME="$WORK/state"

cleanup() {
  set +e
  for p in "${CTRD_PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${CTRD_PIDS[@]}"; do while kill -0 "$p" 2>/dev/null; do sleep 0.1; done; done
  docker rm -f "$NAME" >/dev/null 2>&1
  docker volume rm -f "$NAME-data" >/dev/null 2>&1
  docker images --format '{{.Repository}}:{{.Tag}}' | grep "bench/app-$$" | xargs -r docker rmi -f >/dev/null 2>&1
  rm -rf "$WORK"
  ktwin_test_env_cleanup
}
trap cleanup EXIT

start_containerd() { # dir -> prints socket path
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
mkdir -p "$WORK/proj/app"
{
  echo "FROM scratch"
  for i in $(seq 1 "$BASE_LAYERS"); do
    head -c "${BASE_MB}M" /dev/urandom > "$WORK/proj/app/base$i.bin"
    echo "COPY base$i.bin /base$i.bin"
  done
  echo "COPY app.bin /app.bin"
} > "$WORK/proj/app/Dockerfile"
head -c "${APP_MB}M" /dev/urandom > "$WORK/proj/app/app.bin"
cat > "$WORK/proj/ktwin.yaml" <<YAML
apiVersion: ktwin.dev/v1alpha1
kind: Project
name: bench
registry:
  name: $NAME
  hostPort: $PORT
images:
  - image: ghcr.io/bench/app-$$
    context: app
YAML
cd "$WORK/proj"
"$KTWIN" registry up >/dev/null
start_containerd "$WORK/node-kind"; SOCK_KIND="$WORK/node-kind/c.sock"
start_containerd "$WORK/node-ktwin"; SOCK_KTWIN="$WORK/node-ktwin/c.sock"

ROWS=()
run_row() { # label
  local label=$1 t json ref ktwin_push pull kind ktwin_total outcome bytes via bg
  t=$(now)
  json=$("$KTWIN" build -o json)
  local wall; wall=$(elapsed "$t")
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
    pull=$("$KTWIN" images verify --containerd "$SOCK_KTWIN" -o json | jq -r '.[0].seconds')
  fi
  ktwin_total=$(echo "$ktwin_push + $pull" | bc -l)
  # The engine's one-time background push (after an export push) must not share the CPU
  # with the reference measurement: wait for it first.
  bg=$(jq -r '.[0].background.pid // empty' <<<"$json")
  local bg_note=""
  if [ -n "$bg" ]; then
    t=$(now)
    while kill -0 "$bg" 2>/dev/null; do sleep 0.2; done
    bg_note=$(printf '  (the engine'"'"'s one-time background push then ran %.1f s more; not part of delivery)' "$(elapsed "$t")")
  fi
  t=$(now)
  docker save "$ref" | ctr --address "$SOCK_KIND" -n k8s.io images import --all-platforms --digests - >/dev/null
  kind=$(elapsed "$t")
  ROWS+=("$(printf '%-14s %10.2f s %10.2f s %8.2f s %8.2f s %9.1f× %12s %10.1f MB' "$label" "$kind" "$ktwin_total" "$ktwin_push" "$pull" "$(echo "$kind / $ktwin_total" | bc -l)" "$via" "$(echo "$bytes / 1000000" | bc -l)")")
  [ -z "$bg_note" ] || ROWS+=("$bg_note")
}

echo "cold…" >&2
run_row cold
echo "one layer changed…" >&2
head -c "${APP_MB}M" /dev/urandom > "$WORK/proj/app/app.bin"
run_row "layer changed"
echo "unchanged…" >&2
run_row unchanged

TOTAL_MB=$((BASE_MB * BASE_LAYERS + APP_MB))
echo
echo "image: ${TOTAL_MB} MB (${BASE_LAYERS} × ${BASE_MB} MB incompressible + ${APP_MB} MB app), $(nproc) cores, $(docker version -f '{{.Server.Version}}') engine, containerd $(containerd --version | awk '{print $3}')"
printf '%-14s %12s %12s %10s %10s %10s %12s %13s\n' "case" "kind-load" "ktwin" "push" "pull" "ratio" "via" "bytes pushed"
for r in "${ROWS[@]}"; do echo "$r"; done
