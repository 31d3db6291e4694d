//! Importing runs from offline bundles. A bundle's runs reach the store as the change batches a
//! real agent serving the landed bundle sends (so an imported run is stored exactly as a synced
//! one), applied here as a *merge*: the remote's cursor, its full-listing state and its other
//! runs are left alone, nothing is marked removed, and each run is judged against the store's
//! copy first ([`ImportVerdict`]): a copy further along than the bundle's is kept. Files the
//! bundle lists without their bytes join the run's manifest (`add_listed_files`). The whole
//! import runs inside one [`Store::begin_atomic`] step (the hub's importer opens it).

use rusqlite::{params, OptionalExtension};

use runicorn_protocol::wire::{check_wire_path, ChangeBatch, FileEntry, RunChange};

use crate::changes::{apply_merge, ChangeOutcome};
use crate::error::{SqliteContext, StoreError};
use crate::file_cache::is_sha256_hex;
use crate::ids::RemoteId;
use crate::store::Store;

/// What an import does to one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportVerdict {
    /// The store did not have it.
    New,
    /// The bundle's copy is further along or different: stored.
    Updated,
    /// The store holds this state already.
    Unchanged,
    /// The store's copy is further along (more points or log bytes): kept.
    Older,
}

/// One run of an imported batch and its verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportedRunState {
    pub dir: String,
    pub run_id: String,
    pub path: String,
    pub status: String,
    pub verdict: ImportVerdict,
}

/// The hub annotations of one run as a bundle carries them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BundleAnnotations {
    pub alias: Option<String>,
    pub tags: Vec<String>,
    pub notes: Option<String>,
    /// In the exporting hub's recycle bin.
    pub deleted: bool,
}

/// The stored state an import compares a run with.
struct StoredState {
    events_bytes: i64,
    log_bytes: i64,
    status: String,
    records: (
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
    ),
    file_count: i64,
}

fn judge(stored: Option<&StoredState>, run: &RunChange) -> ImportVerdict {
    let Some(s) = stored else {
        return ImportVerdict::New;
    };
    let events = i64::try_from(run.events.bytes).unwrap_or(i64::MAX);
    let log = i64::try_from(run.log_bytes).unwrap_or(i64::MAX);
    if events < s.events_bytes || log < s.log_bytes {
        return ImportVerdict::Older;
    }
    let records = (
        run.meta.as_ref().map(|v| v.to_string()),
        run.status_record.as_ref().map(|v| v.to_string()),
        run.summary.as_ref().map(|v| v.to_string()),
        run.environment.as_ref().map(|v| v.to_string()),
    );
    let same = events == s.events_bytes
        && log == s.log_bytes
        && run.status == s.status
        && records == s.records
        && i64::try_from(run.files.len()).unwrap_or(i64::MAX) <= s.file_count;
    if same {
        ImportVerdict::Unchanged
    } else {
        ImportVerdict::Updated
    }
}

impl Store {
    /// Judges every run of `batch` against the store and stores the new and updated ones (with
    /// their manifests and artifacts) as a merge: see the module doc. Returns what was stored and
    /// each run's verdict, in the batch's order.
    pub fn apply_import_batch(
        &mut self,
        remote: RemoteId,
        batch: &ChangeBatch,
    ) -> Result<(ChangeOutcome, Vec<ImportedRunState>), StoreError> {
        let p = self.db_path.clone();
        let mut verdicts = Vec::with_capacity(batch.runs.len());
        {
            let mut stmt = self
                .conn
                .prepare_cached(
                    "SELECT events_bytes, log_bytes, status, meta, status_record, summary,
                        environment, (SELECT count(*) FROM files f WHERE f.run = runs.id)
                     FROM runs WHERE remote = ?1 AND dir = ?2",
                )
                .at(&p)?;
            for run in &batch.runs {
                let stored = stmt
                    .query_row(params![remote.0, run.dir], |r| {
                        Ok(StoredState {
                            events_bytes: r.get(0)?,
                            log_bytes: r.get(1)?,
                            status: r.get(2)?,
                            records: (r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?),
                            file_count: r.get(7)?,
                        })
                    })
                    .optional()
                    .at(&p)?;
                verdicts.push(ImportedRunState {
                    dir: run.dir.clone(),
                    run_id: run.id.clone(),
                    path: run.path.clone(),
                    status: run.status.clone(),
                    verdict: judge(stored.as_ref(), run),
                });
            }
        }
        let take: Vec<bool> = verdicts
            .iter()
            .map(|v| matches!(v.verdict, ImportVerdict::New | ImportVerdict::Updated))
            .collect();
        let outcome = apply_merge(self, remote, batch, &take)?;
        Ok((outcome, verdicts))
    }

