//! Benchmark: the dashboard on a run with very many metric keys (issue 9, item 6), against the
//! old algorithms in the same run.
//!
//! Builds a store (through the store's real API) holding two runs of `--keys` keys (default
//! 200,000) × 3 steps, serves it with the real `runicorn_web::Dashboard` on loopback, and
//! measures over HTTP:
//!
//! - `GET /api/compare?runs=A,B` (wall time, median of `--repeats`); baseline: the old way,
//!   in-process on a read-only connection: both runs' full key lists, the shared keys by a
//!   `retain` over `Vec::contains`, then the same 100 series reads;
//! - `--streams` live streams (`/api/runs/A/live`, default 10) while a commit adds a step to
//!   100 of A's keys: the wall time until every stream got its `metrics` event and the
//!   process's CPU time over that; then a commit to the other run (nothing new for the
//!   streams) and the CPU time over the next second. Baseline: the old poll, one query per
//!   key of the run on every commit (`series_after` for each key plus the run row with every
//!   key name), timed in-process for one stream and multiplied by the number of streams.
//!
//! Prints each figure and the ratio baseline / new.
//!
//! `--quick` (CI): 20,000 keys, 3 streams, 2 repeats.
//!
//! Usage: cargo run --release -p runicorn-bench --bin many_keys [-- --quick]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use runicorn_bench::machine_description;
use runicorn_protocol::wire::{
    ChangeBatch, Cursor, EventsState, PointBatch, RunChange, RunPoints, Series,
};
use runicorn_store::{RemoteId, RunKey, SeriesQuery, Store};
use runicorn_tests::http::{get, EventStream};
use runicorn_web::{Dashboard, DashboardConfig};
use serde_json::json;

#[derive(Parser)]
struct Args {
    /// Metric keys of each of the two runs
    #[arg(long, default_value_t = 200_000)]
    keys: usize,
    /// Live streams open on the wide run
    #[arg(long, default_value_t = 10)]
    streams: usize,
    /// Timed repetitions of each request
    #[arg(long, default_value_t = 5)]
    repeats: usize,
    /// 20,000 keys, 3 streams, 2 repeats: a smoke test for CI
    #[arg(long)]
    quick: bool,
}

const STEPS: i64 = 3;
/// Keys that grow in the live commit.
const GROWN: usize = 100;

fn key_name(i: usize) -> String {
    format!("m{i:06}")
}

fn run_change(dir: &str, seq: u64, config: serde_json::Value) -> RunChange {
    RunChange {
        dir: dir.into(),
        seq,
        id: dir.rsplit('/').next().unwrap_or("x").into(),
        path: "wide".into(),
        layout: "current".into(),
        alias: None,
        tags: vec![],
        status: "running".into(),
        reason: None,
        created_at: Some(1.79e9),
        ended_at: None,
        hostname: Some("gpu".into()),
        deleted: false,
        meta: Some(json!({"run_id": dir})),
        status_record: None,
        summary: None,
        config: Some(config),
        environment: None,
        assets: None,
        events: EventsState {
            bytes: 1 << 40,
            lines: 0,
            points: 0,
            keys: vec![],
            ..EventsState::default()
        },
        log_bytes: 0,
        files: vec![],
        skipped_files: vec![],
        skipped_files_total: 0,
        alerts: Vec::new(),
    }
}

/// Bytes `from..to` of a run's events holding `steps` of `keys`.
fn batch(
    dir: &str,
    from: u64,
    to: u64,
    steps: std::ops::Range<i64>,
    keys: std::ops::Range<usize>,
) -> PointBatch {
    let steps: Vec<i64> = steps.collect();
    PointBatch {
        runs: vec![RunPoints {
            dir: dir.into(),
            from,
            to,
            next_line: to + 1,
            eof: false,
            times: steps.iter().map(|&s| 1.79e9 + s as f64).collect(),
            series: keys
                .map(|k| Series {
                    key: key_name(k),
                    rows: None,
                    values: steps.iter().map(|&s| s as f64 + k as f64 * 1e-6).collect(),
                })
                .collect(),
            steps,
            ..RunPoints::default()
        }],
    }
}

