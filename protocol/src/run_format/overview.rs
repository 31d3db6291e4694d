//! One run read for listings: identity, status (with liveness), times and metric totals.
//!
//! Reading is split in two so that an index can cache each half: the small records
//! (`meta.json`, `status.json`, `.deleted`) and the progress through `events.jsonl` (an offset
//! plus totals so far). [`read_run_overview`] does both from scratch; an index calls
//! [`read_run_records`] only when those files changed and [`continue_event_totals`] from its
//! saved offset. Reading one run never fails: whatever cannot be read makes the run
//! `unreadable` with a reason, so one bad run never hides the others. The progress also keeps
//! the timing of the run's recent new steps, from which a running run is judged `stalled`.

use std::path::PathBuf;

use super::alerts::NonFiniteSeen;
use super::discovery::{Layout, RunLocation};
use super::events::{EventTail, MetricTotals};
use super::json_file::{read_json_in, read_json_in_if_exists, RecordError};
use super::liveness::{judge_liveness, Liveness, LivenessContext};
use super::names::{check_run_id, check_run_path_for_read};
use super::records::{DeletedMarker, Meta, RunStatus, StatusRecord};
use super::stall::{stall_evidence, StallConfig, StepTiming};
use super::RunFiles;

/// How much of `events.jsonl` is read per step.
const EVENT_READ_CHUNK: u64 = 8 * 1024 * 1024;

/// What a listing shows of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunOverview {
    pub id: String,
    pub path: String,
    pub dir: PathBuf,
    pub layout: Layout,
    pub alias: Option<String>,
    pub tags: Vec<String>,
    pub status: RunStatus,
    /// Why the run is `unreadable`, why it was judged `crashed`, or how it exited.
    pub reason: Option<String>,
    pub created_at: Option<f64>,
    pub ended_at: Option<f64>,
    pub hostname: Option<String>,
    pub points: u64,
    pub keys: Vec<String>,
    pub last_step: Option<i64>,
    pub last_event_at: Option<f64>,
    /// Corrupt lines skipped in `events.jsonl`.
    pub corrupt_lines: u64,
    /// Bytes of a torn last line waiting for its newline.
    pub pending_tail_bytes: u64,
    pub deleted: bool,
}

/// The small records of a run, or why they could not be read.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRecords {
    pub meta: Option<Meta>,
    pub status: Option<StatusRecord>,
    pub deleted: Option<DeletedMarker>,
    /// Set when a record is unreadable; the run is then listed as `unreadable`.
    pub problem: Option<String>,
}

/// How far `events.jsonl` has been read, and what it held up to there.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventProgress {
    pub offset: u64,
    pub next_line: u64,
    pub totals: MetricTotals,
    /// When the recent new steps arrived (for the `stalled` verdict).
    pub steps: StepTiming,
    /// The first NaN or infinity of each metric (for `nonfinite` alerts).
    pub nonfinite: NonFiniteSeen,
    pub corrupt_lines: u64,
    pub pending_tail_bytes: u64,
    /// Why `events.jsonl` cannot be read (not a regular file, an I/O error); the run is then
    /// `unreadable` with this reason.
    pub problem: Option<String>,
}

/// Reads one run from scratch.
pub fn read_run_overview(loc: &RunLocation, ctx: &LivenessContext) -> RunOverview {
    let records = read_run_records(loc);
    let progress = continue_event_totals(loc, EventProgress::default());
    build_overview(loc, &records, &progress, ctx)
}

/// Reads `meta.json`, `status.json` and `.deleted`, and checks the run's names.
pub fn read_run_records(loc: &RunLocation) -> RunRecords {
    let files = RunFiles::new(&loc.dir);
    let mut records = RunRecords {
        meta: None,
        status: None,
        deleted: None,
        problem: None,
    };
    if let Err(e) = check_run_id(&loc.dir_name).and_then(|_| check_run_path_for_read(&loc.run_path))
    {
        records.problem = Some(e.to_string());
        return records;
    }
    let root = loc.root();
    match read_json_in_if_exists::<Meta>(&files.meta(), &root) {
        Ok(m) => records.meta = m,
        Err(e) => records.problem = Some(e.to_string()),
    }
    match read_json_in_if_exists::<StatusRecord>(&files.status(), &root) {
        Ok(s) => records.status = s,
        Err(e) => records.problem = records.problem.take().or(Some(e.to_string())),
    }
    match read_json_in::<DeletedMarker>(&files.deleted_marker(), &root) {
        Ok(marker) => records.deleted = Some(marker),
        Err(e) if e.is_not_found() => {}
        // A marker that cannot be parsed still marks the run deleted.
        Err(RecordError::Malformed { .. }) => records.deleted = Some(DeletedMarker::default()),
        // One that is not a file at all (or cannot be read) makes the run unreadable: it is
        // shown, with the reason, rather than hidden as deleted.
        Err(e) => records.problem = records.problem.take().or(Some(e.to_string())),
    }
    records
}

