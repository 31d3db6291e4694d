//! Fitting one run into a frame: when a run's `RunChange` alone is larger than the hub's frame
//! limit, its largest record values are replaced by `{"_runicorn_truncated": <bytes>}` (as
//! `messages.rs` documents), then, for a run with a huge number of files, its file list is cut,
//! and as a last resort its free-text fields are shortened and its key and tag lists cut: an
//! answer always goes out.

use runicorn_protocol::wire::{ArtifactChange, RunChange};
use serde_json::Value;

use super::sizing::json_len;
use crate::run_index::records::truncated;

/// Makes one run's JSON fit in `budget` bytes: its largest record values are replaced by
/// truncation markers, then (a run with a huge number of files) its file list is cut. Returns
/// what had to be done, for a message on stderr.
pub fn shrink_to_fit(run: &mut RunChange, budget: usize) -> Vec<String> {
    let mut done = Vec::new();
    while json_len(run) > budget {
        let slots: [(&str, &mut Option<Value>); 6] = [
            ("meta", &mut run.meta),
            ("status", &mut run.status_record),
            ("summary", &mut run.summary),
            ("config", &mut run.config),
            ("environment", &mut run.environment),
            ("assets", &mut run.assets),
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
    if json_len(run) > budget {
        shrink_head(run, budget, &mut done);
    }
    done
}

/// Makes one artifact's JSON fit in `budget` bytes: the metadata of its versions is replaced
/// by truncation markers (largest first), then the file lists of its oldest versions are left
/// out, and `problem` says so. Returns what had to be done, for a message on stderr.
pub fn shrink_artifact_to_fit(a: &mut ArtifactChange, budget: usize) -> Vec<String> {
    let mut done = Vec::new();
    let mut sizes: Vec<(usize, usize)> = a
        .versions
        .iter()
        .enumerate()
        .filter_map(|(i, v)| v.metadata.as_ref().map(|m| (json_len(m), i)))
        .collect();
    sizes.sort_unstable_by(|x, y| y.cmp(x));
    for (len, i) in sizes {
        if json_len(a) <= budget {
            break;
        }
        if len > json_len(&truncated(len as u64)) {
            a.versions[i].metadata = Some(truncated(len as u64));
            done.push(format!(
                "metadata of v{} ({len} bytes) truncated",
                a.versions[i].version
            ));
        }
    }
    let mut cut = 0;
    for i in 0..a.versions.len() {
        if json_len(a) <= budget {
            break;
        }
        let v = &mut a.versions[i];
        if !v.files.is_empty() || !v.references.is_empty() || !v.used_by.is_empty() {
            v.files.clear();
            v.references.clear();
            v.used_by.clear();
            cut += 1;
        }
    }
    if cut > 0 {
        let note = format!(
            "the file lists of its {cut} oldest versions were left out: too large for one frame"
        );
        a.problem = Some(match a.problem.take() {
            Some(p) => format!("{p}; {note}"),
            None => note,
        });
        done.push(format!("the file lists of {cut} versions left out"));
    }
    done
}

/// Longest text kept of a free-text field of a run (alias, hostname, reason) when the run does
/// not fit in a frame otherwise.
const MAX_TEXT_WHEN_SHRUNK: usize = 1024;

/// The last resort for a run that still does not fit: its free-text fields are shortened, then
/// its skipped entries, tags and metric key names are cut from the end.
fn shrink_head(run: &mut RunChange, budget: usize, done: &mut Vec<String>) {
    for (name, text) in [
        ("alias", run.alias.as_mut()),
        ("hostname", run.hostname.as_mut()),
        ("reason", run.reason.as_mut()),
    ] {
        if let Some(text) = text.filter(|t| t.len() > MAX_TEXT_WHEN_SHRUNK) {
            let mut end = MAX_TEXT_WHEN_SHRUNK;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            done.push(format!("{name} of {} bytes shortened", text.len()));
            text.truncate(end);
            text.push('…');
        }
    }
    if json_len(run) > budget && !run.skipped_files.is_empty() {
        run.skipped_files.clear();
        done.push("its list of skipped files left out".into());
    }
    let mut keys_cut = 0;
    while json_len(run) > budget && !run.events.keys.is_empty() {
        let drop = (run.events.keys.len() / 2).max(1);
        run.events.keys.truncate(run.events.keys.len() - drop);
        keys_cut += drop;
    }
    if keys_cut > 0 {
        done.push(format!("{keys_cut} metric names left out of its key list"));
    }
    let mut tags_cut = 0;
    while json_len(run) > budget && !run.tags.is_empty() {
        let drop = (run.tags.len() / 2).max(1);
        run.tags.truncate(run.tags.len() - drop);
        tags_cut += drop;
    }
    if tags_cut > 0 {
        done.push(format!("{tags_cut} tags left out"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run_index::records::TRUNCATED_KEY;
    use runicorn_protocol::wire::{EventsState, FileEntry};
    use serde_json::json;

    fn big_artifact() -> ArtifactChange {
        use runicorn_protocol::wire::{ArtifactFileState, ArtifactVersionState, StoredAs};
        ArtifactChange {
            dir: "artifacts/model/m".into(),
            seq: 1,
            kind: "model".into(),
            name: "m".into(),
            versions: (1..=4)
                .map(|v| ArtifactVersionState {
                    version: v,
                    metadata: Some(json!({"notes": "x".repeat(2000 * v as usize)})),
                    files: (0..100)
                        .map(|i| ArtifactFileState {
                            path: format!("shard-{i:04}.bin"),
                            size: i,
                            sha256: "a".repeat(64),
                            stored: StoredAs::Whole,
                        })
                        .collect(),
                    ..ArtifactVersionState::default()
                })
                .collect(),
            ..ArtifactChange::default()
        }
    }

    #[test]
    fn an_artifact_too_large_loses_metadata_first_then_its_oldest_file_lists() {
        let full = json_len(&big_artifact());
        let mut a = big_artifact();
        let metadata_bytes: usize = 2000 * (1 + 2 + 3 + 4);
        let done = shrink_artifact_to_fit(&mut a, full - metadata_bytes / 2);
        assert!(json_len(&a) <= full - metadata_bytes / 2);
        assert!(done.iter().all(|d| d.starts_with("metadata")), "{done:?}");
        assert!(a.versions[3]
            .metadata
            .as_ref()
            .unwrap()
            .get(TRUNCATED_KEY)
            .is_some());
        assert!(a.versions.iter().all(|v| v.files.len() == 100));
        assert_eq!(a.problem, None);

        let mut a = big_artifact();
        let done = shrink_artifact_to_fit(&mut a, 20_000);
        assert!(json_len(&a) <= 20_000, "{}", json_len(&a));
        assert!(a.versions[0].files.is_empty() && a.versions[3].files.len() == 100);
        assert!(
            a.problem.as_deref().unwrap().contains("left out"),
            "{done:?}"
        );
        assert_eq!(a.versions.len(), 4, "every version is still named");
    }

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
            assets: None,
            events: EventsState::default(),
            log_bytes: 0,
            files: vec![],
            skipped_files: vec![],
            skipped_files_total: 0,
            alerts: Vec::new(),
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

    #[test]
    fn a_run_whose_head_alone_is_too_large_is_shortened_not_refused() {
        let mut r = run();
        r.alias = Some("é".repeat(100_000));
        r.events.keys = (0..20_000).map(|i| format!("metric/{i}")).collect();
        r.tags = (0..1000).map(|i| format!("tag{i}")).collect();
        let done = shrink_to_fit(&mut r, 8_000);
        assert!(json_len(&r) <= 8_000, "{}", json_len(&r));
        assert!(r.alias.as_ref().unwrap().ends_with('…'));
        assert!(r.events.keys.len() < 20_000);
        assert!(done.iter().any(|d| d.contains("alias")), "{done:?}");
    }
}
