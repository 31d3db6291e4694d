//! Checks every answer of an agent before anything of it reaches the store: paths stay inside
//! the run, columns have matching lengths, offsets move forward.
//!
//! One bad item is the run's problem, not the remote's: an item that breaks a rule (one run of
//! a change batch, one run's points, one run's log chunk) is refused alone, with its reason, and
//! the rest of the answer is stored; the refusals are recorded on the remote and shown by
//! `runicorn-hub remotes` and the dashboard. The items of a change batch are sorted out by the
//! store itself (`runicorn_store`'s `apply_change_batch`, in the batch's transaction), points
//! and log chunks here. An answer that is not the protocol at all (a frame that does not
//! decode, the wrong answer type) never gets this far: the client refuses the agent as broken.

use runicorn_protocol::run_format::artifacts::{is_sha256_hex, RunLink, ARTIFACTS_DIR};
use runicorn_protocol::wire::{
    check_wire_path, ArtifactChange, ChangeBatch, LogBatch, PointBatch, SkippedEntry,
};

/// An answer that passed the checks, and the items of it the hub refused.
#[derive(Debug)]
pub struct Checked<T> {
    pub batch: T,
    pub refused: Vec<SkippedEntry>,
}

/// Longest cursor epoch accepted (an epoch names one life of the agent's index).
const MAX_EPOCH_BYTES: usize = 256;

/// Checks what a change batch must hold as a whole: a usable cursor. Its runs, files and
/// removed directories are checked item by item by the store, which leaves out and records
/// the ones that break the path rule.
pub fn change_batch(batch: &ChangeBatch) -> Result<(), String> {
    let epoch = &batch.cursor.epoch;
    if epoch.is_empty() || epoch.len() > MAX_EPOCH_BYTES || epoch.chars().any(char::is_control) {
        return Err(format!(
            "the cursor's epoch {:?} is not a usable name (1 to {MAX_EPOCH_BYTES} bytes, no control characters)",
            epoch.chars().take(64).collect::<String>()
        ));
    }
    Ok(())
}

/// Most versions one artifact may have.
pub const MAX_ARTIFACT_VERSIONS: usize = 100_000;
/// Most files (and references) one version may list.
pub const MAX_VERSION_FILES: usize = 1_000_000;
/// Most runs that may be named as having used one version.
pub const MAX_VERSION_USERS: usize = 100_000;
/// Longest type, name, alias, run id or host accepted, in bytes.
const MAX_NAME_BYTES: usize = 255;
/// Longest description or reference URI accepted, in bytes.
const MAX_TEXT_BYTES: usize = 64 * 1024;
/// Longest `problem` kept, in bytes (a longer one is cut, not refused).
const MAX_PROBLEM_BYTES: usize = 4096;

/// Why a type, name, alias, run id or host cannot be stored, if it cannot.
fn short_name(what: &str, text: &str) -> Result<(), String> {
    if text.is_empty() || text.len() > MAX_NAME_BYTES {
        return Err(format!(
            "{what} of {} bytes (1 to {MAX_NAME_BYTES})",
            text.len()
        ));
    }
    if text.chars().any(char::is_control) {
        return Err(format!("{what} {text:?} holds a control character"));
    }
    Ok(())
}

/// A size or number the store keeps as a signed 64-bit integer.
fn fits_i64(what: &str, n: u64) -> Result<(), String> {
    i64::try_from(n)
        .map(|_| ())
        .map_err(|_| format!("{what} {n} is beyond the largest number stored"))
}

fn run_link(what: &str, link: &RunLink) -> Result<(), String> {
    short_name(&format!("{what}'s run id"), &link.run_id)?;
    check_wire_path(&link.dir).map_err(|e| format!("{what}'s run directory: {e}"))?;
    if let Some(host) = &link.host {
        short_name(&format!("{what}'s host"), host)?;
    }
    Ok(())
}

