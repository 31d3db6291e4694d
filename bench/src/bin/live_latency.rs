//! Benchmark: how long a logged point takes to reach the hub's store while the hub follows a
//! server live over SSH.
//!
//! Builds a storage root of N finished runs (the background), starts a real OpenSSH server on
//! loopback and `runicorn-hub connect … --poll 0.5` (following live), waits for the first sync,
//! then a writer logs points at intervals into a live run: the Rust `RunWriter` (flushing after
//! each log), then the Python SDK (`run.log()` + `run.flush()`, in a child `python3`). Two
//! pollers look every 10 ms: one reads the hub's store (read-only: `list_runs` + `points`), the
//! other — the baseline, the floor of any sync — reads the run's `events.jsonl` itself. The
//! latency of a point is when a poller first sees its step minus when `log()` was called.
//! Prints p50 / p95 / max of both. Goal (issue "Sync over SSH"): p95 < 1 s.
//!
//! Usage: cargo build --release --bins && target/release/live_latency [--points 60] [--quick]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::Parser;
use runicorn_bench::machine_description;
use runicorn_bench::sync_setup::{
    load_average, percentile, private_binaries, show, store_totals, tree_size, write_tree, Server,
};
use runicorn_protocol::run_format::{RunOutcome, RunSpec, RunWriter};
use runicorn_store::{RunFilter, Store};

#[derive(Parser)]
struct Args {
    /// Finished runs in the root besides the live one (the agent rescans them all every --poll)
    #[arg(long, default_value_t = 1000)]
    runs: usize,
    /// Steps of each finished run
    #[arg(long, default_value_t = 100)]
    steps: usize,
    /// Points each writer logs
    #[arg(long, default_value_t = 60)]
    points: usize,
    /// Milliseconds between two logs (plus 0–50 ms of jitter, so logs do not keep one phase
    /// against the pollers and the agent's scans)
    #[arg(long, default_value_t = 150)]
    interval_ms: u64,
    /// The agent's full-scan interval, passed as `connect --poll`
    #[arg(long, default_value_t = 0.5)]
    poll: f64,
    /// Round-trip time added by a relay between the hub and sshd (0: none)
    #[arg(long, default_value_t = 0)]
    rtt_ms: u64,
    /// Skip the Python SDK writer
    #[arg(long)]
    no_python: bool,
    /// A small root and a few points: a smoke test for CI (seconds)
    #[arg(long)]
    quick: bool,
}

/// Seconds since the epoch (the Python writer stamps with `time.time()`, the same clock).
fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// step → when it was first seen, per live run directory (relative to the root).
type Seen = Arc<Mutex<HashMap<String, HashMap<i64, f64>>>>;

fn mark(seen: &Seen, dir: &str, steps: impl IntoIterator<Item = i64>, at: f64) {
    if let Ok(mut s) = seen.lock() {
        let entry = s.entry(dir.to_owned()).or_default();
        for step in steps {
            entry.entry(step).or_insert(at);
        }
    }
}

