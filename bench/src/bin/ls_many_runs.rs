//! Benchmark: `runicorn-agent ls --json` over many runs, from a fresh process.
//!
//! Builds a storage root of N runs (100 steps × 3 metrics each, written by the Rust writer),
//! then times a fresh `runicorn-agent ls --json` (through its index, and with `--no-index`, as a
//! first listing reads) against a baseline in the same run: a fresh `cat` of every run file (the
//! cost of just reading the bytes). With root rights the page cache
//! is dropped before each timed command, so both are measured from a cold start.
//!
//! Usage: cargo build --release --bins && target/release/ls_many_runs [--runs 10000]

use std::process::{Command, Stdio};

use anyhow::Context;
use clap::Parser;
use runicorn_bench::{
    drop_page_cache, machine_description, sibling_binary, time_best_and_median, write_sample_run,
};

#[derive(Parser)]
struct Args {
    /// Number of runs to create
    #[arg(long, default_value_t = 10_000)]
    runs: usize,
    /// Steps per run
    #[arg(long, default_value_t = 100)]
    steps: usize,
    /// Timed repetitions of each command
    #[arg(long, default_value_t = 5)]
    repeats: usize,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let agent = sibling_binary("runicorn-agent")?;
    let dir = tempfile::tempdir()?;
    let root = dir.path();
    eprintln!(
        "writing {} runs × {} steps × 3 metrics …",
        args.runs, args.steps
    );
    for i in 0..args.runs {
        write_sample_run(
            root,
            Some(format!("group{}/sub{}", i % 10, i % 7)),
            format!("run{i:06}"),
            args.steps,
        )?;
    }
    let can_drop = drop_page_cache();
    report(&args, &agent, root, false)?;
    if can_drop {
        report(&args, &agent, root, true)?;
    } else {
        println!("(not root: the page cache cannot be dropped, so only warm figures)");
    }
    Ok(())
}

fn report(
    args: &Args,
    agent: &std::path::Path,
    root: &std::path::Path,
    cold: bool,
) -> anyhow::Result<()> {
    let ls_with = |extra: &'static [&'static str]| {
        move || -> anyhow::Result<()> {
            if cold {
                drop_page_cache();
            }
            let out = Command::new(agent)
                .args(["ls", "--json", "--root"])
                .arg(root)
                .args(extra)
                .stderr(Stdio::inherit())
                .output()?;
            anyhow::ensure!(out.status.success(), "ls failed");
            anyhow::ensure!(out.stdout.len() > args.runs * 100, "ls printed too little");
            Ok(())
        }
    };
    let cat_all = || -> anyhow::Result<()> {
        if cold {
            drop_page_cache();
        }
        let status = Command::new("sh")
            .arg("-c")
            .arg("find \"$0\" -type f -print0 | xargs -0 cat > /dev/null")
            .arg(root)
            .status()
            .context("running the cat baseline")?;
        anyhow::ensure!(status.success(), "cat baseline failed");
        Ok(())
    };
    // The first listing builds the index; the timed ones read through it.
    ls_with(&[])()?;
    let (ls_best, ls_median) = time_best_and_median(args.repeats, ls_with(&[]))?;
    let (scratch_best, scratch_median) =
        time_best_and_median(args.repeats, ls_with(&["--no-index"]))?;
    let (cat_best, cat_median) = time_best_and_median(args.repeats, cat_all)?;
    println!("machine: {}", machine_description());
    println!(
        "runs: {}  steps/run: {}  page cache: {}",
        args.runs,
        args.steps,
        if cold {
            "dropped before each command (cold)"
        } else {
            "warm"
        }
    );
    println!(
        "runicorn-agent ls --json  best {:.3}s  median {:.3}s",
        ls_best.as_secs_f64(),
        ls_median.as_secs_f64()
    );
    println!(
        "ls --json --no-index      best {:.3}s  median {:.3}s",
        scratch_best.as_secs_f64(),
        scratch_median.as_secs_f64()
    );
    println!(
        "baseline find|xargs cat   best {:.3}s  median {:.3}s",
        cat_best.as_secs_f64(),
        cat_median.as_secs_f64()
    );
    println!(
        "ratio to cat (median): ls {:.2}, ls --no-index {:.2}",
        ls_median.as_secs_f64() / cat_median.as_secs_f64(),
        scratch_median.as_secs_f64() / cat_median.as_secs_f64()
    );
    println!(
        "goal: ls under 1 s -> {}",
        if ls_median.as_secs_f64() < 1.0 {
            "met"
        } else {
            "NOT met"
        }
    );
    Ok(())
}
