//! Deleting runs for good from the hub's recycle bin, one run or all of them. Only a run in
//! the recycle bin can be purged, so a deletion always takes two steps. Nothing on the run's
//! server is touched: the hub remembers the purged run (`purged_runs`, by remote and
//! directory) and the sync leaves it out from then on, so it does not come back with the next
//! change of its server. The cached contents of its files that no other run's manifest names
//! are removed from the file cache (a content someone is reading stays until `cache gc`).

use rusqlite::{params, Connection, OptionalExtension};

use crate::error::{SqliteContext, StoreError};
use crate::ids::RunKey;
use crate::sql::unix_now;
use crate::store::Store;

/// What a purge did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PurgeReport {
    /// Runs deleted for good.
    pub runs: u64,
    /// File contents removed from the cache (no other run's manifest named them).
    pub cached_files_removed: u64,
}

/// Why a run cannot be purged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PurgeRefusal {
    /// No run has that key.
    NoRun,
    /// The run is not in the recycle bin: it must be deleted (moved there) first.
    NotInRecycleBin,
}

impl Store {
    /// Deletes one run of the recycle bin for good (see the module doc).
    pub fn purge_run(
        &mut self,
        run: RunKey,
    ) -> Result<Result<PurgeReport, PurgeRefusal>, StoreError> {
        let trashed: Option<Option<f64>> = self
            .conn
            .query_row("SELECT trashed_at FROM runs WHERE id = ?1", [run.0], |r| {
                r.get(0)
            })
            .optional()
            .at(&self.db_path)?;
        match trashed {
            None => Ok(Err(PurgeRefusal::NoRun)),
            Some(None) => Ok(Err(PurgeRefusal::NotInRecycleBin)),
            Some(Some(_)) => self.purge_keys(&[run.0]).map(Ok),
        }
    }

    /// Deletes every run of the recycle bin for good.
    pub fn empty_recycle_bin(&mut self) -> Result<PurgeReport, StoreError> {
        let keys: Vec<i64> = self
            .conn
            .prepare("SELECT id FROM runs WHERE trashed_at IS NOT NULL ORDER BY id")
            .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
            .at(&self.db_path)?;
        self.purge_keys(&keys)
    }

    /// Deletes the runs `keys` (all of their rows), remembers them as purged, then drops the
    /// cached contents no manifest names any more.
    fn purge_keys(&mut self, keys: &[i64]) -> Result<PurgeReport, StoreError> {
        let p = self.db_path.clone();
        let now = unix_now();
        let tx = self.write_tx().at(&p)?;
        let mut contents: Vec<String> = Vec::new();
        let mut runs = 0;
        for &key in keys {
            {
                let mut stmt = tx
                    .prepare_cached(
                        "SELECT DISTINCT cached_sha256 FROM files
                         WHERE run = ?1 AND cached_sha256 IS NOT NULL",
                    )
                    .at(&p)?;
                let hashes = stmt
                    .query_map([key], |r| r.get::<_, String>(0))
                    .at(&p)?
                    .collect::<Result<Vec<_>, _>>()
                    .at(&p)?;
                contents.extend(hashes);
            }
            tx.execute(
                "INSERT OR REPLACE INTO purged_runs(remote, dir, run_id, path, purged_at)
                 SELECT remote, dir, run_id, path, ?2 FROM runs WHERE id = ?1",
                params![key, now],
            )
            .at(&p)?;
            runs += u64::from(delete_run_rows(&tx, key).at(&p)?);
        }
        tx.commit().at(&p)?;
        contents.sort();
        contents.dedup();
        let cached_files_removed = self.drop_unreferenced_contents(&contents)?;
        Ok(PurgeReport {
            runs,
            cached_files_removed,
        })
    }
}

/// Whether the run directory `dir` of `remote` was purged: the sync leaves it out.
pub(crate) fn is_purged(conn: &Connection, remote: i64, dir: &str) -> rusqlite::Result<bool> {
    conn.prepare_cached("SELECT 1 FROM purged_runs WHERE remote = ?1 AND dir = ?2")?
        .exists(params![remote, dir])
}

/// Deletes every row of one run; whether it existed. Its manifest, values, logs and the rest
/// follow by foreign key; `points` and `point_tiles` have none (see schema.rs), so they go
/// first, explicitly.
pub(crate) fn delete_run_rows(conn: &Connection, run: i64) -> rusqlite::Result<bool> {
    conn.execute("DELETE FROM points WHERE run = ?1", [run])?;
    crate::tiles::drop_run(conn, run)?;
    Ok(conn.execute("DELETE FROM runs WHERE id = ?1", [run])? > 0)
}

