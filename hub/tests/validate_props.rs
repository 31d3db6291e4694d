//! Property tests of the hub's answer validation (`sync::validate`), the last gate before the
//! store: generated change, point and log batches mix good items with hostile ones (backslashes,
//! `..`, absolute paths, NUL and other control characters, huge names, empty segments, ragged
//! columns, ranges that run backwards).
//!
//! The properties: validation never panics; whatever it lets through names only paths that pass
//! `check_wire_path` and stay below a root when joined to it, and only columns that line up; and
//! a batch made only of good items is let through whole.
//!
//! (The fuzz targets in `fuzz/` cover the protocol's readers; the hub links too much to be built
//! with the fuzzer's instrumentation, so its validation is covered here.)

// Test code: a failed setup step is a failed test.
#![allow(clippy::unwrap_used)]

use std::path::{Component, Path};

use proptest::prelude::*;
use runicorn_hub::sync::validate;
use runicorn_protocol::wire::{
    check_wire_path, ChangeBatch, Cursor, FileEntry, LogBatch, LogChunk, PointBatch, RunChange,
    RunPoints, Series,
};
use runicorn_store::{RemoteSpec, RunFilter, Store};

// ---- what validation lets through ---------------------------------------------------------------
// Points and log chunks are sorted out item by item by `validate`; a change batch's items by the
// store itself, in the batch's transaction (the hub checks only its cursor). So what reaches the
// store is read back from a real store.

/// The run directories and file paths a real store holds after the batch, or `None` when the
/// batch was refused whole.
fn accepted_runs(batch: &ChangeBatch) -> Option<Vec<(String, Vec<String>)>> {
    validate::change_batch(batch).ok()?;
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    let remote = store
        .upsert_remote(&RemoteSpec {
            name: "gpu".into(),
            address: "gpu".into(),
            transport: serde_json::json!({}),
        })
        .unwrap();
    store.apply_change_batch(remote, batch).unwrap();
    let runs = store
        .list_runs(&RunFilter {
            include_removed: true,
            include_deleted: true,
            ..RunFilter::default()
        })
        .unwrap();
    Some(
        runs.into_iter()
            .map(|r| {
                let files = store.files(r.key).unwrap();
                (r.dir, files.into_iter().map(|f| f.path).collect())
            })
            .collect(),
    )
}

fn accepted_points(batch: &PointBatch) -> Vec<RunPoints> {
    validate::point_batch(batch.clone()).batch.runs
}

fn accepted_logs(batch: &LogBatch) -> Vec<LogChunk> {
    validate::log_batch_items(batch.clone(), true).batch.runs
}

// ---- the invariants ----------------------------------------------------------------------------

const ROOT: &str = "/home/user/.runicorn-hub/remotes/gpu-01";

fn assert_safe_path(path: &str) {
    assert!(
        check_wire_path(path).is_ok(),
        "{path:?} let through but refused by check_wire_path"
    );
    let joined = Path::new(ROOT).join(path);
    assert!(joined.starts_with(ROOT), "{path:?} leaves the root");
    assert!(
        joined
            .components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_))),
        "{path:?} joins to {}",
        joined.display()
    );
    assert!(!path.contains('\\') && !path.contains('\0'), "{path:?}");
}

fn assert_columns_line_up(run: &RunPoints) {
    let rows = run.steps.len();
    assert_eq!(run.times.len(), rows, "times of {:?}", run.dir);
    assert!(run.to >= run.from, "range of {:?} runs backwards", run.dir);
    for series in &run.series {
        match &series.rows {
            None => assert_eq!(series.values.len(), rows, "{:?}", series.key),
            Some(idx) => {
                assert_eq!(idx.len(), series.values.len(), "{:?}", series.key);
                assert!(idx.iter().all(|&i| (i as usize) < rows), "{:?}", series.key);
            }
        }
    }
}

// ---- generators ---------------------------------------------------------------------------------

/// A path the protocol allows: 1 to 5 plain segments.
fn good_path() -> BoxedStrategy<String> {
    prop::collection::vec("[A-Za-z0-9_-][A-Za-z0-9_.-]{0,11}", 1..=5)
        .prop_map(|s| s.join("/"))
        .boxed()
}

/// A path a broken or hostile agent might send.
fn hostile_path() -> BoxedStrategy<String> {
    prop_oneof![
        good_path().prop_map(|p| format!("{p}\\x.txt")),
        good_path().prop_map(|p| format!("{p}/../../../etc/passwd")),
        good_path().prop_map(|p| format!("../{p}")),
        Just("..".to_owned()),
        good_path().prop_map(|p| format!("/{p}")),
        good_path().prop_map(|p| format!("{p}\0.png")),
        good_path().prop_map(|p| format!("{p}//x")),
        good_path().prop_map(|p| format!("{p}/./x")),
        good_path().prop_map(|p| format!("{p}/")),
        Just(String::new()),
        Just(".".to_owned()),
        good_path().prop_map(|p| format!("{p}/\u{1b}]0;owned\u{7}")),
        good_path().prop_map(|p| format!("{p}\r\n\t\u{7f}")),
        (5000usize..9000).prop_map(|n| "a".repeat(n)),
        (1100usize..2100).prop_map(|n| "ab/".repeat(n) + "c"),
        "\\PC{0,40}",
        "[./\\\\\\x00-\\x1f a]{0,24}",
    ]
    .boxed()
}

/// Good or hostile, mostly good.
fn any_path() -> BoxedStrategy<String> {
    prop_oneof![3 => good_path(), 2 => hostile_path()].boxed()
}

