//! `GET /api/runs/{run}/system`: a run's `system.jsonl` (written here in the agent's format, two
//! GPUs, a corrupt line and a torn last line) read from the hub's cache, fetched on demand,
//! thinned to 2,000 points per key with the spikes kept, fetched again after it grew, and the
//! copy read earlier (marked behind) when the remote is offline; `none` for a run without one.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::future::BoxFuture;
use runicorn_protocol::run_format::{RunOutcome, RunSpec, RunWriter};
use runicorn_store::RunRow;
use runicorn_tests::sshd::ClientHome;
use runicorn_web::{
    FetchFailure, FetchFailureKind, FetchProgress, FetchStarted, FetchedFile, FileFetcher,
};
use serde_json::Value;

use super::files::LocalFetcher;
use super::world::{run_by_run_id, Served, World};

/// Samples in the first file; the CPU spikes at `SPIKE` and dips at `DIP`.
const LINES: usize = 10_000;
const SPIKE: usize = 6_789;
const DIP: usize = 3_210;

/// A remote that cannot be reached.
struct OfflineFetcher;

impl FileFetcher for OfflineFetcher {
    fn fetch(
        &self,
        _run: RunRow,
        _path: String,
        _progress: Option<FetchProgress>,
        _started: Option<FetchStarted>,
    ) -> BoxFuture<'static, Result<FetchedFile, FetchFailure>> {
        Box::pin(async {
            Err(FetchFailure {
                kind: FetchFailureKind::Offline,
                message: "remote here is offline".to_owned(),
            })
        })
    }
}

/// One sample line as the agent writes it.
fn sample(t0: f64, i: usize) -> String {
    let cpu = match i {
        SPIKE => 1_234.5,
        DIP => 0.25,
        _ => 50.0 + (i % 10) as f64,
    };
    format!(
        "{{\"ts\": {:.2}, \"type\": \"system\", \"data\": {{\"sys/cpu_percent\": {cpu}, \"sys/rss_mib\": {}, \
         \"sys/io_read_mib\": {}, \"sys/io_write_mib\": 1.5, \"sys/procs\": 3, \"sys/threads\": 40, \
         \"sys/gpu.0/util_percent\": 97, \"sys/gpu.0/mem_used_mib\": 30211, \"sys/gpu.0/mem_total_mib\": 81920, \
         \"sys/gpu.0/run_mem_mib\": 30000, \"sys/gpu.0/temp_c\": 61, \"sys/gpu.0/power_w\": 301.5, \
         \"sys/gpu.3/util_percent\": {}, \"sys/gpu.3/mem_used_mib\": 1024}}}}\n",
        t0 + i as f64 * 10.0,
        800.0 + i as f64 * 0.01,
        i as f64 * 0.1,
        i % 100,
    )
}

/// The run with the file (left running), the file, and its first sample's time (just after the
/// run was created, as the agent's first sample is).
fn write_root(root: &Path) -> (RunWriter, PathBuf, f64) {
    let spec = |run_id: &str| {
        let mut spec = RunSpec::new(root, "runicorn-tests");
        spec.path = Some("sys/probe".to_owned());
        spec.run_id = Some(run_id.to_owned());
        spec
    };
    let mut with = RunWriter::create(&spec("sysa")).unwrap();
    with.log_metrics(&[("loss", 1.0)], Some(0), None).unwrap();
    let t0 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        .ceil()
        + 2.0;
    let mut text = String::new();
    for i in 0..LINES {
        text.push_str(&sample(t0, i));
        if i == 100 {
            text.push_str("{\"ts\": 5, \"type\": \"system\", \"data\": {\"sys/cpu_p\n");
        }
    }
    // The agent was writing the next sample when the file was read: no newline yet.
    let torn = sample(t0, LINES);
    text.push_str(&torn[..40]);
    let file = with.dir().join("system.jsonl");
    std::fs::write(&file, text).unwrap();
    let mut without = RunWriter::create(&spec("sysb")).unwrap();
    without
        .log_metrics(&[("loss", 1.0)], Some(0), None)
        .unwrap();
    without.finish(RunOutcome::finished()).unwrap();
    (with, file, t0)
}

