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
//!
//! An import merges instead ([`apply_merged`]): only the versions it carries are replaced, and a
//! file it reports as `unknown` (the bundle listed its content without carrying it) keeps the
//! `whole` or `chunked` the store knew of it.

use std::collections::HashMap;

use rusqlite::{params, Connection};

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
pub(crate) fn begin_listing(tx: &Connection, remote: RemoteId) -> rusqlite::Result<()> {
    tx.execute(
        "UPDATE artifacts SET seq = ?2 WHERE remote = ?1 AND removed = 0",
        params![remote.0, NOT_SEEN],
    )?;
    Ok(())
}

/// A full listing is complete: the artifacts it did not list are gone. Returns how many.
pub(crate) fn end_listing(tx: &Connection, remote: RemoteId) -> rusqlite::Result<u64> {
    let n = tx.execute(
        "UPDATE artifacts SET removed = 1 WHERE remote = ?1 AND removed = 0 AND seq = ?2",
        params![remote.0, NOT_SEEN],
    )?;
    Ok(n as u64)
}

/// Stores the artifacts of one batch (each replaces everything held of it) and marks the
/// removed ones. An artifact listed in the same batch as removed is present (the newer news).
pub(crate) fn apply(
    tx: &Connection,
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
        store_one(tx, remote, change, false)?;
        forget_refusal.execute(params![remote.0, KIND_ARTIFACT, bounded(&change.dir)])?;
        out.artifacts += 1;
    }
    Ok(out)
}