const DIR_A: &str = "runs/wide/a";
const DIR_B: &str = "runs/wide/b";

fn build(dir: &Path, keys: usize) -> anyhow::Result<(Store, RemoteId, RunKey, RunKey)> {
    let (mut store, remote) = runicorn_bench::store_with_bench_remote(dir)?;
    let runs = vec![
        run_change(DIR_A, 1, json!({"lr": 0.1, "seed": 1})),
        run_change(DIR_B, 2, json!({"lr": 0.03, "seed": 1})),
    ];
    store.apply_change_batch(
        remote,
        &ChangeBatch {
            reset: true,
            runs,
            removed: vec![],
            cursor: Cursor {
                epoch: "bench".into(),
                seq: 2,
            },
            more: false,
            skipped: vec![],
            skipped_listed: false,
            artifacts: vec![],
            removed_artifacts: vec![],
        },
    )?;
    for d in [DIR_A, DIR_B] {
        store.ingest_points(remote, &batch(d, 0, 1000, 0..STEPS, 0..keys))?;
    }
    let a = store.run(remote, DIR_A)?.context("run A")?.key;
    let b = store.run(remote, DIR_B)?.context("run B")?.key;
    Ok((store, remote, a, b))
}

/// User + system CPU time of this process (all threads), to the microsecond.
fn cpu_time() -> Duration {
    // SAFETY: getrusage only writes the struct it is given, which is zeroed and ours.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_SELF, &mut usage) != 0 {
            return Duration::ZERO;
        }
        usage
    };
    let micros = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    Duration::from_micros(micros(usage.ru_utime) + micros(usage.ru_stime))
}

/// A dashboard on its own runtime and thread.
fn serve(dir: &Path) -> anyhow::Result<(SocketAddr, tokio::sync::oneshot::Sender<()>)> {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let config = DashboardConfig {
        store_dir: dir.to_owned(),
        bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
        port: 0,
        files: None,
        bundles: None,
    };
    std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async move {
            match Dashboard::bind(config).await {
                Ok(d) => {
                    let _ = ready_tx.send(Ok(d.local_addr()));
                    let _ = d
                        .serve(async {
                            let _ = stop_rx.await;
                        })
                        .await;
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e.to_string()));
                }
            }
        });
    });
    let addr = ready_rx
        .recv()?
        .map_err(|e| anyhow::anyhow!("dashboard: {e}"))?;
    Ok((addr, stop))
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

/// The old compare: every key of both runs, shared keys by `retain` + `contains`, 50 of them,
/// and their series.
fn old_compare(store: &Store, runs: &[RunKey]) -> anyhow::Result<usize> {
    let mut lists = Vec::new();
    for run in runs {
        let names: Vec<String> = store
            .metric_keys(*run)?
            .into_iter()
            .map(|k| k.name)
            .collect();
        lists.push(names);
    }
    let mut shared = lists[0].clone();
    shared.retain(|k| lists.iter().all(|l| l.contains(k)));
    shared.truncate(50);
    let q = SeriesQuery {
        max_points: 1000,
        ..SeriesQuery::default()
    };
    let mut n = 0;
    for run in runs {
        for k in &shared {
            n += store.series(*run, k, &q)?.map_or(0, |s| s.steps.len());
        }
    }
    Ok(n)
}

/// The old live poll of one stream: the run row with every key name, then one query per key.
fn old_live_poll(store: &Store, run: RunKey, after: i64) -> anyhow::Result<usize> {
    let _row = store.run_by_key(run)?;
    let keys = store.metric_keys(run)?;
    let mut n = 0;
    for k in &keys {
        n += store.series_after(run, &k.name, after, 10_000)?.steps.len();
    }
    Ok(n)
}

