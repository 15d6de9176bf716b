#!/usr/bin/env bash
# `ktwin doctor` over 10,000 generated objects (Deployments, Services, ConfigMaps, some with
# problems) against a default k3d twin. Prints wall time (best of RUNS) and objects per second.
# Target: >= 50,000 objects/s.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-10000}
RUNS=${RUNS:-5}
cargo build --release --locked -q -p ktwin
KTWIN="$PWD/target/release/ktwin"
work=$(mktemp -d -t ktwin-bench-doctor-XXXXXX)
trap 'rm -rf "$work"' EXIT
python3 - "$work" "$N" <<'PY'
import os, sys
work, n = sys.argv[1], int(sys.argv[2])
docs = []
for i in range(n):
    k, ns = i % 3, f"ns-{(i // 3) % 50}"
    if k == 0:
        probe = "" if i % 10 == 0 else "\n          readinessProbe: {httpGet: {path: /, port: http}}"
        docs.append(f"""apiVersion: apps/v1
kind: Deployment
metadata: {{name: app-{i}, namespace: {ns}}}
spec:
  replicas: 2
  template:
    metadata: {{labels: {{app: app-{i}}}}}
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
  selector: {{app: app-{i - 1}}}
  ports: [{{name: http, port: 80, targetPort: http}}]""")
    else:
        docs.append(f"""apiVersion: v1
kind: ConfigMap
metadata: {{name: cfg-{i}, namespace: {ns}}}
data: {{LOG_LEVEL: info, INDEX: "{i}"}}""")
with open(os.path.join(work, "objects.yaml"), "w") as f:
    f.write("\n---\n".join(docs) + "\n")
PY
best=""; best_log=""
for _ in $(seq "$RUNS"); do
  s=$(date +%s.%N)
  "$KTWIN" -v -C "$work" doctor -f objects.yaml -o json > "$work/out.json" 2> "$work/err.log" || true
  e=$(date +%s.%N)
  t=$(echo "$e - $s" | bc -l)
  if [ -z "$best" ] || (( $(echo "$t < $best" | bc -l) )); then best=$t; best_log=$(cat "$work/err.log"); fi
done
# "read N objects in A ms; 18 checks in B ms (R objects/s)"
checks_ms=$(echo "$best_log" | sed -n 's/.*checks in \([0-9.]*\) ms.*/\1/p')
read_ms=$(echo "$best_log" | sed -n 's/.*objects in \([0-9.]*\) ms;.*/\1/p')
findings=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(len(d["findings"]))' "$work/out.json")
printf '\n%-40s %10s %14s\n' "ktwin doctor, $N objects ($findings findings)" "ms" "objects/s"
printf '%-40s %10.1f %14.0f\n' "18 checks (the doctor itself)" "$checks_ms" "$(echo "$N / ($checks_ms / 1000)" | bc -l)"
printf '%-40s %10.1f %14.0f\n' "YAML parse of the input" "$read_ms" "$(echo "$N / ($read_ms / 1000)" | bc -l)"
printf '%-40s %10.1f %14.0f\n' "end to end (process, parse, checks, JSON)" "$(echo "$best * 1000" | bc -l)" "$(echo "$N / $best" | bc -l)"
printf 'target: >= 50000 objects/s\n'
