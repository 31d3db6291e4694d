//! Benchmark: the artifact store's space and write speed (issue 13, "Speed and space").
//!
//! Space: ten checkpoints of one file, each changing ~10 % of its bytes in ~20 randomly placed
//! contiguous regions, logged as ten versions of one artifact (1) by the Rust writer (large
//! files straight into chunks) and (2) by the Python SDK (whole files) followed by
//! `runicorn-agent artifacts pack` after each checkpoint (what the agent's packing does; it
//! also keeps the disk from holding ten whole copies at once). The store's disk use (`du` of
//! `artifacts/`, hard links counted once) is compared with ten full copies. Goal: ≤ 25 %.
//!
//! Speed: `log_artifact` of one large file (Rust writer, chunked and whole; Python SDK) against
//! `cp` of the same file on the same disk (and `cp` followed by `sync` of the copy: the store
//! makes what it writes durable, `cp` does not), best of `--repeats`. Goal: ≥ 0.5× cp's speed.
//!
//! Usage: cargo build --release --bins && target/release/artifact_dedup [--size 200000000]
//!        [--checkpoints 10] [--speed-size 1073741824] [--dir DIR] [--quick]

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use runicorn_artifact_store::writer::{log_artifact_with, Artifact, LogOptions};
use runicorn_bench::{machine_description, sibling_binary};

#[derive(Parser)]
struct Args {
    /// Bytes of the checkpoint file
    #[arg(long, default_value_t = 200_000_000)]
    size: usize,
    /// Checkpoints (versions) to log
    #[arg(long, default_value_t = 10)]
    checkpoints: usize,
    /// Bytes of the file for the speed comparison
    #[arg(long, default_value_t = 1 << 30)]
    speed_size: usize,
    /// Timed repetitions of each speed measurement
    #[arg(long, default_value_t = 2)]
    repeats: usize,
    /// Where to write (default: a temp dir); cp and the stores share its disk
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Python with the SDK's dependencies [default: $RUNICORN_TEST_PYTHON, else python3]
    #[arg(long)]
    python: Option<PathBuf>,
    /// Small sizes, one repetition (a smoke run)
    #[arg(long)]
    quick: bool,
}

/// Changes ~10 % of `data` in ~20 contiguous regions at random places.
fn next_checkpoint(data: &mut [u8], rng: &mut fastrand::Rng) {
    let regions = 20;
    let len = (data.len() / 10 / regions).max(1);
    for _ in 0..regions {
        let at = rng.usize(..data.len().saturating_sub(len).max(1));
        let end = (at + len).min(data.len());
        rng.fill(&mut data[at..end]);
    }
}

/// Disk use of a tree: allocated blocks, each inode once.
fn disk_usage(dir: &Path) -> u64 {
    let mut seen = HashSet::new();
    let mut total = 0;
    let mut pending = vec![dir.to_owned()];
    while let Some(d) = pending.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                pending.push(entry.path());
            }
            if seen.insert((meta.dev(), meta.ino())) {
                total += meta.blocks() * 512;
            }
        }
    }
    total
}

fn python(args: &Args) -> PathBuf {
    args.python
        .clone()
        .or_else(|| std::env::var_os("RUNICORN_TEST_PYTHON").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("python3"))
}

fn sdk_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk/python/src")
}

/// Logs `file` as the next version of `name` with the Python SDK; the seconds `log_artifact`
/// took (interpreter start-up excluded).
const PY_LOG: &str = r#"
import sys, time
import runicorn as rn
root, name, path = sys.argv[1], sys.argv[2], sys.argv[3]
run = rn.init(path="bench/" + name, storage=root)
art = rn.Artifact(name, type="model")
art.add_file(path)
start = time.perf_counter()
v = run.log_artifact(art)
took = time.perf_counter() - start
assert v is not None
run.finish()
print(took)
"#;

