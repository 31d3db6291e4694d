//! Resolving an artifact reference (`NAME:REF`, REF = `latest`, `vN` or an alias; optionally
//! narrowed by remote and type) to one version and its files, over the schema-6 tables
//! (`artifacts`, `artifact_aliases`, `artifact_versions`, `artifact_files`): what
//! `runicorn-hub fetch artifact` and the dashboard's download route need before any byte moves.

use rusqlite::{params, OptionalExtension};

use crate::artifact_reads::ArtifactFileRow;
use crate::error::{SqliteContext, StoreError};
use crate::ids::RemoteId;
use crate::store::Store;

/// One artifact version, resolved, with its files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedVersion {
    pub remote_id: RemoteId,
    pub remote: String,
    pub kind: String,
    pub name: String,
    pub version: u64,
    pub files: Vec<ArtifactFileRow>,
}

/// Why a reference names no single version.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactRefError {
    #[error("{reference:?} is not an artifact reference; write NAME:REF, e.g. model:latest, model:v3 or model:best")]
    Malformed { reference: String },
    #[error("no artifact named {name:?}{narrowed} is known to the hub; list them with `runicorn-hub artifacts`")]
    NotFound { name: String, narrowed: String },
    #[error(
        "artifact name {name:?} is ambiguous: {candidates}; narrow it with --remote or --type"
    )]
    Ambiguous { name: String, candidates: String },
    #[error("artifact {name:?} on {remote} has no version {reference:?}; list its versions and aliases with `runicorn-hub artifacts`")]
    NoVersion {
        name: String,
        remote: String,
        reference: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Splits `NAME:REF` (REF defaults to `latest` when absent).
pub fn split_reference(reference: &str) -> Result<(&str, &str), ArtifactRefError> {
    let (name, version) = reference.rsplit_once(':').unwrap_or((reference, "latest"));
    if name.is_empty() || version.is_empty() {
        return Err(ArtifactRefError::Malformed {
            reference: reference.to_owned(),
        });
    }
    Ok((name, version))
}

fn parse_version_number(reference: &str) -> Option<u64> {
    reference
        .strip_prefix('v')
        .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|d| d.parse().ok())
}

impl Store {
    /// The version `reference` (`NAME:REF`) names, optionally on `remote` (by name) and of
    /// `kind`, with its files.
    pub fn resolve_artifact(
        &self,
        reference: &str,
        remote: Option<&str>,
        kind: Option<&str>,
    ) -> Result<ResolvedVersion, ArtifactRefError> {
        let (name, version_ref) = split_reference(reference)?;
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT a.id, a.remote, r.name, a.type FROM artifacts a
                 JOIN remotes r ON r.id = a.remote
                 WHERE a.name = ?1 AND (?2 IS NULL OR r.name = ?2) AND (?3 IS NULL OR a.type = ?3)
                 ORDER BY a.removed, r.name, a.type",
            )
            .at(&self.db_path)?;
        let found: Vec<(i64, i64, String, String)> = stmt
            .query_map(params![name, remote, kind], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .at(&self.db_path)?
            .collect::<Result<_, _>>()
            .at(&self.db_path)?;
        let (artifact, remote_id, remote_name, kind) = match found.as_slice() {
            [] => {
                let mut narrowed = String::new();
                if let Some(k) = kind {
                    narrowed.push_str(&format!(" of type {k:?}"));
                }
                if let Some(r) = remote {
                    narrowed.push_str(&format!(" on remote {r}"));
                }
                return Err(ArtifactRefError::NotFound {
                    name: name.to_owned(),
                    narrowed,
                });
            }
            [one] => one.clone(),
            many => {
                return Err(ArtifactRefError::Ambiguous {
                    name: name.to_owned(),
                    candidates: many
                        .iter()
                        .map(|(_, _, r, t)| format!("type {t} on {r}"))
                        .collect::<Vec<_>>()
                        .join(", "),
                })
            }
        };
        let version = match parse_version_number(version_ref) {
            Some(n) => self.version_exists(artifact, n)?.then_some(n),
            None => self.alias_version(artifact, version_ref)?,
        };
        let version = version.ok_or_else(|| ArtifactRefError::NoVersion {
            name: name.to_owned(),
            remote: remote_name.clone(),
            reference: version_ref.to_owned(),
        })?;
        let files = self.resolved_version_files(artifact, version)?;
        Ok(ResolvedVersion {
            remote_id: RemoteId(remote_id),
            remote: remote_name,
            kind,
            name: name.to_owned(),
            version,
            files,
        })
    }

    /// One file of a version addressed the way the download route does: remote name, type,
    /// name, version number and path. `None` when any part is unknown.
    pub fn artifact_file(
        &self,
        remote: &str,
        kind: &str,
        name: &str,
        version: u64,
        path: &str,
    ) -> Result<Option<(RemoteId, ArtifactFileRow)>, StoreError> {
        self.conn
            .query_row(
                "SELECT a.remote, f.path, f.size, f.sha256, f.stored
                 FROM artifacts a JOIN remotes r ON r.id = a.remote
                 JOIN artifact_files f ON f.artifact = a.id
                 WHERE r.name = ?1 AND a.type = ?2 AND a.name = ?3 AND f.version = ?4
                   AND f.path = ?5",
                params![
                    remote,
                    kind,
                    name,
                    i64::try_from(version).unwrap_or(-1),
                    path
                ],
                |r| {
                    Ok((
                        RemoteId(r.get(0)?),
                        ArtifactFileRow {
                            path: r.get(1)?,
                            size: u64::try_from(r.get::<_, i64>(2)?).unwrap_or(0),
                            sha256: r.get(3)?,
                            stored: r.get(4)?,
                        },
                    ))
                },
            )
            .optional()
            .at(&self.db_path)
    }

