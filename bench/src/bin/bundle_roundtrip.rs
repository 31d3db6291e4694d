//! Benchmark: an offline bundle's round trip against plain `tar --zstd`, in the same run.
//!
//! Builds a storage root of N finished runs (steps × 3 metrics each, the Rust writer; timed
//! apart, not measured), then times, best and median of `--repeats`:
//!
//! - export: `runicorn-agent export --root ROOT -o FILE` (every file's SHA-256 in the manifest,
//!   which comes first; small files read once, hashed and compressed together; each content
//!   once; zstd level 3) against `tar --zstd -cf FILE -C ROOT runs` of the same run directories;
//! - import: `runicorn-hub import FILE` into a fresh store (the bundle checked and landed, a
//!   real agent reading the landed root, every run, point and log byte stored in one
//!   transaction, files into the cache) against `tar --zstd -xf FILE` into an empty folder;
//! - sizes: the bundle and the tar against the raw run directories;
//! - and, to see where an import's time goes: landing alone (`read_bundle`, every member
//!   checked, in this process) against the same extraction, and the whole import against a
//!   direct sync of the same root (`runicorn-hub connect local:ROOT --once`), which stores
//!   the same runs and points.
//!
//! Goals (issue "Offline bundles"): export ≤ 1.5 × tar, import ≤ 1.5 × extraction; the size
//! ratio is recorded. Import does far more than extraction (it parses and stores every point),
//! which the figures show.
//!
//! Usage: cargo build --release --bins && target/release/bundle_roundtrip [--runs 1000]
//! [--steps 1000] [--repeats 3] [--quick]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use clap::Parser;
use runicorn_bench::machine_description;
use runicorn_bench::sibling_binary;
use runicorn_bench::sync_setup::{
    best_median, load_average, show, time_command, tree_size, write_tree,
};

#[derive(Parser)]
struct Args {
    /// Runs in the tree
    #[arg(long, default_value_t = 1_000)]
    runs: usize,
    /// Steps per run (3 metrics each)
    #[arg(long, default_value_t = 1_000)]
    steps: usize,
    /// Repetitions of each measurement
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// Folder for the tree, bundles and stores (default: a temporary folder)
    #[arg(long)]
    dir: Option<PathBuf>,
    /// A small tree and one repetition: a smoke test for CI (seconds)
    #[arg(long)]
    quick: bool,
}

