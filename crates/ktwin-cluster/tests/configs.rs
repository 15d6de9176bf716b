//! Provider config snapshots for the swarm example, and every generated k3d config validated
//! against the JSON Schema k3d itself uses (../shared/reference).

use std::path::Path;

use ktwin_cluster::provider::{provider_for, to_yaml};
use ktwin_config::{Project, Provider};
use ktwin_testkit::{assert_expected, workspace_root};

fn swarm() -> Project {
    let path = workspace_root().join("examples/swarm/ktwin.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    ktwin_config::load::parse(&path, text).unwrap().project
}

/// k3d's own schema from ../shared/reference; `None` (the check skipped, saying so) when a
/// clone of the repository has no ../shared beside it.
fn k3d_schema() -> Option<serde_json::Value> {
    let p = ktwin_testkit::shared("reference/k3d-v1alpha5-schema.json")?;
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    Some(serde_json::from_str(&text).unwrap())
}

fn assert_valid_k3d(cfg: &serde_json::Value) {
    let Some(schema) = k3d_schema() else {
        return;
    };
    let v = jsonschema::validator_for(&schema).expect("schema compiles");
    let errors: Vec<String> = v
        .iter_errors(cfg)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "k3d would reject this config:\n{}\n{}",
        errors.join("\n"),
        to_yaml(cfg)
    );
}

fn expected(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/expected")
        .join(name)
}

#[test]
fn k3d_config_for_swarm() {
    let p = swarm();
    let cfg = provider_for(Provider::K3d).render_config(&p);
    assert_valid_k3d(&cfg);
    assert_expected(&expected("swarm-k3d.yaml"), &to_yaml(&cfg));
    // Pool order gives agent indices: lobsters (count 2) after one pool are agent:1 and agent:2.
    let labels = cfg["options"]["k3s"]["nodeLabels"].as_array().unwrap();
    let lobster = labels
        .iter()
        .find(|l| l["label"] == "lobmob.io/role=lobster")
        .unwrap();
    assert_eq!(
        lobster["nodeFilters"],
        serde_json::json!(["agent:1", "agent:2"])
    );
    assert_eq!(cfg["agents"], 5);
    assert_eq!(cfg["ports"][0]["port"], "127.0.0.1:8080:30080");
}