/// Why one artifact of a change batch cannot be stored, if it cannot.
fn artifact(a: &ArtifactChange) -> Result<(), String> {
    check_wire_path(&a.dir).map_err(|e| format!("artifact directory: {e}"))?;
    for (what, part) in [("type", &a.kind), ("name", &a.name)] {
        short_name(&format!("artifact {what}"), part)?;
        if part.contains('/') || part.starts_with('.') {
            return Err(format!(
                "artifact {what} {part:?} holds a '/' or starts with '.'"
            ));
        }
    }
    let expected = format!("{ARTIFACTS_DIR}/{}/{}", a.kind, a.name);
    if a.dir != expected {
        return Err(format!(
            "artifact directory {:?} is not {expected:?} (its type and name)",
            a.dir
        ));
    }
    fits_i64("sequence value", a.seq)?;
    for (alias, version) in &a.aliases {
        short_name("alias", alias)?;
        fits_i64(&format!("alias {alias:?}'s version"), *version)?;
    }
    if a.versions.len() > MAX_ARTIFACT_VERSIONS {
        return Err(format!(
            "{} versions (at most {MAX_ARTIFACT_VERSIONS})",
            a.versions.len()
        ));
    }
    for v in &a.versions {
        let n = v.version;
        fits_i64("version", n)?;
        if v.files.len() > MAX_VERSION_FILES || v.references.len() > MAX_VERSION_FILES {
            return Err(format!(
                "v{n} lists {} files and {} references (at most {MAX_VERSION_FILES} each)",
                v.files.len(),
                v.references.len()
            ));
        }
        if v.used_by.len() > MAX_VERSION_USERS {
            return Err(format!(
                "v{n} names {} runs that used it (at most {MAX_VERSION_USERS})",
                v.used_by.len()
            ));
        }
        if v.description
            .as_ref()
            .is_some_and(|d| d.len() > MAX_TEXT_BYTES)
        {
            return Err(format!(
                "v{n}'s description is longer than {MAX_TEXT_BYTES} bytes"
            ));
        }
        let mut total: u64 = 0;
        for f in &v.files {
            check_wire_path(&f.path).map_err(|e| format!("a file of v{n}: {e}"))?;
            if !is_sha256_hex(&f.sha256) {
                return Err(format!(
                    "file {:?} of v{n}: malformed sha256 {:?}",
                    f.path,
                    f.sha256.chars().take(80).collect::<String>()
                ));
            }
            fits_i64(&format!("size of file {:?} of v{n}", f.path), f.size)?;
            total = total.saturating_add(f.size);
        }
        fits_i64(&format!("total size of v{n}"), total)?;
        for r in &v.references {
            if r.uri.is_empty() || r.uri.len() > MAX_TEXT_BYTES {
                return Err(format!(
                    "a reference of v{n} has a URI of {} bytes (1 to {MAX_TEXT_BYTES})",
                    r.uri.len()
                ));
            }
            if let Some(size) = r.size {
                fits_i64(&format!("size of reference {:?}", r.uri), size)?;
            }
        }
        if let Some(link) = &v.produced_by {
            run_link(&format!("v{n}'s producer"), link)?;
        }
        for link in &v.used_by {
            run_link(&format!("a user of v{n}"), link)?;
        }
    }
    Ok(())
}

/// Checks the artifacts of a change batch one by one: an artifact that breaks a rule is taken
/// out and refused alone (returned), a `removed_artifacts` entry that is not an artifact
/// directory is dropped, and an overlong `problem` is cut. The rest goes to the store.
pub fn artifact_items(batch: &mut ChangeBatch) -> Vec<SkippedEntry> {
    let mut refused = Vec::new();
    batch.artifacts.retain_mut(|a| match artifact(a) {
        Ok(()) => {
            if let Some(problem) = a.problem.as_mut().filter(|p| p.len() > MAX_PROBLEM_BYTES) {
                let mut end = MAX_PROBLEM_BYTES;
                while !problem.is_char_boundary(end) {
                    end -= 1;
                }
                problem.truncate(end);
                problem.push('…');
            }
            true
        }
        Err(reason) => {
            refused.push(SkippedEntry {
                name: a.dir.chars().take(1024).collect(),
                reason: format!("refused by the hub: {reason}"),
            });
            false
        }
    });
    batch.removed_artifacts.retain(|dir| {
        check_wire_path(dir).is_ok() && dir.starts_with(&format!("{ARTIFACTS_DIR}/"))
    });
    refused
}

/// Why one run's points cannot be stored, if they cannot.
fn run_points(run: &runicorn_protocol::wire::RunPoints) -> Result<(), String> {
    check_wire_path(&run.dir).map_err(|e| format!("points of a run: {e}"))?;
    let rows = run.steps.len();
    if run.times.len() != rows {
        return Err(format!(
            "points of {:?}: {} steps but {} times",
            run.dir,
            rows,
            run.times.len()
        ));
    }
    if run.to < run.from {
        return Err(format!(
            "points of {:?}: range ends ({}) before it starts ({})",
            run.dir, run.to, run.from
        ));
    }
    for series in &run.series {
        match &series.rows {
            None if series.values.len() != rows => {
                return Err(format!(
                    "points of {:?}, key {:?}: {} values for {} rows",
                    run.dir,
                    series.key,
                    series.values.len(),
                    rows
                ))
            }
            Some(idx) if idx.len() != series.values.len() => {
                return Err(format!(
                    "points of {:?}, key {:?}: {} row indexes for {} values",
                    run.dir,
                    series.key,
                    idx.len(),
                    series.values.len()
                ))
            }
            Some(idx) if idx.iter().any(|&i| i as usize >= rows) => {
                return Err(format!(
                    "points of {:?}, key {:?}: a row index beyond the {} rows",
                    run.dir, series.key, rows
                ))
            }
            _ => {}
        }
    }
    Ok(())
}

