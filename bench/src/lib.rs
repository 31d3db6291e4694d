//! Shared pieces of the benchmarks: timing, and locating the workspace's release binaries.

pub mod sync_setup;

use runicorn_protocol::wire::{ChangeBatch, Cursor, RunChange};
use runicorn_store::{RemoteId, Store};

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Runs `f` `repeats` times (at least once) and returns the durations, shortest first.
pub fn sorted_times(
    repeats: usize,
    mut f: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<Vec<Duration>> {
    let mut times = Vec::with_capacity(repeats);
    for _ in 0..repeats.max(1) {
        let start = Instant::now();
        f()?;
        times.push(start.elapsed());
    }
    times.sort();
    Ok(times)
}

/// Runs `f` `repeats` times and returns the fastest and median durations.
pub fn time_best_and_median(
    repeats: usize,
    f: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<(Duration, Duration)> {
    let times = sorted_times(repeats, f)?;
    Ok((times[0], times[times.len() / 2]))
}

/// A store in `dir` with one remote named `bench` (no address: nothing syncs it), for the
/// benchmarks that fill a store directly.
pub fn store_with_bench_remote(
    dir: &Path,
) -> anyhow::Result<(runicorn_store::Store, runicorn_store::RemoteId)> {
    let mut store = runicorn_store::Store::open(dir)?;
    let remote = store.upsert_remote(&runicorn_store::RemoteSpec {
        name: "bench".into(),
        address: "bench".into(),
        transport: serde_json::Value::Null,
    })?;
    Ok((store, remote))
}

/// A binary built beside this benchmark (same profile), e.g. `runicorn-agent`.
pub fn sibling_binary(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .ok_or_else(|| anyhow::anyhow!("benchmark binary has no directory"))?;
    let path = dir.join(name);
    if !path.exists() {
        anyhow::bail!(
            "{} not found: build it first with `cargo build --release --bins`",
            path.display()
        );
    }
    Ok(path)
}

/// Drops the kernel's page cache when allowed (root on Linux), so a "cold start" reads the disk.
/// Returns whether it did.
pub fn drop_page_cache() -> bool {
    let synced = std::process::Command::new("sync")
        .status()
        .is_ok_and(|s| s.success());
    synced && std::fs::write(Path::new("/proc/sys/vm/drop_caches"), "3\n").is_ok()
}

/// A one-line description of this machine for the record.
pub fn machine_description() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    format!("{cpu}, {cores} cores")
}

/// Writes one finished sample run with the Rust writer: `steps` steps of loss, acc and lr.
pub fn write_sample_run(
    root: &Path,
    run_path: Option<String>,
    run_id: String,
    steps: usize,
) -> anyhow::Result<()> {
    let mut spec = runicorn_protocol::run_format::RunSpec::new(root, "runicorn-bench");
    spec.path = run_path;
    spec.run_id = Some(run_id);
    let mut w = runicorn_protocol::run_format::RunWriter::create(&spec)?;
    for s in 0..steps {
        let x = s as f64;
        w.log_metrics(
            &[
                ("loss", 1.0 / (x + 1.0)),
                ("acc", x / steps as f64),
                ("lr", 0.001),
            ],
            None,
            None,
        )?;
    }
    w.finish(runicorn_protocol::run_format::RunOutcome::finished())?;
    Ok(())
}

/// Lists `runs` into the store as one full listing of `remote`, 2,000 runs per change batch
/// (what a first sync of that many runs does), through the store's real API.
pub fn list_runs_into(
    store: &mut Store,
    remote: RemoteId,
    runs: &[RunChange],
) -> anyhow::Result<()> {
    let pages = runs.chunks(2000).count();
    for (i, page) in runs.chunks(2000).enumerate() {
        store.apply_change_batch(
            remote,
            &ChangeBatch {
                reset: i == 0,
                runs: page.to_vec(),
                removed: vec![],
                cursor: Cursor {
                    epoch: "bench".into(),
                    seq: (i as u64 + 1) * 2000,
                },
                more: i + 1 < pages,
                skipped: vec![],
                skipped_listed: false,
                artifacts: vec![],
                removed_artifacts: vec![],
            },
        )?;
    }
    Ok(())
}
