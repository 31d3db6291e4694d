//! The write side of the artifact tables (schema 6): the artifacts of a change batch, each
//! sent whole by the agent, replace what the store held of them, in the batch's transaction
//! (`changes.rs` calls in here). The hub's sync has already checked every item
//! (`hub/src/sync/validate.rs`: paths, names, hashes, sizes); metadata nested too deeply is
//! still cut here, so whatever arrives can be stored and read back.
//!
//! Removal is kept, like runs: an artifact gone from its server keeps its rows with
//! `removed = 1`. During a full listing (`reset`) the artifacts not listed yet carry `seq = -1`
//! (the agent's sequence values start at 1): [`begin_listing`] marks them, every listed
//! artifact gets its real value, and [`end_listing`] marks those still at -1 removed. A
//! listing cut short resumes with incremental batches and ends the same way.

use rusqlite::{params, Transaction};

use runicorn_protocol::run_format::record_depth::cut_deep_values;
use runicorn_protocol::wire::{ArtifactChange, ArtifactVersionState, StoredAs};

use crate::ids::RemoteId;
use crate::skipped::{bounded, KIND_ARTIFACT};
use crate::sql::to_sql_int;

/// What the artifact part of one batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ArtifactsApplied {
    /// Artifacts inserted or replaced.
    pub artifacts: u64,
    /// Artifacts newly marked removed.
    pub removed: u64,
}

/// The `seq` of an artifact not yet seen by the open full listing.
const NOT_SEEN: i64 = -1;

/// A full listing begins: every present artifact of `remote` is "not seen" until listed.
pub(crate) fn begin_listing(tx: &Transaction, remote: RemoteId) -> rusqlite::Result<()> {
    tx.execute(
        "UPDATE artifacts SET seq = ?2 WHERE remote = ?1 AND removed = 0",
        params![remote.0, NOT_SEEN],
    )?;
    Ok(())
}

/// A full listing is complete: the artifacts it did not list are gone. Returns how many.
pub(crate) fn end_listing(tx: &Transaction, remote: RemoteId) -> rusqlite::Result<u64> {
    let n = tx.execute(
        "UPDATE artifacts SET removed = 1 WHERE remote = ?1 AND removed = 0 AND seq = ?2",
        params![remote.0, NOT_SEEN],
    )?;
    Ok(n as u64)
}

/// Stores the artifacts of one batch (each replaces everything held of it) and marks the
/// removed ones. An artifact listed in the same batch as removed is present (the newer news).
pub(crate) fn apply(
    tx: &Transaction,
    remote: RemoteId,
    changes: &[ArtifactChange],
    removed: &[String],
) -> rusqlite::Result<ArtifactsApplied> {
    let mut out = ArtifactsApplied::default();
    {
        let mut mark = tx.prepare_cached(
            "UPDATE artifacts SET removed = 1 WHERE remote = ?1 AND dir = ?2 AND removed = 0",
        )?;
        for dir in removed {
            out.removed += mark.execute(params![remote.0, dir])? as u64;
        }
    }
    let mut forget_refusal =
        tx.prepare_cached("DELETE FROM skipped WHERE remote = ?1 AND kind = ?2 AND name = ?3")?;
    for change in changes {
        store_one(tx, remote, change)?;
        forget_refusal.execute(params![remote.0, KIND_ARTIFACT, bounded(&change.dir)])?;
        out.artifacts += 1;
    }
    Ok(out)
}

/// The text a `stored` value is kept as.
fn stored_text(stored: StoredAs) -> &'static str {
    match stored {
        StoredAs::Whole => "whole",
        StoredAs::Chunked => "chunked",
        StoredAs::Missing => "missing",
        StoredAs::Unknown => "unknown",
    }
}

/// A version's metadata as stored: JSON text, cut where it nests too deeply.
fn metadata_text(version: &ArtifactVersionState) -> Option<String> {
    version.metadata.as_ref().map(|m| {
        let mut m = m.clone();
        cut_deep_values(&mut m);
        m.to_string()
    })
}

fn store_one(tx: &Transaction, remote: RemoteId, a: &ArtifactChange) -> rusqlite::Result<()> {
    let id: i64 = tx
        .prepare_cached(
            "INSERT INTO artifacts(remote, dir, seq, type, name, problem, removed)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0)
             ON CONFLICT(remote, dir) DO UPDATE SET seq = excluded.seq, type = excluded.type,
                name = excluded.name, problem = excluded.problem, removed = 0
             RETURNING id",
        )?
        .query_row(
            params![
                remote.0,
                a.dir,
                to_sql_int(a.seq),
                a.kind,
                a.name,
                a.problem
            ],
            |r| r.get(0),
        )?;
    for table in [
        "artifact_versions",
        "artifact_aliases",
        "artifact_files",
        "artifact_usage",
    ] {
        tx.prepare_cached(&format!("DELETE FROM {table} WHERE artifact = ?1"))?
            .execute([id])?;
    }
    let mut version_row = tx.prepare_cached(
        "INSERT OR REPLACE INTO artifact_versions(artifact, version, created_at, description,
            metadata, size, produced_run_id, produced_dir, produced_host, refs)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?;
    let mut file_row = tx.prepare_cached(
        "INSERT OR REPLACE INTO artifact_files(artifact, version, path, size, sha256, stored)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    let mut usage_row = tx.prepare_cached(
        "INSERT OR REPLACE INTO artifact_usage(artifact, version, run_id, dir, host)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for v in &a.versions {
        let version = to_sql_int(v.version);
        let size = v
            .files
            .iter()
            .fold(0u64, |sum, f| sum.saturating_add(f.size));
        let refs = serde_json::to_string(&v.references)
            .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
        let produced = v.produced_by.as_ref();
        version_row.execute(params![
            id,
            version,
            v.created_at,
            v.description,
            metadata_text(v),
            to_sql_int(size),
            produced.map(|p| p.run_id.as_str()),
            produced.map(|p| p.dir.as_str()),
            produced.and_then(|p| p.host.as_deref()),
            refs
        ])?;
        for f in &v.files {
            file_row.execute(params![
                id,
                version,
                f.path,
                to_sql_int(f.size),
                f.sha256,
                stored_text(f.stored)
            ])?;
        }
        for user in &v.used_by {
            usage_row.execute(params![id, version, user.run_id, user.dir, user.host])?;
        }
    }
    let mut alias_row = tx.prepare_cached(
        "INSERT OR REPLACE INTO artifact_aliases(artifact, alias, version) VALUES (?1, ?2, ?3)",
    )?;
    for (alias, version) in &a.aliases {
        alias_row.execute(params![id, alias, to_sql_int(*version)])?;
    }
    Ok(())
}