#[cfg(test)]
mod tests {
    use crate::testkit::*;
    use crate::*;

    #[test]
    fn only_a_run_in_the_recycle_bin_is_purged_and_it_stays_out_of_later_syncs() {
        let (_tmp, mut store) = fresh_store();
        let r = add_remote(&mut store, "gpu");
        let runs = vec![run_change("runs/a/1", 1, 0), run_change("runs/b/2", 1, 0)];
        store
            .apply_change_batch(r, &change_batch(true, runs.clone(), "e", 1, false))
            .unwrap();
        let a = store.run(r, "runs/a/1").unwrap().unwrap().key;
        let b = store.run(r, "runs/b/2").unwrap().unwrap().key;

        assert_eq!(
            store.purge_run(a).unwrap(),
            Err(PurgeRefusal::NotInRecycleBin)
        );
        assert_eq!(
            store.purge_run(RunKey(999)).unwrap(),
            Err(PurgeRefusal::NoRun)
        );
        store.trash_run(a, 1.0).unwrap().unwrap();
        let report = store.purge_run(a).unwrap().unwrap();
        assert_eq!(report.runs, 1);
        assert!(store.run_by_key(a).unwrap().is_none());
        assert!(store.run_by_key(b).unwrap().is_some());

        // Its server still has it and lists it again, changed: it stays out; the other run
        // is updated as usual.
        let mut again = runs.clone();
        for run in &mut again {
            run.seq = 2;
        }
        store
            .apply_change_batch(r, &change_batch(true, again, "e2", 2, false))
            .unwrap();
        assert!(store.run(r, "runs/a/1").unwrap().is_none());
        assert_eq!(store.run(r, "runs/b/2").unwrap().unwrap().key, b);
    }

    #[test]
    fn purging_a_run_keeps_a_cached_content_an_artifact_version_names() {
        use runicorn_protocol::wire::{
            ArtifactChange, ArtifactFileState, ArtifactVersionState, StoredAs,
        };
        let (_tmp, mut store) = fresh_store();
        let r = add_remote(&mut store, "gpu");
        let shared = store
            .put_file_bytes(b"weights shared by a run and a version")
            .unwrap();
        let own = store.put_file_bytes(b"the run's own file").unwrap();
        let mut run = run_change("runs/a/1", 1, 0);
        run.files = vec![
            file_entry("ckpt.pt", 37, Some(&shared)),
            file_entry("own.txt", 18, Some(&own)),
        ];
        let mut batch = change_batch(true, vec![run], "e", 1, false);
        batch.artifacts = vec![ArtifactChange {
            dir: "artifacts/model/m".into(),
            seq: 1,
            kind: "model".into(),
            name: "m".into(),
            versions: vec![ArtifactVersionState {
                version: 1,
                files: vec![ArtifactFileState {
                    path: "ckpt.pt".into(),
                    size: 37,
                    sha256: shared.clone(),
                    stored: StoredAs::Whole,
                }],
                ..ArtifactVersionState::default()
            }],
            ..ArtifactChange::default()
        }];
        store.apply_change_batch(r, &batch).unwrap();
        let key = store.run(r, "runs/a/1").unwrap().unwrap().key;
        assert!(store.record_cached_file(key, "ckpt.pt", &shared).unwrap());
        assert!(store.record_cached_file(key, "own.txt", &own).unwrap());
        store.trash_run(key, 1.0).unwrap().unwrap();
        let report = store.purge_run(key).unwrap().unwrap();
        assert_eq!(
            report.cached_files_removed, 1,
            "only the run's own file goes"
        );
        assert!(store.file_path(&shared).is_some(), "m:v1 still names it");
        assert!(store.file_path(&own).is_none());
    }

    #[test]
    fn emptying_the_recycle_bin_purges_every_run_in_it_and_nothing_else() {
        let (_tmp, mut store) = fresh_store();
        let r = add_remote(&mut store, "gpu");
        let runs = (0..5)
            .map(|i| run_change(&format!("runs/x/{i}"), 1, 0))
            .collect();
        store
            .apply_change_batch(r, &change_batch(true, runs, "e", 1, false))
            .unwrap();
        for i in 0..3 {
            let key = store.run(r, &format!("runs/x/{i}")).unwrap().unwrap().key;
            store.trash_run(key, 1.0).unwrap().unwrap();
        }
        let report = store.empty_recycle_bin().unwrap();
        assert_eq!(report.runs, 3);
        let left = store
            .list_runs(&RunFilter {
                trash: TrashView::Include,
                ..RunFilter::default()
            })
            .unwrap();
        assert_eq!(left.len(), 2);
        assert_eq!(store.empty_recycle_bin().unwrap().runs, 0);
    }
}
