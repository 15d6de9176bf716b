//! Tier 1: copy-mode sync against ktwin-testkit's kube API **stand-in**, which serves exec over
//! WebSocket as the API server does (v5.channel.k8s.io) and runs `tar` with a directory this
//! test owns standing for the container's file system: the files land at their paths; an
//! image without `tar` is a clear error naming the mount mode.

use ktwin_kube::connect;
use ktwin_kube::sync::{copy_into, CopyError, CopyFile};
use ktwin_testkit::kubeapi::ApiStandIn;
use ktwin_testkit::TempProject;
use serde_json::json;

#[test]
fn files_are_copied_into_the_container_and_no_tar_is_said() {
    let api = ApiStandIn::start();
    let dir = TempProject::new();
    let kc = api.kubeconfig(dir.path(), &["k3d-shop"]);
    api.put(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-1", "namespace": "shop"},
        "spec": {"containers": [{"name": "app", "image": "x"}, {"name": "distroless", "image": "y"}]},
        "status": {"phase": "Running"}}));
    let root = tempfile::tempdir().unwrap();
    api.with(|s| {
        s.serve_container_fs("shop", "web-1", "app", root.path(), true);
        s.serve_container_fs("shop", "web-1", "distroless", root.path(), false);
    });
    let text = std::fs::read_to_string(&kc).unwrap();
    let g = ktwin_kube::guard::local("local", "k3d-shop", &text, "the test").unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let files = vec![
        CopyFile {
            dest: "/app/main.py".into(),
            bytes: b"print('v2')\n".to_vec(),
            mode: 0o644,
        },
        CopyFile {
            dest: "/app/lib/util.py".into(),
            bytes: vec![b'x'; 200_000],
            mode: 0o644,
        },
    ];
    let (ok, no_tar) = rt.block_on(async {
        let client = connect(&g).await.unwrap();
        (
            copy_into(&client, "shop", "web-1", "app", &files).await,
            copy_into(&client, "shop", "web-1", "distroless", &files).await,
        )
    });
    ok.unwrap();
    assert_eq!(
        std::fs::read(root.path().join("app/main.py")).unwrap(),
        b"print('v2')\n"
    );
    assert_eq!(
        std::fs::read(root.path().join("app/lib/util.py"))
            .unwrap()
            .len(),
        200_000
    );
    let e = no_tar.unwrap_err();
    assert!(matches!(e, CopyError::NoTar { .. }), "{e}");
    assert!(e.to_string().contains("syncMode: mount"), "{e}");
}