/// Checks a point batch: each run's points that break a rule are taken out and refused alone.
pub fn point_batch(mut batch: PointBatch) -> Checked<PointBatch> {
    let mut refused = Vec::new();
    batch.runs.retain(|run| match run_points(run) {
        Ok(()) => true,
        Err(reason) => {
            refused.push(SkippedEntry {
                name: run.dir.clone(),
                reason: format!("refused by the hub: {reason}"),
            });
            false
        }
    });
    Checked { batch, refused }
}

/// Checks a log batch chunk by chunk with [`log_batch`]'s rules: a chunk that breaks one is
/// taken out and refused alone.
pub fn log_batch_items(batch: LogBatch, exact: bool) -> Checked<LogBatch> {
    let mut kept = LogBatch {
        runs: Vec::with_capacity(batch.runs.len()),
    };
    let mut refused = Vec::new();
    for chunk in batch.runs {
        // Each chunk is checked as a batch of its own (moved, not copied).
        let one = LogBatch { runs: vec![chunk] };
        match log_batch(&one, exact) {
            Ok(()) => kept.runs.extend(one.runs),
            Err(reason) => refused.push(SkippedEntry {
                name: one.runs.first().map(|c| c.dir.clone()).unwrap_or_default(),
                reason: format!("refused by the hub: {reason}"),
            }),
        }
    }
    Checked {
        batch: kept,
        refused,
    }
}

