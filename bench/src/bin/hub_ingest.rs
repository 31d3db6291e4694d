//! Benchmark: the hub store's point ingest against the cheapest equivalent.
//!
//! Builds `PointBatch`es in memory, then times `Store::ingest_points` of all of them into a
//! fresh store on disk. Two shapes, both measured by default (`--shape both`):
//! - `long`: 1,000 runs × 1,000 steps × 3 keys, 50 runs per batch;
//! - `many-small`: 10,000 runs × 100 steps × 3 keys, 256 runs per batch (a first sync of many
//!   short runs, as the agent answers a `points` request of up to 256 runs).
//!
//! `--runs`, `--steps` and `--runs-per-batch` override the chosen shape(s). The baseline, in the same run, is what a program would do
//! by hand: one `INSERT` per point into a plain table (no key, no index; not idempotent) inside
//! one transaction, with the same WAL and `synchronous=NORMAL` settings. Prints points/s of both
//! and the ratio. Goal: ≥ 2,000,000 points/s.
//!
//! Usage: cargo build --release --bins && target/release/hub_ingest [--shape both|long|many-small]
//! [--runs N] [--steps N] [--runs-per-batch N] [--quick]

use std::path::Path;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use runicorn_bench::machine_description;
use runicorn_protocol::wire::{
    ChangeBatch, Cursor, EventsState, PointBatch, RunChange, RunPoints, Series,
};

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Shape {
    /// 1,000 runs x 1,000 steps, 50 runs per batch
    Long,
    /// 10,000 runs x 100 steps, 256 runs per batch
    ManySmall,
    /// Both of the above
    Both,
}

#[derive(Parser)]
struct Args {
    /// Which shape(s) of data to ingest
    #[arg(long, value_enum, default_value_t = Shape::Both)]
    shape: Shape,
    /// Runs to ingest (default: the shape's)
    #[arg(long)]
    runs: Option<usize>,
    /// Steps per run (default: the shape's)
    #[arg(long)]
    steps: Option<usize>,
    /// Metric keys per step
    #[arg(long, default_value_t = 3)]
    keys: usize,
    /// Runs per PointBatch, one transaction each (default: the shape's)
    #[arg(long)]
    runs_per_batch: Option<usize>,
    /// Timed repetitions of each side (each into a fresh database)
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// Folder for the databases (default: a temporary folder)
    #[arg(long)]
    dir: Option<std::path::PathBuf>,
    /// Small sizes and one repetition: a smoke test for CI
    #[arg(long)]
    quick: bool,
    /// Time the store only (for profiling)
    #[arg(long)]
    no_baseline: bool,
}

const KEY_NAMES: [&str; 8] = [
    "loss",
    "acc",
    "lr",
    "val_loss",
    "val_acc",
    "grad_norm",
    "tokens",
    "mfu",
];

fn dir_of(run: usize) -> String {
    format!("runs/bench/exp/{run:06}")
}

fn key_name(k: usize) -> String {
    KEY_NAMES
        .get(k)
        .map_or_else(|| format!("metric_{k}"), |s| (*s).to_owned())
}

/// 100 bytes per event line, as the agent would count them.
const LINE_BYTES: u64 = 100;

fn run_points(run: usize, steps: usize, keys: usize) -> RunPoints {
    let step_list: Vec<i64> = (1..=steps as i64).collect();
    let times: Vec<f64> = step_list.iter().map(|&s| 1.7e9 + s as f64 * 0.1).collect();
    let series = (0..keys)
        .map(|k| Series {
            key: key_name(k),
            rows: None,
            values: step_list
                .iter()
                .map(|&s| (k as f64 + 1.0) / (s as f64 + run as f64))
                .collect(),
        })
        .collect();
    RunPoints {
        dir: dir_of(run),
        from: 0,
        to: steps as u64 * LINE_BYTES,
        next_line: steps as u64 + 1,
        eof: true,
        steps: step_list,
        times,
        series,
        ..RunPoints::default()
    }
}