    /// Records that the file cache holds the bytes of these files of `remote`'s run `dir`
    /// (path, SHA-256), where its manifest names that same content. Returns how many.
    pub fn mark_files_cached(
        &mut self,
        remote: RemoteId,
        dir: &str,
        files: &[(String, String)],
    ) -> Result<u64, StoreError> {
        let p = self.db_path.clone();
        let tx = self.write_tx().at(&p)?;
        let mut marked = 0;
        {
            let mut update = tx
                .prepare_cached(
                    "UPDATE files SET cached_sha256 = ?4
                     WHERE run = (SELECT id FROM runs WHERE remote = ?1 AND dir = ?2)
                       AND path = ?3 AND sha256 = ?4",
                )
                .at(&p)?;
            for (path, sha) in files {
                marked += update.execute(params![remote.0, dir, path, sha]).at(&p)? as u64;
            }
        }
        tx.commit().at(&p)?;
        Ok(marked)
    }

    /// Gives `remote`'s run `dir` the hub annotations a bundle carries (a hub's export), where
    /// this hub has none of its own: the user's edits here always win. `deleted` puts the run
    /// in the recycle bin unless it is there. Returns whether the run exists.
    pub fn adopt_annotations(
        &mut self,
        remote: RemoteId,
        dir: &str,
        annotations: &BundleAnnotations,
    ) -> Result<bool, StoreError> {
        let tags = (!annotations.tags.is_empty())
            .then(|| serde_json::Value::from(annotations.tags.clone()).to_string());
        let trashed = annotations.deleted.then(crate::sql::unix_now);
        let p = self.db_path.clone();
        let tx = self.write_tx().at(&p)?;
        let n = tx
            .execute(
                "UPDATE runs SET user_alias = coalesce(user_alias, ?3),
                    user_tags = coalesce(user_tags, ?4), notes = coalesce(notes, ?5),
                    trashed_at = coalesce(trashed_at, ?6)
                 WHERE remote = ?1 AND dir = ?2",
                params![
                    remote.0,
                    dir,
                    annotations.alias,
                    tags,
                    annotations.notes,
                    trashed
                ],
            )
            .at(&p)?;
        tx.commit().at(&p)?;
        Ok(n > 0)
    }

