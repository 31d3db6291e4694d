//! The hub's copy of each run's `logs.txt`: text chunks keyed by the byte range of the remote
//! file they came from. The copy is one contiguous range `log_start..log_end`; it starts after
//! 0 when the first fetch was only the tail of a long log. Ingest is idempotent like points:
//! a chunk is applied only where it continues the copy.

use rusqlite::{params, OptionalExtension, Transaction};

use runicorn_protocol::wire::{check_wire_path, LogBatch, LogChunk};

use crate::changes::run_id_of;
use crate::error::{SqliteContext, StoreError};
use crate::remotes::RemoteId;
use crate::runs::RunKey;
use crate::store::{from_sql_int, to_sql_int, Store};

/// What one log batch did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogStats {
    /// Runs whose copy moved on (or began).
    pub runs: u64,
    /// Bytes of the remote files now covered by new chunks.
    pub bytes: u64,
    /// Chunks not applied: already stored, unknown run, or not continuing the copy.
    pub skipped: u64,
}

/// One stored chunk of a run's log.
#[derive(Debug, Clone, PartialEq)]
pub struct LogChunkRow {
    /// Byte range of the remote `logs.txt`.
    pub from: u64,
    pub to: u64,
    pub text: String,
}

fn check_chunk(remote: &str, c: &LogChunk) -> Result<(), StoreError> {
    check_wire_path(&c.dir).map_err(|reason| StoreError::BadPath {
        remote: remote.to_owned(),
        path: c.dir.clone(),
        reason,
    })?;
    if c.from > c.to {
        return Err(StoreError::BadBatch {
            remote: remote.to_owned(),
            dir: c.dir.clone(),
            reason: format!("log range {}..{} ends before it begins", c.from, c.to),
        });
    }
    Ok(())
}

impl Store {
    /// Stores one batch of log chunks in one transaction. A chunk is stored when it begins the
    /// copy (the first fetch, or after `truncated` dropped the old copy) or continues it
    /// exactly; any other chunk is skipped, so the same batch twice leaves the same rows.
    pub fn ingest_logs(
        &mut self,
        remote: RemoteId,
        batch: &LogBatch,
    ) -> Result<LogStats, StoreError> {
        let name = self.remote_name(remote)?;
        for c in &batch.runs {
            check_chunk(&name, c)?;
        }
        let p = self.db_path.clone();
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .at(&p)?;
        let mut stats = LogStats::default();
        for c in &batch.runs {
            if apply_chunk(&tx, remote, c).at(&p)? {
                stats.runs += 1;
                stats.bytes += c.to - c.from;
            } else {
                stats.skipped += 1;
            }
        }
        tx.commit().at(&p)?;
        Ok(stats)
    }

    /// The stored log of a run: where the copy starts in the remote file, and its text.
    /// `None` when nothing was fetched yet.
    pub fn log_text(&self, run: RunKey) -> Result<Option<(u64, String)>, StoreError> {
        let p = &self.db_path;
        let start: Option<Option<i64>> = self
            .conn
            .query_row("SELECT log_start FROM runs WHERE id = ?1", [run.0], |r| {
                r.get(0)
            })
            .optional()
            .at(p)?;
        let Some(Some(start)) = start else {
            return Ok(None);
        };
        let mut text = String::new();
        for chunk in self.log_chunks_since(run, 0)? {
            text.push_str(&chunk.text);
        }
        Ok(Some((from_sql_int(start), text)))
    }

    /// The chunks of a run's log that end after byte `offset` of the remote file, in order:
    /// what a live view appends after it showed everything up to `offset`.
    pub fn log_chunks_since(
        &self,
        run: RunKey,
        offset: u64,
    ) -> Result<Vec<LogChunkRow>, StoreError> {
        let p = &self.db_path;
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT start, end, text FROM log_chunks WHERE run = ?1 AND end > ?2 ORDER BY start",
            )
            .at(p)?;
        let rows = stmt
            .query_map(params![run.0, to_sql_int(offset)], |r| {
                Ok(LogChunkRow {
                    from: from_sql_int(r.get(0)?),
                    to: from_sql_int(r.get(1)?),
                    text: r.get(2)?,
                })
            })
            .at(p)?;
        rows.collect::<Result<Vec<_>, _>>().at(p)
    }
}

