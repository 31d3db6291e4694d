//! Files of upstream's `archive/` by their root-relative path (`fetch assets`): the files of a
//! rolling output copy (`archive/outputs/rolling/…`, not content-addressed), directory manifests
//! (`archive/manifests/…`), and the listing of a rolling directory copy. Every path must start
//! with `archive/` and pass the wire's path rule; it is opened, like every file, only once its
//! real path is seen under the root's. Bytes are copied straight to their destination (they
//! have no SHA-256 the cache could be keyed by, except when the caller knows one: then it is
//! checked). Contents of `archive/blobs/` go through [`RemoteFiles::ensure_content`] instead.

use std::io::Write;
use std::path::{Path, PathBuf};

use runicorn_protocol::wire::check_wire_path;
use runicorn_store::{RemoteId, RemoteRow};
use sha2::{Digest, Sha256};

use super::manifest_path::is_under;
use super::source::{self, SourceFile};
use super::{FetchError, RemoteFiles, TransferProgress};
use crate::remote_address::RemoteAddress;

/// Bytes read at once.
const PIECE: usize = 256 * 1024;

/// A file found below an archive directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveListing {
    /// Its path inside the listed directory (`/`-separated).
    pub path: String,
    pub size: u64,
}

/// What a copy wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveCopy {
    pub sha256: String,
    pub size: u64,
}

fn check_archive_path(relative: &str) -> Result<(), FetchError> {
    check_wire_path(relative).map_err(|reason| FetchError::BadPath {
        path: relative.to_owned(),
        reason,
    })?;
    if !relative.starts_with("archive/") {
        return Err(FetchError::BadPath {
            path: relative.to_owned(),
            reason: "not under the storage root's archive/".into(),
        });
    }
    Ok(())
}

impl RemoteFiles {
    async fn remote_and_address(
        &self,
        remote_id: RemoteId,
    ) -> Result<(RemoteRow, RemoteAddress), FetchError> {
        let remote = self
            .inner
            .store
            .call(move |s| s.remote_by_id(remote_id))
            .await??
            .ok_or_else(|| FetchError::UnknownRemote {
                remote: format!("#{}", remote_id.0),
            })?;
        let address: RemoteAddress =
            serde_json::from_value(remote.transport.clone()).map_err(|e| {
                FetchError::BadAddress {
                    remote: remote.name.clone(),
                    reason: e.to_string(),
                }
            })?;
        Ok((remote, address))
    }

    async fn open_archive(
        &self,
        remote: &RemoteRow,
        address: &RemoteAddress,
        relative: &str,
    ) -> Result<(SourceFile, source::Stat), FetchError> {
        let want = super::ContentWanted {
            sha256: String::new(),
            size: 0,
            stored: String::new(),
            label: relative.to_owned(),
        };
        self.open_source(remote, address, relative, 0, &want).await
    }