/// Stores the artifacts of an imported bundle as a merge: an artifact the store has keeps its
/// versions and aliases, the bundle's versions are added (or replace the same numbers), and
/// aliases it does not have yet are added. A bundle carries only the versions its runs touched,
/// so what it lacks says nothing of the server.
pub(crate) fn apply_merged(
    tx: &Connection,
    remote: RemoteId,
    changes: &[ArtifactChange],
) -> rusqlite::Result<u64> {
    for change in changes {
        store_one(tx, remote, change, true)?;
    }
    Ok(changes.len() as u64)
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

fn store_one(
    tx: &Connection,
    remote: RemoteId,
    a: &ArtifactChange,
    merge: bool,
) -> rusqlite::Result<()> {
    let upsert = if merge {
        // A merge keeps what the store knows of the artifact as a whole.
        "INSERT INTO artifacts(remote, dir, seq, type, name, problem, removed, stored_bytes)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, ?7)
         ON CONFLICT(remote, dir) DO UPDATE SET type = excluded.type
         RETURNING id"
    } else {
        "INSERT INTO artifacts(remote, dir, seq, type, name, problem, removed, stored_bytes)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, ?7)
         ON CONFLICT(remote, dir) DO UPDATE SET seq = excluded.seq, type = excluded.type,
            name = excluded.name, problem = excluded.problem, removed = 0,
            stored_bytes = excluded.stored_bytes
         RETURNING id"
    };
    let id: i64 = tx.prepare_cached(upsert)?.query_row(
        params![
            remote.0,
            a.dir,
            to_sql_int(a.seq),
            a.kind,
            a.name,
            a.problem,
            a.stored_bytes.map(to_sql_int)
        ],
        |r| r.get(0),
    )?;
    // A merge (an import) that could not tell where a file's bytes are (`unknown`: the bundle
    // listed the content without carrying it) keeps what the store knew of that file.
    let mut known_stored: HashMap<(u64, String, String), String> = HashMap::new();
    if merge {
        let mut known = tx.prepare_cached(
            "SELECT path, sha256, stored FROM artifact_files
              WHERE artifact = ?1 AND version = ?2 AND stored IN ('whole', 'chunked')",
        )?;
        for v in &a.versions {
            let rows = known.query_map(params![id, to_sql_int(v.version)], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get::<_, String>(2)?))
            })?;
            for row in rows {
                let (path, sha, stored) = row?;
                known_stored.insert((v.version, path, sha), stored);
            }
        }
        for v in &a.versions {
            for table in ["artifact_versions", "artifact_files", "artifact_usage"] {
                tx.prepare_cached(&format!(
                    "DELETE FROM {table} WHERE artifact = ?1 AND version = ?2"
                ))?
                .execute(params![id, to_sql_int(v.version)])?;
            }
        }
    } else {
        for table in [
            "artifact_versions",
            "artifact_aliases",
            "artifact_files",
            "artifact_usage",
        ] {
            tx.prepare_cached(&format!("DELETE FROM {table} WHERE artifact = ?1"))?
                .execute([id])?;
        }
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
            let stored = match f.stored {
                StoredAs::Unknown => known_stored
                    .get(&(v.version, f.path.clone(), f.sha256.clone()))
                    .map_or(stored_text(f.stored), String::as_str),
                other => stored_text(other),
            };
            file_row.execute(params![
                id,
                version,
                f.path,
                to_sql_int(f.size),
                f.sha256,
                stored
            ])?;
        }
        for user in &v.used_by {
            usage_row.execute(params![id, version, user.run_id, user.dir, user.host])?;
        }
    }
    let mut alias_row = tx.prepare_cached(if merge {
        "INSERT OR IGNORE INTO artifact_aliases(artifact, alias, version) VALUES (?1, ?2, ?3)"
    } else {
        "INSERT OR REPLACE INTO artifact_aliases(artifact, alias, version) VALUES (?1, ?2, ?3)"
    })?;
    for (alias, version) in &a.aliases {
        alias_row.execute(params![id, alias, to_sql_int(*version)])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use runicorn_protocol::run_format::artifacts::RunLink;
    use runicorn_protocol::wire::{
        ArtifactChange, ArtifactFileState, ArtifactVersionState, ChangeBatch, SkippedEntry,
        StoredAs,
    };

    use crate::testkit::*;
    use crate::*;

    const SHA: &str = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";

    #[test]
    fn an_imported_artifact_adds_its_versions_and_keeps_the_stores_others() {
        let (_tmp, mut store) = fresh_store();
        let gpu = add_remote(&mut store, "gpu");
        let mut batch = change_batch(true, vec![], "e", 1, false);
        batch.artifacts = vec![artifact("resnet", 1, &[1, 2, 3])];
        store.apply_change_batch(gpu, &batch).unwrap();
        // A bundle carries v2 only (its versions.json cut down, `latest` at v2).
        let mut bundle = change_batch(true, vec![], "tmp", 1, false);
        bundle.artifacts = vec![artifact("resnet", 1, &[2])];
        store.apply_import_batch(gpu, &bundle).unwrap();
        let versions: Vec<i64> = store
            .conn
            .prepare("SELECT version FROM artifact_versions ORDER BY version")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(versions, [1, 2, 3]);
        let latest: i64 = store
            .conn
            .query_row(
                "SELECT version FROM artifact_aliases WHERE alias = 'latest'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(latest, 3, "the store's alias stays");
        // Into a store without it, the bundle's versions arrive as they are.
        let other = add_remote(&mut store, "other");
        store.apply_import_batch(other, &bundle).unwrap();
        let n: i64 = store
            .conn
            .query_row(
                "SELECT count(*) FROM artifact_versions v JOIN artifacts a ON a.id = v.artifact WHERE a.remote = ?1",
                [other.0],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 1);
    }

    #[test]
    fn an_import_that_did_not_carry_a_content_keeps_where_the_store_knew_it_was() {
        let (_tmp, mut store) = fresh_store();
        let gpu = add_remote(&mut store, "gpu");
        let mut batch = change_batch(true, vec![], "e", 1, false);
        batch.artifacts = vec![artifact("resnet", 1, &[1])];
        store.apply_change_batch(gpu, &batch).unwrap();
        // The bundle listed both contents without their bytes; one of them with another SHA-256.
        let mut bundle = change_batch(true, vec![], "tmp", 1, false);
        let mut carried = artifact("resnet", 1, &[1]);
        for f in &mut carried.versions[0].files {
            f.stored = StoredAs::Unknown;
        }
        carried.versions[0].files[1].sha256 = "ab".repeat(32);
        bundle.artifacts = vec![carried];
        store.apply_import_batch(gpu, &bundle).unwrap();
        let stored: Vec<(String, String)> = store
            .conn
            .prepare("SELECT path, stored FROM artifact_files ORDER BY path")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            stored,
            [
                // Another content at that path: the store knows nothing of it.
                ("cfg/x.json".to_owned(), "unknown".to_owned()),
                ("w.bin".to_owned(), "whole".to_owned()),
            ]
        );
    }

    fn artifact(name: &str, seq: u64, versions: &[u64]) -> ArtifactChange {
        ArtifactChange {
            dir: format!("artifacts/model/{name}"),
            seq,
            kind: "model".into(),
            name: name.into(),
            aliases: versions
                .last()
                .map(|v| ("latest".to_string(), *v))
                .into_iter()
                .collect(),
            versions: versions
                .iter()
                .map(|&v| ArtifactVersionState {
                    version: v,
                    metadata: Some(serde_json::json!({"v": v})),
                    produced_by: Some(RunLink {
                        run_id: "r1".into(),
                        dir: "runs/p/r1".into(),
                        host: None,
                    }),
                    used_by: vec![RunLink {
                        run_id: "r2".into(),
                        dir: "runs/p/r2".into(),
                        host: Some("gpu".into()),
                    }],
                    files: vec![
                        ArtifactFileState {
                            path: "w.bin".into(),
                            size: 10 * v,
                            sha256: SHA.into(),
                            stored: StoredAs::Whole,
                        },
                        ArtifactFileState {
                            path: "cfg/x.json".into(),
                            size: 1,
                            sha256: SHA.into(),
                            stored: StoredAs::Chunked,
                        },
                    ],
                    ..ArtifactVersionState::default()
                })
                .collect(),
            problem: None,
            stored_bytes: Some(42),
        }
    }

    fn batch(reset: bool, more: bool, seq: u64, artifacts: Vec<ArtifactChange>) -> ChangeBatch {
        ChangeBatch {
            artifacts,
            ..change_batch(reset, vec![], "e1", seq, more)
        }
    }

    /// (dir, removed, versions, aliases, files, usage rows) of every artifact of remote 1.
    fn rows(s: &Store) -> Vec<(String, bool, i64, i64, i64, i64)> {
        let mut stmt = s
            .conn
            .prepare(
                "SELECT dir, removed,
                    (SELECT count(*) FROM artifact_versions WHERE artifact = a.id),
                    (SELECT count(*) FROM artifact_aliases WHERE artifact = a.id),
                    (SELECT count(*) FROM artifact_files WHERE artifact = a.id),
                    (SELECT count(*) FROM artifact_usage WHERE artifact = a.id)
                 FROM artifacts a ORDER BY dir",
            )
            .unwrap();
        stmt.query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect()
    }

    #[test]
    fn an_artifact_replaces_what_was_held_of_it_and_removals_keep_its_rows() {
        let (_d, mut s) = fresh_store();
        let r = add_remote(&mut s, "gpu");
        let out = s
            .apply_change_batch(r, &batch(false, false, 1, vec![artifact("m", 1, &[1, 2])]))
            .unwrap();
        assert_eq!(out.artifacts, 1);
        assert_eq!(rows(&s), [("artifacts/model/m".into(), false, 2, 1, 4, 2)]);
        let (size, produced, metadata, stored): (i64, String, String, String) = s
            .conn
            .query_row(
                "SELECT v.size, v.produced_dir, v.metadata, f.stored FROM artifact_versions v
                 JOIN artifact_files f ON f.artifact = v.artifact AND f.version = v.version
                 WHERE v.version = 2 AND f.path = 'cfg/x.json'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .unwrap();
        assert_eq!((size, produced.as_str()), (21, "runs/p/r1"));
        assert_eq!(
            (metadata.as_str(), stored.as_str()),
            ("{\"v\":2}", "chunked")
        );

        // v1 deleted on the server: the whole state replaces the old one.
        s.apply_change_batch(r, &batch(false, false, 2, vec![artifact("m", 2, &[2])]))
            .unwrap();
        assert_eq!(rows(&s), [("artifacts/model/m".into(), false, 1, 1, 2, 1)]);

        let mut gone = batch(false, false, 3, vec![]);
        gone.removed_artifacts = vec!["artifacts/model/m".into()];
        assert_eq!(s.apply_change_batch(r, &gone).unwrap().removed_artifacts, 1);
        assert_eq!(rows(&s), [("artifacts/model/m".into(), true, 1, 1, 2, 1)]);
        assert_eq!(
            s.apply_change_batch(r, &gone).unwrap().removed_artifacts,
            0,
            "applying twice changes nothing"
        );
        // Back again.
        s.apply_change_batch(r, &batch(false, false, 4, vec![artifact("m", 4, &[2, 3])]))
            .unwrap();
        assert_eq!(rows(&s), [("artifacts/model/m".into(), false, 2, 1, 4, 2)]);
    }

    #[test]
    fn a_full_listing_marks_the_artifacts_it_did_not_name_removed_even_when_resumed() {
        let (_d, mut s) = fresh_store();
        let r = add_remote(&mut s, "gpu");
        s.apply_change_batch(
            r,
            &batch(
                false,
                false,
                3,
                vec![
                    artifact("a", 1, &[1]),
                    artifact("b", 2, &[1]),
                    artifact("c", 3, &[1]),
                ],
            ),
        )
        .unwrap();
        // A new epoch lists a (first page), then the connection drops; b comes in an
        // incremental batch of the same epoch that closes the listing; c is never named.
        let mut first = batch(true, true, 1, vec![artifact("a", 1, &[1])]);
        first.cursor.epoch = "e2".into();
        let out = s.apply_change_batch(r, &first).unwrap();
        assert_eq!(out.removed_artifacts, 0, "not before the listing ends");
        let mut last = batch(false, false, 2, vec![artifact("b", 2, &[1, 2])]);
        last.cursor.epoch = "e2".into();
        let out = s.apply_change_batch(r, &last).unwrap();
        assert_eq!(out.removed_artifacts, 1);
        let removed: Vec<(String, bool)> = rows(&s)
            .into_iter()
            .map(|(d, removed, ..)| (d, removed))
            .collect();
        assert_eq!(
            removed,
            [
                ("artifacts/model/a".to_string(), false),
                ("artifacts/model/b".to_string(), false),
                ("artifacts/model/c".to_string(), true),
            ]
        );
    }

    #[test]
    fn a_refused_artifact_shows_until_it_arrives_right() {
        let (_d, mut s) = fresh_store();
        let r = add_remote(&mut s, "gpu");
        let refusal = SkippedEntry {
            name: "artifacts/model/m".into(),
            reason: "refused by the hub: bad".into(),
        };
        s.record_refusals(r, KIND_ARTIFACT, &[refusal]).unwrap();
        assert_eq!(s.skipped(r, 10).unwrap().len(), 1);
        s.apply_change_batch(r, &batch(false, false, 1, vec![artifact("m", 1, &[1])]))
            .unwrap();
        assert!(s.skipped(r, 10).unwrap().is_empty());
    }
}
