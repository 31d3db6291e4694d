//! Benchmark: the dashboard's reads of the hub store, against the naive way in the same run.
//!
//! Builds (in a temporary folder, or `--store DIR` to keep and reuse it) a store holding
//! 100,000 runs over ~20 projects with 2–3 path levels, summaries with a few numeric keys and
//! nested configs, plus one run of 10,000,000 points of one key and one of 100,000 points, all
//! through the store's real API (`apply_change_batch`, `ingest_points`). Then times, on a
//! read-only connection as the dashboard opens it, p50/p95 over `--repeats` repetitions:
//!
//! - the runs table's first page (limit 50, sorted by `summary.acc` descending, filtered by a
//!   path prefix) plus `count_runs` of the same filter, for a prefix matching most runs and one
//!   matching few; baseline: the same page sorted through `json_each(summary)` per row (the
//!   store's way before the side table) plus a count reading the runs table;
//! - a 2,000-point downsampled series of the 10 M-point run (full range, and a 10 % zoom) and of
//!   the 100 k-point run; baseline: every point of the range read in step order and bucketed in
//!   Rust (same buckets, same answer).
//!
//! Goals: first page + count p50 < 20 ms; full-range downsample of 10 M points p50 < 50 ms.
//!
//! `--quick` (CI): 10,000 runs and 1,000,000 points. `--compare-store DIR` only writes a store
//! in DIR with remote "bench" holding 20 runs of 100,000 points of `loss` and `acc` (path
//! `bench/compare`) and prints their store keys as a JSON array.
//!
//! Usage: cargo run --release -p runicorn-bench --bin dashboard_queries [-- --quick]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Parser;
use runicorn_bench::machine_description;
use runicorn_protocol::wire::{
    ChangeBatch, Cursor, EventsState, PointBatch, RunChange, RunPoints, Series,
};
use runicorn_store::{
    RemoteId, RunFilter, RunKey, RunOrder, RunSort, SeriesAxis, SeriesQuery, Store,
};
use serde_json::json;

#[derive(Parser)]
struct Args {
    /// Runs in the listing store
    #[arg(long, default_value_t = 100_000)]
    runs: usize,
    /// Points of the long run
    #[arg(long, default_value_t = 10_000_000)]
    points: usize,
    /// Timed repetitions of each query
    #[arg(long, default_value_t = 30)]
    repeats: usize,
    /// Timed repetitions of the slow baselines (a full read of the long run)
    #[arg(long, default_value_t = 10)]
    baseline_repeats: usize,
    /// Keep the store in DIR (reused when it already holds the data)
    #[arg(long)]
    store: Option<PathBuf>,
    /// 10,000 runs and 1,000,000 points: a smoke test for CI
    #[arg(long)]
    quick: bool,
    /// Only write the comparison store (20 runs x 100,000 points) in DIR, print its run keys
    #[arg(long)]
    compare_store: Option<PathBuf>,
}

const PROJECTS: [&str; 20] = [
    "vision",
    "nlp",
    "speech",
    "rl",
    "gen",
    "tabular",
    "graph",
    "robotics",
    "recsys",
    "medical",
    "audio",
    "video",
    "ocr",
    "translate",
    "detect",
    "segment",
    "depth",
    "pose",
    "tts",
    "asr",
];

/// The path of listing run `i`: 60 % in `vision/…`, the rest spread over the other projects,
/// two or three levels deep.
fn path_of(i: usize) -> String {
    let h = mix(i as u64);
    let project = if h % 10 < 6 {
        PROJECTS[0]
    } else {
        PROJECTS[1 + (h / 10 % 19) as usize]
    };
    let exp = format!("exp{}", h / 200 % 12);
    if (h / 3000).is_multiple_of(3) {
        format!("{project}/{exp}/v{}", h / 9000 % 4)
    } else {
        format!("{project}/{exp}")
    }
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

fn events(points: u64) -> EventsState {
    EventsState {
        bytes: points * 30,
        lines: points,
        points,
        keys: vec!["loss".into()],
        ..EventsState::default()
    }
}

fn listing_run(i: usize) -> RunChange {
    let path = path_of(i);
    let id = format!(
        "20261126_{:06}_{:06x}",
        i % 1_000_000,
        mix(i as u64) & 0xff_ffff
    );
    let u = |salt| unit(i as u64, salt);
    // A tenth of the runs are still early: no accuracy yet.
    let summary = if i % 10 == 3 {
        json!({"loss": 2.0 + u(1), "epoch": 0})
    } else {
        json!({"loss": u(1), "acc": u(2), "val_loss": u(3) * 1.5, "epoch": (u(4) * 100.0) as i64,
               "best": if i.is_multiple_of(7) { json!("n/a") } else { json!(u(5)) }})
    };
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
        ended_at: Some(1.79e9 + i as f64 * 60.0 + 3600.0),
        hostname: Some(format!("gpu{}", i % 16)),
        deleted: false,
        meta: Some(json!({"run_id": i, "python": "3.11"})),
        status_record: None,
        summary: Some(summary),
        config: Some(json!({
            "optim": {"name": optimizer, "lr": 10f64.powf(-1.0 - u(6) * 3.0),
                      "betas": [0.9, 0.999]},
            "model": {"depth": 12 + i % 4 * 6, "width": 256 << (i % 3)},
            "batch_size": 32 << (i % 4), "seed": i,
        })),
        environment: None,
        assets: None,
        events: events(0),
        log_bytes: 0,
        files: vec![],
        skipped_files: vec![],
        skipped_files_total: 0,
        alerts: Vec::new(),
    }
}