fn append(file: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new().append(true).open(file).unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

fn series<'a>(answer: &'a Value, key: &str) -> &'a Value {
    answer["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["key"] == key)
        .unwrap_or_else(|| panic!("no {key} in the answer"))
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

#[test]
fn system_telemetry_is_read_thinned_refetched_and_said_missing() {
    let world = World {
        home: ClientHome::empty(),
        root: tempfile::tempdir().unwrap(),
        hub_dir: tempfile::tempdir().unwrap(),
    };
    let (_running, file, t0) = write_root(world.root.path());
    world.sync();
    let cache_only = world.serve();
    let fetching = Served::start(
        world.hub_dir.path(),
        Some(Arc::new(LocalFetcher {
            root: world.root.path().to_owned(),
            hub_dir: world.hub_dir.path().to_owned(),
        })),
    );
    let offline = Served::start(world.hub_dir.path(), Some(Arc::new(OfflineFetcher)));
    let a = run_by_run_id(&cache_only, "sysa");
    let id = a["key"].as_i64().unwrap();
    let url = format!("/api/runs/{id}/system");

    // Listed but never fetched, and this dashboard fetches nothing: none, and why.
    let s = cache_only.json(&url);
    assert_eq!(s["source"], "none", "{s}");
    assert_eq!(s["listed"], true);
    assert!(
        s["note"].as_str().unwrap().contains("cache"),
        "{}",
        s["note"]
    );
    // Offline and never read: none, the fetch's reason.
    let s = offline.json(&url);
    assert_eq!(s["source"], "none", "{s}");
    assert!(
        s["note"].as_str().unwrap().contains("offline"),
        "{}",
        s["note"]
    );

    // Fetched: every key, both GPUs, the corrupt line counted, the torn one not read.
    let s = fetching.json(&url);
    assert_eq!(s["source"], "file", "{}", s["note"]);
    assert_eq!(s["note"], Value::Null);
    assert_eq!(s["behind"], false);
    assert_eq!(s["samples"], LINES as u64);
    assert_eq!(s["skipped"], 1);
    assert_eq!(s["truncated"], false);
    assert_eq!(s["gpus"], serde_json::json!([0, 3]));
    assert_eq!(s["first_ts"].as_f64(), Some(t0));
    let keys: Vec<&str> = s["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys.len(), 14, "{keys:?}");
    assert!(keys.windows(2).all(|w| w[0] < w[1]), "sorted: {keys:?}");
    let start = s["start_ts"].as_f64().unwrap();
    assert_eq!(
        start,
        a["created_at"].as_f64().unwrap(),
        "times count from the run's creation"
    );
    let cpu = series(&s, "sys/cpu_percent");
    let (times, values) = (floats(&cpu["times"]), floats(&cpu["values"]));
    assert_eq!(cpu["downsampled"], true);
    assert!(
        values.len() <= 2_000 && values.len() > 1_000,
        "{}",
        values.len()
    );
    assert_eq!(times.len(), values.len());
    assert!(times.windows(2).all(|w| w[0] < w[1]), "in time order");
    assert!(
        (times[0] - (t0 - start)).abs() < 1e-6,
        "{} vs {}",
        times[0],
        t0 - start
    );
    let spike = values
        .iter()
        .position(|&v| v == 1_234.5)
        .expect("the spike survives");
    assert!((times[spike] - (t0 + SPIKE as f64 * 10.0 - start)).abs() < 1e-6);
    assert!(values.contains(&0.25), "the dip survives");
    assert!((times.last().unwrap() - (t0 + (LINES - 1) as f64 * 10.0 - start)).abs() < 1e-6);
    // Cached now: the cache-only dashboard reads it too.
    assert_eq!(cache_only.json(&url)["samples"], LINES as u64);

    // The run goes on: the torn sample completed and ten more; the next sync lists a new size,
    // so the cached copy is not current and is fetched again.
    let mut more = sample(t0, LINES)[40..].to_owned();
    for i in LINES + 1..LINES + 11 {
        more.push_str(&sample(t0, i));
    }
    append(&file, &more);
    world.sync();
    let s = fetching.json(&url);
    assert_eq!(s["source"], "file", "{}", s["note"]);
    assert_eq!(s["behind"], false);
    assert_eq!(
        s["samples"],
        (LINES + 11) as u64,
        "fetched again after it grew"
    );
    let gpu3 = series(&s, "sys/gpu.3/util_percent");
    assert_eq!(
        floats(&gpu3["values"]).last().copied(),
        Some(((LINES + 10) % 100) as f64)
    );

    // It grows again while the remote is offline: the copy read before, and the answer says so.
    let mut later = String::new();
    for i in LINES + 11..LINES + 20 {
        let _ = write!(later, "{}", sample(t0, i));
    }
    append(&file, &later);
    world.sync();
    let s = offline.json(&url);
    assert_eq!(s["source"], "file", "{s}");
    assert_eq!(s["behind"], true);
    assert_eq!(s["samples"], (LINES + 11) as u64);
    let note = s["note"].as_str().unwrap();
    assert!(
        note.contains("behind") && note.contains("offline"),
        "{note}"
    );

    // A run without the file: none, not listed, and a note naming the file.
    let b = run_by_run_id(&cache_only, "sysb")["key"].as_i64().unwrap();
    let s = fetching.json(&format!("/api/runs/{b}/system"));
    assert_eq!(s["source"], "none");
    assert_eq!(s["listed"], false);
    assert!(s["keys"].as_array().unwrap().is_empty());
    assert!(
        s["note"].as_str().unwrap().contains("system.jsonl"),
        "{}",
        s["note"]
    );

    assert_eq!(fetching.get("/api/runs/999999/system").status, 404);
}
