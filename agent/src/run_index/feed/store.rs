//! The feed's rows in the index: reading pages of the feed, the counter, the runs a process
//! starts from, and writing one scan's results with new sequence values in one write-locked
//! transaction. Each row holds a run's announced state whole (`head`, `records`, `files` as
//! JSON), so a listing reads no run files.

use std::collections::HashMap;

use runicorn_protocol::parallel::{io_workers, map_in_order};
use runicorn_protocol::run_format::{Layout, RunStatus};
use runicorn_protocol::wire::{FileEntry, RunChange};
use rusqlite::{params, OptionalExtension, TransactionBehavior};

use super::super::manifest::{ListedDir, Manifest, ManifestFile};
use super::super::records::StoredRecords;
use super::super::{upsert_cached, IndexError, RunIndex, UPSERT_CACHED_SQL};
use super::artifacts::{self, ArtifactRow};
use super::{
    fp_bytes, ArtifactEntry, FeedEntry, FeedPage, KnownRun, Presence, RememberedManifest, RunKey,
    Scanned,
};

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

pub(super) fn read_counter(tx: &rusqlite::Connection) -> rusqlite::Result<u64> {
    let text: Option<String> = tx
        .query_row("SELECT value FROM index_info WHERE key = 'seq'", [], |r| {
            r.get(0)
        })
        .optional()?;
    Ok(text.and_then(|t| t.parse().ok()).unwrap_or(0))
}

impl RunIndex {
    pub(super) fn sqlite_err(&self, cause: rusqlite::Error) -> IndexError {
        IndexError::Sqlite {
            path: self.path.clone(),
            cause,
        }
    }

    /// The feed's counter: the largest sequence value given out.
    pub fn feed_counter(&self) -> Result<u64, IndexError> {
        read_counter(&self.conn).map_err(|cause| self.sqlite_err(cause))
    }

    /// Whether the feed knows `dir` (a relative run directory), live or removed.
    pub fn feed_presence(&self, dir: &str) -> Result<Option<Presence>, IndexError> {
        self.conn
            .query_row("SELECT removed FROM feed_run WHERE dir = ?1", [dir], |r| {
                r.get::<_, i64>(0)
            })
            .optional()
            .map(|row| {
                row.map(|removed| {
                    if removed != 0 {
                        Presence::Removed
                    } else {
                        Presence::Live
                    }
                })
            })
            .map_err(|cause| self.sqlite_err(cause))
    }

    /// Up to `limit` rows with a sequence value above `after`, in sequence order (tombstones
    /// only when `with_removed`), and the counter, as of one moment.
    pub fn feed_page(
        &mut self,
        after: u64,
        limit: usize,
        with_removed: bool,
    ) -> Result<FeedPage, IndexError> {
        let path = self.path.clone();
        let err = |cause| IndexError::Sqlite {
            path: path.clone(),
            cause,
        };
        let tx = self.conn.transaction().map_err(err)?;
        let counter = read_counter(&tx).map_err(err)?;
        let rows: Vec<(String, i64, i64, String, String, String)> = {
            let mut stmt = tx
                .prepare_cached(
                    "SELECT dir, seq, removed, head, records, files FROM feed_run
                     WHERE seq > ?1 AND (?2 OR removed = 0) ORDER BY seq LIMIT ?3",
                )
                .map_err(err)?;
            let rows = stmt
                .query_map(
                    params![to_i64(after), with_removed, to_i64(limit as u64)],
                    |r| {
                        Ok((
                            r.get(0)?,
                            r.get(1)?,
                            r.get(2)?,
                            r.get(3)?,
                            r.get(4)?,
                            r.get(5)?,
                        ))
                    },
                )
                .map_err(err)?
                .collect::<rusqlite::Result<_>>()
                .map_err(err)?;
            rows
        };
        let artifact_rows: Vec<ArtifactRow> =
            artifacts::page_rows(&tx, to_i64(after), to_i64(limit as u64), with_removed)
                .map_err(err)?;
        tx.commit().map_err(err)?;
        // Parsing the stored JSON needs no lock on the database; do it on several threads.
        let entries = map_in_order(
            &rows,
            io_workers(),
            |_, (dir, seq, removed, head, records, files)| {
                let seq = to_u64(*seq);
                if *removed != 0 {
                    return Ok(FeedEntry {
                        seq,
                        dir: dir.clone(),
                        state: None,
                        artifact: None,
                    });
                }
                let state = state_from_row(seq, head, records, files)?;
                Ok(FeedEntry {
                    seq,
                    dir: dir.clone(),
                    state: Some(state),
                    artifact: None,
                })
            },
        )
        .into_iter()
        .chain(artifact_rows.into_iter().map(|(dir, seq, removed, state)| {
            let seq = to_u64(seq);
            let artifact = if removed != 0 {
                ArtifactEntry::Removed
            } else {
                ArtifactEntry::Present(Box::new(artifacts::state_from_row(seq, &state)?))
            };
            Ok(FeedEntry {
                seq,
                dir,
                state: None,
                artifact: Some(artifact),
            })
        }))
        .collect::<Result<Vec<_>, serde_json::Error>>()
        .map_err(|e| {
            err(rusqlite::Error::FromSqlConversionFailure(
                3,
                rusqlite::types::Type::Text,
                Box::new(e),
            ))
        })?;
        // Runs and artifacts share one counter: one page is the first `limit` of both.
        let mut entries = entries;
        entries.sort_by_key(|e| e.seq);
        entries.truncate(limit);
        Ok(FeedPage { entries, counter })
    }