/// A noisy decaying curve with a few spikes: values of `key` at `steps`.
fn curve(seed: u64, key: &str, steps: std::ops::Range<i64>) -> Vec<f64> {
    steps
        .map(|s| {
            let x = s as f64;
            let noise = unit(s as u64, seed) - 0.5;
            let spike = if mix(s as u64 ^ seed).is_multiple_of(200_000) {
                5.0
            } else {
                0.0
            };
            match key {
                // A learning-rate schedule: smooth and monotone, the downsampler's worst case.
                "lr" => 0.1 / (1.0 + x / 1000.0),
                "acc" => 1.0 - 0.9 / (1.0 + x / 5000.0) + noise * 0.05 - spike * 0.1,
                _ => 2.0 / (1.0 + x / 10_000.0) + noise * 0.1 + spike,
            }
        })
        .collect()
}

/// Ingests `points` steps of `keys` into run `dir`, 50,000 steps per batch as a sync would.
fn ingest_run(
    store: &mut Store,
    remote: RemoteId,
    dir: &str,
    seed: u64,
    keys: &[&str],
    points: usize,
) -> anyhow::Result<()> {
    const PER_BATCH: i64 = 50_000;
    let mut step = 0i64;
    while step < points as i64 {
        let end = (step + PER_BATCH).min(points as i64);
        let steps: Vec<i64> = (step..end).collect();
        let batch = PointBatch {
            runs: vec![RunPoints {
                dir: dir.into(),
                from: step as u64 * 30,
                to: end as u64 * 30,
                next_line: end as u64 + 1,
                eof: end as usize == points,
                times: steps.iter().map(|&s| 1.79e9 + s as f64 * 0.05).collect(),
                series: keys
                    .iter()
                    .map(|k| Series {
                        key: (*k).into(),
                        rows: None,
                        values: curve(seed, k, step..end),
                    })
                    .collect(),
                steps,
                ..RunPoints::default()
            }],
        };
        store.ingest_points(remote, &batch)?;
        step = end;
    }
    Ok(())
}

fn series_run(dir: &str, path: &str, points: usize) -> RunChange {
    RunChange {
        dir: dir.into(),
        path: path.into(),
        id: dir.rsplit('/').next().unwrap_or("x").into(),
        events: events(points as u64),
        ..listing_run(0)
    }
}

/// Fills `dir` with the listing runs and the two series runs, unless it already holds them.
fn build(dir: &Path, runs: usize, points: usize) -> anyhow::Result<()> {
    let (mut store, remote) = runicorn_bench::store_with_bench_remote(dir)?;
    let long = "runs/series/long/r10m";
    if store
        .run(remote, long)?
        .is_some_and(|r| r.points == points as u64)
        && store.count_runs(&RunFilter::default())? == runs as u64 + 2
    {
        eprintln!("reusing the store in {}", dir.display());
        return Ok(());
    }
    let start = Instant::now();
    let mut all: Vec<RunChange> = (0..runs).map(listing_run).collect();
    all.push(series_run(long, "series/long", points));
    all.push(series_run(
        "runs/series/short/r100k",
        "series/short",
        100_000,
    ));
    runicorn_bench::list_runs_into(&mut store, remote, &all)?;
    eprintln!("{} runs listed in {:.1?}", all.len(), start.elapsed());
    let start = Instant::now();
    ingest_run(&mut store, remote, long, 1, &["loss"], points)?;
    ingest_run(
        &mut store,
        remote,
        "runs/series/short/r100k",
        2,
        &["loss", "lr"],
        100_000,
    )?;
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "{} points ingested in {secs:.1} s ({:.2} M points/s, tiles included)",
        points + 100_000,
        (points + 100_000) as f64 / secs / 1e6
    );
    // What the dashboard's first ANALYZE-free open sees; let SQLite settle its WAL.
    store.data_version()?;
    Ok(())
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

