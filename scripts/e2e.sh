#!/usr/bin/env bash
# Tier 3: ktwin against a real cluster. Needs a Docker engine that can run privileged
# containers, k3d (or kind, with KTWIN_E2E_PROVIDER=kind), kubectl, and the provider's node
# image (pulled on first use). CI machines here have none of the privileges, so this script
# is not part of .ci/run; run it on a workstation.
#
# What it runs (crates/ktwin/tests/tier3_cluster.rs, #[ignore = "needs cluster"]):
#   ktwin up on examples/swarm → node labels per pool (kubectl) → a pod from
#   localhost:<port>/... on every node → the kube-public/local-registry-hosting ConfigMap →
#   ktwin up again reports no change → ktwin down → the registry still holds the images.
#   Then: ktwin up (which ends with a deploy of local) → ktwin status healthy → a second
#   deploy is all "unchanged" → docker restart of one agent/worker node container →
#   ktwin heal → ktwin status healthy again within 3 minutes → a second heal: "nothing to
#   heal" → ktwin down. Then: ktwin run lobster-task runs to its result; ktwin exec --as
#   gateway gets its env and reaches only the twin; ktwin dev rebuilds an edit of the
#   gateway page and the new pods serve it on localhost:8080.
# And (crates/ktwin/tests/tier3_live.rs, k3d): a port added to a running twin is served
#   on 127.0.0.1 without a recreate; an agent added live carries its pool's labels and no
#   other pool's taint, and is drained and deleted when removed; with persistentVolumes a
#   Postgres row written before `down` is there after `up` (pulls postgres:16-alpine).
set -euo pipefail
cd "$(dirname "$0")/.."
provider=${KTWIN_E2E_PROVIDER:-k3d}
missing=()
for t in docker kubectl curl "$provider"; do command -v "$t" >/dev/null || missing+=("$t"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "e2e: missing ${missing[*]}; install them to run tier 3 (see README, Testing)" >&2
  exit 2
fi
if ! docker info >/dev/null 2>&1; then
  echo "e2e: no Docker engine answers" >&2
  exit 2
fi
if ! docker run --rm --privileged "${KTWIN_E2E_PROBE_IMAGE:-busybox}" true >/dev/null 2>&1; then
  echo "e2e: this engine cannot run privileged containers (or has no probe image); $provider nodes need that" >&2
  exit 2
fi
bash scripts/example-prepare.sh
cargo test -p ktwin --locked --test tier3_cluster -- --ignored --test-threads 1
if [ "$provider" = k3d ]; then
  cargo test -p ktwin --locked --test tier3_live -- --ignored --test-threads 1
fi
