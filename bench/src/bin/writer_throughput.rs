//! Benchmark: the Rust writer's `log_metrics` throughput against the cheapest equivalent.
//!
//! Logs N steps × 3 metrics with `RunWriter::log_metrics` (then `finish`), and, in the same run,
//! a baseline that writes the same lines with `serde_json` into a `BufWriter` — what a program
//! would do by hand. Prints both, points/s and the ratio.
//!
//! Usage: cargo build --release --bins && target/release/writer_throughput [--steps 1000000]

use std::io::Write;

use clap::Parser;
use runicorn_bench::{machine_description, time_best_and_median, write_sample_run};
use runicorn_protocol::run_format::unix_now;

#[derive(Parser)]
struct Args {
    /// Steps to log (3 metrics each)
    #[arg(long, default_value_t = 1_000_000)]
    steps: usize,
    /// Timed repetitions of each side
    #[arg(long, default_value_t = 3)]
    repeats: usize,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = tempfile::tempdir()?;
    let mut attempt = 0;
    let (writer_best, _) = time_best_and_median(args.repeats, || {
        attempt += 1;
        write_sample_run(dir.path(), None, format!("w{attempt}"), args.steps)
    })?;
    let (baseline_best, _) = time_best_and_median(args.repeats, || {
        let file = std::fs::File::create(dir.path().join("baseline.jsonl"))?;
        let mut out = std::io::BufWriter::with_capacity(64 * 1024, file);
        for i in 0..args.steps {
            let x = i as f64;
            let t = unix_now();
            let line = serde_json::json!({"ts": t, "type": "metrics", "data": {
                "loss": 1.0 / (x + 1.0), "acc": x / 1e6, "lr": 0.001, "global_step": i + 1, "time": t}});
            serde_json::to_writer(&mut out, &line)?;
            out.write_all(b"\n")?;
        }
        out.flush()?;
        Ok(())
    })?;
    let points = (args.steps * 3) as f64;
    println!("machine: {}", machine_description());
    println!(
        "steps: {} x 3 metrics, best of {}",
        args.steps, args.repeats
    );
    println!(
        "RunWriter::log_metrics + finish   {:.3}s  {:>12.0} points/s",
        writer_best.as_secs_f64(),
        points / writer_best.as_secs_f64()
    );
    println!(
        "baseline serde_json + BufWriter   {:.3}s  {:>12.0} points/s",
        baseline_best.as_secs_f64(),
        points / baseline_best.as_secs_f64()
    );
    println!(
        "ratio writer/baseline: {:.2}",
        writer_best.as_secs_f64() / baseline_best.as_secs_f64()
    );
    Ok(())
}