fn run_change(run: usize, steps: usize) -> RunChange {
    RunChange {
        dir: dir_of(run),
        seq: run as u64 + 1,
        id: format!("{run:06}"),
        path: "bench/exp".into(),
        layout: "current".into(),
        alias: None,
        tags: vec![],
        status: "finished".into(),
        reason: None,
        created_at: Some(1.7e9),
        ended_at: Some(1.7e9 + 100.0),
        hostname: Some("bench".into()),
        deleted: false,
        meta: None,
        status_record: None,
        summary: None,
        config: None,
        environment: None,
        assets: None,
        events: EventsState {
            bytes: steps as u64 * LINE_BYTES,
            lines: steps as u64,
            ..EventsState::default()
        },
        log_bytes: 0,
        files: vec![],
        skipped_files: vec![],
        skipped_files_total: 0,
        alerts: Vec::new(),
    }
}

/// One shape of data to ingest.
#[derive(Clone, Copy)]
struct Case {
    name: &'static str,
    runs: usize,
    steps: usize,
    keys: usize,
    runs_per_batch: usize,
}

impl Case {
    /// The shape `name` of `runs` × `steps` (`quick_runs` with `--quick`), `per_batch` runs
    /// per batch, unless the arguments say otherwise.
    fn of(
        args: &Args,
        name: &'static str,
        [runs, steps, per_batch, quick_runs]: [usize; 4],
    ) -> Case {
        let (mut runs, mut steps) = (args.runs.unwrap_or(runs), args.steps.unwrap_or(steps));
        if args.quick {
            runs = runs.min(quick_runs);
            steps = steps.min(500);
        }
        Case {
            name,
            runs,
            steps,
            keys: args.keys,
            runs_per_batch: args.runs_per_batch.unwrap_or(per_batch).max(1),
        }
    }
}

/// Times `ingest_points` of every batch into a fresh store in `dir`.
fn time_store(dir: &Path, args: &Case, batches: &[PointBatch]) -> anyhow::Result<(Duration, u64)> {
    let (mut store, remote) = runicorn_bench::store_with_bench_remote(dir)?;
    let listing = ChangeBatch {
        reset: true,
        runs: (0..args.runs).map(|r| run_change(r, args.steps)).collect(),
        removed: vec![],
        cursor: Cursor {
            epoch: "bench".into(),
            seq: args.runs as u64,
        },
        more: false,
        skipped: vec![],
        skipped_listed: false,
        artifacts: vec![],
        removed_artifacts: vec![],
    };
    store.apply_change_batch(remote, &listing)?;
    let start = Instant::now();
    let mut points = 0;
    for batch in batches {
        points += store.ingest_points(remote, batch)?.points;
    }
    let elapsed = start.elapsed();
    let stored = store.total_points(remote)?;
    anyhow::ensure!(
        stored == points && store.pending_points(remote, 1)?.is_empty(),
        "the store holds {stored} points after ingesting {points}"
    );
    Ok((elapsed, points))
}

/// Times the baseline: one INSERT per point into a plain table, one transaction.
fn time_baseline(dir: &Path, batches: &[PointBatch]) -> anyhow::Result<(Duration, u64)> {
    std::fs::create_dir_all(dir)?;
    let mut conn = rusqlite::Connection::open(dir.join("baseline.sqlite"))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.execute_batch(
        "CREATE TABLE points(run TEXT NOT NULL, key TEXT NOT NULL, step INTEGER NOT NULL,
            time REAL, value REAL)",
    )?;
    let start = Instant::now();
    let mut points = 0u64;
    let tx = conn.transaction()?;
    {
        let mut insert = tx.prepare(
            "INSERT INTO points(run, key, step, time, value) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for batch in batches {
            for rp in &batch.runs {
                for s in &rp.series {
                    for (i, v) in s.values.iter().enumerate() {
                        insert.execute(rusqlite::params![
                            rp.dir,
                            s.key,
                            rp.steps[i],
                            rp.times[i],
                            v
                        ])?;
                        points += 1;
                    }
                }
            }
        }
    }
    tx.commit()?;
    Ok((start.elapsed(), points))
}