fn python_log(args: &Args, root: &Path, name: &str, file: &Path) -> anyhow::Result<f64> {
    let out = Command::new(python(args))
        .args(["-c", PY_LOG])
        .arg(root)
        .arg(name)
        .arg(file)
        .env("PYTHONPATH", sdk_path())
        .env_remove("RUNICORN_RUN_DIR")
        .output()
        .context("running the Python SDK")?;
    if !out.status.success() {
        bail!("python: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().parse()?)
}

fn agent_pack(root: &Path) -> anyhow::Result<()> {
    let out = Command::new(sibling_binary("runicorn-agent")?)
        .args(["artifacts", "pack", "--root"])
        .arg(root)
        .output()?;
    if !out.status.success() {
        bail!("pack: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

fn rust_log(root: &Path, name: &str, file: &Path, chunked: bool) -> anyhow::Result<Duration> {
    let mut art = Artifact::new(name, "model")?;
    art.add_file(file, Some("model.bin"))?;
    let start = Instant::now();
    log_artifact_with(
        root,
        &art,
        &[],
        None,
        &LogOptions {
            chunk_large_files: chunked,
        },
    )?;
    Ok(start.elapsed())
}

fn best(repeats: usize, mut f: impl FnMut() -> anyhow::Result<f64>) -> anyhow::Result<f64> {
    let mut best = f64::INFINITY;
    for _ in 0..repeats.max(1) {
        best = best.min(f()?);
    }
    Ok(best)
}

fn main() -> anyhow::Result<()> {
    let mut args = Args::parse();
    if args.quick {
        args.size = 8 << 20;
        args.checkpoints = 4;
        args.speed_size = 32 << 20;
        args.repeats = 1;
    }
    let scratch = match &args.dir {
        Some(dir) => tempfile::tempdir_in(dir)?,
        None => tempfile::tempdir()?,
    };
    let work = scratch.path();
    println!("machine: {}", machine_description());

    // --- space -------------------------------------------------------------------------------
    let mut rng = fastrand::Rng::with_seed(13);
    let mut data = vec![0u8; args.size];
    rng.fill(&mut data);
    let checkpoint = work.join("checkpoint.bin");
    let rust_root = work.join("rust-root");
    let py_root = work.join("python-root");
    let mut rust_time = Duration::ZERO;
    let mut py_time = 0.0;
    for i in 0..args.checkpoints {
        if i > 0 {
            next_checkpoint(&mut data, &mut rng);
        }
        fs::write(&checkpoint, &data)?;
        rust_time += rust_log(&rust_root, "ckpt", &checkpoint, true)?;
        py_time += python_log(&args, &py_root, "ckpt", &checkpoint)?;
        agent_pack(&py_root)?;
    }
    fs::remove_file(&checkpoint)?;
    let full = (args.size * args.checkpoints) as f64;
    let rust_space = disk_usage(&rust_root.join("artifacts")) as f64;
    let py_space = disk_usage(&py_root.join("artifacts")) as f64;
    println!(
        "space: {} checkpoints of {} bytes (~10 % changed each, in ~20 regions); {} bytes for {} full copies",
        args.checkpoints, args.size, full as u64, args.checkpoints
    );
    println!(
        "  Rust writer (chunked)        {:>14} bytes  {:>6.1} % of full copies  (logging took {:.2}s)",
        rust_space as u64,
        100.0 * rust_space / full,
        rust_time.as_secs_f64()
    );
    println!(
        "  Python SDK + agent pack      {:>14} bytes  {:>6.1} % of full copies  (logging took {:.2}s)",
        py_space as u64,
        100.0 * py_space / full,
        py_time
    );
    fs::remove_dir_all(&rust_root)?;
    fs::remove_dir_all(&py_root)?;

    // --- speed -------------------------------------------------------------------------------
    drop(data);
    let big = work.join("big.bin");
    {
        let mut block = vec![0u8; 1 << 20];
        let mut out = std::io::BufWriter::new(fs::File::create(&big)?);
        let mut left = args.speed_size;
        while left > 0 {
            let n = left.min(block.len());
            rng.fill(&mut block[..n]);
            std::io::Write::write_all(&mut out, &block[..n])?;
            left -= n;
        }
        std::io::Write::flush(&mut out)?;
    }
    let copy = work.join("copy.bin");
    let cp = best(args.repeats, || {
        let start = Instant::now();
        let status = Command::new("cp").arg(&big).arg(&copy).status()?;
        let took = start.elapsed().as_secs_f64();
        if !status.success() {
            bail!("cp failed");
        }
        fs::remove_file(&copy)?;
        Ok(took)
    })?;
    // The store makes its bytes durable (fsync of a whole file, one syncfs before a recipe);
    // plain cp leaves them in the page cache. Both baselines are shown.
    let cp_sync = best(args.repeats, || {
        let start = Instant::now();
        let status = Command::new("cp").arg(&big).arg(&copy).status()?;
        let synced = Command::new("sync").arg(&copy).status()?;
        let took = start.elapsed().as_secs_f64();
        if !status.success() || !synced.success() {
            bail!("cp or sync failed");
        }
        fs::remove_file(&copy)?;
        Ok(took)
    })?;
    let mut run = 0;
    let mut timed = |chunked: bool| {
        best(args.repeats, || {
            run += 1;
            let root = work.join(format!("speed-{run}"));
            let took = rust_log(&root, "big", &big, chunked)?.as_secs_f64();
            fs::remove_dir_all(&root)?;
            Ok(took)
        })
    };
    let rust_chunked = timed(true)?;
    let rust_whole = timed(false)?;
    let python = best(args.repeats, || {
        let root = work.join("speed-py");
        let took = python_log(&args, &root, "big", &big)?;
        fs::remove_dir_all(&root)?;
        Ok(took)
    })?;
    fs::remove_file(&big)?;
    let mb = args.speed_size as f64 / 1e6;
    println!(
        "speed: one file of {} bytes, best of {}",
        args.speed_size, args.repeats
    );
    println!(
        "  cp                                 {cp:>8.3}s  {:>8.0} MB/s",
        mb / cp
    );
    println!(
        "  cp + sync of the copy              {cp_sync:>8.3}s  {:>8.0} MB/s",
        mb / cp_sync
    );
    for (what, secs) in [
        ("Rust log_artifact (chunked)", rust_chunked),
        ("Rust log_artifact (whole)", rust_whole),
        ("Python SDK log_artifact (whole)", python),
    ] {
        println!(
            "  {what:<34} {secs:>8.3}s  {:>8.0} MB/s  {:.2}x cp's speed ({:.2}x cp + sync)",
            mb / secs,
            cp / secs,
            cp_sync / secs
        );
    }
    Ok(())
}