    /// The live runs of the feed as stored, to start a process's memory from (without their
    /// cached records, loaded when needed), with the folder listings their manifests came from.
    pub(super) fn load_known(&self) -> rusqlite::Result<HashMap<RunKey, KnownRun>> {
        let mut stmt = self
            .conn
            .prepare("SELECT dir, state_fp, files, head, listed FROM feed_run WHERE removed = 0")?;
        let rows: Vec<(String, String, String, String, String)> = stmt
            .query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })?
            .collect::<rusqlite::Result<_>>()?;
        // Parsing needs no database: do it on several threads.
        let known = map_in_order(
            &rows,
            io_workers(),
            |_, (dir, state_fp, files, head, listed)| {
                // A row this agent cannot read is simply scanned as a new run.
                let head: StoredHead = serde_json::from_str(head).ok()?;
                let layout = match head.layout.as_str() {
                    "current" => Layout::Current,
                    "legacy" => Layout::Legacy,
                    _ => return None,
                };
                // An unreadable manifest only costs hashing the run's files again; unreadable
                // listings only cost listing its folders.
                let files = parse_files(files).unwrap_or_default();
                let dirs = parse_listed(listed).unwrap_or_default();
                Some((
                    RunKey::from(dir.as_str()),
                    KnownRun {
                        layout,
                        cache: None,
                        manifest: RememberedManifest::Whole(Box::new(Manifest {
                            files,
                            dirs,
                            ..Manifest::default()
                        })),
                        state_fp: fp_bytes(state_fp),
                        status: RunStatus::from_name(&head.status),
                    },
                ))
            },
        );
        Ok(known.into_iter().flatten().collect())
    }

    /// The stored manifests (files and the folder listings they came from) of these live runs;
    /// a run without a row, or whose row cannot be read, is left out.
    pub(super) fn load_manifests(
        &self,
        dirs: &[&str],
    ) -> rusqlite::Result<HashMap<String, Manifest>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT files, listed FROM feed_run WHERE dir = ?1 AND removed = 0")?;
        let mut out = HashMap::with_capacity(dirs.len());
        for dir in dirs {
            let row: Option<(String, String)> = stmt
                .query_row([dir], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            let Some((files, listed)) = row else { continue };
            if let (Ok(files), Ok(dirs)) = (parse_files(&files), parse_listed(&listed)) {
                out.insert(
                    (*dir).to_owned(),
                    Manifest {
                        files,
                        dirs,
                        ..Manifest::default()
                    },
                );
            }
        }
        Ok(out)
    }

    /// Stores the folder listings of runs whose files did not change, where the stored
    /// manifest is the one those listings gave (else they describe another manifest and are
    /// left out: the next process lists those folders again).
    pub(super) fn write_listings(&mut self, runs: &[(String, Manifest)]) -> rusqlite::Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut update = tx.prepare_cached(
                "UPDATE feed_run SET listed = ?2 WHERE dir = ?1 AND removed = 0 AND files = ?3",
            )?;
            let to_text =
                |e: serde_json::Error| rusqlite::Error::ToSqlConversionFailure(Box::new(e));
            for (key, manifest) in runs {
                let files = files_json(&manifest.files).map_err(to_text)?;
                let listed = listed_json(&manifest.dirs).map_err(to_text)?;
                update.execute(params![key, listed, files])?;
            }
        }
        tx.commit()
    }

    /// Writes one scan's results in one write-locked transaction; returns the counter and how
    /// many runs got a new sequence value.
    pub(super) fn write_scan(
        &mut self,
        found: &[Scanned],
        changed: &[bool],
        gone: &[String],
        reconcile: bool,
        counter_seen: u64,
    ) -> rusqlite::Result<(u64, usize)> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut counter = read_counter(&tx)?;
        // Under the write lock: a counter other than the one this process left means another
        // agent wrote since, and what is stored must be compared with.
        let reconcile = reconcile || counter != counter_seen;
        let mut bumped = 0;
        {
            let mut stored =
                tx.prepare_cached("SELECT state_fp, removed FROM feed_run WHERE dir = ?1")?;
            let mut upsert_run = tx.prepare_cached(
                "INSERT OR REPLACE INTO feed_run(dir, seq, removed, state_fp, head, records, files, listed)
                 VALUES (?1, ?2, 0, ?3, ?4, ?5, ?6, ?7)",
            )?;
            let mut upsert_cache = tx.prepare_cached(UPSERT_CACHED_SQL)?;
            let to_text =
                |e: serde_json::Error| rusqlite::Error::ToSqlConversionFailure(Box::new(e));
            for (s, &changed) in found.iter().zip(changed) {
                if s.cache_changed {
                    upsert_cached(&mut upsert_cache, &s.key, &s.cache)?;
                }
                if !changed && !reconcile {
                    continue;
                }
                if reconcile {
                    // Another agent moved the counter: it may have announced this state.
                    let row: Option<(String, i64)> = stored
                        .query_row([&s.key], |r| Ok((r.get(0)?, r.get(1)?)))
                        .optional()?;
                    if matches!(&row, Some((fp, 0)) if *fp == s.state_fp) {
                        continue;
                    }
                }
                counter += 1;
                bumped += 1;
                let head = serde_json::to_string(&s.head).map_err(to_text)?;
                // Records are read whenever the state differs from the remembered one, which
                // is the case for every run written here.
                let records = serde_json::to_string(&s.records.clone().unwrap_or_default())
                    .map_err(to_text)?;
                let files = files_json(&s.manifest.files).map_err(to_text)?;
                // The listings of the same walk as `files`: stored together or not at all, so
                // a folder trusted as unchanged never hides a file the stored manifest lacks.
                let listed = listed_json(&s.manifest.dirs).map_err(to_text)?;
                upsert_run.execute(params![
                    s.key,
                    to_i64(counter),
                    s.state_fp,
                    head,
                    records,
                    files,
                    listed
                ])?;
            }
            let mut tombstone = tx.prepare_cached(
                "UPDATE feed_run SET removed = 1, seq = ?2, state_fp = '', records = '{}', files = '[]', listed = '[]'
                 WHERE dir = ?1 AND removed = 0",
            )?;
            let mut forget_cache = tx.prepare_cached("DELETE FROM run_cache WHERE dir = ?1")?;
            for key in gone {
                if tombstone.execute(params![key, to_i64(counter + 1)])? > 0 {
                    counter += 1;
                    bumped += 1;
                }
                forget_cache.execute([key])?;
            }
        }
        tx.execute(
            "INSERT OR REPLACE INTO index_info(key, value) VALUES ('seq', ?1)",
            [counter.to_string()],
        )?;
        tx.commit()?;
        Ok((counter, bumped))
    }
}