fn run_change(dir: String, files: Vec<String>) -> RunChange {
    RunChange {
        dir,
        seq: 1,
        id: "20261126_122856_0e66f9".into(),
        path: "cv/resnet".into(),
        layout: "current".into(),
        status: "finished".into(),
        created_at: Some(1.0),
        files: files
            .into_iter()
            .map(|path| FileEntry {
                path,
                size: 1,
                mtime: 1.0,
                sha256: None,
            })
            .collect(),
        ..RunChange::default()
    }
}

fn change_batch_of(path: BoxedStrategy<String>) -> impl Strategy<Value = ChangeBatch> {
    let run = (path.clone(), prop::collection::vec(path.clone(), 0..6))
        .prop_map(|(dir, files)| run_change(dir, files));
    (
        prop::collection::vec(run, 0..6),
        prop::collection::vec(path, 0..3),
    )
        .prop_map(|(runs, removed)| ChangeBatch {
            reset: false,
            runs,
            removed,
            cursor: Cursor {
                epoch: "e".into(),
                seq: 1,
            },
            more: false,
            skipped: vec![],
            skipped_listed: false,
            artifacts: vec![],
            removed_artifacts: vec![],
        })
}

/// Lengths that line up, or (when `ragged`) may not.
fn run_points_of(
    path: impl Strategy<Value = String>,
    ragged: bool,
) -> impl Strategy<Value = RunPoints> {
    let skew = if ragged { -2i64..=2 } else { 0i64..=0 };
    (
        path,
        0usize..8,
        skew.clone(),
        prop::collection::vec((skew, any::<bool>(), 0u32..12), 0..4),
        0u64..1000,
        if ragged { -5i64..50 } else { 0i64..50 },
    )
        .prop_map(move |(dir, rows, time_skew, series, from, span)| {
            let len = |skew: i64| (rows as i64 + skew).max(0) as usize;
            RunPoints {
                dir,
                from,
                to: (from as i64 + span).max(0) as u64,
                next_line: 1,
                steps: (0..rows as i64).collect(),
                times: vec![1.5; len(time_skew)],
                series: series
                    .into_iter()
                    .enumerate()
                    .map(|(k, (skew, sparse, bound))| {
                        let bound = if ragged { bound as usize } else { rows };
                        Series {
                            key: format!("k{k}"),
                            rows: (sparse && rows > 0).then(|| {
                                (0..len(skew)).map(|i| (i % bound.max(1)) as u32).collect()
                            }),
                            values: vec![f64::NAN; len(skew)],
                        }
                    })
                    .collect(),
                ..RunPoints::default()
            }
        })
}

fn log_chunk_of(
    path: impl Strategy<Value = String>,
    backwards: bool,
) -> impl Strategy<Value = LogChunk> {
    (
        path,
        0u64..1000,
        if backwards { -20i64..100 } else { 0i64..100 },
    )
        .prop_map(|(dir, from, span)| LogChunk {
            dir,
            from,
            to: (from as i64 + span).max(0) as u64,
            bytes: vec![b'x'; span.max(0) as usize],
            truncated: false,
            eof: true,
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn change_batches_store_only_safe_paths(batch in change_batch_of(any_path())) {
        let runs = accepted_runs(&batch).expect("a usable cursor: the batch is never refused whole");
        for (dir, files) in &runs {
            assert_safe_path(dir);
            files.iter().for_each(|f| assert_safe_path(f));
        }
        // Every run whose directory is good is stored, with its good files.
        let mut good: Vec<&str> = batch
            .runs
            .iter()
            .map(|r| r.dir.as_str())
            .filter(|d| check_wire_path(d).is_ok())
            .collect();
        good.sort_unstable();
        good.dedup();
        prop_assert_eq!(runs.len(), good.len());
    }

    #[test]
    fn good_change_batches_are_stored_whole(batch in change_batch_of(good_path())) {
        let runs = accepted_runs(&batch).unwrap();
        let mut dirs: Vec<&str> = batch.runs.iter().map(|r| r.dir.as_str()).collect();
        dirs.sort_unstable();
        dirs.dedup();
        prop_assert_eq!(runs.len(), dirs.len());
        // A directory named twice holds what its last change says.
        let mut seen = std::collections::HashSet::new();
        for run in batch.runs.iter().rev().filter(|r| seen.insert(r.dir.as_str())) {
            let (_, files) = runs.iter().find(|(d, _)| d == &run.dir).unwrap();
            for f in &run.files {
                prop_assert!(files.contains(&f.path), "{} of {}", f.path, run.dir);
            }
        }
    }

    #[test]
    fn point_batches_let_through_only_safe_paths_and_aligned_columns(
        runs in prop::collection::vec(
            prop_oneof![run_points_of(good_path(), false), run_points_of(any_path(), true)],
            0..6,
        )
    ) {
        let batch = PointBatch { runs };
        for run in accepted_points(&batch) {
            assert_safe_path(&run.dir);
            assert_columns_line_up(&run);
        }
    }

    #[test]
    fn good_point_batches_are_let_through_whole(
        runs in prop::collection::vec(run_points_of(good_path(), false), 0..6)
    ) {
        let batch = PointBatch { runs };
        prop_assert_eq!(accepted_points(&batch).len(), batch.runs.len());
    }

    #[test]
    fn log_batches_let_through_only_safe_paths_and_forward_ranges(
        runs in prop::collection::vec(
            prop_oneof![log_chunk_of(good_path(), false), log_chunk_of(any_path(), true)],
            0..6,
        )
    ) {
        let batch = LogBatch { runs };
        for chunk in accepted_logs(&batch) {
            assert_safe_path(&chunk.dir);
            prop_assert!(chunk.to >= chunk.from);
        }
        let good = LogBatch {
            runs: batch.runs.iter().filter(|c| check_wire_path(&c.dir).is_ok() && c.to >= c.from).cloned().collect(),
        };
        prop_assert_eq!(accepted_logs(&good).len(), good.runs.len());
    }
}
