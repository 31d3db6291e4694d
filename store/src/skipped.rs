//! What could not be synced, and why: the run directories an agent could not name (its
//! `skipped` list), the items of an agent's answers the hub refused (a run whose directory
//! breaks the path rule, one run's points or log chunk that does not fit together), and, per
//! run, the files left out of its manifest. One bad item is the run's problem, never the
//! remote's: the rest of the batch is stored, and these rows say what was left out.
//!
//! Names are for people only (an agent sends a lossy, escaped rendering; the hub keeps what it
//! refused as text): they are never used as paths. Printing them is the reader's business
//! (`runicorn_cli::safe` on a terminal, a text node in the dashboard).

use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use runicorn_protocol::wire::SkippedEntry;

use crate::error::{SqliteContext, StoreError};
use crate::ids::{RemoteId, RunKey};
use crate::sql::{from_sql_int, unix_now};
use crate::store::Store;

/// `skipped.kind` of a run directory left out of the change feed.
pub(crate) const KIND_RUN: &str = "run";
/// `skipped.kind` of one run's points the hub refused.
pub const KIND_POINTS: &str = "points";
/// `skipped.kind` of one run's log chunk the hub refused.
pub const KIND_LOG: &str = "log";
/// `skipped.kind` of an artifact of a change batch the hub refused (kept until the artifact
/// is stored or a full listing begins).
pub const KIND_ARTIFACT: &str = "artifact";

/// Entries kept from one batch (an agent that lists a million bad names gets the first ones
/// shown, and the count of runs it did send is unaffected).
pub(crate) const MAX_PER_BATCH: usize = 1000;
/// Skipped files listed per run (the count covers them all).
pub const MAX_FILES_LISTED: usize = 100;
/// Longest name or reason kept, in bytes (cut at a character boundary).
const MAX_TEXT_BYTES: usize = 1024;

/// One thing that was left out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SkippedItem {
    /// `run`, `points` or `log`.
    pub kind: String,
    /// What was left out, for people (not a path to act on).
    pub name: String,
    pub reason: String,
    /// True when the hub refused it; false when the agent left it out itself.
    pub by_hub: bool,
    /// When it was first recorded (seconds since the epoch).
    pub at: f64,
}

/// The files left out of one run's manifest.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SkippedFiles {
    /// How many (the list may be shorter).
    pub total: u64,
    /// The first of them, with reasons.
    pub listed: Vec<SkippedEntry>,
}