fn main() -> anyhow::Result<()> {
    let mut args = Args::parse();
    if args.quick {
        args.keys = 20_000;
        args.streams = 3;
        args.repeats = 2;
    }
    println!(
        "many_keys: {} keys × {STEPS} steps in each of 2 runs, {} live streams",
        args.keys, args.streams
    );
    println!("machine: {}", machine_description());
    let tmp = tempfile::tempdir()?;
    let started = Instant::now();
    let (mut store, remote, a, b) = build(tmp.path(), args.keys)?;
    println!("store built in {:.1} s", started.elapsed().as_secs_f64());
    let (addr, stop) = serve(tmp.path())?;
    let reader = Store::open_read_only(tmp.path())?;

    // Compare.
    let target = format!("/api/compare?runs={},{}", a.0, b.0);
    let mut times = Vec::new();
    for _ in 0..args.repeats.max(1) {
        let t = Instant::now();
        let r = get(addr, &target);
        times.push(t.elapsed());
        anyhow::ensure!(
            r.status == 200,
            "compare answered {}: {}",
            r.status,
            r.text()
        );
        let keys = r.json()["keys"].as_array().map_or(0, Vec::len);
        anyhow::ensure!(keys == 50, "compare found {keys} shared keys");
    }
    let compare_new = median(times);
    let t = Instant::now();
    let points = old_compare(&reader, &[a, b])?;
    let compare_old = t.elapsed();
    anyhow::ensure!(points > 0, "the old compare read no points");
    println!(
        "compare (2 runs): new {} (HTTP, median) | old algorithm {} | ratio {:.0}×",
        ms(compare_new),
        ms(compare_old),
        compare_old.as_secs_f64() / compare_new.as_secs_f64()
    );

    // Live: streams on A, then a commit growing 100 of its keys.
    let mut streams: Vec<EventStream> = (0..args.streams)
        .map(|_| EventStream::open(addr, &format!("/api/runs/{}/live", a.0)))
        .collect();
    anyhow::ensure!(
        streams.iter().all(|s| s.status == 200),
        "a live stream was refused"
    );
    std::thread::sleep(Duration::from_secs(2)); // every stream has read its starting point
    let grown = 1000..1000 + GROWN.min(args.keys.saturating_sub(1000).max(1));
    store.ingest_points(
        remote,
        &batch(DIR_A, 1000, 2000, STEPS..STEPS + 1, grown.clone()),
    )?;
    let cpu0 = cpu_time();
    let t = Instant::now();
    for s in &mut streams {
        let event = s
            .until(Duration::from_secs(120), |e| e.event == "metrics")
            .context("a stream got no metrics event")?;
        let n = event.json()["series"].as_array().map_or(0, Vec::len);
        anyhow::ensure!(
            n == grown.len(),
            "a stream got {n} series, not {}",
            grown.len()
        );
    }
    let live_wall = t.elapsed();
    // Let the polls of the other streams' ticks settle before reading the CPU time.
    std::thread::sleep(Duration::from_millis(500));
    let live_cpu = cpu_time().saturating_sub(cpu0);
    // A commit to the other run: nothing new for the streams.
    store.ingest_points(remote, &batch(DIR_B, 1000, 2000, STEPS..STEPS + 1, 0..1))?;
    let cpu1 = cpu_time();
    std::thread::sleep(Duration::from_secs(1));
    let idle_cpu = cpu_time().saturating_sub(cpu1);
    let t = Instant::now();
    let sent = old_live_poll(&reader, a, STEPS - 1)?;
    let old_one = t.elapsed();
    anyhow::ensure!(sent == grown.len(), "the old poll found {sent} points");
    let old_all = old_one * args.streams as u32;
    println!(
        "live, commit growing {} keys: every stream's event within {} wall; {} CPU for {} streams \
         | old poll {} per stream, {} for {} streams | ratio {:.0}×",
        grown.len(),
        ms(live_wall),
        ms(live_cpu),
        args.streams,
        ms(old_one),
        ms(old_all),
        args.streams,
        old_all.as_secs_f64() / live_cpu.as_secs_f64().max(1e-4)
    );
    println!(
        "live, commit to another run: {} CPU over the next second for {} streams | old poll {} \
         (every key queried again) | ratio {:.0}×",
        ms(idle_cpu),
        args.streams,
        ms(old_all),
        old_all.as_secs_f64() / idle_cpu.as_secs_f64().max(1e-4)
    );
    drop(streams);
    let _ = stop.send(());
    Ok(())
}
