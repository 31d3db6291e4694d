//! Benchmark: the wire encoding of metric points, which is most of what a sync moves.
//!
//! Builds the point batches of R runs × S steps × 3 metrics, as the agent sends them, and in the
//! same run measures:
//! - the `events.jsonl` bytes those points occupy on the server (what `rsync` would move);
//! - our encoding (JSON, columnar `RunPoints`): size, encode and decode time;
//! - a compact binary encoding of the same columns (little-endian arrays with a small header),
//!   the alternative the protocol issue asked to weigh.
//!
//! Prints sizes, throughput and the ratios JSON/binary, so the choice stays checked.
//!
//! Usage: cargo build --release --bins && target/release/wire_encoding [--runs 1000 --steps 100]

use clap::Parser;
use runicorn_bench::{machine_description, time_best_and_median, write_sample_run};
use runicorn_protocol::run_format::discover_runs;
use runicorn_protocol::wire::{PointBatch, RunPoints, Series};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 1000)]
    runs: usize,
    #[arg(long, default_value_t = 100)]
    steps: usize,
    #[arg(long, default_value_t = 5)]
    repeats: usize,
}

fn batch(runs: usize, steps: usize) -> PointBatch {
    let t0 = 1_795_696_136.309_f64;
    PointBatch {
        runs: (0..runs)
            .map(|r| {
                let steps_col: Vec<i64> = (1..=steps as i64).collect();
                let times: Vec<f64> = (0..steps)
                    .map(|s| t0 + r as f64 + s as f64 * 0.0131)
                    .collect();
                let series = ["loss", "acc", "lr"]
                    .iter()
                    .enumerate()
                    .map(|(k, key)| Series {
                        key: (*key).to_owned(),
                        rows: None,
                        values: (0..steps)
                            .map(|s| match k {
                                0 => 1.0 / (s as f64 + 1.0),
                                1 => s as f64 / steps as f64,
                                _ => 0.001,
                            })
                            .collect(),
                    })
                    .collect();
                RunPoints {
                    dir: format!("runs/bench/r{r:05}"),
                    from: 0,
                    to: 0,
                    next_line: steps as u64 + 1,
                    eof: true,
                    steps: steps_col,
                    times,
                    series,
                    ..RunPoints::default()
                }
            })
            .collect(),
    }
}

/// The binary alternative: per run a length-prefixed dir, counts, then raw LE columns.
fn encode_binary(b: &PointBatch) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(b.runs.len() as u32).to_le_bytes());
    for r in &b.runs {
        out.extend_from_slice(&(r.dir.len() as u16).to_le_bytes());
        out.extend_from_slice(r.dir.as_bytes());
        for v in [r.from, r.to, r.next_line] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&(r.steps.len() as u32).to_le_bytes());
        for s in &r.steps {
            out.extend_from_slice(&s.to_le_bytes());
        }
        for t in &r.times {
            out.extend_from_slice(&t.to_le_bytes());
        }
        out.extend_from_slice(&(r.series.len() as u16).to_le_bytes());
        for s in &r.series {
            out.extend_from_slice(&(s.key.len() as u16).to_le_bytes());
            out.extend_from_slice(s.key.as_bytes());
            for v in &s.values {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
    }
    out
}

struct Reader<'a>(&'a [u8]);
impl Reader<'_> {
    fn take(&mut self, n: usize) -> anyhow::Result<&[u8]> {
        if self.0.len() < n {
            anyhow::bail!("short buffer");
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u16(&mut self) -> anyhow::Result<usize> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into()?) as usize)
    }
    fn u32(&mut self) -> anyhow::Result<usize> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into()?) as usize)
    }
    fn u64(&mut self) -> anyhow::Result<u64> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into()?))
    }
    fn f64(&mut self) -> anyhow::Result<f64> {
        Ok(f64::from_le_bytes(self.take(8)?.try_into()?))
    }
    fn string(&mut self) -> anyhow::Result<String> {
        let n = self.u16()?;
        Ok(std::str::from_utf8(self.take(n)?)?.to_owned())
    }
}

