//! Answering `changes`: a page of the feed after the hub's cursor, each run with its whole
//! state as announced at its sequence value, packed under the hub's frame limit.
//!
//! A cursor of another epoch (or none, or one ahead of the counter) is answered from the start
//! with `reset`; tombstones are then left out (the hub drops every run not listed). Otherwise
//! rows with a sequence value above the cursor come in sequence order, tombstones in
//! `removed`. Artifacts come the same way, in the same sequence order, in `artifacts` and
//! `removed_artifacts`. The cursor returned is the sequence value of the last entry sent when `more` is
//! true, else the counter.

use runicorn_protocol::wire::{
    encode_frame, ArtifactChange, ChangeBatch, ChangesRequest, Cursor, FrameError, RunChange,
};
use serde::Serialize;

use super::records::{shrink_artifact_to_fit, shrink_to_fit};
use super::request_error::RequestError;
use super::shared::Shared;
use super::sizing::json_len;
use crate::run_index::feed::{ArtifactEntry, FeedEntry};

/// Most runs in one answer, whatever the hub asks for.
pub const MAX_RUNS_PER_BATCH: u32 = 2000;

/// Builds the encoded answer frame for a `changes` request.
pub fn answer(shared: &Shared, id: u64, req: &ChangesRequest) -> Result<Vec<u8>, RequestError> {
    shared.wait_ready();
    // A hub that caught up asks what is new: before it subscribed, no scan runs by itself.
    // (Pages of a listing still being sent need none: what changes meanwhile comes after.)
    if let Some(since) = req.since.as_ref().filter(|c| c.epoch == shared.epoch) {
        if since.seq >= shared.index().feed_counter()? {
            shared.rescan_if_stale();
        }
    }
    let limit = shared.out.limit();
    let max_runs = req.max_runs.clamp(1, MAX_RUNS_PER_BATCH) as usize;
    let (reset, page) = {
        let mut index = shared.index();
        let counter = index.feed_counter()?;
        let since = req
            .since
            .as_ref()
            .filter(|c| c.epoch == shared.epoch && c.seq <= counter);
        let after = since.map_or(0, |c| c.seq);
        (
            since.is_none(),
            index.feed_page(after, max_runs + 1, since.is_some())?,
        )
    };
    let counter = page.counter;
    let mut entries = page.entries;
    let waiting = entries.len() > max_runs;
    entries.truncate(max_runs);

    let skipped_now = shared.skipped_runs_to_send(reset);
    let mut batch = ChangeBatch {
        reset,
        runs: Vec::new(),
        removed: Vec::new(),
        cursor: Cursor {
            epoch: shared.epoch.clone(),
            seq: u64::MAX,
        },
        more: true,
        skipped_listed: skipped_now.is_some(),
        artifacts: vec![],
        removed_artifacts: vec![],
        skipped: skipped_now.unwrap_or_default(),
    };
    // Bytes of the answer without entries (the cursor at its widest), plus a little slack.
    let base = json_len(&BatchEnvelope::new(id, &batch)) + 8;
    let budget = (limit as usize).saturating_sub(base);
    let (order, cut_short) = pack(shared, entries, budget, &mut batch);
    let mut more = waiting || cut_short;
    let mut keep = order.len();
    loop {
        let kept = |kind: Kind| order[..keep].iter().filter(|(_, k)| *k == kind).count();
        batch.runs.truncate(kept(Kind::Run));
        batch.removed.truncate(kept(Kind::RunRemoved));
        batch.artifacts.truncate(kept(Kind::Artifact));
        batch
            .removed_artifacts
            .truncate(kept(Kind::ArtifactRemoved));
        batch.more = more;
        batch.cursor.seq = match (more, keep.checked_sub(1)) {
            (true, Some(last)) => order[last].0,
            _ => counter,
        };
        match encode_frame(&BatchEnvelope::new(id, &batch), limit) {
            Ok(frame) => {
                shared.told(batch.cursor.seq);
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

/// An `Envelope` holding a borrowed change batch: the same JSON as
/// `Envelope { id, body: Body::ChangeBatch(..) }`, without moving the batch into it.
#[derive(Serialize)]
struct BatchEnvelope<'a> {
    id: u64,
    body: BatchBody<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
enum BatchBody<'a> {
    ChangeBatch(&'a ChangeBatch),
}

impl<'a> BatchEnvelope<'a> {
    fn new(id: u64, batch: &'a ChangeBatch) -> Self {
        BatchEnvelope {
            id,
            body: BatchBody::ChangeBatch(batch),
        }
    }
}

/// What an entry of a batch is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Run,
    RunRemoved,
    Artifact,
    ArtifactRemoved,
}

/// Moves the entries that fit in `budget` bytes into `batch` (always at least the first).
/// Returns each kept entry's sequence value and kind in order, and whether entries were left
/// out.
fn pack(
    shared: &Shared,
    entries: Vec<FeedEntry>,
    budget: usize,
    batch: &mut ChangeBatch,
) -> (Vec<(u64, Kind)>, bool) {
    let mut order = Vec::with_capacity(entries.len());
    let mut used = 0usize;
    for entry in entries {
        if let Some(artifact) = entry.artifact {
            match artifact {
                ArtifactEntry::Present(mut a) => {
                    let mut len = json_len(&a) + 1;
                    if used + len > budget {
                        if !order.is_empty() {
                            return (order, true);
                        }
                        len = shrink_artifact_alone(shared, &mut a, budget);
                    }
                    used += len;
                    order.push((entry.seq, Kind::Artifact));
                    batch.artifacts.push(*a);
                }
                ArtifactEntry::Removed => {
                    let len = json_len(&entry.dir) + 1;
                    if used + len > budget && !order.is_empty() {
                        return (order, true);
                    }
                    used += len;
                    order.push((entry.seq, Kind::ArtifactRemoved));
                    batch.removed_artifacts.push(entry.dir);
                }
            }
            continue;
        }
        match entry.state {
            Some(mut run) => {
                let mut len = json_len(&run) + 1;
                if used + len > budget {
                    if !order.is_empty() {
                        return (order, true);
                    }
                    len = shrink_alone(shared, &mut run, budget);
                }
                used += len;
                order.push((entry.seq, Kind::Run));
                batch.runs.push(run);
            }
            None => {
                let len = json_len(&entry.dir) + 1;
                if used + len > budget && !order.is_empty() {
                    return (order, true);
                }
                used += len;
                order.push((entry.seq, Kind::RunRemoved));
                batch.removed.push(entry.dir);
            }
        }
    }
    (order, false)
}

/// Shrinks an artifact that does not fit in a frame on its own; returns its new size.
fn shrink_artifact_alone(shared: &Shared, a: &mut ArtifactChange, budget: usize) -> usize {
    let done = shrink_artifact_to_fit(a, budget.saturating_sub(1));
    if !done.is_empty() {
        eprintln!(
            "runicorn-agent serve: artifact {} is too large for one frame of {} bytes: {}",
            a.dir,
            shared.out.limit(),
            done.join(", ")
        );
    }
    json_len(a) + 1
}

/// Shrinks a run that does not fit in a frame on its own; returns its new size.
fn shrink_alone(shared: &Shared, run: &mut RunChange, budget: usize) -> usize {
    let done = shrink_to_fit(run, budget.saturating_sub(1));
    if !done.is_empty() {
        eprintln!(
            "runicorn-agent serve: run {} is too large for one frame of {} bytes: {}",
            run.dir,
            shared.out.limit(),
            done.join(", ")
        );
    }
    json_len(run) + 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run_index::feed::{Feed, ScanScope};
    use crate::run_index::RunIndex;
    use crate::serve_command::output::FrameWriter;
    use runicorn_protocol::run_format::LivenessContext;
    use runicorn_protocol::wire::{read_frame, Body, Envelope};
    use std::fs;
    use std::path::Path;

    fn write_run(root: &Path, id: &str, env_bytes: usize) {
        let dir = root.join("runs/p").join(id);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("meta.json"), format!("{{\"id\":\"{id}\"}}")).unwrap();
        fs::write(dir.join("status.json"), "{\"status\":\"finished\"}").unwrap();
        if env_bytes > 0 {
            let env = serde_json::json!({"pip": "x".repeat(env_bytes)});
            fs::write(dir.join("environment.json"), env.to_string()).unwrap();
        }
    }

    fn served(root: &Path, limit: u32) -> Shared {
        let index = RunIndex::open(root).unwrap();
        let epoch = index.epoch().unwrap();
        let out = FrameWriter::new(Box::new(std::io::sink()), limit);
        let poll = std::time::Duration::from_secs(3600);
        let shared = Shared::new(root.to_owned(), epoch, index, out, poll);
        Feed::new(root)
            .scan(
                shared.index_mutex(),
                ScanScope::All,
                &LivenessContext::here_and_now(),
            )
            .unwrap();
        shared.mark_ready();
        shared
    }

    fn ask(shared: &Shared, since: Option<Cursor>, max_runs: u32) -> (usize, ChangeBatch) {
        let req = ChangesRequest { since, max_runs };
        let frame = answer(shared, 9, &req).unwrap();
        let env = read_frame(&mut frame.as_slice(), u32::MAX).unwrap();
        assert_eq!(env.id, 9);
        match env.body {
            Body::ChangeBatch(b) => (frame.len() - 4, b),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn pages_stay_under_the_frame_limit_and_resume_from_their_cursor() {
        let t = tempfile::tempdir().unwrap();
        for i in 0..40 {
            write_run(t.path(), &format!("r{i:02}"), 300);
        }
        let shared = served(t.path(), 8 * 1024);
        let (mut since, mut seen, mut pages) = (None, Vec::new(), 0);
        loop {
            let (len, b) = ask(&shared, since.clone(), 1000);
            assert!(len <= 8 * 1024, "{len}");
            assert_eq!(b.reset, pages == 0);
            pages += 1;
            seen.extend(b.runs.iter().map(|r| r.seq));
            if !b.more {
                assert_eq!(b.cursor.seq, 40);
                break;
            }
            assert_eq!(Some(b.cursor.seq), b.runs.last().map(|r| r.seq));
            since = Some(b.cursor);
        }
        assert!(pages > 2, "the frame limit split the listing");
        assert_eq!(seen, (1..=40).collect::<Vec<_>>());
        let (_, b) = ask(&shared, None, 3);
        assert_eq!((b.runs.len(), b.more, b.cursor.seq), (3, true, 3));
    }

    #[test]
    fn cursors_of_another_epoch_or_from_the_future_reset_the_listing() {
        let t = tempfile::tempdir().unwrap();
        write_run(t.path(), "a", 0);
        let shared = served(t.path(), 1 << 20);
        let cursor = |epoch: &str, seq| {
            Some(Cursor {
                epoch: epoch.into(),
                seq,
            })
        };
        let epoch = shared.epoch.clone();
        assert!(!ask(&shared, cursor(&epoch, 0), 10).1.reset);
        assert!(ask(&shared, cursor("other", 0), 10).1.reset);
        let (_, b) = ask(&shared, cursor(&epoch, 99), 10);
        assert!(b.reset && b.runs.len() == 1);
        let (_, b) = ask(&shared, cursor(&epoch, 1), 10);
        assert!(!b.reset && b.runs.is_empty() && b.cursor.seq == 1);
    }

    #[test]
    fn a_run_too_large_alone_has_its_largest_record_truncated() {
        let t = tempfile::tempdir().unwrap();
        write_run(t.path(), "big", 50_000);
        write_run(t.path(), "small", 0);
        let shared = served(t.path(), 20_000);
        let (len, b) = ask(&shared, None, 10);
        assert!(len <= 20_000);
        assert_eq!(b.runs[0].id, "big");
        let env = b.runs[0].environment.as_ref().unwrap();
        assert_eq!(
            env.get("_runicorn_truncated"),
            Some(&serde_json::json!(50_010))
        );
        assert_eq!(
            b.runs[0].meta.as_ref().unwrap()["id"],
            "big",
            "small values stay"
        );
        assert_eq!(b.runs.len(), 2, "once shrunk, others fit beside it");
        assert!(!b.more);
    }

    #[test]
    fn the_borrowed_envelope_is_the_same_json() {
        let batch = ChangeBatch {
            reset: true,
            runs: vec![],
            removed: vec!["runs/a".into()],
            cursor: Cursor {
                epoch: "e".into(),
                seq: 3,
            },
            more: false,
            skipped: vec![],
            skipped_listed: false,
            artifacts: vec![],
            removed_artifacts: vec![],
        };
        let owned = Envelope {
            id: 5,
            body: Body::ChangeBatch(batch.clone()),
        };
        assert_eq!(
            serde_json::to_string(&BatchEnvelope::new(5, &batch)).unwrap(),
            serde_json::to_string(&owned).unwrap()
        );
    }
}
