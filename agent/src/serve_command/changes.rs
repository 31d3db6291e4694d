//! Answering `changes`: a page of the feed after the hub's cursor, each run with its whole
//! current state, packed under the hub's frame limit.
//!
//! A cursor of another epoch (or none) is answered from the start with `reset`; tombstones are
//! then left out (the hub drops every run not listed). Otherwise rows with a sequence value
//! above the cursor come in sequence order, tombstones in `removed`. The cursor returned is the
//! sequence value of the last entry sent when `more` is true, else the counter.

use runicorn_protocol::parallel::{io_workers, map_in_order};
use runicorn_protocol::wire::{
    encode_frame, Body, ChangeBatch, ChangesRequest, Cursor, Envelope, FrameError, RunChange,
};

use super::records::{fill_records, shrink_to_fit};
use super::request_error::RequestError;
use super::shared::Shared;
use super::sizing::json_len;
use crate::run_index::feed::FeedEntry;

/// Most runs in one answer, whatever the hub asks for.
pub const MAX_RUNS_PER_BATCH: u32 = 2000;
/// Runs whose records are read together (in parallel) while packing.
const READ_CHUNK: usize = 64;

/// One entry as sent.
enum Item {
    Run(Box<RunChange>),
    Removed(String),
}

struct Packed {
    seq: u64,
    item: Item,
}

/// Builds the encoded answer frame for a `changes` request.
pub fn answer(shared: &Shared, id: u64, req: &ChangesRequest) -> Result<Vec<u8>, RequestError> {
    shared.wait_ready();
    let t0 = std::time::Instant::now(); // TIMING
    let limit = shared.out.limit();
    let max_runs = req.max_runs.clamp(1, MAX_RUNS_PER_BATCH) as usize;
    let page = {
        let mut index = shared.index();
        let counter = index.feed_counter()?;
        let since = req
            .since
            .as_ref()
            .filter(|c| c.epoch == shared.epoch && c.seq <= counter);
        let reset = since.is_none();
        let after = since.map_or(0, |c| c.seq);
        (reset, index.feed_page(after, max_runs + 1, !reset)?)
    };
    let (reset, page) = page;
    eprintln!("TIMING page {:?}", t0.elapsed()); // TIMING
    let waiting = page.entries.len() > max_runs;
    let entries = &page.entries[..page.entries.len().min(max_runs)];

    let batch_for = |packed: &[Packed], more: bool, counter: u64| -> Envelope {
        let mut runs = Vec::new();
        let mut removed = Vec::new();
        for p in packed {
            match &p.item {
                Item::Run(r) => runs.push((**r).clone()),
                Item::Removed(d) => removed.push(d.clone()),
            }
        }
        let seq = match (more, packed.last()) {
            (true, Some(last)) => last.seq,
            _ => counter,
        };
        Envelope {
            id,
            body: Body::ChangeBatch(ChangeBatch {
                reset,
                runs,
                removed,
                cursor: Cursor {
                    epoch: shared.epoch.clone(),
                    seq,
                },
                more,
            }),
        }
    };

    // Bytes of the answer without entries (the cursor at its widest).
    let base = json_len(&batch_for(&[], true, u64::MAX)) + 8;
    let budget = (limit as usize).saturating_sub(base);
    let (packed, cut_short) = pack(shared, entries, budget);
    eprintln!("TIMING packed {:?}", t0.elapsed()); // TIMING
    let mut more = waiting || cut_short;
    let mut keep = packed.len();
    loop {
        let envelope = batch_for(&packed[..keep], more, page.counter);
        match encode_frame(&envelope, limit) {
            Ok(frame) => {
                eprintln!("TIMING encoded {:?}", t0.elapsed()); // TIMING
                if let Body::ChangeBatch(b) = &envelope.body {
                    shared.told(b.cursor.seq);
                }
                return Ok(frame);
            }
            // The estimate was wrong: send fewer entries and say more wait.
            Err(FrameError::Oversized { .. }) if keep > 1 => {
                keep /= 2;
                more = true;
            }
            Err(e) => {
                return Err(RequestError::TooLarge {
                    limit,
                    what: e.to_string(),
                })
            }
        }
    }
}

/// Reads the records of the entries, chunk by chunk, and keeps those that fit in `budget`
/// bytes (always at least the first). Says whether entries were left out.
fn pack(shared: &Shared, entries: &[FeedEntry], budget: usize) -> (Vec<Packed>, bool) {
    let mut packed = Vec::new();
    let mut used = 0usize;
    for chunk in entries.chunks(READ_CHUNK) {
        let items = map_in_order(chunk, io_workers(), |_, e| Packed {
            seq: e.seq,
            item: match &e.state {
                Some(state) => {
                    let mut run = state.clone();
                    fill_records(&shared.root, &mut run);
                    Item::Run(Box::new(run))
                }
                None => Item::Removed(e.dir.clone()),
            },
        });
        for mut p in items {
            let mut len = item_len(&p.item) + 1;
            if used + len > budget {
                if !packed.is_empty() {
                    return (packed, true);
                }
                if let Item::Run(run) = &mut p.item {
                    let done = shrink_to_fit(run, budget.saturating_sub(1));
                    if !done.is_empty() {
                        eprintln!(
                            "runicorn-agent serve: run {} is too large for one frame of {} bytes: {}",
                            run.dir,
                            shared.out.limit(),
                            done.join(", ")
                        );
                    }
                    len = item_len(&p.item) + 1;
                }
            }
            used += len;
            packed.push(p);
        }
    }
    (packed, false)
}

fn item_len(item: &Item) -> usize {
    match item {
        Item::Run(r) => json_len(r),
        Item::Removed(d) => json_len(d),
    }
}