/// Reads `events.jsonl` on from `progress`. A file that shrank is read again from the start.
pub fn continue_event_totals(loc: &RunLocation, mut progress: EventProgress) -> EventProgress {
    let files = RunFiles::new(&loc.dir);
    let root = loc.root();
    let mut tail = EventTail::resume(files.events(), progress.offset, progress.next_line.max(1))
        .within_root(&root);
    progress.problem = None;
    loop {
        let totals = &mut progress.totals;
        let steps = &mut progress.steps;
        let nonfinite = &mut progress.nonfinite;
        match tail.read_available(EVENT_READ_CHUNK, |e| {
            totals.add(&e);
            steps.observe(&e);
            nonfinite.observe(&e);
        }) {
            Ok(read) => {
                if read.truncated {
                    // The file was replaced: what was counted no longer exists.
                    let mut fresh = EventProgress::default();
                    tail = EventTail::new(files.events()).within_root(&root);
                    let totals = &mut fresh.totals;
                    let steps = &mut fresh.steps;
                    let nonfinite = &mut fresh.nonfinite;
                    let read = match tail.read_available(EVENT_READ_CHUNK, |e| {
                        totals.add(&e);
                        steps.observe(&e);
                        nonfinite.observe(&e);
                    }) {
                        Ok(r) => r,
                        Err(e) => {
                            fresh.problem = Some(e.to_string());
                            progress = fresh;
                            break;
                        }
                    };
                    fresh.corrupt_lines = read.scan.corrupt_count;
                    fresh.pending_tail_bytes = read.pending_tail_bytes;
                    progress = fresh;
                    if read.scan.consumed == 0 {
                        break;
                    }
                    continue;
                }
                progress.corrupt_lines += read.scan.corrupt_count;
                progress.pending_tail_bytes = read.pending_tail_bytes;
                if read.scan.consumed == 0 {
                    break;
                }
            }
            // An unreadable events file leaves the totals where they were, and says why.
            Err(e) => {
                progress.problem = Some(e.to_string());
                break;
            }
        }
    }
    progress.offset = tail.offset();
    progress.next_line = tail.next_line();
    progress
}

