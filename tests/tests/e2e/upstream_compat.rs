//! What we add to the run format must keep upstream's own readers working: runs written by the
//! Rust writer and by `runicorn-agent run` are read here by the viewer of the PyPI `runicorn`
//! 0.7.2 package (its FastAPI app, driven by `tests/support/upstream_viewer.py`).
//!
//! The upstream package lives in a venv that `scripts/test-all.sh` makes and names in
//! `RUNICORN_UPSTREAM_PYTHON`. Without it the test is skipped with a note, except in CI (`CI`
//! set), where a missing venv is a failure.

use std::path::PathBuf;
use std::process::Command;

use runicorn_protocol::run_format::{MetricGoal, RunOutcome, RunSpec, RunWriter};
use runicorn_tests::{agent_run, describe, workspace_root};
use serde_json::{json, Value};

fn upstream_python() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("RUNICORN_UPSTREAM_PYTHON").map(PathBuf::from),
        Some(workspace_root().join(".ci-cache/upstream-venv/bin/python")),
        Some(workspace_root().join("sdk/python/.upstream-venv/bin/python")),
    ];
    let found = candidates.into_iter().flatten().find(|p| p.exists());
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "no Python with the upstream runicorn package: run scripts/test-all.sh or set RUNICORN_UPSTREAM_PYTHON"
        );
        eprintln!("skipped: no upstream runicorn venv (scripts/test-all.sh makes one)");
    }
    found
}

#[test]
fn upstream_viewer_reads_runs_from_the_rust_writer_and_the_wrapper() {
    let Some(python) = upstream_python() else {
        return;
    };
    let root = tempfile::tempdir().unwrap();

    let mut spec = RunSpec::new(root.path(), "runicorn-tests");
    spec.path = Some("rust/writer".into());
    spec.alias = Some("from-rust".into());
    let mut w = RunWriter::create(&spec).unwrap();
    w.set_primary_metric("acc", MetricGoal::Max);
    for i in 1..=4 {
        let x = f64::from(i);
        w.log_metrics(&[("loss", 1.0 / x), ("acc", x / 10.0)], None, Some("train"))
            .unwrap();
    }
    w.log_metrics(&[("loss", f64::NAN)], Some(10), None)
        .unwrap();
    w.log_image("pred", b"\x89PNG\r\n\x1a\nfake", "png", Some(4), Some("c"))
        .unwrap();
    w.log_config(json!({"lr": 0.1}), json!({}), &[]).unwrap();
    w.finish(RunOutcome::finished()).unwrap();
    let rust_id = w.id().to_owned();

    let wrapped = agent_run(
        root.path(),
        &["--run-id", "wrapped-1", "--path", "shell"],
        &["sh", "-c", "echo hi; exit 3"],
    )
    .output()
    .unwrap();
    assert_eq!(wrapped.status.code(), Some(3), "{}", describe(&wrapped));

    let script = workspace_root().join("tests/support/upstream_viewer.py");
    let out = Command::new(&python)
        .arg(&script)
        .arg(root.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "upstream's viewer failed on our runs: {}",
        describe(&out)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let seen: Value = serde_json::from_str(text.lines().last().unwrap_or("{}")).unwrap();

    let rust = &seen[&rust_id];
    assert_eq!(rust["list"]["path"], "rust/writer", "{rust}");
    assert_eq!(rust["list"]["alias"], "from-rust");
    assert_eq!(rust["list"]["status"], "finished");
    assert_eq!(rust["list"]["best_metric_name"], "acc");
    assert_eq!(rust["list"]["best_metric_value"], 0.4);
    let rows = rust["metrics"]["rows"].as_array().unwrap();
    let steps: Vec<i64> = rows
        .iter()
        .map(|r| r["global_step"].as_i64().unwrap())
        .collect();
    assert_eq!(steps, [1, 2, 3, 4, 10]);
    assert_eq!(rows[1]["loss"], 0.5);
    assert!(
        rows[4]["loss"].is_null(),
        "upstream turns NaN into null: {}",
        rows[4]
    );
    assert_eq!(rows[0]["stage"], "train");

    let shell = &seen["wrapped-1"];
    assert_eq!(shell["list"]["path"], "shell", "{shell}");
    assert_eq!(shell["list"]["status"], "failed");
    assert_eq!(shell["status"], "failed");
}