/// `text` cut to [`MAX_TEXT_BYTES`] at a character boundary.
pub(crate) fn bounded(text: &str) -> &str {
    if text.len() <= MAX_TEXT_BYTES {
        return text;
    }
    let mut end = MAX_TEXT_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Records `entries` of `kind` for `remote` (a name recorded before keeps the time it was
/// first recorded, so the same batch twice leaves the same rows).
pub(crate) fn record(
    conn: &Connection,
    remote: RemoteId,
    kind: &str,
    entries: &[SkippedEntry],
    by_hub: bool,
    at: f64,
) -> rusqlite::Result<()> {
    if entries.is_empty() {
        return Ok(());
    }
    let mut stmt = conn.prepare_cached(
        "INSERT INTO skipped(remote, kind, name, reason, by_hub, at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT(remote, kind, name) DO UPDATE SET reason = excluded.reason,
            by_hub = excluded.by_hub",
    )?;
    for e in entries.iter().take(MAX_PER_BATCH) {
        stmt.execute(params![
            remote.0,
            kind,
            bounded(&e.name),
            bounded(&e.reason),
            by_hub,
            at
        ])?;
    }
    Ok(())
}

/// Forgets the entries of `kind` for `remote` (only the agent's or the hub's when `by_hub` is
/// given).
pub(crate) fn clear(
    conn: &Connection,
    remote: RemoteId,
    kind: &str,
    by_hub: Option<bool>,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "DELETE FROM skipped WHERE remote = ?1 AND kind = ?2 AND (?3 IS NULL OR by_hub = ?3)",
    )?
    .execute(params![remote.0, kind, by_hub])?;
    Ok(())
}

impl Store {
    /// Records items of an agent's answers that the hub refused (`kind` is [`KIND_POINTS`] or
    /// [`KIND_LOG`]); they show until [`Store::clear_answer_refusals`].
    pub fn record_refusals(
        &mut self,
        remote: RemoteId,
        kind: &str,
        entries: &[SkippedEntry],
    ) -> Result<(), StoreError> {
        record(&self.conn, remote, kind, entries, true, unix_now()).at(&self.db_path)
    }

    /// Forgets the refused points and log items of `remote`: called as a sync round begins, so
    /// what shows is what the latest round refused (a refused item is asked for again, and
    /// refused again, every round until the agent sends it right).
    pub fn clear_answer_refusals(&mut self, remote: RemoteId) -> Result<(), StoreError> {
        let p = &self.db_path;
        clear(&self.conn, remote, KIND_POINTS, None).at(p)?;
        clear(&self.conn, remote, KIND_LOG, None).at(p)
    }

    /// What was left out of `remote`'s sync: at most `limit` items, the hub's refusals first,
    /// then by kind and name.
    pub fn skipped(&self, remote: RemoteId, limit: usize) -> Result<Vec<SkippedItem>, StoreError> {
        let p = &self.db_path;
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT kind, name, reason, by_hub, at FROM skipped WHERE remote = ?1
                 ORDER BY by_hub DESC, kind, name LIMIT ?2",
            )
            .at(p)?;
        let rows = stmt
            .query_map(params![remote.0, limit as i64], |r| {
                Ok(SkippedItem {
                    kind: r.get(0)?,
                    name: r.get(1)?,
                    reason: r.get(2)?,
                    by_hub: r.get(3)?,
                    at: r.get(4)?,
                })
            })
            .at(p)?;
        rows.collect::<Result<Vec<_>, _>>().at(p)
    }

    /// The files left out of one run's manifest.
    pub fn skipped_files(&self, run: RunKey) -> Result<SkippedFiles, StoreError> {
        let p = &self.db_path;
        let row: Option<(i64, Option<String>)> = self
            .conn
            .prepare_cached("SELECT skipped_files, skipped_files_list FROM runs WHERE id = ?1")
            .at(p)?
            .query_row([run.0], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()
            .at(p)?;
        Ok(
            row.map_or_else(SkippedFiles::default, |(total, list)| SkippedFiles {
                total: from_sql_int(total),
                listed: list
                    .and_then(|t| serde_json::from_str(&t).ok())
                    .unwrap_or_default(),
            }),
        )
    }

    /// Every run that has files left out of its manifest, with how many.
    pub fn runs_with_skipped_files(&self) -> Result<Vec<(RunKey, u64)>, StoreError> {
        let p = &self.db_path;
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id, skipped_files FROM runs WHERE skipped_files > 0")
            .at(p)?;
        let rows = stmt
            .query_map([], |r| Ok((RunKey(r.get(0)?), from_sql_int(r.get(1)?))))
            .at(p)?;
        rows.collect::<Result<Vec<_>, _>>().at(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::*;

    fn entry(name: &str) -> SkippedEntry {
        SkippedEntry {
            name: name.into(),
            reason: "refused by the hub: 2 steps but 1 times".into(),
        }
    }

    #[test]
    fn answer_refusals_show_until_the_next_round_clears_them() {
        let (_tmp, mut store) = fresh_store();
        let r = add_remote(&mut store, "gpu");
        store
            .record_refusals(r, KIND_POINTS, &[entry("runs/a/1"), entry("runs/b/1")])
            .unwrap();
        store
            .record_refusals(r, KIND_LOG, &[entry("runs/a/1")])
            .unwrap();
        // The same refusal again is one row.
        store
            .record_refusals(r, KIND_LOG, &[entry("runs/a/1")])
            .unwrap();
        let row = store.remote("gpu").unwrap().unwrap();
        assert_eq!(row.skipped_items, 3);
        assert_eq!(row.skipped.len(), 3);
        assert!(row.skipped.iter().all(|s| s.by_hub));
        store.clear_answer_refusals(r).unwrap();
        let row = store.remote("gpu").unwrap().unwrap();
        assert_eq!((row.skipped_items, row.skipped_warning()), (0, None));
    }

    #[test]
    fn long_names_are_cut_at_a_character_boundary() {
        let long = "é".repeat(1000);
        let cut = bounded(&long);
        assert!(cut.len() <= MAX_TEXT_BYTES && cut.len() >= MAX_TEXT_BYTES - 1);
        assert!(cut.chars().all(|c| c == 'é'));
        assert_eq!(bounded("short"), "short");
    }
}
