#!/usr/bin/env bash
# Put a static busybox into each example image's build context, so the FROM-scratch
# Dockerfiles of examples/swarm build without pulling any base image.
set -euo pipefail
cd "$(dirname "$0")/.."
bb=""
for c in /bin/busybox /usr/bin/busybox; do [ -x "$c" ] && bb="$c" && break; done
if [ -z "$bb" ] || ! file "$bb" 2>/dev/null | grep -q "statically linked"; then
  echo "installing busybox-static" >&2
  if [ "$(id -u)" -eq 0 ]; then apt-get update -qq && apt-get install -y -qq busybox-static; else sudo apt-get update -qq && sudo apt-get install -y -qq busybox-static; fi
  bb=/bin/busybox
fi
for ctx in examples/swarm/containers/*/; do
  mkdir -p "$ctx/bin"
  cp "$bb" "$ctx/bin/busybox"
done
echo "busybox copied into examples/swarm/containers/*/bin/" >&2
