//! Tier 1: `ktwin run` and `ktwin jobs` end to end against ktwin-testkit's kube API
//! **stand-in**, whose Job controller and kubelet the test plays (`job_controller`): the
//! generated Job's every default, `--from`, the payload Secret the Job owns, success, a
//! failure's exit code, a deadline, an unschedulable pod explained, the result marker, cancel
//! (Ctrl-C and `jobs cancel`) taking pods and Secret with it, and a later deploy's prune
//! leaving runs alone. No image is built here (`--no-build`; tier 2 builds for real).
#![allow(clippy::disallowed_methods)] // tests run the binary and real tools directly

use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use ktwin_testkit::kubeapi::{healthy_workloads, job_controller, ApiStandIn, JobScript};
use ktwin_testkit::{ktwin_with_stubs, StubBin, TempProject};
use serde_json::Value;

struct World {
    tp: TempProject,
    stubs: StubBin,
    state: tempfile::TempDir,
    api: ApiStandIn,
}

const CRONJOB: &str = "\
apiVersion: batch/v1
kind: CronJob
metadata: {name: lobster-sweep, namespace: swarm}
spec:
  schedule: '0 3 * * *'
  jobTemplate:
    spec:
      backoffLimit: 2
      template:
        spec:
          restartPolicy: OnFailure
          containers:
            - name: sweep
              image: ghcr.io/acme/lobster:1.0
              args: [sweep]
              resources:
                requests: {cpu: '2', memory: 8Gi}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: swarm}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: nginx:1.27}]
";

impl World {
    fn new(script: impl Fn(&Value) -> JobScript + Send + 'static) -> World {
        let tp = TempProject::new();
        let api = ApiStandIn::start();
        let kubeconfig = api.kubeconfig(tp.path(), &["k3d-swarm"]);
        tp.write(
            "ktwin.yaml",
            "apiVersion: ktwin.dev/v1alpha1\nkind: Project\nname: swarm\nregistry:\n  hostPort: 5999\nimages:\n  - {image: ghcr.io/acme/agent-runner, context: containers/agent}\njobs:\n  agent-runner:\n    image: ghcr.io/acme/agent-runner\n    command: [bun, run, /app/job-runner.ts]\n    env: {EXECUTION_BACKEND: k8s}\n    resultMarker: SandboxExecutionResult\nenvironments:\n  local:\n    namespace: swarm\n    manifests: [k8s]\n",
        );
        tp.write(
            "containers/agent/Dockerfile",
            "FROM scratch\nCOPY job-runner.ts /app/\n",
        );
        tp.write("containers/agent/job-runner.ts", "console.log('hi')\n");
        tp.write("k8s/app.yaml", CRONJOB);
        api.controller(healthy_workloads);
        api.controller(job_controller(script));
        let stubs = StubBin::new();
        let own = std::fs::read_to_string(&kubeconfig).unwrap();
        stubs.add_rules("k3d", &[("kubeconfig get swarm", &own, 0)]);
        World {
            tp,
            stubs,
            state: tempfile::tempdir().unwrap(),
            api,
        }
    }

    fn cmd(&self, args: &[&str]) -> std::process::Command {
        let mut c = ktwin_with_stubs(
            env!("CARGO_BIN_EXE_ktwin"),
            self.tp.path(),
            &self.stubs,
            self.state.path(),
        );
        c.args(args);
        c
    }

