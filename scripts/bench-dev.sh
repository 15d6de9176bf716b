#!/usr/bin/env bash
# `ktwin dev` save → apply against the script loop and the kind-load loop, in the same run
# (crates/ktwin/benches/dev.rs says what is measured). Needs root or sudo: scripts/test-env.sh
# installs and starts a Docker engine and containerd if none answers, and stops only what it
# started. Prints a table.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/test-env.sh
source scripts/test-env.sh
trap ktwin_test_env_cleanup EXIT
# shellcheck source=scripts/tools.sh
source scripts/tools.sh
command -v containerd >/dev/null || { echo "bench-dev.sh: containerd is needed (apt-get install containerd)" >&2; exit 1; }
cargo build --release --locked -q -p ktwin
cargo bench --locked -q -p ktwin --bench dev