    /// Copies the archive file `relative` of `remote_id` to `destination` (through
    /// `destination.part`, renamed when complete), hashing it; with `expected_sha256`, bytes
    /// that do not hash to it are refused (nothing is left at `destination`).
    pub async fn copy_archive_file(
        &self,
        remote_id: RemoteId,
        relative: &str,
        expected_sha256: Option<&str>,
        destination: &Path,
        progress: Option<TransferProgress>,
    ) -> Result<ArchiveCopy, FetchError> {
        check_archive_path(relative)?;
        let (remote, address) = self.remote_and_address(remote_id).await?;
        let _permit = self
            .inner
            .transfers
            .acquire()
            .await
            .map_err(|_| FetchError::StoreGone)?;
        let (mut src, stat) = self.open_archive(&remote, &address, relative).await?;
        let partial = {
            let mut p = destination.as_os_str().to_owned();
            p.push(".part");
            PathBuf::from(p)
        };
        if let Some(parent) = destination.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| cache_io(parent, e))?;
        }
        let mut out = std::fs::File::create(&partial).map_err(|e| cache_io(&partial, e))?;
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let mut buf = vec![0u8; PIECE];
        loop {
            let n = match src.read(&mut buf).await {
                Ok(n) => n,
                Err(e) => {
                    let _ = std::fs::remove_file(&partial);
                    return Err(FetchError::Interrupted {
                        remote: remote.name.clone(),
                        path: relative.to_owned(),
                        done: size,
                        size: stat.size,
                        reason: e.to_string(),
                    });
                }
            };
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            // Small pieces to a local file: the write is short, like the cache's own partials.
            if let Err(e) = out.write_all(&buf[..n]) {
                let _ = std::fs::remove_file(&partial);
                return Err(cache_io(&partial, e));
            }
            size += n as u64;
            if let Some(p) = &progress {
                p(size);
            }
        }
        let sha256: String = hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let refused = |reason: String| {
            let _ = std::fs::remove_file(&partial);
            reason
        };
        if size != stat.size {
            return Err(FetchError::Changed {
                remote: remote.name.clone(),
                path: relative.to_owned(),
                reason: refused(format!(
                    "it had {} bytes when opened and {size} were read",
                    stat.size
                )),
            });
        }
        if let Some(expected) = expected_sha256 {
            if expected != sha256 {
                let _ = refused(String::new());
                return Err(FetchError::HashMismatch {
                    remote: remote.name.clone(),
                    path: relative.to_owned(),
                    expected: expected.to_owned(),
                    actual: sha256,
                });
            }
        }
        out.sync_all().map_err(|e| cache_io(&partial, e))?;
        drop(out);
        std::fs::rename(&partial, destination).map_err(|e| cache_io(destination, e))?;
        Ok(ArchiveCopy { sha256, size })
    }

    /// The bytes of a small archive file (a directory manifest), at most `max` of them.
    pub async fn read_archive_file(
        &self,
        remote_id: RemoteId,
        relative: &str,
        max: u64,
    ) -> Result<Vec<u8>, FetchError> {
        check_archive_path(relative)?;
        let (remote, address) = self.remote_and_address(remote_id).await?;
        let (mut src, stat) = self.open_archive(&remote, &address, relative).await?;
        if stat.size > max {
            return Err(FetchError::Remote {
                remote: remote.name.clone(),
                path: relative.to_owned(),
                reason: format!("it has {} bytes, more than the {max} read here", stat.size),
            });
        }
        let mut bytes = Vec::with_capacity(usize::try_from(stat.size).unwrap_or(0));
        let mut buf = vec![0u8; PIECE];
        loop {
            let n = src.read(&mut buf).await.map_err(|e| FetchError::Remote {
                remote: remote.name.clone(),
                path: relative.to_owned(),
                reason: e.to_string(),
            })?;
            if n == 0 || bytes.len() as u64 + n as u64 > max {
                bytes.extend_from_slice(&buf[..n.min(PIECE)]);
                break;
            }
            bytes.extend_from_slice(&buf[..n]);
        }
        if bytes.len() as u64 > max {
            return Err(FetchError::Remote {
                remote: remote.name.clone(),
                path: relative.to_owned(),
                reason: format!("it grew past the {max} bytes read here"),
            });
        }
        Ok(bytes)
    }

    /// The regular files below the archive directory `relative` (recursively, sorted by
    /// path; links and anything else left out), each under the root's real path.
    pub async fn list_archive_dir(
        &self,
        remote_id: RemoteId,
        relative: &str,
    ) -> Result<Vec<ArchiveListing>, FetchError> {
        check_archive_path(relative)?;
        let (remote, address) = self.remote_and_address(remote_id).await?;
        let failed = |reason: String| FetchError::Remote {
            remote: remote.name.clone(),
            path: relative.to_owned(),
            reason,
        };
        let mut found = match &address {
            RemoteAddress::Offline { .. } => {
                return Err(FetchError::Offline {
                    remote: remote.name.clone(),
                    path: relative.to_owned(),
                    reason: "it is known only from imported bundles: `runicorn-hub connect USER@HOST --name NAME` gives it a link".to_owned(),
                })
            }
            RemoteAddress::Local { dir, .. } => {
                let (dir, rel) = (dir.clone(), relative.to_owned());
                tokio::task::spawn_blocking(move || list_local(&dir, &rel))
                    .await
                    .map_err(|e| failed(e.to_string()))?
                    .map_err(failed)?
            }
            RemoteAddress::Ssh { .. } => {
                let root = self.root_of(&remote)?;
                let conn = self
                    .connection(remote.id, &address, &root)
                    .await
                    .map_err(|reason| FetchError::Offline {
                        remote: remote.name.clone(),
                        path: relative.to_owned(),
                        reason,
                    })?;
                let top = format!("{}/{relative}", conn.root_real.trim_end_matches('/'));
                let real = conn
                    .sftp
                    .canonicalize(top.as_str())
                    .await
                    .map_err(|e| failed(e.to_string()))?;
                if !is_under(&real, &conn.root_real) {
                    return Err(FetchError::OutsideRoot {
                        remote: remote.name.clone(),
                        path: relative.to_owned(),
                        resolved: real,
                    });
                }
                let mut found = Vec::new();
                let mut pending = vec![(real, String::new())];
                while let Some((dir, prefix)) = pending.pop() {
                    let entries = conn
                        .sftp
                        .read_dir(dir.as_str())
                        .await
                        .map_err(|e| failed(format!("{dir}: {e}")))?;
                    for entry in entries {
                        let name = entry.file_name();
                        if name == "." || name == ".." || name.contains('/') {
                            continue;
                        }
                        let path = if prefix.is_empty() {
                            name.clone()
                        } else {
                            format!("{prefix}/{name}")
                        };
                        let kind = entry.file_type();
                        if kind.is_dir() {
                            pending.push((format!("{dir}/{name}"), path));
                        } else if kind.is_file() {
                            found.push(ArchiveListing {
                                path,
                                size: entry.metadata().size.unwrap_or(0),
                            });
                        }
                    }
                }
                found
            }
        };
        found.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(found)
    }
}

fn list_local(root: &Path, relative: &str) -> Result<Vec<ArchiveListing>, String> {
    let root_real = std::fs::canonicalize(root).map_err(|e| format!("{}: {e}", root.display()))?;
    let top = std::fs::canonicalize(root.join(relative)).map_err(|e| e.to_string())?;
    if !top.starts_with(&root_real) {
        return Err(format!("{} leaves the storage root", top.display()));
    }
    let mut found = Vec::new();
    let mut pending = vec![(top, String::new())];
    while let Some((dir, prefix)) = pending.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}/{name}")
            };
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                pending.push((entry.path(), path));
            } else if kind.is_file() {
                let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
                found.push(ArchiveListing { path, size });
            }
        }
    }
    Ok(found)
}

fn cache_io(path: &Path, source: std::io::Error) -> FetchError {
    FetchError::LocalWrite {
        path: path.to_owned(),
        source,
    }
}
