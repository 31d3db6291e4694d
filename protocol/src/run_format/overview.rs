//! One run read whole for listings: identity, status (with liveness), times and metric totals.
//!
//! Reading one run never fails: whatever cannot be read makes the run `unreadable` with a reason,
//! so one bad run never hides the others.

use std::path::PathBuf;

use super::discovery::{Layout, RunLocation};
use super::events::{EventTail, MetricTotals};
use super::json_file::{read_json, read_json_if_exists};
use super::liveness::{effective_status, LivenessContext};
use super::names::{check_run_id, check_run_path_for_read};
use super::records::{DeletedMarker, Meta, RunStatus, StatusRecord};
use super::RunFiles;

/// How much of `events.jsonl` a listing reads per step.
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
    /// Why the run is `unreadable`, or why it was judged `crashed`.
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

/// Reads one run for a listing.
pub fn read_run_overview(loc: &RunLocation, ctx: &LivenessContext) -> RunOverview {
    let files = RunFiles::new(&loc.dir);
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
        points: 0,
        keys: Vec::new(),
        last_step: None,
        last_event_at: None,
        corrupt_lines: 0,
        pending_tail_bytes: 0,
        deleted: files.deleted_marker().exists(),
    };
    if let Err(e) = check_run_id(&loc.dir_name).and_then(|_| check_run_path_for_read(&loc.run_path))
    {
        return ov.unreadable(e.to_string());
    }
    let meta: Option<Meta> = match read_json_if_exists(&files.meta()) {
        Ok(m) => m,
        Err(e) => return ov.unreadable(e.to_string()),
    };
    let status: Option<StatusRecord> = match read_json_if_exists(&files.status()) {
        Ok(s) => s,
        Err(e) => return ov.unreadable(e.to_string()),
    };
    if let Some(meta) = &meta {
        ov.alias = meta.alias.clone().filter(|a| !a.is_empty());
        ov.tags = meta.tags.clone().unwrap_or_default();
        ov.created_at = meta.created_at;
        ov.hostname = meta.hostname.clone();
    }
    let status = status.unwrap_or_default();
    ov.created_at = ov.created_at.or(status.started_at);
    ov.ended_at = status.ended_at;
    let (effective, evidence) = effective_status(&status, meta.as_ref(), ctx);
    ov.status = effective;
    ov.reason = evidence
        .map(|e| e.to_string())
        .or_else(|| status.exit_reason.clone());
    if ov.deleted {
        if let Ok(marker) = read_json::<DeletedMarker>(&files.deleted_marker()) {
            ov.reason = ov.reason.or(marker.reason);
        }
    }

    let mut totals = MetricTotals::default();
    let mut tail = EventTail::new(files.events());
    loop {
        match tail.read_available(EVENT_READ_CHUNK, |e| totals.add(&e)) {
            Ok(read) => {
                ov.corrupt_lines += read.scan.corrupt_count;
                ov.pending_tail_bytes = read.pending_tail_bytes;
                if read.scan.consumed == 0 {
                    break;
                }
            }
            Err(e) => return ov.unreadable(format!("{}: cannot read: {e}", tail.path().display())),
        }
    }
    ov.points = totals.points;
    ov.keys = totals.keys.into_iter().collect();
    ov.last_step = totals.last_step;
    ov.last_event_at = totals.last_event_at;
    ov
}

impl RunOverview {
    fn unreadable(mut self, reason: String) -> RunOverview {
        self.status = RunStatus::Unreadable;
        self.reason = Some(reason);
        self
    }
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
}