fn decode_binary(bytes: &[u8]) -> anyhow::Result<PointBatch> {
    let mut r = Reader(bytes);
    let runs = r.u32()?;
    let mut out = PointBatch {
        runs: Vec::with_capacity(runs),
    };
    for _ in 0..runs {
        let dir = r.string()?;
        let (from, to, next_line) = (r.u64()?, r.u64()?, r.u64()?);
        let rows = r.u32()?;
        let steps = (0..rows)
            .map(|_| r.u64().map(|v| v as i64))
            .collect::<Result<Vec<_>, _>>()?;
        let times = (0..rows).map(|_| r.f64()).collect::<Result<Vec<_>, _>>()?;
        let n_series = r.u16()?;
        let mut series = Vec::with_capacity(n_series);
        for _ in 0..n_series {
            let key = r.string()?;
            let values = (0..rows).map(|_| r.f64()).collect::<Result<Vec<_>, _>>()?;
            series.push(Series {
                key,
                rows: None,
                values,
            });
        }
        out.runs.push(RunPoints {
            dir,
            from,
            to,
            next_line,
            eof: true,
            steps,
            times,
            series,
            ..RunPoints::default()
        });
    }
    Ok(out)
}

/// Bytes the same points take in `events.jsonl`, written by the Rust writer (a sample of the
/// runs, scaled up).
fn events_bytes(runs: usize, steps: usize) -> anyhow::Result<u64> {
    let dir = tempfile::tempdir()?;
    let sample = runs.min(20);
    for r in 0..sample {
        write_sample_run(dir.path(), Some("bench".into()), format!("r{r}"), steps)?;
    }
    let mut total = 0;
    for run in discover_runs(dir.path()).runs {
        total += std::fs::metadata(run.dir.join("events.jsonl"))?.len();
    }
    Ok(total * runs as u64 / sample as u64)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let b = batch(args.runs, args.steps);
    let points = (args.runs * args.steps * 3) as f64;
    let json = serde_json::to_vec(&b)?;
    let binary = encode_binary(&b);
    let back: PointBatch = serde_json::from_slice(&json)?;
    anyhow::ensure!(back == b, "JSON round trip changed the batch");
    anyhow::ensure!(
        decode_binary(&binary)? == b,
        "binary round trip changed the batch"
    );
    let (json_enc, _) = time_best_and_median(args.repeats, || {
        std::hint::black_box(serde_json::to_vec(&b)?);
        Ok(())
    })?;
    let (json_dec, _) = time_best_and_median(args.repeats, || {
        std::hint::black_box(serde_json::from_slice::<PointBatch>(&json)?);
        Ok(())
    })?;
    let (bin_enc, _) = time_best_and_median(args.repeats, || {
        std::hint::black_box(encode_binary(&b));
        Ok(())
    })?;
    let (bin_dec, _) = time_best_and_median(args.repeats, || {
        std::hint::black_box(decode_binary(&binary)?);
        Ok(())
    })?;
    let events = events_bytes(args.runs, args.steps)?;
    println!("machine: {}", machine_description());
    println!(
        "batch: {} runs x {} steps x 3 metrics = {} points",
        args.runs, args.steps, points
    );
    println!(
        "events.jsonl on disk: {:>10} bytes ({:.1} B/point)",
        events,
        events as f64 / points
    );
    println!("JSON columnar:        {:>10} bytes ({:.1} B/point), encode {:.1} M points/s, decode {:.1} M points/s",
        json.len(), json.len() as f64 / points,
        points / json_enc.as_secs_f64() / 1e6, points / json_dec.as_secs_f64() / 1e6);
    println!("binary columnar:      {:>10} bytes ({:.1} B/point), encode {:.1} M points/s, decode {:.1} M points/s",
        binary.len(), binary.len() as f64 / points,
        points / bin_enc.as_secs_f64() / 1e6, points / bin_dec.as_secs_f64() / 1e6);
    println!(
        "ratios: JSON/events size {:.2}; JSON/binary size {:.2}; JSON/binary encode+decode time {:.2}",
        json.len() as f64 / events as f64,
        json.len() as f64 / binary.len() as f64,
        (json_enc + json_dec).as_secs_f64() / (bin_enc + bin_dec).as_secs_f64()
    );
    Ok(())
}
