//! Benchmark: the filter language at the API, `GET /api/runs?q=EXPR` over 100,000 runs, served
//! by the real dashboard on loopback and read over HTTP, against baselines in the same run.
//!
//! Builds (in a temporary folder, or `--store DIR` to keep and reuse it) a store of 100,000
//! runs over ~20 projects, each with a summary (`val_acc`, `loss`, …) and a nested config
//! (`optimizer` one of three, `lr`, `batch_size`, …), through the store's real API
//! (`apply_change_batch`). Then times, p50/p95 over `--repeats` requests:
//!
//! - `q=config.optimizer = "sgd" and summary.val_acc > 0.97` (the first page of 50, newest
//!   first, and its total): the goal, p50 < 50 ms;
//! - the same filter sorted by `summary.val_acc` (descending);
//! - `q=gpu7 and config.batch_size >= 128` (free text with a config key);
//!
//! against two baselines: the unfiltered first page at the API (what the table costs without
//! a filter), and a brute-force scan of the store (every run's summary and config read and
//! tested in Rust, as a client without the language would). Each answer's `total` is checked
//! against the brute-force count.
//!
//! `--quick` (CI): 10,000 runs, 5 repetitions.
//!
//! Usage: cargo run --release -p runicorn-bench --bin filter_runs [-- --quick]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Parser;
use runicorn_bench::machine_description;
use runicorn_protocol::wire::{EventsState, RunChange};
use runicorn_store::{flatten_config, RunFilter, Store};
use runicorn_tests::dashboard::ServedDashboard;
use serde_json::{json, Value};

#[derive(Parser)]
struct Args {
    /// Runs in the store
    #[arg(long, default_value_t = 100_000)]
    runs: usize,
    /// Timed requests of each kind
    #[arg(long, default_value_t = 30)]
    repeats: usize,
    /// Keep the store in DIR (reused when it already holds the runs)
    #[arg(long)]
    store: Option<PathBuf>,
    /// 10,000 runs and 5 repetitions: a smoke test for CI
    #[arg(long)]
    quick: bool,
}

/// A cheap deterministic hash (splitmix64).
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn unit(i: u64, salt: u64) -> f64 {
    (mix(i.wrapping_mul(31).wrapping_add(salt)) % 1_000_000) as f64 / 1_000_000.0
}

fn run(i: usize) -> RunChange {
    let h = mix(i as u64);
    let path = format!("proj{}/exp{}", h % 20, h / 20 % 12);
    let id = format!("20261126_{:06}_{:06x}", i % 1_000_000, h & 0xff_ffff);
    let u = |salt| unit(i as u64, salt);
    let optimizer = ["adam", "sgd", "adamw"][i % 3];
    RunChange {
        dir: format!("runs/{path}/{id}"),
        seq: i as u64 + 1,
        id,
        path,
        layout: "current".into(),
        alias: i.is_multiple_of(5).then(|| format!("run-{i}")),
        tags: if i.is_multiple_of(11) {
            vec!["best".into()]
        } else {
            vec![]
        },
        status: ["finished", "failed", "running", "crashed"][i % 4].into(),
        reason: None,
        created_at: Some(1.79e9 + i as f64 * 60.0),
        ended_at: None,
        hostname: Some(format!("gpu{}", i % 16)),
        deleted: false,
        meta: Some(json!({"python": "3.11"})),
        status_record: None,
        summary: Some(json!({"val_acc": u(1), "loss": u(2), "epoch": (u(3) * 100.0) as i64})),
        config: Some(json!({
            "optimizer": optimizer,
            "lr": 10f64.powf(-1.0 - u(4) * 3.0),
            "batch_size": 32 << (i % 4),
            "model": {"depth": 12 + i % 4 * 6},
            "seed": i,
        })),
        environment: None,
        assets: None,
        events: EventsState::default(),
        log_bytes: 0,
        files: vec![],
        skipped_files: vec![],
        skipped_files_total: 0,
        alerts: Vec::new(),
    }
}

fn build(dir: &Path, runs: usize) -> anyhow::Result<()> {
    let (mut store, remote) = runicorn_bench::store_with_bench_remote(dir)?;
    if store.count_runs(&RunFilter::default())? == runs as u64 {
        eprintln!("reusing the store in {}", dir.display());
        return Ok(());
    }
    let start = Instant::now();
    let all: Vec<RunChange> = (0..runs).map(run).collect();
    runicorn_bench::list_runs_into(&mut store, remote, &all)?;
    eprintln!("{runs} runs listed in {:.1?}", start.elapsed());
    Ok(())
}

