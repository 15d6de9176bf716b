//! Tier-1 tests of `ktwin doctor` through the real binary.
#![allow(clippy::disallowed_methods)] // tests run the binary and real tools directly

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ktwin_testkit::{assert_expected, copy_project_with_env, TempProject};

fn ktwin(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ktwin"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run ktwin")
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The every-check fixture, copied out of git with its env file in place.
fn every_check() -> (TempProject, PathBuf) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/doctor-every-check");
    copy_project_with_env(&src, "p", "local.env.example", "local.env")
}

const ALL_IDS: &[&str] = &[
    "probe-missing",
    "probe-port-undeclared",
    "pull-policy-always-local",
    "pull-secret-missing",
    "node-selector-unsatisfiable",
    "taint-not-tolerated",
    "storage-class-missing",
    "fsgroup-local-path",
    "nodeport-unmapped",
    "port-mapping-unused",
    "service-selects-nothing",
    "service-target-port-mismatch",
    "service-env-collision",
    "netpol-blocks-dependency",
    "scrape-target-missing",
    "secret-key-missing",
    "anti-affinity-unschedulable",
    "loadbalancer-port-conflict",
    "kind-not-served",
    "service-account-missing",
    "priority-class-missing",
    "runtime-class-missing",
    "secret-volume-missing",
    "access-mode-unsupported",
    "storage-class-annotation",
    "ingress-class-missing",
    "host-network-or-port",
    "image-unmatched",
    "image-not-built",
    "image-latest-third-party",
];

/// Checks that only fire on a kind twin (the fixture is k3d; a kind copy of it shows them).
const KIND_ONLY: &[&str] = &["loadbalancer-pending-kind"];

#[test]
fn every_check_fires_on_the_end_to_end_fixture() {
    let (_tp, dir) = every_check();
    let o = ktwin(&dir, &["doctor", "-o", "json"]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "errors reach the default --fail-on"
    );
    let text = out(&o);
    assert!(!text.contains("local-pass"), "a Secret value leaked");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let checks: std::collections::BTreeSet<&str> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["check"].as_str().unwrap())
        .collect();
    for id in ALL_IDS {
        assert!(checks.contains(id), "{id} did not fire");
    }
    let names: Vec<&str> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["object"]["name"].as_str().unwrap())
        .collect();
    assert!(
        !names.contains(&"quiet"),
        "doctor.ignore in ktwin.yaml silences"
    );
    assert!(
        !names.contains(&"silenced"),
        "the ktwin.dev/ignore annotation silences"
    );
    assert_eq!(v["summary"]["error"], 18);
    assert_expected(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/expected/doctor-every-check.json"),
        &text,
    );
}

#[test]
fn kind_only_checks_fire_on_a_kind_copy_of_the_fixture() {
    let (_tp, dir) = every_check();
    let y = std::fs::read_to_string(dir.join("ktwin.yaml")).unwrap();
    std::fs::write(
        dir.join("ktwin.yaml"),
        y.replace("cluster:\n", "cluster:\n  provider: kind\n"),
    )
    .unwrap();
    let o = ktwin(&dir, &["doctor", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let checks: Vec<&str> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["check"].as_str().unwrap())
        .collect();
    for id in KIND_ONLY {
        assert!(checks.contains(id), "{id} did not fire on kind");
    }
}

#[test]
fn sarif_carries_rules_help_and_locations() {
    let (_tp, dir) = every_check();
    let o = ktwin(&dir, &["doctor", "-o", "sarif"]);
    let v: serde_json::Value = serde_json::from_str(&out(&o)).unwrap();
    assert_eq!(v["version"], "2.1.0");
    let run = &v["runs"][0];
    let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
    assert_eq!(rules.len(), ALL_IDS.len() + KIND_ONLY.len());
    let fsg = rules
        .iter()
        .find(|r| r["id"] == "fsgroup-local-path")
        .unwrap();
    assert!(fsg["help"]["text"]
        .as_str()
        .unwrap()
        .contains("volumeType: local"));
    let results = run["results"].as_array().unwrap();
    assert!(!results.is_empty());
    for r in results {
        assert!(ALL_IDS.contains(&r["ruleId"].as_str().unwrap()));
        assert!(["error", "warning", "note"].contains(&r["level"].as_str().unwrap()));
        let loc = &r["locations"][0]["physicalLocation"];
        assert!(loc["artifactLocation"]["uri"]
            .as_str()
            .unwrap()
            .ends_with(".yaml"));
        assert!(loc["region"]["startLine"].as_u64().unwrap() >= 1);
    }
}

#[test]
fn swarm_example_passes_fail_on_warning() {
    let (_tp, dir) = ktwin_testkit::swarm_example();
    let o = ktwin(&dir, &["doctor", "--fail-on", "warning"]);
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
    let text = out(&o);
    assert!(
        text.contains("resolved locally by adapt.volumeOwnership"),
        "{text}"
    );
    assert!(
        !text.contains("\x1b["),
        "no colour when stdout is not a terminal"
    );
    // The same findings fail once info counts.
    assert_eq!(
        ktwin(&dir, &["doctor", "--fail-on", "info"]).status.code(),
        Some(1)
    );
    // With the adaptation turned off, the same findings are real problems.
    let y = std::fs::read_to_string(dir.join("ktwin.yaml"))
        .unwrap()
        .replace(
            "    adapt:\n",
            "    adapt:\n      volumeOwnership: false\n      pullSecrets: false\n",
        );
    std::fs::write(dir.join("ktwin.yaml"), y).unwrap();
    let o = ktwin(&dir, &["doctor", "-o", "json"]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_str(&out(&o)).unwrap();
    let sev = |check: &str| -> Vec<String> {
        v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["check"] == check)
            .map(|f| f["severity"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(sev("fsgroup-local-path"), ["warning"]);
    assert!(sev("pull-secret-missing").iter().all(|s| s == "error"));
}

#[test]
fn manifests_without_a_project_use_a_default_twin() {
    let tp = TempProject::new();
    tp.write(
        "m.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: a}\nspec:\n  template:\n    spec:\n      nodeSelector: {cloud.google.com/gke-nodepool: pool-1}\n      containers: [{name: a, image: 'x:1.0', readinessProbe: {tcpSocket: {port: 80}}}]\n",
    );
    let o = ktwin(tp.path(), &["doctor", "-f", "m.yaml", "-o", "json"]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_str(&out(&o)).unwrap();
    assert_eq!(v["findings"][0]["check"], "node-selector-unsatisfiable");
    assert_eq!(v["findings"][0]["file"], "m.yaml");
    assert_eq!(v["findings"][0]["line"], 1);
    let none = ktwin(tp.path(), &["doctor"]);
    assert_eq!(
        none.status.code(),
        Some(2),
        "no project and no -f is a usage error"
    );
}

#[test]
fn catalogue_and_explain() {
    let o = ktwin(Path::new("/"), &["doctor", "--list-checks"]);
    assert!(o.status.success());
    for id in ALL_IDS {
        assert!(out(&o).contains(id), "{id} missing from --list-checks");
    }
    let o = ktwin(
        Path::new("/"),
        &["doctor", "--explain", "service-env-collision"],
    );
    assert!(o.status.success() && out(&o).contains("enableServiceLinks: false"));
    let o = ktwin(Path::new("/"), &["doctor", "--explain", "probe-mising"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("did you mean `probe-missing`"));
}