/// Polls the hub's store every 10 ms for the points of the live runs (`live/…`).
fn store_poller(hub_dir: PathBuf, seen: Seen, stop: Arc<AtomicBool>) -> anyhow::Result<()> {
    let store = Store::open_read_only(&hub_dir)?;
    let filter = RunFilter {
        path_prefix: Some("live".into()),
        ..RunFilter::default()
    };
    while !stop.load(Ordering::Relaxed) {
        let at = now();
        for run in store.list_runs(&filter)? {
            let steps: Vec<i64> = store.points(run.key, "loss")?.iter().map(|p| p.0).collect();
            mark(&seen, &run.dir, steps, at);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

/// The baseline: polls the live runs' `events.jsonl` every 10 ms, as a local reader of the file
/// would, and notes each complete line's step.
fn file_poller(root: PathBuf, dirs: Vec<String>, seen: Seen, stop: Arc<AtomicBool>) {
    let mut offsets: HashMap<String, (u64, Vec<u8>)> = HashMap::new();
    while !stop.load(Ordering::Relaxed) {
        let at = now();
        for dir in &dirs {
            let path = root.join(dir).join("events.jsonl");
            let Ok(mut f) = std::fs::File::open(&path) else {
                continue;
            };
            let (offset, pending) = offsets.entry(dir.clone()).or_default();
            if f.seek(SeekFrom::Start(*offset)).is_err() {
                continue;
            }
            let mut buf = Vec::new();
            if f.read_to_end(&mut buf).is_err() {
                continue;
            }
            *offset += buf.len() as u64;
            pending.extend_from_slice(&buf);
            let Some(last_newline) = pending.iter().rposition(|&b| b == b'\n') else {
                continue;
            };
            let complete: Vec<u8> = pending.drain(..=last_newline).collect();
            let steps = String::from_utf8_lossy(&complete)
                .lines()
                .filter_map(step_of_line)
                .collect::<Vec<_>>();
            mark(&seen, dir, steps, at);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn step_of_line(line: &str) -> Option<i64> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    v["data"]["global_step"].as_i64()
}

/// A small deterministic jitter in 0..50 ms.
fn jitter(i: usize) -> Duration {
    Duration::from_millis(((i as u64).wrapping_mul(2_654_435_761) >> 7) % 50)
}

/// Waits until `cond` holds (polling every 20 ms) or `limit` passes.
fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond()
}

fn seen_step(seen: &Seen, dir: &str, step: i64) -> bool {
    seen.lock()
        .map(|s| s.get(dir).is_some_and(|m| m.contains_key(&step)))
        .unwrap_or(false)
}

/// Latencies (seconds) of each logged step, as seen by a poller; missing steps are counted.
fn latencies(logged: &[(i64, f64)], seen: &Seen, dir: &str) -> (Vec<f64>, usize) {
    let s = seen
        .lock()
        .map(|s| s.get(dir).cloned())
        .ok()
        .flatten()
        .unwrap_or_default();
    let mut out = Vec::new();
    let mut missing = 0;
    for (step, at) in logged {
        match s.get(step) {
            Some(t) => out.push((t - at).max(0.0)),
            None => missing += 1,
        }
    }
    (out, missing)
}

fn summary(values: &[f64], missing: usize) -> String {
    let fmt = |s: f64| show(Duration::from_secs_f64(s.max(0.0)));
    let mut text = format!(
        "p50 {:>7}  p95 {:>7}  max {:>7}  ({} points",
        fmt(percentile(values, 50.0)),
        fmt(percentile(values, 95.0)),
        fmt(values.iter().copied().fold(0.0, f64::max)),
        values.len()
    );
    if missing > 0 {
        text.push_str(&format!(", {missing} NEVER ARRIVED"));
    }
    text.push(')');
    text
}

const PYTHON_WRITER: &str = r#"
import sys, time
import runicorn
root, points, interval = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
run = runicorn.init(path="live/python", storage=root, run_id="python-sdk")
run.log({"loss": 1.0, "acc": 0.0, "lr": 0.001}, step=1)
run.flush()
print("ready", flush=True)
sys.stdin.readline()
for i in range(points):
    time.sleep(interval + ((i * 2654435761) >> 7) % 50 / 1000.0)
    step = i + 2
    t = time.time()
    run.log({"loss": 1.0 / step, "acc": step / 1e4, "lr": 0.001}, step=step)
    run.flush()
    print(step, repr(t), flush=True)
run.finish()
"#;

struct Follow {
    child: Child,
    stderr: PathBuf,
}

impl Follow {
    fn stop(mut self) -> String {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

fn main() -> anyhow::Result<()> {
    let mut args = Args::parse();
    if args.quick {
        args.runs = args.runs.min(20);
        args.steps = args.steps.min(10);
        args.points = args.points.min(10);
    }
    let base = tempfile::Builder::new().prefix("live-bench-").tempdir()?;
    let (hub, agent) = private_binaries(base.path())?;
    let root = base.path().join("root");
    let hub_dir = base.path().join("store");
    std::fs::create_dir_all(&root)?;
    let wrote = write_tree(&root, args.runs, args.steps)?;
    let (files, bytes) = tree_size(&root);

    let mut spec = RunSpec::new(&root, "runicorn-bench");
    spec.path = Some("live/rust".into());
    spec.run_id = Some("rust-writer".into());
    let mut writer = RunWriter::create(&spec)?;
    writer.log_metrics(&[("loss", 1.0), ("acc", 0.0), ("lr", 0.001)], Some(1), None)?;
    writer.flush()?;
    let rust_dir = "runs/live/rust/rust-writer".to_owned();
    let python_dir = "runs/live/python/python-sdk".to_owned();

    let server = Server::start()?;
    let link = server.link(Duration::from_millis(args.rtt_ms));
    println!("machine: {}", machine_description());
    println!(
        "root: {} finished runs × {} steps ({files} files, {:.1} MB, written in {}, not measured) + the live run",
        args.runs,
        args.steps,
        bytes as f64 / 1e6,
        show(wrote)
    );
    println!(
        "hub: connect over SSH ({}) following live, agent --poll {}; writers log {} points each, every {} ms + 0–50 ms jitter, flushing after each; pollers look every 10 ms",
        link.describe(),
        args.poll,
        args.points,
        args.interval_ms
    );

    let stderr_path = base.path().join("hub-stderr.txt");
    let child = server
        .connect(&hub, &hub_dir, &link, &agent, &root)
        .args(["--poll", &args.poll.to_string(), "--quiet"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr_path)?)
        .spawn()
        .context("starting runicorn-hub connect")?;
    let follow = Follow {
        child,
        stderr: stderr_path,
    };
    let want_runs = args.runs as u64 + 1;
    let want_points = (args.runs * args.steps * 3 + 3) as u64;
    let synced = Instant::now();
    let first = wait_for(Duration::from_secs(600), || {
        store_totals(&hub_dir)
            .is_ok_and(|(runs, points)| runs == want_runs && points == want_points)
    });
    if !first {
        anyhow::bail!("the first sync did not finish:\n{}", follow.stop());
    }
    println!("first sync (not measured): {}", show(synced.elapsed()));

    let seen_store: Seen = Arc::default();
    let seen_file: Seen = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let poller = {
        let (d, s, st) = (hub_dir.clone(), Arc::clone(&seen_store), Arc::clone(&stop));
        std::thread::spawn(move || store_poller(d, s, st))
    };
    let floor = {
        let dirs = vec![rust_dir.clone(), python_dir.clone()];
        let (r, s, st) = (root.clone(), Arc::clone(&seen_file), Arc::clone(&stop));
        std::thread::spawn(move || file_poller(r, dirs, s, st))
    };
    let arrived = wait_for(Duration::from_secs(30), || {
        seen_step(&seen_store, &rust_dir, 1)
    });
    anyhow::ensure!(
        arrived,
        "the live run's first point never reached the store"
    );

    // The Rust writer.
    let interval = Duration::from_millis(args.interval_ms);
    let mut rust_logged = Vec::new();
    for i in 0..args.points {
        std::thread::sleep(interval + jitter(i));
        let step = i as i64 + 2;
        let at = now();
        let x = step as f64;
        writer.log_metrics(
            &[("loss", 1.0 / x), ("acc", x / 1e4), ("lr", 0.001)],
            Some(step),
            None,
        )?;
        writer.flush()?;
        rust_logged.push((step, at));
    }
    let last = rust_logged.last().map_or(1, |l| l.0);
    wait_for(Duration::from_secs(10), || {
        seen_step(&seen_store, &rust_dir, last)
    });
    writer.finish(RunOutcome::finished())?;

    // The Python SDK, when there is a python3 to run it.
    let sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk/python/src");
    let mut python_logged = Vec::new();
    let python_note = if args.no_python {
        Some("skipped (--no-python)".to_owned())
    } else {
        match python_writer(&sdk, &root, &args, &seen_store, &python_dir) {
            Ok(logged) => {
                python_logged = logged;
                None
            }
            Err(e) => Some(format!("skipped: {e:#}")),
        }
    };
    stop.store(true, Ordering::Relaxed);
    poller
        .join()
        .map_err(|_| anyhow::anyhow!("the store poller panicked"))??;
    floor
        .join()
        .map_err(|_| anyhow::anyhow!("the file poller panicked"))?;
    let hub_stderr = follow.stop();

    println!(
        "latency from log() until a poller sees the point (load average now: {}):",
        load_average()
    );
    let mut worst_p95: f64 = 0.0;
    let mut all_arrived = true;
    for (who, logged, dir) in [
        ("Rust RunWriter", &rust_logged, &rust_dir),
        ("Python SDK", &python_logged, &python_dir),
    ] {
        if logged.is_empty() {
            continue;
        }
        let (store, missing) = latencies(logged, &seen_store, dir);
        let (file, file_missing) = latencies(logged, &seen_file, dir);
        println!(
            "  {who:<15} hub store (over SSH):        {}",
            summary(&store, missing)
        );
        println!(
            "  {who:<15} baseline, events.jsonl here: {}",
            summary(&file, file_missing)
        );
        println!(
            "  {who:<15} ratio hub / baseline: p50 {:.1}, p95 {:.1}",
            percentile(&store, 50.0) / percentile(&file, 50.0),
            percentile(&store, 95.0) / percentile(&file, 95.0)
        );
        worst_p95 = worst_p95.max(percentile(&store, 95.0));
        all_arrived &= missing == 0;
    }
    if let Some(note) = python_note {
        println!("  Python SDK      {note}");
    }
    let met = all_arrived && worst_p95 < 1.0;
    println!(
        "goal p95 < 1 s: {} (worst p95 {})",
        if met { "met" } else { "NOT met" },
        show(Duration::from_secs_f64(worst_p95))
    );
    if !met && !hub_stderr.trim().is_empty() {
        println!("hub stderr:\n{hub_stderr}");
    }
    Ok(())
}

/// Runs the Python writer: waits until its run's first point is stored, then lets it log.
fn python_writer(
    sdk: &Path,
    root: &Path,
    args: &Args,
    seen_store: &Seen,
    dir: &str,
) -> anyhow::Result<Vec<(i64, f64)>> {
    anyhow::ensure!(sdk.is_dir(), "{} not found", sdk.display());
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(PYTHON_WRITER)
        .arg(root)
        .arg(args.points.to_string())
        .arg((args.interval_ms as f64 / 1000.0).to_string())
        .env("PYTHONPATH", sdk)
        .env_remove("RUNICORN_DIR")
        .env_remove("RUNICORN_RUN_DIR")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting python3")?;
    let mut lines = BufReader::new(child.stdout.take().context("piped stdout")?).lines();
    let ready = lines.next().transpose()?;
    anyhow::ensure!(
        ready.as_deref() == Some("ready"),
        "the Python writer said {ready:?}"
    );
    // A new run makes the agent rescan the root: wait for it so only steady-state points count.
    let stored = wait_for(Duration::from_secs(30), || seen_step(seen_store, dir, 1));
    anyhow::ensure!(stored, "the Python run never reached the store");
    let mut stdin = child.stdin.take().context("piped stdin")?;
    stdin.write_all(b"go\n")?;
    stdin.flush()?;
    let mut logged = Vec::new();
    for line in lines {
        let line = line?;
        let mut parts = line.split_whitespace();
        if let (Some(step), Some(at)) = (parts.next(), parts.next()) {
            logged.push((step.parse()?, at.parse()?));
        }
    }
    let status = child.wait()?;
    anyhow::ensure!(status.success(), "the Python writer failed: {status}");
    let last = logged.last().map_or(1, |l: &(i64, f64)| l.0);
    wait_for(Duration::from_secs(10), || seen_step(seen_store, dir, last));
    Ok(logged)
}
