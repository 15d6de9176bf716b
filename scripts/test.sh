#!/usr/bin/env bash
# The test command README.md gives and .ci/run runs: format check, clippy with -D warnings,
# and every test of the workspace. Installs what the tests need when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

need_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
apt_install() {
  need_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive need_root apt-get install -y -qq "$@"
}

# git: secrets env files are checked against git's ignore rules.
command -v git >/dev/null || apt_install git
# kustomize (or kubectl's built-in kustomize) renders the kustomize sources under test.
if ! command -v kustomize >/dev/null && ! command -v kubectl >/dev/null; then
  echo "test.sh: installing kubectl (Debian kubernetes-client) for the kustomize tests" >&2
  apt_install kubernetes-client
fi
# The example and the fixtures are written so that any kustomize since v2 (kubectl >= 1.14,
# Debian's kubernetes-client included) builds them; check that the one on PATH does.
if ! { kustomize build examples/swarm/k8s/overlays/dev >/dev/null 2>&1 ||
       kubectl kustomize examples/swarm/k8s/overlays/dev >/dev/null 2>&1; }; then
  echo "test.sh: the kustomize on PATH cannot build examples/swarm/k8s/overlays/dev." >&2
  echo "          Install kubectl >= 1.14 or kustomize (https://kubernetes.io/docs/tasks/tools/)." >&2
  exit 1
fi
# A modern kustomize (v5) and a real Helm for the Helm-source and corpus tests (target/tools).
# shellcheck source=scripts/tools.sh
source scripts/tools.sh
if ! command -v cargo >/dev/null; then
  # shellcheck disable=SC1091
  [ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
fi

if [ ! -d ../shared ]; then
  echo "test.sh: ../shared is not beside this clone: the tests that read it (k3d's config schema, the corpus) skip" >&2
elif [ "${KTWIN_REQUIRE_SHARED:-}" = 1 ]; then
  echo "test.sh: KTWIN_REQUIRE_SHARED=1: the tests that read ../shared must run" >&2
fi
echo "== cargo fmt --check" >&2
cargo fmt --all -- --check
echo "== cargo clippy --all-targets -- -D warnings" >&2
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test (tiers 0 and 1)" >&2
cargo test --workspace --all-targets --locked

# Tier 2: a real Docker engine and registry (scripts/test-env.sh installs and starts them, and
# cleans up only what it started).
echo "== tier 2: real engine and registry" >&2
# shellcheck source=scripts/test-env.sh
source scripts/test-env.sh
trap ktwin_test_env_cleanup EXIT
TIER2=(--test tier2_registry --test tier2_build --test tier2_images --test tier2_dev)
cargo test -p ktwin --locked "${TIER2[@]}" -- --ignored
# The same suites against a real rootful Podman: ktwin finds it through DOCKER_HOST as a
# user's k3d does, and the tests' own engine calls go to `podman --remote`.
echo "== tier 2 again: Podman $(podman --version | awk '{print $3}')" >&2
DOCKER_HOST=$KTWIN_PODMAN_HOST KTWIN_TEST_ENGINE=podman \
  cargo test -p ktwin --locked "${TIER2[@]}" -- --ignored
