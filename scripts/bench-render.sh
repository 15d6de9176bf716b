#!/usr/bin/env bash
# Render 10,000 generated objects (Deployments, Services, ConfigMaps) with image rewrite,
# pull policy and a patch: `ktwin render --env local` against `kubectl kustomize` (or
# `kustomize build`) on a kustomization doing the equivalent (images transformer + the same
# patches), in the same run. Prints both times (best of RUNS / REF_RUNS runs) and the ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-10000}
RUNS=${RUNS:-3}
# kustomize takes minutes on 10,000 objects with a targeted patch: one run unless asked.
REF_RUNS=${REF_RUNS:-1}
cargo build --release --locked -q -p ktwin
KTWIN="$PWD/target/release/ktwin"
work=$(mktemp -d -t ktwin-bench-render-XXXXXX)
trap 'rm -rf "$work"' EXIT

python3 - "$work" "$N" <<'PY'
import os, sys
work, n = sys.argv[1], int(sys.argv[2])
base = os.path.join(work, "base")
os.makedirs(base)
per_file = 100
files = []
for f in range((n + per_file - 1) // per_file):
    docs = []
    for i in range(f * per_file, min(n, (f + 1) * per_file)):
        kind = i % 3
        if kind == 0:
            docs.append(f"""apiVersion: apps/v1
kind: Deployment
metadata:
  name: app-{i}
  labels: {{app: app-{i}}}
spec:
  replicas: 3
  selector:
    matchLabels: {{app: app-{i}}}
  template:
    metadata:
      labels: {{app: app-{i}}}
    spec:
      containers:
        - name: app
          image: ghcr.io/acme/app:1.0.{i}
          imagePullPolicy: Always
          ports: [{{containerPort: 8080, name: http}}]
          env: [{{name: INDEX, value: "{i}"}}]
""")
        elif kind == 1:
            docs.append(f"""apiVersion: v1
kind: Service
metadata:
  name: svc-{i}
spec:
  selector: {{app: app-{i - 1}}}
  ports: [{{name: http, port: 80, targetPort: http}}]
""")
        else:
            docs.append(f"""apiVersion: v1
kind: ConfigMap
metadata:
  name: cfg-{i}
data:
  LOG_LEVEL: info
  INDEX: "{i}"
""")
    name = f"objects-{f:04d}.yaml"
    files.append(name)
    with open(os.path.join(base, name), "w") as fh:
        fh.write("---\n".join(docs))
os.makedirs(os.path.join(work, "app"))
open(os.path.join(work, "app", "Dockerfile"), "w").write("FROM scratch\n")
with open(os.path.join(work, "ktwin.yaml"), "w") as fh:
    fh.write("""apiVersion: ktwin.dev/v1alpha1
kind: Project
name: bench
images:
  - {image: ghcr.io/acme/app, context: app}
environments:
  local:
    manifests: [base]
    adapt: {pullSecrets: false, storage: false, volumeOwnership: false, resources: keep}
    patches:
      - target: {kind: Deployment, name: app-0}
        json: [{op: replace, path: /spec/replicas, value: 1}]
""")
PY

tag=$("$KTWIN" -C "$work" render -o json | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["items"][0]["spec"]["template"]["spec"]["containers"][0]["image"].rsplit(":",1)[1])')
mkdir -p "$work/kust"
# kustomize only reads files in or below the kustomization: give it hard links to the same files.
cp -l "$work"/base/*.yaml "$work/kust/"
{
  echo "resources:"
  for f in "$work"/base/*.yaml; do echo "  - $(basename "$f")"; done
  cat <<EOF2
images:
  - name: ghcr.io/acme/app
    newName: localhost:5001/acme/app
    newTag: $tag
patches:
  - target: {kind: Deployment}
    patch: |-
      - {op: replace, path: /spec/template/spec/containers/0/imagePullPolicy, value: IfNotPresent}
  - target: {kind: Deployment, name: app-0}
    patch: |-
      - {op: replace, path: /spec/replicas, value: 1}
EOF2
} > "$work/kust/kustomization.yaml"

if command -v kustomize >/dev/null; then KUST=(kustomize build); REF="kustomize build"; else KUST=(kubectl kustomize); REF="kubectl kustomize"; fi

best() { # best wall time of $1 runs of the rest, output to $out
  local n=$1; shift
  local b=""
  for _ in $(seq "$n"); do
    local s e t
    s=$(date +%s.%N); "$@" > "$out"; e=$(date +%s.%N)
    t=$(echo "$e - $s" | bc -l)
    if [ -z "$b" ] || (( $(echo "$t < $b" | bc -l) )); then b=$t; fi
  done
  echo "$b"
}
out="$work/ktwin.out"; tk=$(best "$RUNS" "$KTWIN" -C "$work" render --env local)
out="$work/kust.out"; tr=$(best "$REF_RUNS" "${KUST[@]}" "$work/kust")

# Both outputs must agree on what matters: object count, rewritten images, pull policy, patch.
for f in "$work/ktwin.out" "$work/kust.out"; do
  objs=$(grep -c '^kind:' "$f"); imgs=$(grep -c "image: localhost:5001/acme/app:$tag" "$f")
  pol=$(grep -c 'imagePullPolicy: IfNotPresent' "$f")
  [ "$objs" -eq "$N" ] && [ "$imgs" -eq $(( (N + 2) / 3 )) ] && [ "$pol" -eq $(( (N + 2) / 3 )) ] || {
    echo "bench-render: $(basename "$f") is not the expected render (objects=$objs images=$imgs pullPolicy=$pol)" >&2; exit 1; }
done

printf '\n%-28s %10s %14s\n' "tool ($N objects)" "seconds" "objects/s"
printf '%-28s %10.3f %14.0f\n' "ktwin render --env local" "$tk" "$(echo "$N / $tk" | bc -l)"
printf '%-28s %10.3f %14.0f\n' "$REF" "$tr" "$(echo "$N / $tr" | bc -l)"
printf '%-28s %10.1fx\n' "ratio (kustomize / ktwin)" "$(echo "$tr / $tk" | bc -l)"