/// Puts a run's overview together from its parts, judging liveness now.
pub fn build_overview(
    loc: &RunLocation,
    records: &RunRecords,
    progress: &EventProgress,
    ctx: &LivenessContext,
) -> RunOverview {
    let mut ov = RunOverview {
        id: loc.dir_name.clone(),
        path: loc.run_path.clone(),
        dir: loc.dir.clone(),
        layout: loc.layout,
        alias: None,
        tags: Vec::new(),
        status: RunStatus::Running,
        reason: None,
        created_at: None,
        ended_at: None,
        hostname: None,
        points: progress.totals.points,
        keys: progress.totals.keys.iter().cloned().collect(),
        last_step: progress.totals.last_step,
        last_event_at: progress.totals.last_event_at,
        corrupt_lines: progress.corrupt_lines,
        pending_tail_bytes: progress.pending_tail_bytes,
        deleted: records.deleted.is_some(),
    };
    if let Some(problem) = records.problem.as_ref().or(progress.problem.as_ref()) {
        ov.status = RunStatus::Unreadable;
        ov.reason = Some(problem.clone());
        return ov;
    }
    if let Some(meta) = &records.meta {
        ov.alias = meta.alias.clone().filter(|a| !a.is_empty());
        ov.tags = meta.tags.clone().unwrap_or_default();
        ov.created_at = meta.created_at;
        ov.hostname = meta.hostname.clone();
    }
    let Some(status) = records.status.as_ref() else {
        // Nothing says what state the run is in.
        ov.status = RunStatus::Unknown;
        ov.reason = Some("no status.json: nothing says whether the run is running or ended".into());
        if let Some(marker) = &records.deleted {
            ov.reason = marker.reason.clone().or(ov.reason.take());
        }
        return ov;
    };
    ov.created_at = ov.created_at.or(status.started_at);
    ov.ended_at = status.ended_at;
    if RunStatus::from_name(&status.status).is_none() {
        ov.status = RunStatus::Unknown;
        ov.reason = Some(format!(
            "status.json says {:?}, which is not a known status ({})",
            status.status,
            RunStatus::ALL.map(|s| s.as_str()).join(", ")
        ));
        return ov;
    }
    let written = RunStatus::parse(&status.status);
    let liveness =
        (written == RunStatus::Running).then(|| judge_liveness(status, records.meta.as_ref(), ctx));
    ov.status = written;
    ov.reason = status.exit_reason.clone();
    match liveness {
        Some(Liveness::Crashed(evidence)) => {
            ov.status = RunStatus::Crashed;
            ov.reason = Some(evidence.to_string());
        }
        // Known to be alive (an unjudged run keeps its status), but making no new steps.
        Some(Liveness::Alive) => {
            let config = StallConfig::from_meta(records.meta.as_ref());
            if let Some(stall) = stall_evidence(&progress.steps, &config, ctx.now) {
                ov.status = RunStatus::Stalled;
                ov.reason = Some(stall.to_string());
            }
        }
        Some(Liveness::Unjudged) | None => {}
    }
    if let Some(marker) = &records.deleted {
        ov.reason = ov.reason.or_else(|| marker.reason.clone());
    }
    ov
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn loc(dir: PathBuf) -> RunLocation {
        RunLocation {
            dir,
            run_path: "p".into(),
            dir_name: "r1".into(),
            layout: Layout::Current,
        }
    }

    #[test]
    fn malformed_meta_is_unreadable_with_the_file_named() {
        let t = tempfile::tempdir().unwrap();
        fs::write(t.path().join("meta.json"), "{oops").unwrap();
        let ov = read_run_overview(&loc(t.path().to_owned()), &LivenessContext::here_and_now());
        assert_eq!(ov.status, RunStatus::Unreadable);
        assert!(
            ov.reason.as_deref().unwrap().contains("meta.json"),
            "{:?}",
            ov.reason
        );
    }

    #[test]
    fn totals_and_times() {
        let t = tempfile::tempdir().unwrap();
        fs::write(
            t.path().join("meta.json"),
            r#"{"id":"r1","alias":"a","created_at":5.0}"#,
        )
        .unwrap();
        fs::write(
            t.path().join("status.json"),
            r#"{"status":"finished","started_at":5.1,"ended_at":9.0}"#,
        )
        .unwrap();
        fs::write(
            t.path().join("events.jsonl"),
            "{\"ts\":6,\"type\":\"metrics\",\"data\":{\"a\":1,\"b\":2,\"global_step\":7}}\nbad\n{\"ts\":7,\"type\"",
        )
        .unwrap();
        let ov = read_run_overview(&loc(t.path().to_owned()), &LivenessContext::here_and_now());
        assert_eq!(ov.status, RunStatus::Finished);
        assert_eq!((ov.points, ov.last_step, ov.corrupt_lines), (2, Some(7), 1));
        assert_eq!(ov.keys, vec!["a", "b"]);
        assert_eq!(ov.pending_tail_bytes, 14);
        assert_eq!((ov.created_at, ov.ended_at), (Some(5.0), Some(9.0)));
        assert_eq!(ov.alias.as_deref(), Some("a"));
    }

    #[test]
    fn continuing_from_an_offset_equals_reading_from_scratch() {
        let t = tempfile::tempdir().unwrap();
        let l = loc(t.path().to_owned());
        let line = |s: i64| {
            format!(
                "{{\"type\":\"metrics\",\"data\":{{\"k{}\":1,\"global_step\":{s}}}}}\n",
                s % 3
            )
        };
        let first: String = (1..=5).map(line).collect();
        fs::write(t.path().join("events.jsonl"), &first).unwrap();
        let progress = continue_event_totals(&l, EventProgress::default());
        let more: String = (6..=9).map(line).collect();
        fs::write(t.path().join("events.jsonl"), format!("{first}{more}")).unwrap();
        let resumed = continue_event_totals(&l, progress);
        let scratch = continue_event_totals(&l, EventProgress::default());
        assert_eq!(resumed, scratch);
        assert_eq!(resumed.totals.points, 9);
        // A replaced, shorter file is recounted, not added to.
        fs::write(t.path().join("events.jsonl"), line(1)).unwrap();
        let after_truncation = continue_event_totals(&l, resumed);
        assert_eq!(after_truncation.totals.points, 1);
    }

    fn mkfifo(path: &std::path::Path) {
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    }

    fn good_run(dir: &std::path::Path) {
        fs::write(dir.join("meta.json"), r#"{"id":"r1"}"#).unwrap();
        fs::write(dir.join("status.json"), r#"{"status":"finished"}"#).unwrap();
        fs::write(
            dir.join("events.jsonl"),
            "{\"type\":\"metrics\",\"data\":{\"a\":1}}\n",
        )
        .unwrap();
    }

    #[test]
    fn a_fifo_in_place_of_any_run_file_makes_the_run_unreadable_without_blocking() {
        for name in ["meta.json", "status.json", ".deleted", "events.jsonl"] {
            let t = tempfile::tempdir().unwrap();
            good_run(t.path());
            let _ = fs::remove_file(t.path().join(name));
            mkfifo(&t.path().join(name));
            let started = std::time::Instant::now();
            let ov = read_run_overview(&loc(t.path().to_owned()), &LivenessContext::here_and_now());
            assert!(started.elapsed() < std::time::Duration::from_secs(5));
            assert_eq!(ov.status, RunStatus::Unreadable, "{name}");
            let reason = ov.reason.unwrap();
            assert!(
                reason.contains(&format!("{name} is a FIFO, not a regular file")),
                "{name}: {reason}"
            );
        }
    }

    #[test]
    fn an_events_file_that_is_a_directory_is_unreadable_not_finished() {
        let t = tempfile::tempdir().unwrap();
        good_run(t.path());
        fs::remove_file(t.path().join("events.jsonl")).unwrap();
        fs::create_dir(t.path().join("events.jsonl")).unwrap();
        let ov = read_run_overview(&loc(t.path().to_owned()), &LivenessContext::here_and_now());
        assert_eq!(ov.status, RunStatus::Unreadable);
        assert!(ov.reason.unwrap().contains("events.jsonl is a directory"));
    }

    #[test]
    fn no_status_or_an_unknown_value_is_unknown_with_a_reason() {
        let t = tempfile::tempdir().unwrap();
        fs::write(t.path().join("meta.json"), r#"{"id":"r1"}"#).unwrap();
        let ctx = LivenessContext::here_and_now();
        let ov = read_run_overview(&loc(t.path().to_owned()), &ctx);
        assert_eq!(ov.status, RunStatus::Unknown);
        assert!(ov.reason.unwrap().contains("no status.json"));
        fs::write(t.path().join("status.json"), r#"{"status":"paused"}"#).unwrap();
        let ov = read_run_overview(&loc(t.path().to_owned()), &ctx);
        assert_eq!(ov.status.as_str(), "unknown");
        assert!(ov.reason.unwrap().contains("\"paused\""));
    }

    #[test]
    fn deep_records_are_cut_and_links_out_of_the_root_refused() {
        let t = tempfile::tempdir().unwrap();
        let deep = format!("{}1{}", "[".repeat(126), "]".repeat(126));
        fs::write(
            t.path().join("meta.json"),
            format!(r#"{{"id":"r1","extra":{deep}}}"#),
        )
        .unwrap();
        fs::write(t.path().join("status.json"), r#"{"status":"finished"}"#).unwrap();
        let records = read_run_records(&loc(t.path().to_owned()));
        assert_eq!(records.problem, None);
        let text = serde_json::to_string(&records.meta.unwrap()).unwrap();
        assert!(text.contains("<cut: nested deeper than 64 levels>"));
        // In a real root, a link to a device is a link out of the root.
        let dir = t.path().join("runs/p/r1");
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("status.json"), r#"{"status":"finished"}"#).unwrap();
        std::os::unix::fs::symlink("/dev/zero", dir.join("meta.json")).unwrap();
        let l = loc(dir);
        assert_eq!(l.root(), t.path());
        let ov = read_run_overview(&l, &LivenessContext::here_and_now());
        assert_eq!(ov.status, RunStatus::Unreadable);
        assert!(ov.reason.unwrap().contains("outside the storage root"));
    }

    #[test]
    fn a_live_run_without_new_steps_is_stalled_until_a_new_step_and_crashed_wins() {
        let t = tempfile::tempdir().unwrap();
        let ctx = LivenessContext::here_and_now();
        let me = std::process::id();
        let write_status = |status: &str, pid: u32| {
            let text = serde_json::json!({"status": status, "pid": pid, "host": ctx.hostname});
            fs::write(t.path().join("status.json"), text.to_string()).unwrap();
        };
        let meta = serde_json::json!({"id": "r1", "stall": {"factor": 5, "after_s": 1}});
        fs::write(t.path().join("meta.json"), meta.to_string()).unwrap();
        write_status("running", me);
        let base = ctx.now.floor() - 10.0;
        let step = |s: i64, ts: f64| {
            format!("{{\"ts\":{ts},\"type\":\"metrics\",\"data\":{{\"loss\":1,\"global_step\":{s}}}}}\n")
        };
        let mut events: String = (0..6).map(|i| step(i, base + i as f64 * 0.5)).collect();
        fs::write(t.path().join("events.jsonl"), &events).unwrap();
        let l = loc(t.path().to_owned());
        let ov = read_run_overview(&l, &ctx);
        assert_eq!(ov.status, RunStatus::Stalled, "{:?}", ov.reason);
        let reason = ov.reason.unwrap();
        assert!(reason.starts_with("no new step for "), "{reason}");
        assert!(
            reason.ends_with("(limit 2.5s: 5 × the median step interval 0.5s, floor 1s)"),
            "{reason}"
        );
        // An old step logged again is no new step; a new one clears the verdict.
        events.push_str(&step(3, ctx.now));
        fs::write(t.path().join("events.jsonl"), &events).unwrap();
        assert_eq!(read_run_overview(&l, &ctx).status, RunStatus::Stalled);
        events.push_str(&step(6, ctx.now - 0.1));
        fs::write(t.path().join("events.jsonl"), &events).unwrap();
        assert_eq!(read_run_overview(&l, &ctx).status, RunStatus::Running);
        let later = LivenessContext {
            now: ctx.now + 60.0,
            ..ctx.clone()
        };
        assert_eq!(read_run_overview(&l, &later).status, RunStatus::Stalled);
        // A dead writer is crashed, not stalled; an ended run is neither.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        write_status("running", dead);
        let ov = read_run_overview(&l, &later);
        assert_eq!(ov.status, RunStatus::Crashed);
        assert!(ov.reason.unwrap().contains("is gone"));
        write_status("finished", me);
        assert_eq!(read_run_overview(&l, &later).status, RunStatus::Finished);
    }

    #[test]
    fn without_a_stall_setting_the_floor_is_ten_minutes() {
        let t = tempfile::tempdir().unwrap();
        let ctx = LivenessContext::here_and_now();
        let me = std::process::id();
        fs::write(t.path().join("meta.json"), r#"{"id":"r1"}"#).unwrap();
        let status = serde_json::json!({"status": "running", "pid": me, "host": ctx.hostname});
        fs::write(t.path().join("status.json"), status.to_string()).unwrap();
        let line = format!(
            "{{\"ts\":{},\"type\":\"metrics\",\"data\":{{\"global_step\":1}}}}\n",
            ctx.now - 599.0
        );
        fs::write(t.path().join("events.jsonl"), line).unwrap();
        let l = loc(t.path().to_owned());
        assert_eq!(read_run_overview(&l, &ctx).status, RunStatus::Running);
        let later = LivenessContext {
            now: ctx.now + 2.0,
            ..ctx.clone()
        };
        let ov = read_run_overview(&l, &later);
        assert_eq!(ov.status, RunStatus::Stalled);
        assert!(ov.reason.unwrap().contains("(limit 10m: the floor;"));
    }
}
