//! Upstream 0.7.2 assets end to end: a root written by the real upstream package with every
//! asset call (`snapshot_code`, `log_dataset` saved and not, `log_pretrained`, `scan_outputs_once`
//! in rolling and deduplicating modes) is synced over a real OpenSSH sshd by the real
//! `runicorn-hub connect`; the dashboard's `GET /api/runs/{run}/artifacts` lists its assets and
//! every saved file held in `archive/blobs/` downloads through
//! `/api/remotes/{name}/blobs/{sha256}` with the bytes of that SHA-256, fetched from the server
//! on demand. Upstream writes `archive_path` as absolute paths of the writing machine; none is
//! ever given back as a location.
//!
//! The root is written now by `tests/support/upstream_assets_run.py` when
//! `RUNICORN_UPSTREAM_PYTHON` names a Python with the upstream package; otherwise it is the
//! committed fixture `tests/fixtures/upstream-0.7.2-assets` (written by that script with 0.7.2).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use runicorn_hub::file_fetch::RemoteFiles;
use runicorn_hub::store_thread::StoreHandle;
use runicorn_tests::dashboard::ServedDashboard;
use runicorn_tests::hub::{connect_ssh_once, show};
use runicorn_tests::sshd::Sshd;
use runicorn_tests::{output_within, workspace_root};
use serde_json::Value;

/// Longest any one command may take.
const LIMIT: Duration = Duration::from_secs(180);

/// The fixture's run (its directory name is its run id).
const FIXTURE_RUN: &str = "20261205_025340_694eef";

fn sha256_hex(bytes: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("f");
    std::fs::write(&file, bytes).unwrap();
    runicorn_tests::sha256sum(&file)
}

/// Writes the upstream root into `root`; returns the run id.
fn upstream_root(root: &Path, scratch: &Path) -> String {
    if let Some(python) = std::env::var_os("RUNICORN_UPSTREAM_PYTHON").map(PathBuf::from) {
        let out = output_within(
            Command::new(python)
                .arg(workspace_root().join("tests/support/upstream_assets_run.py"))
                .arg(root)
                .arg(scratch.join("ws"))
                .env_remove("PYTHONPATH")
                .env_remove("RUNICORN_DIR"),
            LIMIT,
        );
        assert!(out.status.success(), "{}", show(&out));
        let line: Value = serde_json::from_slice(
            out.stdout
                .split(|b| *b == b'\n')
                .rfind(|l| l.starts_with(b"{"))
                .unwrap(),
        )
        .unwrap();
        return line["run_id"].as_str().unwrap().to_owned();
    }
    eprintln!("note: RUNICORN_UPSTREAM_PYTHON not set: using tests/fixtures/upstream-0.7.2-assets");
    let fixture = workspace_root().join("tests/fixtures/upstream-0.7.2-assets");
    let out = output_within(
        Command::new("cp")
            .arg("-a")
            .arg(format!("{}/.", fixture.display()))
            .arg(root),
        LIMIT,
    );
    assert!(out.status.success(), "{}", show(&out));
    FIXTURE_RUN.to_owned()
}

#[test]
fn upstream_assets_are_listed_and_their_blobs_fetched_intact_over_sshd() {
    let sshd = Sshd::start();
    let home = sshd.client_home();
    home.trust(&sshd);
    let root = tempfile::tempdir().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let run_id = upstream_root(root.path(), scratch.path());
    let hub_dir = tempfile::tempdir().unwrap();
    connect_ssh_once(
        &home,
        hub_dir.path(),
        &sshd,
        root.path(),
        &["--prefetch", "none"],
    );

    let store = StoreHandle::open(hub_dir.path()).unwrap();
    let fetcher: Arc<dyn runicorn_web::FileFetcher> =
        Arc::new(RemoteFiles::with_connect_options(store, home.options()));
    let dash = ServedDashboard::start(hub_dir.path(), Some(fetcher));
    let answer = dash.json(&format!("/api/runs/{run_id}/artifacts"));
    assert_eq!(answer["remote"], "gpu");
    assert!(answer["assets"]["code"]["snapshot"].is_object(), "{answer}");
    let entries = answer["asset_entries"].as_array().unwrap();
    let named = |category: &str, name: &str| -> &Value {
        entries
            .iter()
            .find(|e| e["category"] == category && e["name"] == name)
            .unwrap_or_else(|| panic!("no {category} {name} in {entries:?}"))
    };
    // Every call of the script shows: the code snapshot, the datasets saved and not, the
    // pretrained models saved and not, the outputs of both modes.
    let code = named("code", "code_snapshot.zip");
    let cifar = named("dataset", "cifar");
    assert_eq!(
        (cifar["kind"].as_str(), cifar["saved"].as_bool()),
        (Some("dir"), Some(true))
    );
    assert_eq!(cifar["file_count"], 3);
    assert!(cifar["archive"]
        .as_str()
        .unwrap()
        .starts_with("archive/manifests/datasets/"));
    let labels = named("dataset", "labels");
    assert_eq!(named("dataset", "unsaved")["saved"], false);
    let backbone = named("pretrained", "backbone");
    assert_eq!(named("pretrained", "hub-model")["saved"], false);
    let final_pt = named("output", "final.pt");
    assert_eq!(final_pt["mode"], "dedup");
    let best = named("output", "best.pt");
    assert_eq!(best["mode"], "rolling");
    assert_eq!(best["download"], Value::Null, "a rolling copy has no blob");
    // No location is the writing machine's absolute path.
    for e in entries {
        let archive = e["archive"].as_str().unwrap_or("archive/");
        assert!(archive.starts_with("archive/"), "{e}");
        assert!(!archive.contains(".."), "{e}");
    }

    // Each blob-held file downloads with the bytes of its SHA-256, the server's bytes.
    let mut downloaded = 0;
    for e in [code, labels, backbone, final_pt] {
        let sha = e["sha256"].as_str().unwrap_or_else(|| panic!("{e}"));
        let url = e["download"].as_str().unwrap_or_else(|| panic!("{e}"));
        assert_eq!(url, format!("/api/remotes/gpu/blobs/{sha}"));
        let got = dash.get(url);
        assert_eq!(got.status, 200, "{url}: {}", got.text());
        assert_eq!(sha256_hex(&got.body), sha, "{url}");
        let on_server = std::fs::read(root.path().join(e["archive"].as_str().unwrap())).unwrap();
        assert!(got.body == on_server, "{url}: not the server's bytes");
        downloaded += 1;
    }
    assert_eq!(downloaded, 4);
    // The code snapshot is also the run's own code_snapshot.zip.
    let run_dir = std::fs::read_dir(root.path().join("runs/assets/compat"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.ends_with(&run_id))
        .unwrap();
    let zip = std::fs::read(run_dir.join("code_snapshot.zip")).unwrap();
    assert_eq!(sha256_hex(&zip), code["sha256"].as_str().unwrap());
    assert!(dash.stop(Duration::from_secs(30)));
}
