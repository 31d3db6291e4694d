//! What the hub should fetch next: runs whose stored copy of `events.jsonl` or `logs.txt`
//! differs from what the agent last reported. A copy longer than the remote file is pending too
//! (the agent answers `truncated`). Removed runs are never pending. Partial indexes
//! (`schema.rs`) keep these queries proportional to the pending runs, not to all runs.

use rusqlite::params;

use runicorn_protocol::wire::{LogWanted, PointsWanted};

use crate::error::{SqliteContext, StoreError};
use crate::ids::RemoteId;
use crate::sql::from_sql_int;
use crate::store::Store;

/// Must match the `WHERE` of index `runs_points_pending` for SQLite to use it.
pub(crate) const POINTS_PENDING: &str = "removed = 0 AND events_bytes != copy_offset";
/// Must match the `WHERE` of index `runs_log_pending`.
pub(crate) const LOG_PENDING: &str =
    "removed = 0 AND log_bytes IS NOT log_end AND (log_end IS NOT NULL OR log_bytes > 0)";

/// Live runs (running or stalled) first (someone is probably watching them), then the oldest
/// known.
const ORDER: &str = "ORDER BY status IN ('running', 'stalled') DESC, id";

fn limit_of(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

impl Store {
    /// Up to `limit` runs of `remote` with metric points to fetch, each from where the stored
    /// copy ends.
    pub fn pending_points(
        &self,
        remote: RemoteId,
        limit: usize,
    ) -> Result<Vec<PointsWanted>, StoreError> {
        let p = &self.db_path;
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT dir, copy_offset, copy_next_line FROM runs
                 WHERE remote = ?1 AND {POINTS_PENDING} {ORDER} LIMIT ?2"
            ))
            .at(p)?;
        let rows = stmt
            .query_map(params![remote.0, limit_of(limit)], |r| {
                Ok(PointsWanted {
                    dir: r.get(0)?,
                    offset: from_sql_int(r.get(1)?),
                    next_line: from_sql_int(r.get(2)?),
                })
            })
            .at(p)?;
        rows.collect::<Result<Vec<_>, _>>().at(p)
    }

    /// Up to `limit` runs of `remote` with log text to fetch: from where the copy ends, or
    /// (`offset: None`) just the tail when nothing was fetched yet.
    pub fn pending_logs(
        &self,
        remote: RemoteId,
        limit: usize,
    ) -> Result<Vec<LogWanted>, StoreError> {
        let p = &self.db_path;
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT dir, log_end FROM runs WHERE remote = ?1 AND {LOG_PENDING} {ORDER} LIMIT ?2"
            ))
            .at(p)?;
        let rows = stmt
            .query_map(params![remote.0, limit_of(limit)], |r| {
                let end: Option<i64> = r.get(1)?;
                Ok(LogWanted {
                    dir: r.get(0)?,
                    offset: end.map(from_sql_int),
                })
            })
            .at(p)?;
        rows.collect::<Result<Vec<_>, _>>().at(p)
    }
}

#[cfg(test)]
mod tests {
    use crate::testkit::*;

    #[test]
    fn pending_lists_live_runs_first_and_respects_the_limit() {
        let (_tmp, mut store) = fresh_store();
        let r = add_remote(&mut store, "gpu");
        let mut live = run_change("runs/live/1", 3, 50);
        live.status = "running".into();
        let runs = vec![
            run_change("runs/a/1", 1, 10),
            run_change("runs/empty/1", 2, 0),
            live,
        ];
        store
            .apply_change_batch(r, &change_batch(true, runs, "e", 3, false))
            .unwrap();
        let wanted = store.pending_points(r, 10).unwrap();
        let dirs: Vec<_> = wanted.iter().map(|w| w.dir.as_str()).collect();
        assert_eq!(dirs, ["runs/live/1", "runs/a/1"]);
        assert_eq!((wanted[0].offset, wanted[0].next_line), (0, 1));
        assert_eq!(store.pending_points(r, 1).unwrap().len(), 1);
        let other = add_remote(&mut store, "other");
        assert!(store.pending_points(other, 10).unwrap().is_empty());
    }
}
