//! Shared pieces of the benchmarks: timing, and locating the workspace's release binaries.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Runs `f` `repeats` times and returns the fastest and median durations.
pub fn time_best_and_median(
    repeats: usize,
    mut f: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<(Duration, Duration)> {
    let mut times = Vec::with_capacity(repeats);
    for _ in 0..repeats.max(1) {
        let start = Instant::now();
        f()?;
        times.push(start.elapsed());
    }
    times.sort();
    Ok((times[0], times[times.len() / 2]))
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
