//! Artifacts in the change feed: every artifact directory (`artifacts/<type>/<name>`) has a
//! sequence value from the same counter as the runs, taken when its state last changed, and a
//! tombstone when it disappears. Its state is the whole [`ArtifactChange`] the artifact store
//! reads (`versions.json`, each version's manifest and metadata, how the pool holds each file),
//! so a new version, a moved alias, a deleted version, a damaged file or packing (whole →
//! chunked) all bump it. A scan reads every artifact again (a few small files each) and
//! compares a fingerprint of the state with the stored one, in a write-locked transaction, so
//! several agents serving one root agree.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use runicorn_artifact_store::listing::{artifact_dirs, read_artifact};
use runicorn_protocol::run_format::names::wire_name_problem;
use runicorn_protocol::wire::ArtifactChange;
use rusqlite::{params, TransactionBehavior};
use sha2::{Digest, Sha256};

use super::super::manifest;
use super::super::RunIndex;

/// One artifact as a scan found it.
pub(super) struct FoundArtifact {
    pub dir: String,
    pub state: ArtifactChange,
    pub state_fp: String,
}

/// Reads every artifact under `root` (those whose directory can be named on the wire).
pub(super) fn read_all(root: &Path) -> Vec<FoundArtifact> {
    artifact_dirs(root)
        .into_iter()
        .filter_map(|(kind, name)| {
            let mut state = read_artifact(root, &kind, &name);
            let dir = format!(
                "{}/{kind}/{name}",
                runicorn_protocol::run_format::artifacts::ARTIFACTS_DIR
            );
            if let Some(problem) = wire_name_problem(&dir) {
                eprintln!(
                    "runicorn-agent serve: artifact {dir:?} cannot be sent to the hub ({problem}); rename it"
                );
                return None;
            }
            state.dir.clone_from(&dir);
            state.seq = 0;
            let state_fp = fingerprint(&state);
            Some(FoundArtifact {
                dir,
                state,
                state_fp,
            })
        })
        .collect()
}

fn fingerprint(state: &ArtifactChange) -> String {
    // Serialising plain data cannot fail; an empty text would only cost a spurious change.
    let bytes = serde_json::to_vec(state).unwrap_or_default();
    manifest::hex(&Sha256::digest(&bytes)[..16])
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// What writing one artifact scan did.
pub(super) struct ArtifactsWritten {
    /// The counter before the scan's transaction.
    pub counter_before: u64,
    pub counter: u64,
    pub bumped: usize,
}

impl RunIndex {
    /// The stored fingerprints of the live artifacts.
    fn artifact_fingerprints(&self) -> rusqlite::Result<HashMap<String, String>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT dir, state_fp FROM feed_artifact WHERE removed = 0")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect()
    }

    /// Gives every artifact whose state differs from the stored one a new sequence value, and
    /// every stored live artifact not found a tombstone. Opens no write transaction when
    /// nothing changed.
    pub(super) fn write_artifacts(
        &mut self,
        found: &[FoundArtifact],
    ) -> rusqlite::Result<ArtifactsWritten> {
        let stored = self.artifact_fingerprints()?;
        let present: HashSet<&str> = found.iter().map(|a| a.dir.as_str()).collect();
        let any_change = found
            .iter()
            .any(|a| stored.get(&a.dir) != Some(&a.state_fp))
            || stored.keys().any(|d| !present.contains(d.as_str()));
        if !any_change {
            let counter = super::store::read_counter(&self.conn)?;
            return Ok(ArtifactsWritten {
                counter_before: counter,
                counter,
                bumped: 0,
            });
        }
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let counter_before = super::store::read_counter(&tx)?;
        let mut counter = counter_before;
        let mut bumped = 0;
        {
            // Read again under the write lock: another agent may have announced the same.
            let mut stored_fp = tx.prepare_cached(
                "SELECT state_fp FROM feed_artifact WHERE dir = ?1 AND removed = 0",
            )?;
            let mut upsert = tx.prepare_cached(
                "INSERT OR REPLACE INTO feed_artifact(dir, seq, removed, state_fp, state)
                 VALUES (?1, ?2, 0, ?3, ?4)",
            )?;
            for a in found {
                let fp: Option<String> = stored_fp
                    .query_row([&a.dir], |r| r.get(0))
                    .map(Some)
                    .or_else(|e| match e {
                        rusqlite::Error::QueryReturnedNoRows => Ok(None),
                        e => Err(e),
                    })?;
                if fp.as_deref() == Some(a.state_fp.as_str()) {
                    continue;
                }
                counter += 1;
                bumped += 1;
                let state = serde_json::to_string(&a.state)
                    .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
                upsert.execute(params![a.dir, to_i64(counter), a.state_fp, state])?;
            }
            let live: Vec<String> = {
                let mut stmt =
                    tx.prepare_cached("SELECT dir FROM feed_artifact WHERE removed = 0")?;
                let rows = stmt.query_map([], |r| r.get(0))?;
                rows.collect::<rusqlite::Result<_>>()?
            };
            let mut tombstone = tx.prepare_cached(
                "UPDATE feed_artifact SET removed = 1, seq = ?2, state_fp = '', state = '{}'
                 WHERE dir = ?1 AND removed = 0",
            )?;
            for dir in live.iter().filter(|d| !present.contains(d.as_str())) {
                if tombstone.execute(params![dir, to_i64(counter + 1)])? > 0 {
                    counter += 1;
                    bumped += 1;
                }
            }
        }
        tx.execute(
            "INSERT OR REPLACE INTO index_info(key, value) VALUES ('seq', ?1)",
            [counter.to_string()],
        )?;
        tx.commit()?;
        Ok(ArtifactsWritten {
            counter_before,
            counter,
            bumped,
        })
    }
}

/// One stored artifact row of a feed page: the state (or `None`, a tombstone) at `seq`.
pub(super) type ArtifactRow = (String, i64, i64, String);

/// Reads up to `limit` artifact rows after `after` (tombstones only when `with_removed`).
pub(super) fn page_rows(
    tx: &rusqlite::Connection,
    after: i64,
    limit: i64,
    with_removed: bool,
) -> rusqlite::Result<Vec<ArtifactRow>> {
    let mut stmt = tx.prepare_cached(
        "SELECT dir, seq, removed, state FROM feed_artifact
         WHERE seq > ?1 AND (?2 OR removed = 0) ORDER BY seq LIMIT ?3",
    )?;
    let rows = stmt.query_map(params![after, with_removed, limit], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
    })?;
    rows.collect()
}

/// A stored live artifact row as the wire's state.
pub(super) fn state_from_row(seq: u64, state: &str) -> Result<ArtifactChange, serde_json::Error> {
    let mut a: ArtifactChange = serde_json::from_str(state)?;
    a.seq = seq;
    Ok(a)
}