    fn ktwin(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    fn jobs(&self) -> Vec<Value> {
        self.api.list("batch/v1", "Job")
    }
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn ok_with(lines: &[&str]) -> JobScript {
    JobScript::Exit {
        exit: 0,
        lines: lines.iter().map(|s| s.to_string()).collect(),
        message: None,
    }
}

#[test]
fn dry_run_prints_the_hardened_job_and_why_each_default() {
    let w = World::new(|_| ok_with(&[]));
    std::fs::write(w.tp.path().join("prompt.md"), "Sweep the lobsters.\n").unwrap();
    let o = w.ktwin(&[
        "run",
        "agent-runner",
        "--dry-run",
        "--no-build",
        "--env-b64",
        "TASK_PROMPT_B64=@prompt.md",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    // YAML by default with --dry-run; the same objects as -o json (checked below).
    let yaml = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        yaml.contains("kind: Job") && yaml.contains("runAsNonRoot: true"),
        "{yaml}"
    );
    let o = w.ktwin(&[
        "run",
        "agent-runner",
        "--dry-run",
        "--no-build",
        "-o",
        "json",
        "--env-b64",
        "TASK_PROMPT_B64=@prompt.md",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let docs = v["items"].as_array().unwrap();
    assert_eq!(docs.len(), 1, "{}", text(&o));
    let j = &docs[0];
    let name = j["metadata"]["name"].as_str().unwrap();
    assert!(
        name.starts_with("agent-runner-") && name.len() == "agent-runner-".len() + 5,
        "{name}"
    );
    assert_eq!(j["metadata"]["namespace"], "swarm");
    assert_eq!(j["spec"]["backoffLimit"], 0);
    assert_eq!(j["spec"]["ttlSecondsAfterFinished"], 300);
    assert_eq!(j["spec"]["activeDeadlineSeconds"], 3600);
    let pod = &j["spec"]["template"]["spec"];
    assert_eq!(pod["restartPolicy"], "Never");
    assert_eq!(pod["automountServiceAccountToken"], false);
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["runAsUser"], 1000);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    // One node (no agents): the control-plane toleration.
    assert_eq!(
        pod["tolerations"][0]["key"],
        "node-role.kubernetes.io/control-plane"
    );
    let c = &pod["containers"][0];
    assert_eq!(c["securityContext"]["capabilities"]["drop"][0], "ALL");
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    // The ktwin-built image at its content tag in the local registry, as the render gives it.
    let image = c["image"].as_str().unwrap();
    assert!(
        image.starts_with("localhost:5999/acme/agent-runner:"),
        "{image}"
    );
    // Requests relaxed by the local adaptation like any pod's; limits kept.
    assert_eq!(c["resources"]["requests"]["cpu"], "100m", "{}", text(&o));
    assert_eq!(c["resources"]["limits"]["memory"], "4Gi");
    // The payload's value is the user's file: redacted in the output, its size said.
    let env = c["env"].as_array().unwrap();
    let p = env.iter().find(|e| e["name"] == "TASK_PROMPT_B64").unwrap();
    assert!(
        p["value"]
            .as_str()
            .unwrap()
            .starts_with("<redacted: 28 bytes"),
        "{p}"
    );
    assert!(!String::from_utf8_lossy(&o.stdout).contains("U3dlZXA"));
    // Each default and each adaptation is recorded with its reason (a table on stderr; the
    // `changes` array with -o json).
    let changes = v["changes"].as_array().unwrap();
    let why = |path: &str| {
        changes
            .iter()
            .find(|c| c["path"] == path)
            .and_then(|c| c["reason"].as_str())
            .unwrap_or_else(|| panic!("no change at {path}: {changes:#?}"))
            .to_string()
    };
    assert!(why("/spec/backoffLimit").contains("runs once"));
    assert!(why("/spec/template/spec/securityContext/runAsNonRoot").contains("root"));
    assert!(
        why("/spec/template/spec/containers/0/securityContext/capabilities").contains("capability")
    );
    assert!(
        changes.iter().any(|c| c["knob"] == "adapt.resources"),
        "{changes:#?}"
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("change(s)"));
    // Nothing was created.
    assert!(w.jobs().is_empty());
}

#[test]
fn from_a_cronjob_keeps_what_it_sets() {
    let w = World::new(|_| ok_with(&[]));
    let o = w.ktwin(&[
        "run",
        "--from",
        "cronjob/lobster-sweep",
        "--dry-run",
        "-o",
        "json",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let j = &v["items"][0];
    assert!(j["metadata"]["name"]
        .as_str()
        .unwrap()
        .starts_with("lobster-sweep-"));
    assert_eq!(j["spec"]["backoffLimit"], 2);
    assert_eq!(j["spec"]["template"]["spec"]["restartPolicy"], "OnFailure");
    assert_eq!(
        j["spec"]["template"]["spec"]["containers"][0]["args"][0],
        "sweep"
    );
    assert_eq!(j["spec"]["ttlSecondsAfterFinished"], 300);
    let o = w.ktwin(&["run", "--from", "cronjob/nope", "--dry-run"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("cronjob/lobster-sweep"), "{}", text(&o));
}

#[test]
fn a_run_that_succeeds_prints_its_log_then_its_result() {
    let w = World::new(|_| {
        ok_with(&[
            "starting",
            "SandboxExecutionResult {\"ok\":true,\"files\":3}",
            "bye",
        ])
    });
    let o = w.ktwin(&[
        "run",
        "agent-runner",
        "--no-build",
        "--set-env",
        "LOG_LEVEL=debug",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [
            "starting",
            "SandboxExecutionResult {\"ok\":true,\"files\":3}",
            "bye",
            "result: {\"ok\":true,\"files\":3}"
        ],
        "{}",
        text(&o)
    );
    assert!(text(&o).contains("succeeded"), "{}", text(&o));
    let jobs = w.jobs();
    assert_eq!(jobs.len(), 1);
    let env = &jobs[0]["spec"]["template"]["spec"]["containers"][0]["env"];
    assert!(env
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["name"] == "LOG_LEVEL" && e["value"] == "debug"));
    // Created under its own field manager, not server-side applied as `ktwin`.
    let managers: Vec<&str> = jobs[0]["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["manager"].as_str())
        .collect();
    assert_eq!(managers, ["ktwin-run"]);
    // `jobs logs` reads the run's log again, with its result.
    let name = jobs[0]["metadata"]["name"].as_str().unwrap().to_string();
    let o = w.ktwin(&["jobs", "logs", &name]);
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.starts_with("starting\n"), "{}", text(&o));
    assert!(
        out.ends_with("result: {\"ok\":true,\"files\":3}\n"),
        "{}",
        text(&o)
    );
    let o = w.ktwin(&["jobs", "list", "-o", "json"]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v[0]["state"], "succeeded", "{v}");
    assert_eq!(v[0]["template"], "agent-runner");

    // -o json: one object at the end, the log on stderr.
    let o = w.ktwin(&["run", "agent-runner", "--no-build", "-o", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v: Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&o)));
    assert_eq!(v["outcome"], "succeeded");
    assert_eq!(v["exitCode"], 0);
    assert_eq!(v["result"][0]["files"], 3);
    assert!(v["name"].as_str().unwrap().starts_with("agent-runner-"));
    assert!(v["seconds"].as_f64().is_some());
    assert!(String::from_utf8_lossy(&o.stderr).contains("starting"));
}

#[test]
fn a_failure_exits_with_the_containers_code_and_its_termination_message() {
    let w = World::new(|_| JobScript::Exit {
        exit: 3,
        lines: vec!["boom".into()],
        message: Some("sandbox crashed: out of disk".into()),
    });
    let o = w.ktwin(&["run", "agent-runner", "--no-build"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("boom"), "{t}");
    assert!(
        t.contains("termination message: sandbox crashed: out of disk"),
        "{t}"
    );
    assert!(
        t.contains("failed (exit code 3): BackoffLimitExceeded"),
        "{t}"
    );
}

#[test]
fn a_deadline_and_an_unschedulable_pod_are_explained() {
    let w = World::new(|j| {
        if j["metadata"]["name"]
            .as_str()
            .unwrap_or("")
            .starts_with("agent-runner")
        {
            JobScript::Deadline {
                lines: vec!["working".into()],
            }
        } else {
            JobScript::Unschedulable("0/1 nodes are available: 1 Insufficient memory.".into())
        }
    });
    let o = w.ktwin(&["run", "agent-runner", "--no-build"]);
    assert_eq!(o.status.code(), Some(124), "{}", text(&o));
    assert!(text(&o).contains("DeadlineExceeded"), "{}", text(&o));

    let o = w.ktwin(&["run", "--from", "cronjob/lobster-sweep", "--timeout", "2s"]);
    assert_eq!(o.status.code(), Some(124), "{}", text(&o));
    let t = text(&o);
    assert!(
        t.contains("Pending: 0/1 nodes are available: 1 Insufficient memory."),
        "{t}"
    );
    // Said once, not every poll.
    assert_eq!(t.matches("Insufficient memory").count(), 1, "{t}");
    assert!(
        t.contains("keeps running") && t.contains("ktwin jobs cancel lobster-sweep-"),
        "{t}"
    );
    // Waiting ended; the run did not.
    assert_eq!(w.jobs().len(), 2);
}

#[test]
fn a_big_payload_goes_to_a_secret_the_job_owns_and_cancel_takes_both() {
    let w = World::new(|_| JobScript::Unschedulable("0/1 nodes are available".into()));
    let big: String = "lobster ".repeat(16 * 1024);
    std::fs::write(w.tp.path().join("prompt.md"), &big).unwrap();
    let o = w.ktwin(&[
        "run",
        "agent-runner",
        "--no-build",
        "--detach",
        "--env-b64",
        "TASK_PROMPT_B64=@prompt.md",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let name = String::from_utf8_lossy(&o.stdout).trim().to_string();
    let job = w.api.get("batch/v1", "Job", "swarm", &name).unwrap();
    // Resumed once its Secret existed.
    assert_eq!(job["spec"]["suspend"], false);
    let env = &job["spec"]["template"]["spec"]["containers"][0]["env"];
    let p = env
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "TASK_PROMPT_B64")
        .unwrap();
    let sname = format!("{name}-payload");
    assert_eq!(p["valueFrom"]["secretKeyRef"]["name"], sname.as_str());
    let s = w.api.get("v1", "Secret", "swarm", &sname).unwrap();
    assert_eq!(
        s["metadata"]["ownerReferences"][0]["uid"],
        job["metadata"]["uid"]
    );
    assert_eq!(s["metadata"]["ownerReferences"][0]["kind"], "Job");
    assert!(w
        .api
        .list("v1", "Pod")
        .iter()
        .any(|p| p["metadata"]["labels"]["job-name"] == name.as_str()));

    // What the run does not own: a Secret of the app, a claim with data.
    w.api
        .put(serde_json::json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "swarm-secrets", "namespace": "swarm"}, "data": {"K": "dg=="}}));
    w.api.put(
        serde_json::json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data-postgres-0", "namespace": "swarm"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}),
    );
    // `jobs list` shows it; cancel takes the Job, its pod and its Secret.
    let o = w.ktwin(&["jobs", "list"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(&name),
        "{}",
        text(&o)
    );
    let o = w.ktwin(&["jobs", "cancel", &name]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(w.api.get("batch/v1", "Job", "swarm", &name).is_none());
    assert!(w.api.get("v1", "Secret", "swarm", &sname).is_none());
    assert!(
        w.api.list("v1", "Pod").is_empty(),
        "{:#?}",
        w.api.list("v1", "Pod")
    );
    // …and nothing else.
    assert!(w
        .api
        .get("v1", "Secret", "swarm", "swarm-secrets")
        .is_some());
    assert!(w
        .api
        .get("v1", "PersistentVolumeClaim", "swarm", "data-postgres-0")
        .is_some());
    let del = w
        .api
        .requests()
        .into_iter()
        .find(|r| r.method == "DELETE")
        .unwrap();
    assert!(del.path.ends_with(&format!("/jobs/{name}")), "{del:?}");
}

#[test]
fn cancel_touches_only_this_projects_runs() {
    let w = World::new(|_| ok_with(&[]));
    // A Job someone else made, in the same namespace.
    w.api.put(serde_json::json!({"apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "theirs", "namespace": "swarm"},
        "spec": {"suspend": true, "template": {"spec": {"containers": [{"name": "x", "image": "busybox"}]}}}}));
    let o = w.ktwin(&["jobs", "cancel", "theirs"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("no run `theirs`"), "{}", text(&o));
    assert!(w.api.get("batch/v1", "Job", "swarm", "theirs").is_some());
    // One that copied a run's labels, but was not created by `ktwin run`: refused too.
    w.api.put(serde_json::json!({"apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "lookalike", "namespace": "swarm", "labels": {
            "ktwin.dev/project": "swarm", "ktwin.dev/env": "local", "ktwin.dev/job": "agent-runner"}},
        "spec": {"suspend": true, "template": {"spec": {"containers": [{"name": "x", "image": "busybox"}]}}}}));
    w.api.with(|s| {
        s.own(
            "batch/v1",
            "Job",
            "swarm",
            "lookalike",
            "kubectl-client-side-apply",
        )
    });
    let o = w.ktwin(&["jobs", "cancel", "lookalike"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(w.api.get("batch/v1", "Job", "swarm", "lookalike").is_some());
}

#[test]
fn ctrl_c_while_attached_deletes_the_run() {
    let w = World::new(|_| JobScript::Unschedulable("0/1 nodes are available".into()));
    let mut child = w
        .cmd(&["run", "agent-runner", "--no-build"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while w.jobs().is_empty() || w.api.list("v1", "Pod").is_empty() {
        assert!(Instant::now() < deadline, "no run created");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Give the attach loop its first poll, then Ctrl-C (this test started it: its PID).
    std::thread::sleep(Duration::from_millis(700));
    assert!(std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    assert!(w.jobs().is_empty(), "{:#?}", w.jobs());
    assert!(w.api.list("v1", "Pod").is_empty());
}

#[test]
fn a_later_deploy_never_prunes_a_run() {
    let w = World::new(|_| JobScript::Unschedulable("0/1 nodes are available".into()));
    let o = w.ktwin(&["run", "agent-runner", "--no-build", "--detach"]);
    assert!(o.status.success(), "{}", text(&o));
    let name = String::from_utf8_lossy(&o.stdout).trim().to_string();
    // A deploy whose render holds no Job: prune runs (local) and must leave the run alone.
    std::fs::write(
        w.tp.path().join("k8s/app.yaml"),
        CRONJOB.split("---").nth(1).unwrap(),
    )
    .unwrap();
    let o = w.ktwin(&["deploy"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        w.api.get("batch/v1", "Job", "swarm", &name).is_some(),
        "{}",
        text(&o)
    );
}