/// `q` percent-encoded.
fn encoded(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// p50 and p95 of `repeats` runs of `f` (after one warm-up run).
fn measure(
    repeats: usize,
    mut f: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<(Duration, Duration)> {
    f()?;
    let times = runicorn_bench::sorted_times(repeats, f)?;
    let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    Ok((at(0.5), at(0.95)))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A brute-force test of one run: its summary, its flattened config and its host.
type RunTest = dyn Fn(&Value, &[(String, Value)], &str) -> bool;

/// Every run read from the store and tested in Rust: the brute-force count of `test`.
fn scan(store: &Store, test: &RunTest) -> anyhow::Result<u64> {
    let rows = store.list_runs(&RunFilter {
        limit: None,
        ..RunFilter::default()
    })?;
    Ok(rows
        .iter()
        .filter(|r| {
            let summary = r.summary.clone().unwrap_or(Value::Null);
            let config = r.config.as_ref().map(flatten_config).unwrap_or_default();
            test(&summary, &config, r.hostname.as_deref().unwrap_or(""))
        })
        .count() as u64)
}

fn config_of<'a>(config: &'a [(String, Value)], key: &str) -> Option<&'a Value> {
    config.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

fn main() -> anyhow::Result<()> {
    let mut args = Args::parse();
    if args.quick {
        args.runs = args.runs.min(10_000);
        args.repeats = args.repeats.min(5);
    }
    let tmp = tempfile::tempdir()?;
    let dir = args.store.clone().unwrap_or_else(|| tmp.path().join("hub"));
    build(&dir, args.runs)?;
    println!("filter_runs: {} runs; {}", args.runs, machine_description());
    let served = ServedDashboard::start(&dir, None);
    let store = Store::open_read_only(&dir)?;

    let get = |target: &str| -> anyhow::Result<Value> {
        let r = served.get(target);
        anyhow::ensure!(
            r.status == 200,
            "{target}: status {}: {}",
            r.status,
            r.text()
        );
        Ok(r.json())
    };
    let unfiltered = measure(args.repeats, || get("/api/runs").map(drop))?;
    let scan_repeats = (args.repeats / 5).max(3);
    let cases: [(&str, &str, Box<RunTest>); 3] = [
        (
            "config.optimizer = \"sgd\" and summary.val_acc > 0.97",
            "",
            Box::new(|s, c, _| {
                config_of(c, "optimizer") == Some(&json!("sgd"))
                    && s["val_acc"].as_f64().is_some_and(|x| x > 0.97)
            }),
        ),
        (
            "config.optimizer = \"sgd\" and summary.val_acc > 0.97",
            "&sort=summary.val_acc",
            Box::new(|s, c, _| {
                config_of(c, "optimizer") == Some(&json!("sgd"))
                    && s["val_acc"].as_f64().is_some_and(|x| x > 0.97)
            }),
        ),
        (
            "gpu7 and config.batch_size >= 128",
            "",
            Box::new(|_, c, host| {
                host.contains("gpu7")
                    && config_of(c, "batch_size")
                        .and_then(Value::as_f64)
                        .is_some_and(|x| x >= 128.0)
            }),
        ),
    ];
    let mut goal_met = true;
    for (i, (q, extra, test)) in cases.iter().enumerate() {
        let target = format!("/api/runs?q={}{extra}", encoded(q));
        let want = scan(&store, test.as_ref())?;
        let got = get(&target)?["total"].as_u64();
        anyhow::ensure!(
            got == Some(want),
            "{q}: the API counts {got:?}, a scan {want}"
        );
        let ours = measure(args.repeats, || get(&target).map(drop))?;
        let brute = measure(scan_repeats, || scan(&store, test.as_ref()).map(drop))?;
        let goal = i == 0;
        let met = ms(ours.0) < 50.0;
        if goal {
            goal_met = met;
        }
        println!(
            "q={q}{extra} ({want} runs): p50 {:.2} ms  p95 {:.2} ms | unfiltered first page p50 {:.2} ms | brute-force scan p50 {:.1} ms | ratio to the scan {:.4}{}",
            ms(ours.0),
            ms(ours.1),
            ms(unfiltered.0),
            ms(brute.0),
            ms(ours.0) / ms(brute.0),
            if goal {
                format!("  goal p50 < 50 ms: {}", if met { "met" } else { "NOT met" })
            } else {
                String::new()
            }
        );
    }
    served.stop(Duration::from_secs(10));
    if !goal_met && !args.quick {
        println!("goal not met");
    }
    Ok(())
}