/// Applies one chunk; returns whether it was stored.
fn apply_chunk(tx: &Transaction, remote: RemoteId, c: &LogChunk) -> rusqlite::Result<bool> {
    let Some(run) = run_id_of(tx, remote, &c.dir)? else {
        tracing::warn!(
            dir = c.dir,
            "log text for a run the store does not know; skipped"
        );
        return Ok(false);
    };
    if c.truncated {
        tx.execute("DELETE FROM log_chunks WHERE run = ?1", [run])?;
        tx.execute(
            "UPDATE runs SET log_start = NULL, log_end = NULL WHERE id = ?1",
            [run],
        )?;
    }
    let end: Option<i64> = tx
        .prepare_cached("SELECT log_end FROM runs WHERE id = ?1")?
        .query_row([run], |r| r.get(0))?;
    let (from, to) = (to_sql_int(c.from), to_sql_int(c.to));
    match end {
        // Nothing stored: this chunk begins the copy, wherever it starts (a tail).
        None => {
            tx.execute(
                "UPDATE runs SET log_start = ?2, log_end = ?3 WHERE id = ?1",
                params![run, from, to],
            )?;
        }
        Some(end) if end == from => {
            tx.execute(
                "UPDATE runs SET log_end = ?2 WHERE id = ?1",
                params![run, to],
            )?;
        }
        Some(end) => {
            if from < end && to > end {
                // The text's bytes cannot be cut at a byte offset once invalid UTF-8 was
                // replaced; the next request asks again from the copy's end.
                tracing::warn!(
                    dir = c.dir,
                    from,
                    to,
                    end,
                    "log chunk overlaps the stored copy; skipped"
                );
            }
            return Ok(false);
        }
    }
    if c.to > c.from {
        tx.prepare_cached(
            "INSERT OR REPLACE INTO log_chunks(run, start, end, text) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![run, from, to, c.text])?;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use runicorn_protocol::wire::{LogBatch, LogChunk};

    use crate::testkit::*;

    fn chunk(from: u64, text: &str) -> LogChunk {
        LogChunk {
            dir: "runs/a/1".into(),
            from,
            to: from + text.len() as u64,
            text: text.into(),
            truncated: false,
            eof: true,
        }
    }

    fn batch(chunks: Vec<LogChunk>) -> LogBatch {
        LogBatch { runs: chunks }
    }

    #[test]
    fn a_tail_then_appends_then_a_truncation() {
        let (_tmp, mut store) = fresh_store();
        let r = add_remote(&mut store, "gpu");
        let mut run = run_change("runs/a/1", 1, 0);
        run.log_bytes = 1010;
        store
            .apply_change_batch(r, &change_batch(true, vec![run.clone()], "e", 1, false))
            .unwrap();
        let key = store.run(r, "runs/a/1").unwrap().unwrap().key;
        let wanted = store.pending_logs(r, 10).unwrap();
        assert_eq!(wanted[0].offset, None, "first fetch: the tail");
        assert_eq!(store.log_text(key).unwrap(), None);

        store
            .ingest_logs(r, &batch(vec![chunk(1000, "last line\n")]))
            .unwrap();
        assert_eq!(
            store.log_text(key).unwrap(),
            Some((1000, "last line\n".into()))
        );
        assert!(store.pending_logs(r, 10).unwrap().is_empty());

        run.log_bytes = 1016;
        run.seq = 2;
        store
            .apply_change_batch(r, &change_batch(false, vec![run.clone()], "e", 2, false))
            .unwrap();
        assert_eq!(store.pending_logs(r, 10).unwrap()[0].offset, Some(1010));
        let more = batch(vec![chunk(1010, "more!\n")]);
        store.ingest_logs(r, &more).unwrap();
        let once = dump(&store);
        let stats = store.ingest_logs(r, &more).unwrap();
        assert_eq!(stats.skipped, 1);
        assert_eq!(dump(&store), once);
        assert_eq!(
            store.log_text(key).unwrap(),
            Some((1000, "last line\nmore!\n".into()))
        );
        assert_eq!(store.log_chunks_since(key, 1010).unwrap().len(), 1);

        let mut again = chunk(0, "new\n");
        again.truncated = true;
        store.ingest_logs(r, &batch(vec![again])).unwrap();
        assert_eq!(store.log_text(key).unwrap(), Some((0, "new\n".into())));
        let row = store.run(r, "runs/a/1").unwrap().unwrap();
        assert_eq!(row.log_synced, Some((0, 4)));
    }

    #[test]
    fn chunks_that_do_not_continue_the_copy_are_skipped() {
        let (_tmp, mut store) = fresh_store();
        let r = add_remote(&mut store, "gpu");
        store
            .apply_change_batch(
                r,
                &change_batch(true, vec![run_change("runs/a/1", 1, 0)], "e", 1, false),
            )
            .unwrap();
        store
            .ingest_logs(r, &batch(vec![chunk(0, "abc\n")]))
            .unwrap();
        let before = dump(&store);
        let stats = store
            .ingest_logs(r, &batch(vec![chunk(2, "c\nde\n"), chunk(10, "gap\n")]))
            .unwrap();
        assert_eq!(stats.skipped, 2);
        assert_eq!(dump(&store), before);
        let mut bad = chunk(0, "x");
        bad.dir = "/abs".into();
        assert!(store
            .ingest_logs(r, &batch(vec![bad]))
            .unwrap_err()
            .is_bad_input());
    }
}
