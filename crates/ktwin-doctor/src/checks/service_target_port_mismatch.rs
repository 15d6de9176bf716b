use serde_json::Value;

use crate::k8s::declared_ports;
use crate::k8s::items_at;
use crate::{CheckInfo, Ctx, Finding, Severity};

pub const INFO: CheckInfo = CheckInfo {
    id: "service-target-port-mismatch",
    title: "a targetPort the selected pods do not declare",
    explain: "The Service sends traffic to a targetPort (name or number; it defaults to `port`) that the pods it \
selects do not declare. A port *name* that no container declares gives the Service no usable endpoints; a \
*number* the containers do not declare, when they declare others, usually means the app listens elsewhere, and requests fail with `connection refused` only \
once traffic flows.\n\nFix: name the container port and target it by name, or correct the number.",
};

pub fn run(cx: &Ctx<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    for s in cx.of_kind("Service") {
        let Some(sel) = s.value.pointer("/spec/selector").and_then(Value::as_object) else {
            continue;
        };
        let ns = s.namespace().unwrap_or("");
        let selected = cx.selected(ns, sel);
        if selected.is_empty() {
            continue;
        }
        let (mut names, mut nums) = (Vec::new(), Vec::new());
        for w in &selected {
            for (list, c) in w.containers() {
                if list == "containers" {
                    let (n, p) = declared_ports(c);
                    names.extend(n);
                    nums.extend(p);
                }
            }
        }
        let who = selected
            .iter()
            .map(|w| w.id())
            .collect::<Vec<_>>()
            .join(", ");
        for p in items_at(&s.value, "/spec/ports") {
            let target = p.get("targetPort").or_else(|| p.get("port"));
            let f = match target {
                Some(Value::String(n)) if n.parse::<u64>().is_err() && !names.contains(n) => Some((
                    Severity::Error,
                    format!("targetPort `{n}` is not a port name {who} declares: the Service has no usable endpoints"),
                )),
                // Declaring ports is optional: a number only stands out next to declared ones.
                Some(Value::Number(n))
                    if !nums.is_empty() && n.as_u64().is_some_and(|n| !nums.contains(&n)) =>
                {
                    Some((
                    Severity::Warning,
                    format!("targetPort {n} is not a containerPort {who} declares"),
                    ))
                }
                _ => None,
            };
            if let Some((sev, msg)) = f {
                out.push(Finding::on(
                    s,
                    INFO.id,
                    sev,
                    msg,
                    "target a declared container port, preferably by name",
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    const DEP: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: a}\nspec:\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n      containers: [{name: a, image: x, ports: [{name: http, containerPort: 8080}]}]\n---\n";

    fn svc(ports: &str) -> String {
        format!("{DEP}apiVersion: v1\nkind: Service\nmetadata: {{name: s}}\nspec: {{selector: {{app: web}}, ports: [{ports}]}}\n")
    }

    #[test]
    fn names_and_numbers() {
        let t = twin("");
        assert_eq!(
            run_check(run, &svc("{port: 80, targetPort: web}"), &t)[0].severity,
            Severity::Error
        );
        assert_eq!(
            run_check(run, &svc("{port: 80}"), &t)[0].severity,
            Severity::Warning,
            "targetPort defaults to port"
        );
        assert!(run_check(run, &svc("{port: 80, targetPort: http}"), &t).is_empty());
        assert!(run_check(run, &svc("{port: 8080}"), &t).is_empty());
        // Pods that declare no ports at all: any number is fine; a name still is not.
        let bare =
            |ports: &str| svc(ports).replace(", ports: [{name: http, containerPort: 8080}]", "");
        assert!(run_check(run, &bare("{port: 80, targetPort: 9000}"), &t).is_empty());
        assert_eq!(
            run_check(run, &bare("{port: 80, targetPort: http}"), &t)[0].severity,
            Severity::Error
        );
    }
}
