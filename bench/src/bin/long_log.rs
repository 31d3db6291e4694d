//! Benchmark: reading a page of a very long log from the hub's store (issue 9, item 6), against
//! the statement the store used before, in the same run.
//!
//! Builds a store (through the store's real API) holding one run whose `logs.txt` copy is
//! `--chunks` chunks of `--chunk-bytes` bytes (default 1,000,000 × 100 bytes: a 100 MB log as
//! live follow stores it, a line or a few per chunk), then times the read behind one 64 KiB
//! page of `GET /api/runs/{id}/logs` at the start, the middle and the end of the log:
//!
//! - new: `Store::log_chunks_since`, which seeks to the chunk holding the offset through the
//!   primary key and stops after a page;
//! - baseline: the earlier statement (`WHERE run = ? AND end > ? ORDER BY start`), stopping
//!   after a page as well, which walks every chunk before the offset.
//!
//! Prints the median of `--repeats` reads of each and the ratio baseline / new.
//!
//! `--quick` (CI): 50,000 chunks, 5 repeats.
//!
//! Usage: cargo run --release -p runicorn-bench --bin long_log [-- --quick]

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use runicorn_bench::{machine_description, sorted_times, store_with_bench_remote};
use runicorn_protocol::wire::{ChangeBatch, Cursor, LogBatch, LogChunk, RunChange};
use runicorn_store::{RunKey, Store};

#[derive(Parser)]
struct Args {
    /// Chunks of the stored log
    #[arg(long, default_value_t = 1_000_000)]
    chunks: u64,
    /// Bytes of each chunk
    #[arg(long, default_value_t = 100)]
    chunk_bytes: u64,
    /// Timed reads of each page
    #[arg(long, default_value_t = 21)]
    repeats: usize,
    /// 50,000 chunks, 5 repeats: a smoke test for CI
    #[arg(long)]
    quick: bool,
}

/// The dashboard's default page.
const PAGE_BYTES: u64 = 64 * 1024;
const RUN_DIR: &str = "runs/long/1";
/// Chunks per ingested batch.
const BATCH_CHUNKS: u64 = 10_000;

fn main() -> anyhow::Result<()> {
    let mut args = Args::parse();
    if args.quick {
        args.chunks = 50_000;
        args.repeats = 5;
    }
    let tmp = tempfile::tempdir()?;
    let total = args.chunks * args.chunk_bytes;
    println!(
        "long_log: {} chunks x {} bytes ({:.1} MB) on {}",
        args.chunks,
        args.chunk_bytes,
        total as f64 / 1e6,
        machine_description()
    );
    let started = std::time::Instant::now();
    let run = fill_store(tmp.path(), &args)?;
    println!("  store filled in {:.1} s", started.elapsed().as_secs_f64());

    let store = Store::open_read_only(tmp.path())?;
    let old_conn = rusqlite::Connection::open_with_flags(
        tmp.path().join(runicorn_store::STORE_FILE),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )?;
    println!(
        "  {:<28} {:>12} {:>12} {:>9}",
        "page of 64 KiB at", "new", "baseline", "ratio"
    );
    for (name, offset) in [
        ("the start", 0),
        ("the middle", total / 2),
        ("the end", total.saturating_sub(PAGE_BYTES)),
    ] {
        let new = median(args.repeats, || {
            let chunks = store.log_chunks_since(run, offset, PAGE_BYTES)?;
            check_page(
                &chunks.iter().map(|c| (c.from, c.to)).collect::<Vec<_>>(),
                offset,
            )
        })?;
        let old = median(args.repeats, || {
            check_page(&old_statement(&old_conn, run, offset)?, offset)
        })?;
        println!(
            "  {:<28} {:>9.3} ms {:>9.3} ms {:>8.0}x",
            format!("{name} (byte {offset})"),
            ms(new),
            ms(old),
            old.as_secs_f64() / new.as_secs_f64().max(1e-9)
        );
    }
    Ok(())
}

/// A store with one run whose log copy is `args.chunks` contiguous chunks.
fn fill_store(dir: &Path, args: &Args) -> anyhow::Result<RunKey> {
    let (mut store, remote) = store_with_bench_remote(dir)?;
    let total = args.chunks * args.chunk_bytes;
    let run = RunChange {
        dir: RUN_DIR.into(),
        seq: 1,
        id: "1".into(),
        path: "long".into(),
        layout: "current".into(),
        status: "running".into(),
        log_bytes: total,
        ..RunChange::default()
    };
    store.apply_change_batch(
        remote,
        &ChangeBatch {
            reset: true,
            runs: vec![run],
            removed: vec![],
            cursor: Cursor {
                epoch: "bench".into(),
                seq: 1,
            },
            more: false,
            skipped: vec![],
            skipped_listed: false,
            artifacts: vec![],
            removed_artifacts: vec![],
        },
    )?;
    let mut line = vec![b'x'; args.chunk_bytes as usize];
    if let Some(last) = line.last_mut() {
        *last = b'\n';
    }
    let mut from = 0;
    while from < total {
        let runs = (0..BATCH_CHUNKS)
            .map(|i| from + i * args.chunk_bytes)
            .take_while(|&start| start < total)
            .map(|start| LogChunk {
                dir: RUN_DIR.into(),
                from: start,
                to: start + args.chunk_bytes,
                bytes: line.clone(),
                truncated: false,
                eof: start + args.chunk_bytes >= total,
            })
            .collect::<Vec<_>>();
        from += runs.len() as u64 * args.chunk_bytes;
        store.ingest_logs(remote, &LogBatch { runs })?;
    }
    Ok(store
        .run(remote, RUN_DIR)?
        .context("the benchmark's run is in the store")?
        .key)
}

/// The statement the store read log pages with before (no seek), stopping after a page.
fn old_statement(
    conn: &rusqlite::Connection,
    run: RunKey,
    offset: u64,
) -> anyhow::Result<Vec<(u64, u64)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT start, end, text FROM log_chunks WHERE run = ?1 AND end > ?2 ORDER BY start",
    )?;
    let mut rows = stmt.query(rusqlite::params![run.0, offset as i64])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let (start, end): (i64, i64) = (r.get(0)?, r.get(1)?);
        let _bytes: Vec<u8> = r.get(2)?;
        out.push((start as u64, end as u64));
        if end as u64 >= offset + PAGE_BYTES {
            break;
        }
    }
    Ok(out)
}

/// A page read covers `offset` and a page after it (or the log's end).
fn check_page(ranges: &[(u64, u64)], offset: u64) -> anyhow::Result<()> {
    let first = ranges.first().context("a page read returned no chunk")?;
    anyhow::ensure!(
        first.0 <= offset && first.1 > offset,
        "the first chunk {first:?} does not hold byte {offset}"
    );
    anyhow::ensure!(
        ranges.windows(2).all(|w| w[0].1 == w[1].0),
        "the chunks of a page are not contiguous"
    );
    Ok(())
}

fn median(repeats: usize, f: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<Duration> {
    let times = sorted_times(repeats, f)?;
    Ok(times[times.len() / 2])
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