/// One stored file: path, size, mtime in ns, hash.
type StoredFile = (String, u64, i64, Option<String>);

fn files_json(files: &[ManifestFile]) -> Result<String, serde_json::Error> {
    let rows: Vec<(&str, u64, i64, Option<&str>)> = files
        .iter()
        .map(|f| (f.path.as_str(), f.size, f.mtime_ns(), f.sha256.as_deref()))
        .collect();
    serde_json::to_string(&rows)
}

/// One stored folder listing: path below the run directory, mtime (s, ns), settled.
type StoredListing = (String, i64, i64, bool);

fn listed_json(dirs: &[ListedDir]) -> Result<String, serde_json::Error> {
    let rows: Vec<(&str, i64, i64, bool)> = dirs
        .iter()
        .map(|d| (d.rel.as_str(), d.mtime_s, d.mtime_nsec, d.settled))
        .collect();
    serde_json::to_string(&rows)
}

fn parse_listed(text: &str) -> Result<Vec<ListedDir>, serde_json::Error> {
    let rows: Vec<StoredListing> = serde_json::from_str(text)?;
    Ok(rows
        .into_iter()
        .map(|(rel, mtime_s, mtime_nsec, settled)| ListedDir {
            rel,
            mtime_s,
            mtime_nsec,
            settled,
        })
        .collect())
}

/// What a process needs of a stored head to know the run again.
#[derive(serde::Deserialize)]
struct StoredHead {
    status: String,
    layout: String,
}

pub(in crate::run_index) fn parse_files(
    text: &str,
) -> Result<Vec<ManifestFile>, serde_json::Error> {
    let rows: Vec<StoredFile> = serde_json::from_str(text)?;
    Ok(rows
        .into_iter()
        .map(|(path, size, mtime_ns, sha256)| {
            let (mtime_s, mtime_nsec) = ManifestFile::split_mtime_ns(mtime_ns);
            ManifestFile {
                path,
                size,
                mtime_s,
                mtime_nsec,
                sha256,
            }
        })
        .collect())
}

/// A stored live row as the wire's `RunChange`.
fn state_from_row(
    seq: u64,
    head: &str,
    records: &str,
    files: &str,
) -> Result<RunChange, serde_json::Error> {
    let mut state: RunChange = serde_json::from_str(head)?;
    let records: StoredRecords = serde_json::from_str(records)?;
    state.seq = seq;
    state.meta = records.meta;
    state.status_record = records.status;
    state.summary = records.summary;
    state.config = records.config;
    state.environment = records.environment;
    state.assets = records.assets;
    state.files = parse_files(files)?
        .into_iter()
        .map(|f| FileEntry {
            mtime: f.mtime_s as f64 + f.mtime_nsec as f64 / 1e9,
            path: f.path,
            size: f.size,
            sha256: f.sha256,
        })
        .collect();
    Ok(state)
}
