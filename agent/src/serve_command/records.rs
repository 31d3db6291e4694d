//! Fitting one run into a frame: when a run's `RunChange` alone is larger than the hub's frame
//! limit, its largest record values are replaced by `{"_runicorn_truncated": <bytes>}` (as
//! `messages.rs` documents), then, for a run with a huge number of files, its file list is cut.

use runicorn_protocol::wire::RunChange;
use serde_json::Value;

use super::sizing::json_len;
use crate::run_index::records::truncated;

/// Makes one run's JSON fit in `budget` bytes: its largest record values are replaced by
/// truncation markers, then (a run with a huge number of files) its file list is cut. Returns
/// what had to be done, for a message on stderr.
pub fn shrink_to_fit(run: &mut RunChange, budget: usize) -> Vec<String> {
    let mut done = Vec::new();
    while json_len(run) > budget {
        let slots: [(&str, &mut Option<Value>); 5] = [
            ("meta", &mut run.meta),
            ("status", &mut run.status_record),
            ("summary", &mut run.summary),
            ("config", &mut run.config),
            ("environment", &mut run.environment),
        ];
        let largest = slots
            .into_iter()
            .filter_map(|(name, slot)| {
                let len = slot.as_ref().map(json_len)?;
                (len > json_len(&truncated(len as u64))).then_some((len, name, slot))
            })
            .max_by_key(|(len, _, _)| *len);
        match largest {
            Some((len, name, slot)) => {
                *slot = Some(truncated(len as u64));
                done.push(format!("{name} ({len} bytes) truncated"));
            }
            None => break,
        }
    }
    let mut cut = 0;
    while json_len(run) > budget && !run.files.is_empty() {
        let drop = (run.files.len() / 2).max(1);
        run.files.truncate(run.files.len() - drop);
        cut += drop;
    }
    if cut > 0 {
        done.push(format!("{cut} entries of its file list left out"));
    }
    done
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run_index::records::TRUNCATED_KEY;
    use runicorn_protocol::wire::{EventsState, FileEntry};
    use serde_json::json;

    fn run() -> RunChange {
        RunChange {
            dir: "runs/p/a".into(),
            seq: 1,
            id: "a".into(),
            path: "p".into(),
            layout: "current".into(),
            alias: None,
            tags: vec![],
            status: "finished".into(),
            reason: None,
            created_at: None,
            ended_at: None,
            hostname: None,
            deleted: false,
            meta: None,
            status_record: None,
            summary: None,
            config: None,
            environment: None,
            events: EventsState::default(),
            log_bytes: 0,
            files: vec![],
            skipped_files: vec![],
            skipped_files_total: 0,
        }
    }

    #[test]
    fn the_largest_values_give_way_first() {
        let mut r = run();
        r.environment = Some(json!({"pip": "x".repeat(50_000)}));
        r.summary = Some(json!({"loss": 1}));
        r.files = (0..10)
            .map(|i| FileEntry {
                path: format!("media/{i}.png"),
                size: 1,
                mtime: 0.0,
                sha256: None,
            })
            .collect();
        let done = shrink_to_fit(&mut r, 5_000);
        assert_eq!(r.environment, Some(json!({TRUNCATED_KEY: 50_010})));
        assert_eq!(r.summary, Some(json!({"loss": 1})));
        assert_eq!(r.files.len(), 10);
        assert_eq!(done.len(), 1);
        assert!(json_len(&r) <= 5_000);
        shrink_to_fit(&mut r, 600);
        assert!(json_len(&r) <= 600 && r.files.len() < 10);
    }
}