fn report(
    what: &str,
    ours: (Duration, Duration),
    base: (Duration, Duration),
    goal_ms: f64,
) -> bool {
    let met = ms(ours.0) < goal_ms;
    println!(
        "{what:<44} p50 {:>8.2} ms  p95 {:>8.2} ms | baseline p50 {:>9.2} ms  p95 {:>9.2} ms | ratio {:.4}{}",
        ms(ours.0),
        ms(ours.1),
        ms(base.0),
        ms(base.1),
        ms(ours.0) / ms(base.0),
        if goal_ms.is_finite() {
            format!("  goal p50 < {goal_ms} ms: {}", if met { "met" } else { "NOT met" })
        } else {
            String::new()
        }
    );
    met
}

/// The naive first page: `json_each` over every matching run's summary, then a count.
fn baseline_page(conn: &rusqlite::Connection, prefix: &str, key: &str) -> anyhow::Result<usize> {
    let filter = "r.removed = 0 AND r.deleted = 0 AND r.trashed_at IS NULL
        AND (r.path = ?1 OR (r.path >= ?2 AND r.path < ?3))";
    let args = rusqlite::params![prefix, format!("{prefix}/"), format!("{prefix}0"), key];
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT r.id, r.summary, r.config FROM runs r WHERE {filter}
         ORDER BY (SELECT value FROM json_each(r.summary) WHERE key = ?4) IS NULL,
            (SELECT value FROM json_each(r.summary) WHERE key = ?4) DESC, r.id DESC LIMIT 50"
    ))?;
    let ids: Vec<i64> = stmt
        .query_map(args, |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let n: i64 = conn.query_row(
        &format!("SELECT count(*) FROM runs r NOT INDEXED WHERE {filter}"),
        rusqlite::params![prefix, format!("{prefix}/"), format!("{prefix}0")],
        |r| r.get(0),
    )?;
    Ok(ids.len() + n as usize)
}

/// The naive downsample: every point of the range, bucketed in Rust (min and max per bucket).
fn baseline_series(
    conn: &rusqlite::Connection,
    run: RunKey,
    key: &str,
    from: i64,
    to: i64,
    max_points: usize,
) -> anyhow::Result<usize> {
    let mut stmt = conn.prepare_cached(
        "SELECT step, time, value FROM points
         WHERE run = ?1 AND key = (SELECT id FROM metric_keys WHERE name = ?4)
           AND step BETWEEN ?2 AND ?3 ORDER BY step",
    )?;
    let mut rows = stmt.query(rusqlite::params![run.0, from, to, key])?;
    let points: Vec<(i64, Option<f64>, Option<f64>)> = {
        let mut v = Vec::new();
        while let Some(r) = rows.next()? {
            v.push((r.get(0)?, r.get(1)?, r.get(2)?));
        }
        v
    };
    let n = (max_points / 2).max(1);
    let (Some(first), Some(last)) = (points.first(), points.last()) else {
        return Ok(0);
    };
    let (a, width) = (first.0, (last.0 - first.0 + 1) as i128);
    // Per bucket: (min value, its step), (max value, its step).
    type Extremes = ((f64, i64), (f64, i64));
    let mut buckets: Vec<Option<Extremes>> = vec![None; n];
    for &(s, _, v) in &points {
        let Some(v) = v else { continue };
        let i = ((s - a) as i128 * n as i128 / width) as usize;
        let b = buckets[i].get_or_insert(((v, s), (v, s)));
        if v < b.0 .0 {
            b.0 = (v, s);
        }
        if v > b.1 .0 {
            b.1 = (v, s);
        }
    }
    Ok(buckets.iter().flatten().count() * 2)
}

fn page_filter(prefix: &str) -> RunFilter {
    RunFilter {
        path_prefix: Some(prefix.into()),
        limit: Some(50),
        sort: RunSort {
            by: RunOrder::Summary("acc".into()),
            descending: true,
        },
        ..RunFilter::default()
    }
}

