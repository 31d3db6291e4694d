//! The hub's copy of each run's `logs.txt`: the exact bytes of the remote file, in chunks keyed
//! by the byte range they came from (stored as BLOBs in the `text` column: a log need not be
//! UTF-8, and offsets are byte offsets of the remote file). The copy is one contiguous range
//! `log_start..log_end`; it starts after 0 when the first fetch was only the tail of a long log.
//! Ingest is idempotent like points: a chunk is applied only where it continues the copy.

use rusqlite::types::ValueRef;
use rusqlite::{params, Connection, OptionalExtension};

use runicorn_protocol::wire::{check_wire_path, LogBatch, LogChunk};

use crate::error::{SqliteContext, StoreError};
use crate::ids::{RemoteId, RunKey};
use crate::runs::run_id_of;
use crate::sql::{from_sql_int, to_sql_int};
use crate::store::Store;

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
    /// The file's bytes `from..to`. (A copy made by a hub before logs were stored as bytes may
    /// hold lossy text of another length; readers must not index past it.)
    pub bytes: Vec<u8>,
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
    if c.to - c.from != c.bytes.len() as u64 {
        return Err(StoreError::BadBatch {
            remote: remote.to_owned(),
            dir: c.dir.clone(),
            reason: format!(
                "log range {}..{} holds {} bytes, not {}",
                c.from,
                c.to,
                c.bytes.len(),
                c.to - c.from
            ),
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
        let tx = self.write_tx().at(&p)?;
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

    /// The stored log of a run: where the copy starts in the remote file, and its bytes.
    /// `None` when nothing was fetched yet.
    pub fn log_text(&self, run: RunKey) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
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
        let mut bytes = Vec::new();
        for chunk in self.log_chunks_since(run, 0, u64::MAX)? {
            bytes.extend_from_slice(&chunk.bytes);
        }
        Ok(Some((from_sql_int(start), bytes)))
    }

    /// The chunks of a run's log that end after byte `offset` of the remote file, in order:
    /// what a live view appends after it showed everything up to `offset`. Reading stops after
    /// the first chunk that reaches `offset + max_bytes` (so a page of a long log reads about
    /// a page); `u64::MAX` reads them all.
    pub fn log_chunks_since(
        &self,
        run: RunKey,
        offset: u64,
        max_bytes: u64,
    ) -> Result<Vec<LogChunkRow>, StoreError> {
        let p = &self.db_path;
        let mut stmt = self
            .conn
            .prepare_cached(
                // Seek to the chunk holding `offset` through the primary key, so a page near
                // the end of a long log does not scan the chunks before it.
                "SELECT start, end, text FROM log_chunks
                 WHERE run = ?1 AND end > ?2 AND start >= coalesce(
                   (SELECT start FROM log_chunks WHERE run = ?1 AND start <= ?2
                    ORDER BY start DESC LIMIT 1), 0)
                 ORDER BY start",
            )
            .at(p)?;
        let mut rows = stmt.query(params![run.0, to_sql_int(offset)]).at(p)?;
        let stop = offset.saturating_add(max_bytes);
        let mut chunks = Vec::new();
        while let Some(r) = rows.next().at(p)? {
            let chunk = LogChunkRow {
                from: from_sql_int(r.get(0).at(p)?),
                to: from_sql_int(r.get(1).at(p)?),
                bytes: stored_bytes(r.get_ref(2).at(p)?),
            };
            let done = chunk.to >= stop;
            chunks.push(chunk);
            if done {
                break;
            }
        }
        Ok(chunks)
    }
}

/// A chunk's bytes: a BLOB, or TEXT written by a hub before logs were stored as bytes.
fn stored_bytes(v: ValueRef<'_>) -> Vec<u8> {
    match v {
        ValueRef::Blob(b) | ValueRef::Text(b) => b.to_vec(),
        ValueRef::Null | ValueRef::Integer(_) | ValueRef::Real(_) => Vec::new(),
    }
}

/// Applies one chunk; returns whether it was stored.
fn apply_chunk(tx: &Connection, remote: RemoteId, c: &LogChunk) -> rusqlite::Result<bool> {
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
                // Overlaps are not merged (an agent answers from the offset asked); the next
                // request asks again from the copy's end.
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
        .execute(params![run, from, to, c.bytes.as_slice()])?;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use runicorn_protocol::wire::{LogBatch, LogChunk};

    use crate::testkit::*;

    fn chunk(from: u64, text: &str) -> LogChunk {
        bytes_chunk(from, text.as_bytes())
    }

    fn bytes_chunk(from: u64, bytes: &[u8]) -> LogChunk {
        LogChunk {
            dir: "runs/a/1".into(),
            from,
            to: from + bytes.len() as u64,
            bytes: bytes.to_vec(),
            truncated: false,
            eof: true,
        }
    }

    fn text_of(log: Option<(u64, Vec<u8>)>) -> Option<(u64, String)> {
        log.map(|(start, bytes)| (start, String::from_utf8(bytes).unwrap()))
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
        assert_eq!(text_of(store.log_text(key).unwrap()), None);

        store
            .ingest_logs(r, &batch(vec![chunk(1000, "last line\n")]))
            .unwrap();
        assert_eq!(
            text_of(store.log_text(key).unwrap()),
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
            text_of(store.log_text(key).unwrap()),
            Some((1000, "last line\nmore!\n".into()))
        );
        assert_eq!(
            store.log_chunks_since(key, 1010, u64::MAX).unwrap().len(),
            1
        );
        assert_eq!(
            store.log_chunks_since(key, 1000, 1).unwrap().len(),
            1,
            "stops at the budget"
        );

        let mut again = chunk(0, "new\n");
        again.truncated = true;
        store.ingest_logs(r, &batch(vec![again])).unwrap();
        assert_eq!(
            text_of(store.log_text(key).unwrap()),
            Some((0, "new\n".into()))
        );
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

    #[test]
    fn the_exact_bytes_are_kept_whatever_they_hold() {
        let (_tmp, mut store) = fresh_store();
        let r = add_remote(&mut store, "gpu");
        store
            .apply_change_batch(
                r,
                &change_batch(true, vec![run_change("runs/a/1", 1, 0)], "e", 1, false),
            )
            .unwrap();
        let key = store.run(r, "runs/a/1").unwrap().unwrap().key;
        // A multi-byte character split across two chunks, invalid bytes, CR.
        let first = b"ok\r\n\xFF\xFE\xE2\x82";
        let second = b"\xACuro\n\x80";
        store
            .ingest_logs(r, &batch(vec![bytes_chunk(0, first)]))
            .unwrap();
        store
            .ingest_logs(r, &batch(vec![bytes_chunk(first.len() as u64, second)]))
            .unwrap();
        let (start, bytes) = store.log_text(key).unwrap().unwrap();
        assert_eq!(start, 0);
        assert_eq!(bytes, [&first[..], &second[..]].concat());
        let chunks = store.log_chunks_since(key, 8, u64::MAX).unwrap();
        assert_eq!((chunks.len(), chunks[0].from), (1, 8));
        assert_eq!(chunks[0].bytes, second);

        let mut short = bytes_chunk(first.len() as u64 + second.len() as u64, b"abc");
        short.to += 1;
        let err = store.ingest_logs(r, &batch(vec![short])).unwrap_err();
        assert!(err.is_bad_input(), "{err}");
    }

    #[test]
    fn lossy_copies_of_an_older_hub_are_read_and_can_be_dropped() {
        let (_tmp, mut store) = fresh_store();
        let r = add_remote(&mut store, "gpu");
        let mut runs = vec![run_change("runs/a/1", 1, 0), run_change("runs/a/2", 2, 0)];
        runs[1].dir = "runs/a/2".into();
        (runs[0].log_bytes, runs[1].log_bytes) = (5, 4);
        store
            .apply_change_batch(r, &change_batch(true, runs, "e", 2, false))
            .unwrap();
        store
            .ingest_logs(r, &batch(vec![chunk(0, "good\n")]))
            .unwrap();
        let mut other = chunk(0, "bad\n");
        other.dir = "runs/a/2".into();
        store.ingest_logs(r, &batch(vec![other])).unwrap();
        // What an older hub stored: TEXT, the lossy decoding of 4 bytes `b \xFF d \n`.
        store
            .conn
            .execute(
                "UPDATE log_chunks SET text = 'b\u{FFFD}d' || char(10)
                 WHERE run = (SELECT id FROM runs WHERE dir = 'runs/a/2')",
                [],
            )
            .unwrap();
        let bad = store.run(r, "runs/a/2").unwrap().unwrap().key;
        let good = store.run(r, "runs/a/1").unwrap().unwrap().key;
        assert_eq!(
            text_of(store.log_text(bad).unwrap()),
            Some((0, "b\u{FFFD}d\n".into()))
        );
        store
            .conn
            .execute_batch(crate::schema::DROP_INEXACT_LOG_COPIES)
            .unwrap();
        assert_eq!(store.log_text(bad).unwrap(), None);
        let pending = store.pending_logs(r, 10).unwrap();
        assert!(pending
            .iter()
            .any(|w| w.dir == "runs/a/2" && w.offset.is_none()));
        assert_eq!(
            text_of(store.log_text(good).unwrap()),
            Some((0, "good\n".into()))
        );
    }
}