    /// Adds to the manifest of `remote`'s run `dir` the files a bundle lists without carrying
    /// their bytes (its server still has them), leaving entries already there as they are.
    /// Entries whose path or hash breaks the rules are left out. Returns how many were added.
    pub fn add_listed_files(
        &mut self,
        remote: RemoteId,
        dir: &str,
        files: &[FileEntry],
    ) -> Result<u64, StoreError> {
        let p = self.db_path.clone();
        let tx = self.write_tx().at(&p)?;
        let run: Option<i64> = tx
            .query_row(
                "SELECT id FROM runs WHERE remote = ?1 AND dir = ?2",
                params![remote.0, dir],
                |r| r.get(0),
            )
            .optional()
            .at(&p)?;
        let Some(run) = run else {
            return Ok(0);
        };
        let mut added = 0;
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO files(run, path, size, mtime, sha256) VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT(run, path) DO NOTHING",
                )
                .at(&p)?;
            for f in files {
                let sha_ok = f.sha256.as_deref().is_none_or(is_sha256_hex);
                if check_wire_path(&f.path).is_err() || !sha_ok {
                    continue;
                }
                added += insert
                    .execute(params![
                        run,
                        f.path,
                        i64::try_from(f.size).unwrap_or(i64::MAX),
                        f.mtime,
                        f.sha256
                    ])
                    .at(&p)? as u64;
            }
        }
        tx.commit().at(&p)?;
        Ok(added)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{
        add_remote, change_batch, dump, file_entry, fresh_store, point_batch, run_change,
    };

    #[test]
    fn an_import_merges_without_touching_the_cursor_or_other_runs() {
        let (_tmp, mut store) = fresh_store();
        let gpu = add_remote(&mut store, "gpu");
        // A live sync stored run a (a listing that closed) at cursor e1/5.
        store
            .apply_change_batch(
                gpu,
                &change_batch(true, vec![run_change("runs/a", 1, 20)], "e1", 5, false),
            )
            .unwrap();
        let cursor = store.cursor(gpu).unwrap();
        // The bundle holds b (new), a at the same state (unchanged).
        let batch = change_batch(
            true,
            vec![run_change("runs/a", 1, 20), run_change("runs/b", 1, 30)],
            "tmp",
            2,
            false,
        );
        let (outcome, verdicts) = store.apply_import_batch(gpu, &batch).unwrap();
        assert_eq!(outcome.runs, 1);
        assert_eq!(outcome.removed, 0);
        let v: Vec<_> = verdicts
            .iter()
            .map(|v| (v.dir.as_str(), v.verdict))
            .collect();
        assert_eq!(
            v,
            [
                ("runs/a", ImportVerdict::Unchanged),
                ("runs/b", ImportVerdict::New)
            ]
        );
        assert_eq!(
            store.cursor(gpu).unwrap(),
            cursor,
            "the live cursor is the agent's, not the bundle's"
        );
        // Twice = once.
        let before = dump(&store);
        let (_, again) = store.apply_import_batch(gpu, &batch).unwrap();
        assert!(
            again.iter().all(|v| v.verdict == ImportVerdict::Unchanged),
            "{again:?}"
        );
        assert_eq!(dump(&store), before);
    }

    #[test]
    fn a_further_copy_is_kept_and_a_further_bundle_updates() {
        let (_tmp, mut store) = fresh_store();
        let gpu = add_remote(&mut store, "gpu");
        let batch =
            |bytes| change_batch(false, vec![run_change("runs/a", 1, bytes)], "tmp", 1, false);
        store.apply_import_batch(gpu, &batch(100)).unwrap();
        let (_, older) = store.apply_import_batch(gpu, &batch(50)).unwrap();
        assert_eq!(older[0].verdict, ImportVerdict::Older);
        let (outcome, newer) = store.apply_import_batch(gpu, &batch(150)).unwrap();
        assert_eq!(
            (newer[0].verdict, outcome.runs),
            (ImportVerdict::Updated, 1)
        );
    }

    #[test]
    fn an_atomic_step_rolled_back_leaves_every_row_as_it_was() {
        let (_tmp, mut store) = fresh_store();
        let gpu = add_remote(&mut store, "gpu");
        store
            .apply_change_batch(
                gpu,
                &change_batch(true, vec![run_change("runs/a", 1, 20)], "e1", 1, false),
            )
            .unwrap();
        let before = dump(&store);
        store.begin_atomic().unwrap();
        let batch = change_batch(false, vec![run_change("runs/b", 1, 30)], "tmp", 1, false);
        store.apply_import_batch(gpu, &batch).unwrap();
        store
            .ingest_points(gpu, &point_batch("runs/b", 0, 30, 0..3))
            .unwrap();
        store
            .add_listed_files(
                gpu,
                "runs/b",
                &[file_entry("ckpt.pt", 9, Some(&"ab".repeat(32)))],
            )
            .unwrap();
        assert_ne!(dump(&store), before, "the step sees its own writes");
        store.rollback_atomic().unwrap();
        assert_eq!(dump(&store), before);
        // And committed, it lands whole.
        store.begin_atomic().unwrap();
        store.apply_import_batch(gpu, &batch).unwrap();
        store
            .ingest_points(gpu, &point_batch("runs/b", 0, 30, 0..3))
            .unwrap();
        store.commit_atomic().unwrap();
        assert!(dump(&store).contains("runs/b"));
    }

    #[test]
    fn listed_files_join_the_manifest_once_and_bad_ones_are_left_out() {
        let (_tmp, mut store) = fresh_store();
        let gpu = add_remote(&mut store, "gpu");
        store
            .apply_import_batch(
                gpu,
                &change_batch(false, vec![run_change("runs/a", 1, 20)], "t", 1, false),
            )
            .unwrap();
        let sha = "cd".repeat(32);
        let files = [
            file_entry("ckpt.pt", 9, Some(&sha)),
            file_entry("../escape", 1, None),
            file_entry("bad.bin", 1, Some("nothex")),
        ];
        assert_eq!(store.add_listed_files(gpu, "runs/a", &files).unwrap(), 1);
        let notes = BundleAnnotations {
            alias: Some("best".into()),
            tags: vec!["x".into()],
            notes: Some("from the lab".into()),
            deleted: true,
        };
        assert!(store.adopt_annotations(gpu, "runs/a", &notes).unwrap());
        assert!(!store.adopt_annotations(gpu, "runs/zz", &notes).unwrap());
        assert_eq!(store.add_listed_files(gpu, "runs/a", &files).unwrap(), 0);
        assert_eq!(
            store
                .mark_files_cached(gpu, "runs/a", &[("ckpt.pt".into(), sha.clone())])
                .unwrap(),
            1
        );
        assert_eq!(
            store
                .mark_files_cached(gpu, "runs/a", &[("ckpt.pt".into(), "ef".repeat(32))])
                .unwrap(),
            0
        );
    }
}