#[test]
fn kind_config_for_swarm() {
    let p = swarm();
    let cfg = provider_for(Provider::Kind).render_config(&p);
    assert_expected(&expected("swarm-kind.yaml"), &to_yaml(&cfg));
    let nodes = cfg["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 6, "1 control plane + 5 workers");
    assert_eq!(
        nodes[0]["extraPortMappings"][0],
        serde_json::json!({"containerPort": 30080, "hostPort": 8080, "listenAddress": "127.0.0.1", "protocol": "TCP"})
    );
    let boss = &nodes[1];
    assert_eq!(boss["labels"]["lobmob.io/role"], "lobboss");
    let patch = boss["kubeadmConfigPatches"][0].as_str().unwrap();
    let parsed: serde_json::Value = serde_saphyr::from_str(patch).unwrap();
    assert_eq!(
        parsed["nodeRegistration"]["taints"][0],
        serde_json::json!({"key": "dedicated", "value": "lobboss", "effect": "NoSchedule"})
    );
    assert!(cfg["containerdConfigPatches"][0]
        .as_str()
        .unwrap()
        .contains("config_path = \"/etc/containerd/certs.d\""));
}

#[test]
fn k3d_configs_validate_across_shapes() {
    for extra in [
        "",
        "cluster:\n  servers: 3\n",
        "cluster:\n  agents:\n    - {name: a}\n    - {name: b}\n    - {name: c}\n    - {name: lobsters, count: 2, labels: {x.io/p: l}, taints: [\"gpu:NoExecute\"]}\n  ports:\n    - {hostPort: 5353, nodePort: 30053, protocol: UDP}\n",
    ] {
        let text = format!("apiVersion: ktwin.dev/v1alpha1\nkind: Project\nname: shape\n{extra}");
        let p = ktwin_config::load::parse(Path::new("/x/ktwin.yaml"), text).unwrap().project;
        let cfg = provider_for(Provider::K3d).render_config(&p);
        assert_valid_k3d(&cfg);
        if extra.contains("lobsters") {
            let args = cfg["options"]["k3s"]["extraArgs"].as_array().unwrap();
            assert_eq!(args[0]["arg"], "--node-taint=gpu:NoExecute");
            assert_eq!(args[0]["nodeFilters"], serde_json::json!(["agent:3", "agent:4"]));
            assert_eq!(cfg["ports"][0]["port"], "127.0.0.1:5353:30053/udp");
        }
    }
}

#[test]
fn the_schema_check_can_fail() {
    let cfg = provider_for(Provider::K3d).render_config(&swarm());
    let Some(schema) = k3d_schema() else {
        return;
    };
    let v = jsonschema::validator_for(&schema).unwrap();
    let mut typo = cfg.clone();
    typo["options"]["k3s"]["nodeLabel"] = serde_json::json!([]);
    assert!(!v.is_valid(&typo), "an unknown field is rejected");
    let mut wrong = cfg;
    wrong["apiVersion"] = serde_json::json!("k3d.io/v1alpha4");
    assert!(!v.is_valid(&wrong), "another apiVersion is rejected");
}

#[test]
fn version_gates() {
    let k3d = provider_for(Provider::K3d);
    assert!(k3d
        .check_version(Some(
            "k3d version v5.6.0\nk3s version v1.27.4-k3s1 (default)\n"
        ))
        .is_ok());
    let old = k3d
        .check_version(Some("k3d version v5.4.9\n"))
        .unwrap_err()
        .to_string();
    assert!(
        old.contains("needs k3d >= 5.5.0") && old.contains("v1alpha5"),
        "{old}"
    );
    assert!(k3d
        .check_version(None)
        .unwrap_err()
        .to_string()
        .contains("https://k3d.io"));
    let kind = provider_for(Provider::Kind);
    assert!(kind
        .check_version(Some("kind v0.23.0 go1.22 linux/amd64"))
        .is_ok());
    assert!(kind
        .check_version(Some("kind v0.19.0 go1.20 linux/amd64"))
        .is_err());
    assert!(kind
        .check_version(Some("garbage"))
        .unwrap_err()
        .to_string()
        .contains("could not read"));
}

#[test]
fn sync_in_mount_mode_mounts_the_project_into_every_node() {
    let text = "apiVersion: ktwin.dev/v1alpha1\nkind: Project\nname: sy\ncluster:\n  agents: [{name: a, count: 2}]\nimages:\n  - image: ghcr.io/acme/app\n    context: app\n    sync: [{src: 'src/**/*.py', dest: /app/src}]\n";
    let p = ktwin_config::load::parse(Path::new("/work/sy/ktwin.yaml"), text.into())
        .unwrap()
        .project;
    let k3d = provider_for(Provider::K3d).render_config(&p);
    assert_valid_k3d(&k3d);
    assert_eq!(
        k3d["volumes"],
        serde_json::json!([{"volume": "/work/sy:/ktwin/src", "nodeFilters": ["server:*", "agent:*"]}])
    );
    let kind = provider_for(Provider::Kind).render_config(&p);
    let nodes = kind["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3);
    for n in nodes {
        assert_eq!(
            n["extraMounts"],
            serde_json::json!([{"hostPath": "/work/sy", "containerPath": "/ktwin/src"}])
        );
    }
    // Adding the mount to an existing twin is recreate-class; copy mode mounts nothing.
    let before = ktwin_config::load::parse(
        Path::new("/work/sy/ktwin.yaml"),
        text.replace("    sync: [{src: 'src/**/*.py', dest: /app/src}]\n", ""),
    )
    .unwrap()
    .project;
    let d = ktwin_cluster::up::drift(
        &ktwin_cluster::up::spec_of(&before),
        &ktwin_cluster::up::spec_of(&p),
    );
    assert_eq!(
        d.recreate,
        ["project mount for sync (mounts are fixed at node create): none → /work/sy"]
    );
    let copy = ktwin_config::load::parse(
        Path::new("/work/sy/ktwin.yaml"),
        format!("{text}syncMode: copy\n"),
    )
    .unwrap()
    .project;
    assert!(provider_for(Provider::K3d).render_config(&copy)["volumes"].is_null());
    // A single-server twin: no agent filter (k3d would match nothing with it).
    let one = ktwin_config::load::parse(
        Path::new("/work/sy/ktwin.yaml"),
        text.replace("  agents: [{name: a, count: 2}]\n", "  servers: 1\n"),
    )
    .unwrap()
    .project;
    let cfg = provider_for(Provider::K3d).render_config(&one);
    assert_valid_k3d(&cfg);
    assert_eq!(
        cfg["volumes"][0]["nodeFilters"],
        serde_json::json!(["server:*"])
    );
}

#[test]
fn a_pinned_version_and_passthrough_args_reach_both_configs() {
    let k3d_text = "apiVersion: ktwin.dev/v1alpha1\nkind: Project\nname: pin\ncluster:\n  kubernetesVersion: v1.31\n  k3sArgs: [--disable=traefik]\n  agents: [{name: a, taints: ['gpu:NoExecute']}]\n";
    let p = ktwin_config::load::parse(Path::new("/x/ktwin.yaml"), k3d_text.into())
        .unwrap()
        .project;
    let k3d = provider_for(Provider::K3d).render_config(&p);
    assert_valid_k3d(&k3d);
    assert_eq!(k3d["image"], "rancher/k3s:v1.31.4-k3s1");
    assert_eq!(
        k3d["options"]["k3s"]["extraArgs"],
        serde_json::json!([
            {"arg": "--node-taint=gpu:NoExecute", "nodeFilters": ["agent:0"]},
            {"arg": "--disable=traefik", "nodeFilters": ["server:*"]}
        ])
    );
    let kind_text = "apiVersion: ktwin.dev/v1alpha1\nkind: Project\nname: pin\ncluster:\n  provider: kind\n  kubernetesVersion: v1.30.2\n  kubeadmConfigPatches: [\"kind: ClusterConfiguration\\napiServer:\\n  extraArgs:\\n    v: '4'\\n\"]\n  agents: [{name: a}]\n";
    let p = ktwin_config::load::parse(Path::new("/x/ktwin.yaml"), kind_text.into())
        .unwrap()
        .project;
    let kind = provider_for(Provider::Kind).render_config(&p);
    for n in kind["nodes"].as_array().unwrap() {
        assert_eq!(n["image"], "kindest/node:v1.30.2");
    }
    assert!(kind["kubeadmConfigPatches"][0]
        .as_str()
        .unwrap()
        .starts_with("kind: ClusterConfiguration"));
}

#[test]
fn an_unknown_version_or_the_other_providers_args_are_errors_at_their_line() {
    for (extra, want) in [
        ("  kubernetesVersion: v1.19\n", "no known k3s/kind image"),
        (
            "  kubernetesVersion: latest\n",
            "is not a Kubernetes version",
        ),
        (
            "  provider: kind\n  k3sArgs: [--disable=traefik]\n",
            "this cluster is kind",
        ),
        (
            "  kubeadmConfigPatches: ['kind: InitConfiguration']\n",
            "this cluster is k3d",
        ),
        ("  k3sArgs: [disable=traefik]\n", "is not a k3s flag"),
        ("  k3sArgs: ['--disable traefik']\n", "holds a space"),
    ] {
        let text =
            format!("apiVersion: ktwin.dev/v1alpha1\nkind: Project\nname: pin\ncluster:\n{extra}");
        let loaded = ktwin_config::load::parse(Path::new("/x/ktwin.yaml"), text).unwrap();
        let errs = ktwin_config::validate::validate(&loaded);
        let e = errs
            .iter()
            .find(|e| e.message.contains(want))
            .unwrap_or_else(|| panic!("{extra}: {errs:?}"));
        // The line of the offending key (line 4 is `cluster:`).
        let line = e.pos.as_ref().map(|p| p.line);
        let want_line = if extra.contains("provider") { 6 } else { 5 };
        assert_eq!(line, Some(want_line), "{extra}: {e:?}");
    }
}

#[test]
fn persistent_volumes_mount_the_hosts_volume_dir_as_each_providers_storage_path() {
    let text = "apiVersion: ktwin.dev/v1alpha1\nkind: Project\nname: pv\ncluster:\n  persistentVolumes: true\n  agents: [{name: a}]\n";
    let p = ktwin_config::load::parse(Path::new("/x/ktwin.yaml"), text.into())
        .unwrap()
        .project;
    let dir = p.volumes_dir().unwrap();
    assert!(dir.ends_with("ktwin/volumes/pv"), "{}", dir.display());
    let k3d = provider_for(Provider::K3d).render_config(&p);
    assert_valid_k3d(&k3d);
    assert_eq!(
        k3d["volumes"],
        serde_json::json!([{"volume": format!("{}:/var/lib/rancher/k3s/storage", dir.display()),
            "nodeFilters": ["server:*", "agent:*"]}])
    );
    let kind_text = text.replace("cluster:\n", "cluster:\n  provider: kind\n");
    let p = ktwin_config::load::parse(Path::new("/x/ktwin.yaml"), kind_text)
        .unwrap()
        .project;
    let kind = provider_for(Provider::Kind).render_config(&p);
    for n in kind["nodes"].as_array().unwrap() {
        assert_eq!(
            n["extraMounts"],
            serde_json::json!([{"hostPath": dir.display().to_string(), "containerPath": "/var/local-path-provisioner"}])
        );
    }
    // Turning it on for a running twin is recreate-class: mounts are fixed at node create.
    let off = ktwin_config::load::parse(
        Path::new("/x/ktwin.yaml"),
        text.replace("  persistentVolumes: true\n", ""),
    )
    .unwrap()
    .project;
    let d = ktwin_cluster::up::drift(
        &ktwin_cluster::up::spec_of(&off),
        &ktwin_cluster::up::spec_of(&p),
    );
    assert!(
        d.recreate
            .iter()
            .any(|r| r.starts_with("persistent volumes") && r.contains("mounts are fixed")),
        "{d:?}"
    );
}