fn main() -> anyhow::Result<()> {
    let mut args = Args::parse();
    if args.quick {
        args.runs = 20;
        args.steps = 50;
        args.repeats = 1;
    }
    let agent = sibling_binary("runicorn-agent")?;
    let hub = sibling_binary("runicorn-hub")?;
    let tmp = tempfile::tempdir()?;
    let dir = args.dir.clone().unwrap_or_else(|| tmp.path().to_owned());
    std::fs::create_dir_all(&dir)?;
    let root = dir.join("root");
    let wrote = write_tree(&root, args.runs, args.steps)?;
    let (files, raw_bytes) = tree_size(&root.join("runs"));
    println!(
        "tree: {} runs x {} steps x 3 metrics, {files} files, {:.1} MiB (written in {})",
        args.runs,
        args.steps,
        raw_bytes as f64 / 1048576.0,
        show(wrote)
    );

    let mut export = Vec::new();
    let mut tar_c = Vec::new();
    let mut import = Vec::new();
    let mut tar_x = Vec::new();
    let mut land = Vec::new();
    let mut sync = Vec::new();
    let bundle = dir.join("runs.rbundle");
    let tarball = dir.join("runs.tar.zst");
    for i in 0..args.repeats {
        let _ = std::fs::remove_file(&bundle);
        export.push(
            time_command(
                Command::new(&agent)
                    .arg("export")
                    .arg("--root")
                    .arg(&root)
                    .args(["--name", "bench", "-o"])
                    .arg(&bundle),
            )?
            .wall,
        );
        let _ = std::fs::remove_file(&tarball);
        tar_c.push(
            time_command(
                Command::new("tar")
                    .args(["--zstd", "-cf"])
                    .arg(&tarball)
                    .arg("-C")
                    .arg(&root)
                    .arg("runs"),
            )?
            .wall,
        );
        let store = dir.join(format!("store-{i}"));
        import.push(
            time_command(
                Command::new(&hub)
                    .env("RUNICORN_HUB_DIR", &store)
                    .env("NO_COLOR", "1")
                    .arg("import")
                    .arg("--agent")
                    .arg(&agent)
                    .arg(&bundle),
            )?
            .wall,
        );
        let out = dir.join(format!("extracted-{i}"));
        std::fs::create_dir_all(&out)?;
        tar_x.push(
            time_command(
                Command::new("tar")
                    .args(["--zstd", "-xf"])
                    .arg(&tarball)
                    .arg("-C")
                    .arg(&out),
            )?
            .wall,
        );
        check_store(&store, args.runs, args.steps)?;

        let landed = dir.join(format!("landed-{i}"));
        std::fs::create_dir_all(&landed)?;
        let started = std::time::Instant::now();
        let input = std::io::BufReader::new(std::fs::File::open(&bundle)?);
        runicorn_bundle::read_bundle(input, &landed, &runicorn_bundle::Limits::default())?;
        land.push(started.elapsed());

        let synced = dir.join(format!("synced-{i}"));
        sync.push(
            time_command(
                Command::new(&hub)
                    .env("RUNICORN_HUB_DIR", &synced)
                    .env("NO_COLOR", "1")
                    .arg("connect")
                    .arg(format!("local:{}", root.display()))
                    .arg("--agent")
                    .arg(&agent)
                    .args(["--once", "--no-ui", "--name", "bench", "--prefetch", "none"]),
            )?
            .wall,
        );
        check_store(&synced, args.runs, args.steps)?;
    }
    let bundle_bytes = std::fs::metadata(&bundle)?.len();
    let tar_bytes = std::fs::metadata(&tarball)?.len();
    let line = |what: &str, ours: &[Duration], theirs: &[Duration], base: &str| {
        let (ob, om) = best_median(ours);
        let (tb, tm) = best_median(theirs);
        println!(
            "{what}: {} best / {} median; {base}: {} / {}; ratio {:.2}x (best) {:.2}x (median)",
            show(ob),
            show(om),
            show(tb),
            show(tm),
            ob.as_secs_f64() / tb.as_secs_f64().max(1e-9),
            om.as_secs_f64() / tm.as_secs_f64().max(1e-9),
        );
    };
    line("export", &export, &tar_c, "tar --zstd -c");
    line("import", &import, &tar_x, "tar --zstd -x");
    line("  landing alone", &land, &tar_x, "tar --zstd -x");
    line("  import", &import, &sync, "a direct sync of the root");
    println!(
        "size: bundle {:.1} MiB ({:.1}x smaller than the raw {:.1} MiB), tar --zstd {:.1} MiB; bundle/tar {:.2}",
        bundle_bytes as f64 / 1048576.0,
        raw_bytes as f64 / bundle_bytes.max(1) as f64,
        raw_bytes as f64 / 1048576.0,
        tar_bytes as f64 / 1048576.0,
        bundle_bytes as f64 / tar_bytes.max(1) as f64,
    );
    println!(
        "machine: {}; load {}",
        machine_description(),
        load_average()
    );
    Ok(())
}

/// The imported store holds every run and point.
fn check_store(store: &Path, runs: usize, steps: usize) -> anyhow::Result<()> {
    let (count, points) = runicorn_bench::sync_setup::store_totals(store)?;
    anyhow::ensure!(
        count == runs as u64 && points == (runs * steps * 3) as u64,
        "the import stored {count} runs and {points} points, not {runs} and {}",
        runs * steps * 3
    );
    Ok(())
}