fn write_compare_store(dir: &Path) -> anyhow::Result<()> {
    let (mut store, remote) = runicorn_bench::store_with_bench_remote(dir)?;
    let dirs: Vec<String> = (0..20)
        .map(|i| format!("runs/bench/compare/cmp{i:02}"))
        .collect();
    let runs: Vec<RunChange> = dirs
        .iter()
        .enumerate()
        .map(|(i, d)| RunChange {
            alias: Some(format!("compare-{i:02}")),
            summary: Some(json!({"loss": unit(i as u64, 9), "acc": unit(i as u64, 10)})),
            config: Some(
                json!({"optim": {"lr": 10f64.powf(-1.0 - (i % 4) as f64), "name": "adam"},
                                "seed": i}),
            ),
            ..series_run(d, "bench/compare", 100_000)
        })
        .collect();
    store.apply_change_batch(
        remote,
        &ChangeBatch {
            reset: true,
            runs,
            removed: vec![],
            cursor: Cursor {
                epoch: "compare".into(),
                seq: 20,
            },
            more: false,
            skipped: vec![],
            skipped_listed: false,
            artifacts: vec![],
            removed_artifacts: vec![],
        },
    )?;
    let mut keys = Vec::new();
    for (i, d) in dirs.iter().enumerate() {
        ingest_run(
            &mut store,
            remote,
            d,
            100 + i as u64,
            &["loss", "acc"],
            100_000,
        )?;
        let run = store
            .run(remote, d)?
            .ok_or_else(|| anyhow::anyhow!("run {d} missing after ingest"))?;
        keys.push(run.key.0);
    }
    println!("{}", serde_json::to_string(&keys)?);
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let mut args = Args::parse();
    if let Some(dir) = &args.compare_store {
        return write_compare_store(dir);
    }
    if args.quick {
        args.runs = args.runs.min(10_000);
        args.points = args.points.min(1_000_000);
    }
    let tmp = tempfile::tempdir()?;
    let dir = args.store.clone().unwrap_or_else(|| tmp.path().join("hub"));
    println!("machine: {}", machine_description());
    println!(
        "store: {} runs + a run of {} points + a run of 100,000 points; {} repetitions",
        args.runs, args.points, args.repeats
    );
    build(&dir, args.runs, args.points)?;

    let store = Store::open_read_only(&dir)?;
    let conn = rusqlite::Connection::open_with_flags(
        dir.join(runicorn_store::STORE_FILE),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )?;
    conn.pragma_update(None, "cache_size", -64 * 1024)?;
    let reps = args.repeats;
    let mut all_met = true;

    // The runs table.
    let few_prefix = format!("{}/exp3", PROJECTS[5]);
    for (label, prefix) in [
        ("most runs", PROJECTS[0].to_owned()),
        ("few runs", few_prefix),
    ] {
        let f = page_filter(&prefix);
        let total = store.count_runs(&f)?;
        let page = store.list_runs(&f)?;
        anyhow::ensure!(!page.is_empty(), "prefix {prefix} matches nothing");
        let ours = measure(reps, || {
            store.list_runs(&f)?;
            store.count_runs(&f)?;
            Ok(())
        })?;
        let base = measure(reps, || baseline_page(&conn, &prefix, "acc").map(drop))?;
        all_met &= report(
            &format!("first page + count, {label} ({total})"),
            ours,
            base,
            20.0,
        );
    }
    for (label, by) in [
        ("newest first", RunOrder::CreatedAt),
        ("config.optim.lr", RunOrder::Config("optim.lr".into())),
    ] {
        let f = RunFilter {
            sort: RunSort {
                by,
                descending: true,
            },
            ..page_filter(PROJECTS[0])
        };
        let ours = measure(reps, || {
            store.list_runs(&f)?;
            store.count_runs(&f)?;
            Ok(())
        })?;
        println!(
            "{:<44} p50 {:>8.2} ms  p95 {:>8.2} ms",
            format!("first page + count, most runs, {label}"),
            ms(ours.0),
            ms(ours.1)
        );
    }
    for by in [
        RunOrder::EndedAt,
        RunOrder::Path,
        RunOrder::Alias,
        RunOrder::Status,
        RunOrder::Remote,
        RunOrder::Host,
        RunOrder::RunId,
        RunOrder::LastStep,
        RunOrder::Points,
    ] {
        let f = RunFilter {
            limit: Some(50),
            sort: RunSort {
                by: by.clone(),
                descending: true,
            },
            ..RunFilter::default()
        };
        let ours = measure(reps.min(10), || {
            store.list_runs(&f)?;
            Ok(())
        })?;
        println!(
            "{:<44} p50 {:>8.2} ms  p95 {:>8.2} ms",
            format!("first page, no filter, by {by:?}"),
            ms(ours.0),
            ms(ours.1)
        );
    }
    let everything = RunFilter::default();
    let newest = RunFilter {
        limit: Some(50),
        ..RunFilter::default()
    };
    let ours = measure(reps, || {
        store.list_runs(&newest)?;
        store.count_runs(&newest)?;
        Ok(())
    })?;
    println!(
        "{:<44} p50 {:>8.2} ms  p95 {:>8.2} ms",
        "first page + count, no filter, newest first",
        ms(ours.0),
        ms(ours.1)
    );
    let text = RunFilter {
        text: Some("gpu7".into()),
        ..newest
    };
    let ours = measure(reps, || {
        store.list_runs(&text)?;
        store.count_runs(&text)?;
        Ok(())
    })?;
    println!(
        "{:<44} p50 {:>8.2} ms  p95 {:>8.2} ms",
        "first page + count, text \"gpu7\" (a host)",
        ms(ours.0),
        ms(ours.1)
    );
    for (label, ours) in [
        (
            "path tree (path_counts, all runs)",
            measure(reps, || {
                store.path_counts(&everything).map(drop).map_err(Into::into)
            })?,
        ),
        (
            "column keys",
            measure(reps, || {
                store.column_keys(500).map(drop).map_err(Into::into)
            })?,
        ),
    ] {
        println!(
            "{label:<44} p50 {:>8.2} ms  p95 {:>8.2} ms",
            ms(ours.0),
            ms(ours.1)
        );
    }

    // Downsampled series.
    let bench = store
        .remote("bench")?
        .ok_or_else(|| anyhow::anyhow!("no remote bench"))?
        .id;
    let long = store
        .run(bench, "runs/series/long/r10m")?
        .ok_or_else(|| anyhow::anyhow!("long run missing"))?
        .key;
    let short = store
        .run(bench, "runs/series/short/r100k")?
        .ok_or_else(|| anyhow::anyhow!("short run missing"))?
        .key;
    let n = args.points as i64;
    for (label, run, key, from, to, base_reps, goal) in [
        (
            "full range",
            long,
            "loss",
            0,
            n - 1,
            args.baseline_repeats,
            50.0,
        ),
        (
            "zoom 10 %",
            long,
            "loss",
            n * 45 / 100,
            n * 55 / 100 - 1,
            reps,
            f64::INFINITY,
        ),
        (
            "100k-point run",
            short,
            "loss",
            0,
            99_999,
            reps,
            f64::INFINITY,
        ),
        (
            "100k, monotone lr",
            short,
            "lr",
            0,
            99_999,
            reps,
            f64::INFINITY,
        ),
    ] {
        let total = if run == long { args.points } else { 100_000 };
        let q = SeriesQuery {
            from: (from > 0).then_some(from as f64),
            to: (to < total as i64 - 1).then_some(to as f64),
            max_points: 2000,
            ..SeriesQuery::default()
        };
        let got = store
            .series(run, key, &q)?
            .ok_or_else(|| anyhow::anyhow!("no loss series"))?;
        anyhow::ensure!(
            got.downsampled && got.steps.len() <= 2000,
            "not downsampled"
        );
        let ours = measure(reps, || {
            store.series(run, key, &q).map(drop).map_err(Into::into)
        })?;
        let base = measure(base_reps, || {
            baseline_series(&conn, run, key, from, to, 2000).map(drop)
        })?;
        let met = report(
            &format!("downsample 2,000 of {} ({label})", got.total),
            ours,
            base,
            goal,
        );
        if goal.is_finite() {
            all_met &= met;
        }
        let time_q = SeriesQuery {
            axis: SeriesAxis::Time,
            from: q.from.map(|s| 1.79e9 + s * 0.05),
            to: q.to.map(|s| 1.79e9 + s * 0.05),
            ..q
        };
        let t = measure(reps, || {
            store
                .series(run, key, &time_q)
                .map(drop)
                .map_err(Into::into)
        })?;
        println!(
            "{:<44} p50 {:>8.2} ms  p95 {:>8.2} ms",
            format!("  same on the time axis"),
            ms(t.0),
            ms(t.1)
        );
    }
    let verdict = if args.quick {
        "not judged (--quick)"
    } else if all_met {
        "met"
    } else {
        "NOT met"
    };
    println!("goals (first page + count < 20 ms, 10 M downsample < 50 ms, p50): {verdict}");
    Ok(())
}
