//! Tier 1: the rollout-proof forward against ktwin-testkit's kube API **stand-in**, which
//! serves pod port-forwards over WebSocket as the kubelet does (v4.channel.k8s.io; the
//! "container port" is a TCP listener this test runs). A connection goes to the newest Ready
//! pod; when a rollout replaces that pod, the local port stays open and the next connection
//! reaches the new one; with no Ready pod a connection is refused with the reason, and the
//! listener lives on.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ktwin_kube::connect;
use ktwin_kube::forward::{bind, serve, Event, Spec};
use ktwin_testkit::kubeapi::ApiStandIn;
use serde_json::json;

/// A "container": answers every connection with `reply` and what it read, then closes.
fn container(reply: &'static str) -> std::net::SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { continue };
            let mut buf = [0u8; 64];
            let n = c.read(&mut buf).unwrap_or(0);
            let _ =
                c.write_all(format!("{reply}:{}", String::from_utf8_lossy(&buf[..n])).as_bytes());
        }
    });
    addr
}

fn pod(name: &str, created: &str, ready: bool) -> serde_json::Value {
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "shop", "labels": {"app": "api"}, "creationTimestamp": created},
        "spec": {"containers": [{"name": "api", "image": "x", "ports": [{"name": "http", "containerPort": 9000}]}]},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]}})
}

/// Connect to the local end, say `hi`, read the answer.
fn ask(port: u16) -> String {
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(b"hi").unwrap();
    let mut s = String::new();
    let _ = c.read_to_string(&mut s);
    s
}

type Events = Arc<Mutex<Vec<Event>>>;

/// Forward service/api (shop) port 8080 on a free local port, through the stand-in's
/// kubeconfig `kc`; the runtime that serves it, the spec, the port and what it reports.
fn forward_api_8080(kc: &std::path::Path) -> (tokio::runtime::Runtime, Spec, u16, Events) {
    let events: Events = Arc::default();
    let ev = events.clone();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let text = std::fs::read_to_string(kc).unwrap();
    let g = ktwin_kube::guard::local("local", "k3d-shop", &text, "the test").unwrap();
    let spec = Spec {
        namespace: "shop".into(),
        service: "api".into(),
        port: 8080,
        local_port: 0,
    };
    let port = rt.block_on(async {
        let client = connect(&g).await.unwrap();
        let (l, port) = bind(&spec).await.unwrap();
        tokio::spawn(serve(
            client,
            spec.clone(),
            l,
            port,
            Arc::new(move |e| ev.lock().unwrap().push(e)),
        ));
        port
    });
    (rt, spec, port, events)
}

#[test]
fn a_forward_keeps_serving_across_a_rollout() {
    let api = ApiStandIn::start();
    let dir = ktwin_testkit::TempProject::new();
    let kc = api.kubeconfig(dir.path(), &["k3d-shop"]);
    api.put(json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "api", "namespace": "shop"},
        "spec": {"selector": {"app": "api"}, "ports": [{"port": 8080, "targetPort": "http"}]}}));
    api.put(pod("api-a", "2026-12-01T10:00:00Z", true));
    api.with(|s| s.serve_pod_port("shop", "api-a", 9000, container("A")));
    // `_rt` keeps the runtime (and the forward) alive to the end of the test.
    let (_rt, _spec, port, events) = forward_api_8080(&kc);
    assert_eq!(ask(port), "A:hi");

    // The rollout: a new Ready pod, the old one gone.
    api.put(pod("api-b", "2026-12-01T10:05:00Z", true));
    api.with(|s| s.serve_pod_port("shop", "api-b", 9000, container("B")));
    assert!(api.with(|s| s.delete("v1", "Pod", "shop", "api-a")));
    // The same local port; the new pod answers.
    assert_eq!(ask(port), "B:hi");

    // No Ready pod: the connection ends, the reason is reported, the listener stays.
    api.with(|s| {
        s.set("v1", "Pod", "shop", "api-b", |p| {
            p["status"]["conditions"][0]["status"] = json!("False")
        })
    });
    assert_eq!(ask(port), "");
    api.with(|s| {
        s.set("v1", "Pod", "shop", "api-b", |p| {
            p["status"]["conditions"][0]["status"] = json!("True")
        })
    });
    assert_eq!(ask(port), "B:hi");

    let evs = events.lock().unwrap().clone();
    let pods: Vec<&str> = evs
        .iter()
        .filter_map(|e| match e {
            Event::Connected { pod, .. } => Some(pod.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(pods, ["api-a", "api-b", "api-b"], "{evs:?}");
    assert!(
        evs.iter().any(
            |e| matches!(e, Event::Failed { message, .. } if message.contains("no Ready pod"))
        ),
        "{evs:?}"
    );
}

#[test]
fn a_port_nothing_listens_on_is_reported() {
    let api = ApiStandIn::start();
    let dir = ktwin_testkit::TempProject::new();
    let kc = api.kubeconfig(dir.path(), &["k3d-shop"]);
    api.put(json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "api", "namespace": "shop"},
        "spec": {"selector": {"app": "api"}, "ports": [{"port": 8080, "targetPort": 9000}]}}));
    api.put(pod("api-a", "2026-12-01T10:00:00Z", true));
    let (rt, spec, port, events) = forward_api_8080(&kc);
    assert_eq!(ask(port), "");
    std::thread::sleep(Duration::from_millis(200));
    let evs = events.lock().unwrap().clone();
    assert!(
        evs.iter().any(
            |e| matches!(e, Event::Failed { message, .. } if message.contains("connection refused"))
        ),
        "{evs:?}"
    );
    // A port already taken is an error that names it.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = Spec {
        local_port: taken.local_addr().unwrap().port(),
        ..spec
    };
    let e = rt.block_on(bind(&busy)).unwrap_err().to_string();
    assert!(e.contains("cannot listen on 127.0.0.1"), "{e}");
}