    fn version_exists(&self, artifact: i64, version: u64) -> Result<bool, StoreError> {
        self.conn
            .query_row(
                "SELECT 1 FROM artifact_versions WHERE artifact = ?1 AND version = ?2",
                params![artifact, i64::try_from(version).unwrap_or(-1)],
                |_| Ok(()),
            )
            .optional()
            .at(&self.db_path)
            .map(|f| f.is_some())
    }

    /// The version an alias points at; `latest` without an alias row is the newest version.
    fn alias_version(&self, artifact: i64, alias: &str) -> Result<Option<u64>, StoreError> {
        let aliased: Option<i64> = self
            .conn
            .query_row(
                "SELECT version FROM artifact_aliases WHERE artifact = ?1 AND alias = ?2",
                params![artifact, alias],
                |r| r.get(0),
            )
            .optional()
            .at(&self.db_path)?;
        let version = match aliased {
            Some(v) => Some(v),
            None if alias == "latest" => self
                .conn
                .query_row(
                    "SELECT MAX(version) FROM artifact_versions WHERE artifact = ?1",
                    params![artifact],
                    |r| r.get(0),
                )
                .at(&self.db_path)?,
            None => None,
        };
        Ok(version.and_then(|v| u64::try_from(v).ok()))
    }

    fn resolved_version_files(
        &self,
        artifact: i64,
        version: u64,
    ) -> Result<Vec<ArtifactFileRow>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT path, size, sha256, stored FROM artifact_files
                 WHERE artifact = ?1 AND version = ?2 ORDER BY path",
            )
            .at(&self.db_path)?;
        let rows = stmt
            .query_map(
                params![artifact, i64::try_from(version).unwrap_or(-1)],
                |r| {
                    Ok(ArtifactFileRow {
                        path: r.get(0)?,
                        size: u64::try_from(r.get::<_, i64>(1)?).unwrap_or(0),
                        sha256: r.get(2)?,
                        stored: r.get(3)?,
                    })
                },
            )
            .at(&self.db_path)?;
        rows.collect::<Result<_, _>>().at(&self.db_path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store
            .conn
            .execute_batch(
                "INSERT INTO remotes(id, name, address, transport, created_at)
                    VALUES (1, 'gpu', 'me@gpu', '{}', 0), (2, 'lab', 'me@lab', '{}', 0);
                 INSERT INTO artifacts(id, remote, dir, seq, type, name)
                    VALUES (1, 1, 'artifacts/model/m', 1, 'model', 'm'),
                           (2, 2, 'artifacts/model/m', 1, 'model', 'm'),
                           (3, 1, 'artifacts/dataset/d', 1, 'dataset', 'd');
                 INSERT INTO artifact_versions(artifact, version, size)
                    VALUES (1, 1, 3), (1, 2, 3), (1, 3, 3), (3, 1, 1);
                 INSERT INTO artifact_aliases VALUES (1, 'latest', 3), (1, 'best', 2);
                 INSERT INTO artifact_files VALUES
                    (1, 2, 'w.bin', 3, 'aa', 'whole'), (1, 2, 'a/cfg.json', 1, 'bb', 'whole'),
                    (3, 1, 'x', 1, 'cc', 'chunked');",
            )
            .unwrap();
        (dir, store)
    }

    #[test]
    fn references_resolve_by_number_alias_and_latest() {
        let (_d, store) = store();
        let v = store.resolve_artifact("m:best", Some("gpu"), None).unwrap();
        assert_eq!((v.remote.as_str(), v.version), ("gpu", 2));
        assert_eq!(v.files.len(), 2);
        assert_eq!(v.files[0].path, "a/cfg.json");
        assert_eq!(
            store
                .resolve_artifact("m:v1", Some("gpu"), Some("model"))
                .unwrap()
                .version,
            1
        );
        assert_eq!(
            store
                .resolve_artifact("m", Some("gpu"), None)
                .unwrap()
                .version,
            3
        );
        // `latest` without an alias row: the newest version.
        assert_eq!(
            store
                .resolve_artifact("d:latest", None, None)
                .unwrap()
                .version,
            1
        );
    }

    #[test]
    fn unknown_and_ambiguous_references_say_what_to_do() {
        let (_d, store) = store();
        let e = store.resolve_artifact("m:v1", None, None).unwrap_err();
        assert!(e.to_string().contains("--remote"), "{e}");
        let e = store
            .resolve_artifact("m:v9", Some("gpu"), None)
            .unwrap_err();
        assert!(matches!(e, ArtifactRefError::NoVersion { .. }), "{e}");
        let e = store.resolve_artifact("nope:v1", None, None).unwrap_err();
        assert!(e.to_string().contains("runicorn-hub artifacts"), "{e}");
        assert!(store.resolve_artifact(":v1", None, None).is_err());
        let (remote, file) = store
            .artifact_file("gpu", "dataset", "d", 1, "x")
            .unwrap()
            .unwrap();
        assert_eq!((remote, file.stored.as_str()), (RemoteId(1), "chunked"));
        assert!(store
            .artifact_file("gpu", "dataset", "d", 2, "x")
            .unwrap()
            .is_none());
    }
}