/// Checks a log batch. From an agent that sends exact bytes (`exact`), each chunk must hold
/// exactly `to - from` bytes; an older agent's lossy text is let through here and sorted out by
/// the engine.
pub fn log_batch(batch: &LogBatch, exact: bool) -> Result<(), String> {
    for chunk in &batch.runs {
        check_wire_path(&chunk.dir).map_err(|e| format!("log of a run: {e}"))?;
        if chunk.to < chunk.from {
            return Err(format!(
                "log of {:?}: range ends ({}) before it starts ({})",
                chunk.dir, chunk.to, chunk.from
            ));
        }
        let len = chunk.bytes.len() as u64;
        if exact && chunk.to - chunk.from != len {
            return Err(format!(
                "log of {:?}: range {}..{} covers {} bytes but the chunk holds {len}",
                chunk.dir,
                chunk.from,
                chunk.to,
                chunk.to - chunk.from
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use runicorn_protocol::wire::{Cursor, LogChunk, RunPoints, Series};

    /// A change batch whose one run has a summary nested `depth` levels deep.
    fn deep_batch(depth: usize) -> ChangeBatch {
        let mut summary = serde_json::json!(1);
        for _ in 0..depth {
            summary = serde_json::json!({ "a": summary });
        }
        let run: runicorn_protocol::wire::RunChange = serde_json::from_value(serde_json::json!({
            "dir": "runs/d/1", "seq": 1, "id": "1", "path": "d", "layout": "current",
            "alias": null, "tags": [], "status": "finished", "reason": null,
            "created_at": 1.0, "ended_at": 2.0, "hostname": "h", "deleted": false,
            "meta": {}, "status_record": {}, "summary": summary, "config": null,
            "environment": null,
            "events": {"bytes": 0, "lines": 0, "points": 0, "keys": [], "last_step": null,
                       "last_event_at": null, "corrupt_lines": 0},
            "log_bytes": 0, "files": []
        }))
        .unwrap();
        ChangeBatch {
            reset: true,
            runs: vec![run],
            removed: vec![],
            cursor: Cursor {
                epoch: "e".into(),
                seq: 1,
            },
            more: false,
            skipped: vec![],
            skipped_listed: false,
            artifacts: vec![],
            removed_artifacts: vec![],
        }
    }

    #[test]
    fn depth_limits_agree_from_frame_to_store() {
        use runicorn_protocol::wire::{decode_payload, encode_frame, Body, Envelope};
        let through_frame = |depth: usize| {
            let envelope = Envelope {
                id: 2,
                body: Body::ChangeBatch(deep_batch(depth)),
            };
            let frame = encode_frame(&envelope, 16 << 20).unwrap();
            decode_payload(&frame[4..]).map(|e| match e.body {
                Body::ChangeBatch(b) => b,
                other => panic!("{}", other.kind()),
            })
        };
        // The deepest record a frame carries: well past what the store keeps, so a record an
        // agent cut to the store's limit always travels.
        let carried = (60..200)
            .take_while(|&d| through_frame(d).is_ok())
            .last()
            .unwrap();
        assert!(
            carried >= runicorn_store::MAX_RECORD_DEPTH + 32,
            "frames carry records {carried} levels deep"
        );
        let dir = tempfile::tempdir().unwrap();
        let mut store = runicorn_store::Store::open(dir.path()).unwrap();
        let remote = store
            .upsert_remote(&runicorn_store::RemoteSpec {
                name: "gpu".into(),
                address: "gpu".into(),
                transport: serde_json::json!({}),
            })
            .unwrap();
        for depth in [60, 64, 65, 100, carried] {
            let batch = through_frame(depth).unwrap();
            assert!(change_batch(&batch).is_ok());
            let outcome = store.apply_change_batch(remote, &batch).unwrap();
            assert_eq!(outcome.runs, 1, "{depth}");
            let run = store.run(remote, "runs/d/1").unwrap().unwrap();
            let stored = run.summary.unwrap();
            if depth <= runicorn_store::MAX_RECORD_DEPTH {
                assert!(stored.is_object(), "{depth}");
            } else {
                assert!(stored.as_str().unwrap().contains("deeper than"), "{depth}");
            }
        }
    }

    #[test]
    fn a_change_batch_needs_a_usable_cursor() {
        let mut batch = ChangeBatch {
            reset: true,
            runs: vec![],
            removed: vec!["runs/../../etc".into()],
            cursor: Cursor {
                epoch: "e".into(),
                seq: 1,
            },
            more: false,
            skipped: vec![],
            skipped_listed: false,
            artifacts: vec![],
            removed_artifacts: vec![],
        };
        // Bad items are the store's to leave out, not a reason to refuse the batch.
        assert!(change_batch(&batch).is_ok());
        batch.cursor.epoch = String::new();
        assert!(change_batch(&batch).unwrap_err().contains("epoch"));
    }

    #[test]
    fn bad_points_and_log_chunks_are_refused_alone() {
        let good = RunPoints {
            dir: "runs/a/1".into(),
            steps: vec![1, 2],
            times: vec![0.0, 1.0],
            to: 20,
            series: vec![Series {
                key: "loss".into(),
                rows: None,
                values: vec![1.0, 2.0],
            }],
            ..Default::default()
        };
        let mut beyond = good.clone();
        beyond.dir = "runs/b/1".into();
        beyond.series[0].rows = Some(vec![0, 5]);
        let mut ragged = good.clone();
        ragged.dir = "runs/c/1".into();
        ragged.times.pop();
        let mut climbing = good.clone();
        climbing.dir = "runs/../../etc".into();
        let checked = point_batch(PointBatch {
            runs: vec![beyond, good.clone(), ragged, climbing],
        });
        assert_eq!(checked.batch.runs, [good]);
        let reasons: Vec<_> = checked.refused.iter().map(|r| r.reason.as_str()).collect();
        assert!(reasons[0].contains("beyond"), "{reasons:?}");
        assert!(reasons[1].contains("times"), "{reasons:?}");
        assert!(reasons[2].contains(".."), "{reasons:?}");
        assert_eq!(checked.refused[1].name, "runs/c/1");

        let chunk = |dir: &str, from: u64, to: u64| LogChunk {
            dir: dir.into(),
            from,
            to,
            bytes: b"x\n".to_vec(),
            truncated: false,
            eof: true,
        };
        let checked = log_batch_items(
            LogBatch {
                runs: vec![
                    chunk("runs/a/1", 0, 2),
                    chunk("runs/x\\y", 0, 2),
                    chunk("runs/b/1", 5, 2),
                ],
            },
            true,
        );
        assert_eq!(checked.batch.runs.len(), 1);
        assert_eq!(checked.refused.len(), 2);
        assert!(checked.refused[0].reason.contains("backslash"));
    }

    #[test]
    fn a_log_chunk_must_hold_exactly_its_range() {
        let chunk = |from: u64, to: u64, bytes: &[u8]| LogBatch {
            runs: vec![LogChunk {
                dir: "runs/a/1".into(),
                from,
                to,
                bytes: bytes.to_vec(),
                truncated: false,
                eof: true,
            }],
        };
        assert!(log_batch(&chunk(10, 14, b"a\xFF\xFE\n"), true).is_ok());
        let lossy = chunk(10, 14, "a\u{FFFD}\u{FFFD}\n".as_bytes());
        let err = log_batch(&lossy, true).unwrap_err();
        assert!(err.contains("10..14") && err.contains("holds 8"), "{err}");
        assert!(log_batch(&lossy, false).is_ok(), "an older agent's text");
        assert!(log_batch(&chunk(10, 9, b""), false).is_err());
    }
}
