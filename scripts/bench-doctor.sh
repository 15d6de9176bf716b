#!/usr/bin/env bash
# `ktwin doctor` over 20,000 generated objects (Deployments with valid selectors, Services,
# ConfigMaps, some with problems) against a default k3d twin, twice: spread over 50 namespaces,
# and all in ONE namespace (where per-namespace selector matching used to be
# O(services × workloads)). Prints wall time (best of RUNS) and objects per second for the
# checks, the parse and the whole run, and the ratio to the reference measured in the same run:
# `kubectl kustomize` reading and re-emitting the same objects (a parse and a print, no checks).
# Target: >= 50,000 objects/s end to end, and the one-namespace rate within 20% of the spread one.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-20000}
RUNS=${RUNS:-5}
cargo build --release --locked -q -p ktwin
KTWIN="$PWD/target/release/ktwin"
work=$(mktemp -d -t ktwin-bench-doctor-XXXXXX)
trap 'rm -rf "$work"' EXIT

gen() { # gen DIR NAMESPACES
python3 - "$1" "$N" "$2" <<'PY'
import os, sys
work, n, nss = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
docs = []
for i in range(n):
    k, ns = i % 3, f"ns-{(i // 3) % nss}"
    if k == 0:
        probe = "" if i % 10 == 0 else "\n          readinessProbe: {httpGet: {path: /, port: http}}"
        docs.append(f"""apiVersion: apps/v1
kind: Deployment
metadata: {{name: app-{i}, namespace: {ns}}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: app-{i}}}}}
  template:
    metadata: {{labels: {{app: app-{i}, tier: web}}}}
    spec:
      enableServiceLinks: {str(i % 7 != 0).lower()}
      containers:
        - name: app
          image: ghcr.io/acme/app:1.0.{i}
          ports: [{{name: http, containerPort: 8080}}]
          env: [{{name: APP_{i}_PORT, value: "8080"}}, {{name: DB_URL, value: "postgres://svc-{i + 1}:5432/db"}}]
          envFrom: [{{configMapRef: {{name: cfg-{i + 2}}}}}]{probe}""")
    elif k == 1:
        docs.append(f"""apiVersion: v1
kind: Service
metadata: {{name: svc-{i}, namespace: {ns}}}
spec:
  selector: {{app: app-{i - 1}, tier: web}}
  ports: [{{name: http, port: 80, targetPort: http}}]""")
    else:
        docs.append(f"""apiVersion: v1
kind: ConfigMap
metadata: {{name: cfg-{i}, namespace: {ns}}}
data: {{LOG_LEVEL: info, INDEX: "{i}"}}""")
os.makedirs(work, exist_ok=True)
with open(os.path.join(work, "objects.yaml"), "w") as f:
    f.write("\n---\n".join(docs) + "\n")
PY
}

measure() { # measure DIR LABEL
  local dir=$1 label=$2 best="" best_log="" s e t
  for _ in $(seq "$RUNS"); do
    s=$(date +%s.%N)
    "$KTWIN" -v -C "$dir" doctor -f objects.yaml -o json > "$dir/out.json" 2> "$dir/err.log" || true
    e=$(date +%s.%N)
    t=$(echo "$e - $s" | bc -l)
    if [ -z "$best" ] || (( $(echo "$t < $best" | bc -l) )); then best=$t; best_log=$(cat "$dir/err.log"); fi
  done
  # "read N objects in A ms; C checks in B ms (R objects/s)"
  local checks_ms read_ms nchecks findings
  checks_ms=$(echo "$best_log" | sed -n 's/.*checks in \([0-9.]*\) ms.*/\1/p')
  read_ms=$(echo "$best_log" | sed -n 's/.*objects in \([0-9.]*\) ms;.*/\1/p')
  nchecks=$(echo "$best_log" | sed -n 's/.*; \([0-9]*\) checks in.*/\1/p')
  findings=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(len(d["findings"]))' "$dir/out.json")
  printf '%-34s %8s %10.1f %12.0f %10.1f %12.0f %10.1f %12.0f\n' "$label" "$findings" \
    "$checks_ms" "$(echo "$N / ($checks_ms / 1000)" | bc -l)" \
    "$read_ms" "$(echo "$N / ($read_ms / 1000)" | bc -l)" \
    "$(echo "$best * 1000" | bc -l)" "$(echo "$N / $best" | bc -l)"
  echo "$nchecks" > "$dir/nchecks"
  echo "$best" > "$dir/best"
}

reference() { # reference DIR: wall time of one `kubectl kustomize` over the same file (cut at 60 s)
  local dir=$1 s e rc=0
  printf 'resources: [objects.yaml]\n' > "$dir/kustomization.yaml"
  s=$(date +%s.%N)
  timeout 60 kubectl kustomize "$dir" > /dev/null || rc=$?
  e=$(date +%s.%N)
  rm "$dir/kustomization.yaml"
  if [ "$rc" = 124 ]; then echo "timeout"; else echo "$e - $s" | bc -l; fi
}

gen "$work/spread" 50
gen "$work/one" 1
printf '\nktwin doctor, %s objects, best of %s\n' "$N" "$RUNS"
printf '%-34s %8s %10s %12s %10s %12s %10s %12s\n' "layout" "findings" "checks ms" "checks obj/s" "parse ms" "parse obj/s" "total ms" "total obj/s"
measure "$work/spread" "spread over 50 namespaces"
measure "$work/one" "all in one namespace"
spread=$(cat "$work/spread/best") one=$(cat "$work/one/best")
printf '(%s checks; target: >= 50000 objects/s end to end, one namespace within 20%% of spread)\n' "$(cat "$work/spread/nchecks")"
printf 'one namespace / spread, total time: %.2f\n' "$(echo "$one / $spread" | bc -l)"
if command -v kubectl >/dev/null; then
  ref=$(reference "$work/spread")
  if [ "$ref" = timeout ]; then
    printf 'reference: kubectl kustomize (parse + print only, same file) did not finish in 60 s: ktwin doctor (parse + %s checks) is > %.0fx faster\n' \
      "$(cat "$work/spread/nchecks")" "$(echo "60 / $spread" | bc -l)"
  else
    printf 'reference: kubectl kustomize (parse + print only, same file) %.1f ms; ktwin doctor (parse + %s checks) takes %.3fx its time\n' \
      "$(echo "$ref * 1000" | bc -l)" "$(cat "$work/spread/nchecks")" "$(echo "$spread / $ref" | bc -l)"
  fi
fi
