//! Benchmark: the fetch half of issue 13's artifact goals. Ten checkpoints of one file (each
//! version rewrites about 10 % of the previous one's bytes in about 20 randomly placed
//! contiguous regions) are logged on the "server" by the Rust writer (whole; the agent cuts them on the fly), synced over a
//! real sshd on loopback by `runicorn-hub connect`, then fetched one after the other with
//! `runicorn-hub fetch artifact m:vN --json`. With v1…v9 in the hub's cache, fetching v10 moves
//! only the chunks it does not share with them: the figure is the bytes that crossed the link
//! (the fetch's own count) against v10's size.
//!
//! Goal (issue 13): fetching v10 moves ≤ 15 % of its size over SSH.
//!
//! Usage: cargo build --release -p runicorn-hub -p runicorn-agent -p runicorn-bench
//!        target/release/artifact_fetch [--size-mib 200] [--quick]

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use runicorn_artifact_store::writer::{log_artifact, Artifact};
use runicorn_bench::machine_description;
use runicorn_bench::sync_setup::{private_binaries, show, Server};

#[derive(Parser)]
struct Args {
    /// Size of the checkpoint, MiB
    #[arg(long, default_value_t = 200)]
    size_mib: u64,
    /// Versions logged (the last one is the one measured)
    #[arg(long, default_value_t = 10)]
    versions: u64,
    /// Percent of the bytes each version rewrites
    #[arg(long, default_value_t = 10)]
    change_percent: u64,
    /// Regions each version rewrites
    #[arg(long, default_value_t = 20)]
    regions: u64,
    /// A small checkpoint: a smoke test for CI (its ratio says little, chunks are 64 KiB)
    #[arg(long)]
    quick: bool,
}

/// A fast deterministic generator of bytes that do not compress.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for piece in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            piece.copy_from_slice(&v[..piece.len()]);
        }
    }
}

/// Rewrites `percent` % of `data` in `regions` contiguous regions at random places.
fn edit(data: &mut [u8], percent: u64, regions: u64, rng: &mut Noise) {
    let len = data.len() as u64;
    let region = (len * percent / 100 / regions.max(1)).max(1);
    for _ in 0..regions {
        let at = (rng.next() % (len - region)) as usize;
        rng.fill(&mut data[at..at + region as usize]);
    }
}

fn fetch(
    server: &Server,
    hub: &Path,
    hub_dir: &Path,
    reference: &str,
    out: &Path,
) -> anyhow::Result<(serde_json::Value, Duration)> {
    let start = Instant::now();
    let done = server
        .hub(hub, hub_dir)
        .args(["fetch", "artifact", reference, "--json", "-o"])
        .arg(out)
        .output()
        .context("running runicorn-hub fetch artifact")?;
    let took = start.elapsed();
    anyhow::ensure!(
        done.status.success(),
        "fetch artifact {reference} failed: {}",
        String::from_utf8_lossy(&done.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&done.stdout)?;
    // Only the figures are kept; the copies would fill the disk.
    std::fs::remove_dir_all(out).ok();
    Ok((report, took))
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let size = if args.quick {
        8 << 20
    } else {
        args.size_mib << 20
    };
    let work = tempfile::Builder::new()
        .prefix("artifact-fetch-bench-")
        .tempdir()?;
    let (hub, agent) = private_binaries(work.path())?;
    let root = work.path().join("root");
    let scratch = work.path().join("scratch");
    std::fs::create_dir_all(&scratch)?;
    println!("machine: {}", machine_description());
    println!(
        "checkpoint: {} MiB, {} versions, each rewriting {} % in {} regions; logged whole by the Rust writer, cut by the agent on demand",
        size >> 20,
        args.versions,
        args.change_percent,
        args.regions
    );

    let mut rng = Noise(0x2545_F491_4F6C_DD1D);
    let mut data = vec![0u8; size as usize];
    rng.fill(&mut data);
    let file = scratch.join("ckpt.bin");
    for v in 1..=args.versions {
        if v > 1 {
            edit(&mut data, args.change_percent, args.regions, &mut rng);
        }
        std::fs::write(&file, &data)?;
        let mut art = Artifact::new("m", "model")?;
        art.add_file(&file, Some("ckpt.bin"))?;
        log_artifact(&root, &art, &[], None)?;
    }
    drop(data);
    std::fs::remove_dir_all(&scratch)?;

    let server = Server::start()?;
    let link = server.link(Duration::ZERO);
    let hub_dir = work.path().join("hub");
    let synced = server
        .connect(&hub, &hub_dir, &link, &agent, &root)
        .args(["--once", "--prefetch", "none"])
        .output()?;
    anyhow::ensure!(
        synced.status.success(),
        "connect failed: {}",
        String::from_utf8_lossy(&synced.stderr)
    );

    let out = work.path().join("out");
    let mut first = None;
    for v in 1..args.versions {
        let (report, took) = fetch(&server, &hub, &hub_dir, &format!("m:v{v}"), &out)?;
        if v == 1 {
            first = Some((report["bytes_moved"].as_u64().unwrap_or(0), took));
        }
    }
    let last = format!("m:v{}", args.versions);
    let (report, took) = fetch(&server, &hub, &hub_dir, &last, &out)?;
    let moved = report["bytes_moved"]
        .as_u64()
        .context("bytes_moved in the report")?;
    let ratio = moved as f64 / size as f64;
    if let Some((bytes, t)) = first {
        println!(
            "v1 into an empty cache: {:.1} MiB moved in {} ({:.1} MiB/s, process start and SSH handshake included)",
            bytes as f64 / (1 << 20) as f64,
            show(t),
            bytes as f64 / (1 << 20) as f64 / t.as_secs_f64()
        );
    }
    println!(
        "{last} with v1…v{} cached: {:.2} MiB moved of {} MiB ({} of {} chunks) in {}: {:.1} % of its size (goal ≤ 15 %)",
        args.versions - 1,
        moved as f64 / (1 << 20) as f64,
        size >> 20,
        report["chunks_moved"],
        report["chunks_total"],
        show(took),
        ratio * 100.0
    );
    if !args.quick && ratio > 0.15 {
        println!("GOAL NOT MET");
    }
    Ok(())
}
