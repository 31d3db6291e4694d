//! What every dashboard API test starts from: a storage root of sample runs written with the
//! Rust writer, a hub store filled from it by a real `runicorn-hub connect local:DIR --once`,
//! and the real `runicorn_web::Dashboard` serving that store on loopback.

use std::path::Path;

use runicorn_protocol::run_format::{RunOutcome, RunSpec, RunStatus, RunWriter};
use runicorn_tests::http::Response;
use runicorn_tests::hub::sync_local_once;
use runicorn_tests::sshd::ClientHome;
use serde_json::{json, Value};
use tempfile::TempDir;

/// A 1×1 PNG.
pub(super) const PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4,
    0x89, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0xf8, 0xcf, 0xc0, 0xf0,
    0x1f, 0x00, 0x05, 0x00, 0x01, 0xff, 0x89, 0x99, 0x3d, 0x1d, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45,
    0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

/// Steps of the long run; a spike sits at `SPIKE_STEP`.
pub(super) const LONG_STEPS: i64 = 20_000;
pub(super) const SPIKE_STEP: i64 = 12_345;

/// A storage root with sample runs, a hub store synced from it, and the client's HOME.
pub(super) struct World {
    pub(super) home: ClientHome,
    pub(super) root: TempDir,
    pub(super) hub_dir: TempDir,
}

fn write_run(
    root: &Path,
    path: &str,
    run_id: &str,
    steps: i64,
    summary: Value,
    config: Value,
    status: RunStatus,
) -> RunWriter {
    let mut spec = RunSpec::new(root, "runicorn-tests");
    spec.path = Some(path.to_owned());
    spec.run_id = Some(run_id.to_owned());
    spec.alias = Some(format!("own-{run_id}"));
    let mut w = RunWriter::create(&spec).unwrap();
    for s in 0..steps {
        let loss = if s == 3 {
            f64::NAN
        } else {
            1.0 / (s as f64 + 1.0)
        };
        w.log_metrics(&[("loss", loss), ("acc", s as f64 / 1e3)], Some(s), None)
            .unwrap();
    }
    if let Value::Object(map) = summary {
        w.update_summary(map).unwrap();
    }
    if !config.is_null() {
        w.log_config(config, json!({}), &[]).unwrap();
    }
    if status != RunStatus::Running {
        w.finish(RunOutcome {
            status,
            exit_code: None,
            signal: None,
            reason: None,
        })
        .unwrap();
    }
    w
}

impl World {
    /// Five finished runs (one failed) over two paths, one long run with a spike, logs and
    /// media files; synced once.
    pub(super) fn new() -> World {
        let world = World {
            home: ClientHome::empty(),
            root: tempfile::tempdir().unwrap(),
            hub_dir: tempfile::tempdir().unwrap(),
        };
        let root = world.root.path();
        let mut a = write_run(
            root,
            "cv/resnet50",
            "runa",
            30,
            json!({"loss": 0.1, "acc": 0.9}),
            json!({"lr": 0.1, "optim": {"name": "sgd"}, "batch": 32}),
            RunStatus::Running,
        );
        for i in 0..300 {
            a.log_text(&format!("line {i:03} of the training log"))
                .unwrap();
        }
        a.log_image("sample", PNG, "png", Some(1), None).unwrap();
        a.log_image(
            "drawing",
            b"<svg xmlns=\"http://www.w3.org/2000/svg\"><script>alert(1)</script></svg>",
            "svg",
            Some(1),
            None,
        )
        .unwrap();
        a.finish(RunOutcome::finished()).unwrap();
        write_run(
            root,
            "cv/resnet50",
            "runb",
            20,
            json!({"loss": 0.3, "acc": 0.7}),
            json!({"lr": 0.03, "optim": {"name": "adam"}, "batch": 32}),
            RunStatus::Finished,
        );
        write_run(
            root,
            "cv",
            "runc",
            10,
            json!({}),
            Value::Null,
            RunStatus::Failed,
        );
        write_run(
            root,
            "nlp/bert",
            "rund",
            15,
            json!({"loss": 0.2}),
            json!({"lr": 0.01, "batch": 64}),
            RunStatus::Finished,
        );
        let mut long = write_run(
            root,
            "nlp/long",
            "rune",
            0,
            json!({"loss": 0.05}),
            json!({"lr": 0.001}),
            RunStatus::Running,
        );
        for s in 0..LONG_STEPS {
            let v = if s == SPIKE_STEP {
                100.0
            } else {
                1.0 + (s % 10) as f64 * 0.01
            };
            long.log_metrics(&[("loss", v)], Some(s), None).unwrap();
        }
        long.finish(RunOutcome::finished()).unwrap();
        world.sync();
        world
    }

    /// One `runicorn-hub connect local:ROOT --once`, prefetching nothing: these tests watch
    /// files come into the cache on demand.
    pub(super) fn sync(&self) {
        sync_local_once(
            self.home.path(),
            self.hub_dir.path(),
            self.root.path(),
            "here",
        );
    }

    pub(super) fn serve(&self) -> Served {
        Served::start(self.hub_dir.path(), None)
    }
}

/// The real dashboard serving a store (`runicorn_tests::dashboard`).
pub(super) use runicorn_tests::dashboard::ServedDashboard as Served;

/// The run ids of a listing page, in its order.
pub(super) fn ids_of(page: &Value) -> Vec<String> {
    page["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["run_id"].as_str().unwrap().to_owned())
        .collect()
}

/// The listed run with this run id (from every view).
pub(super) fn run_by_run_id(served: &Served, run_id: &str) -> Value {
    let page = served.json(&format!("/api/runs?q={run_id}&view=all"));
    page["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["run_id"] == run_id)
        .unwrap_or_else(|| panic!("{run_id} not listed: {page}"))
        .clone()
}

/// The `error.message` of an error answer.
pub(super) fn error_message(r: &Response) -> String {
    r.json()["error"]["message"]
        .as_str()
        .unwrap_or("")
        .to_owned()
}