fn best_and_median(mut times: Vec<Duration>) -> (Duration, Duration) {
    times.sort();
    (times[0], times[times.len() / 2])
}

fn main() -> anyhow::Result<()> {
    let mut args = Args::parse();
    if args.quick {
        args.repeats = 1;
    }
    let mut cases = Vec::new();
    if matches!(args.shape, Shape::Long | Shape::Both) {
        cases.push(Case::of(&args, "long", [1000, 1000, 50, 40]));
    }
    if matches!(args.shape, Shape::ManySmall | Shape::Both) {
        cases.push(Case::of(&args, "many-small", [10_000, 100, 256, 512]));
    }
    let tmp = match &args.dir {
        Some(d) => tempfile::tempdir_in(d)?,
        None => tempfile::tempdir()?,
    };
    println!("machine: {}", machine_description());
    let mut all_met = true;
    for case in &cases {
        all_met &= measure(&args, case, &tmp.path().join(case.name))?;
    }
    let verdict = if args.quick {
        "not judged (--quick)"
    } else if all_met {
        "met"
    } else {
        "NOT met"
    };
    println!("goal >= 2,000,000 points/s (best, every shape): {verdict}");
    Ok(())
}

/// Times one case and prints its lines; whether it met the goal.
fn measure(args: &Args, case: &Case, dir: &Path) -> anyhow::Result<bool> {
    let per_batch = case.runs_per_batch;
    let batches: Vec<PointBatch> = (0..case.runs)
        .collect::<Vec<_>>()
        .chunks(per_batch)
        .map(|runs| PointBatch {
            runs: runs
                .iter()
                .map(|&r| run_points(r, case.steps, case.keys))
                .collect(),
        })
        .collect();

    let (mut store_times, mut base_times) = (Vec::new(), Vec::new());
    let mut points = 0;
    // Interleaved, so both sides meet the same machine load.
    for rep in 0..args.repeats.max(1) {
        let (t, n) = time_store(&dir.join(format!("store{rep}")), case, &batches)?;
        store_times.push(t);
        points = n;
        if args.no_baseline {
            continue;
        }
        let (t, n) = time_baseline(&dir.join(format!("base{rep}")), &batches)?;
        anyhow::ensure!(n == points, "baseline wrote {n} points, the store {points}");
        base_times.push(t);
    }
    let (store_best, store_median) = best_and_median(store_times);
    let base_times_empty = base_times.is_empty();
    let (base_best, base_median) = if base_times_empty {
        (Duration::ZERO, Duration::ZERO)
    } else {
        best_and_median(base_times)
    };
    let rate = |d: Duration| points as f64 / d.as_secs_f64();

    println!(
        "[{}] {} runs x {} steps x {} keys = {} points, {} runs per batch ({} batches), best/median of {}",
        case.name,
        case.runs,
        case.steps,
        case.keys,
        points,
        per_batch,
        batches.len(),
        args.repeats.max(1)
    );
    println!(
        "Store::ingest_points                 best {:.3}s {:>10.0} points/s   median {:.3}s {:>10.0} points/s",
        store_best.as_secs_f64(),
        rate(store_best),
        store_median.as_secs_f64(),
        rate(store_median)
    );
    if !base_times_empty {
        println!(
            "baseline: INSERT per point, 1 tx     best {:.3}s {:>10.0} points/s   median {:.3}s {:>10.0} points/s",
            base_best.as_secs_f64(),
            rate(base_best),
            base_median.as_secs_f64(),
            rate(base_median)
        );
        println!(
            "ratio store/baseline time (best): {:.2}",
            store_best.as_secs_f64() / base_best.as_secs_f64()
        );
    }
    Ok(rate(store_best) >= 2e6)
}
