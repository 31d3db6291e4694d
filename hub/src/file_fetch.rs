//! Lazy file bytes: brings one file of a run's manifest (an image the dashboard shows, say) from
//! its remote into the store's content-addressed cache, on demand. SSH remotes are read over
//! SFTP on a connection kept per remote and reopened when it drops; local roots are read
//! directly. Metadata is pulled eagerly by the sync; bytes only when someone looks.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use futures::future::BoxFuture;
use runicorn_protocol::run_format::safe_read;
use runicorn_store::{RemoteId, RunRow};
use tokio::io::AsyncReadExt;
use tokio::sync::Mutex;

use crate::remote_address::RemoteAddress;
use crate::ssh::{self, SshSession};
use crate::store_thread::StoreHandle;

/// Largest file fetched on demand. The dashboard shows media, not checkpoints.
pub const MAX_FETCH_BYTES: u64 = 50 * 1024 * 1024;

/// Fetches manifest files of any remembered remote into the store's file cache.
#[derive(Clone)]
pub struct RemoteFiles {
    inner: Arc<Inner>,
}

struct Inner {
    store: StoreHandle,
    /// Open SSH connections by remote, reused across fetches.
    sessions: Mutex<HashMap<RemoteId, Arc<SshSession>>>,
}

impl RemoteFiles {
    pub fn new(store: StoreHandle) -> RemoteFiles {
        RemoteFiles {
            inner: Arc::new(Inner {
                store,
                sessions: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Copies `path` of `run` into the cache and records it; the error says what failed.
    pub async fn fetch_file(&self, run: RunRow, path: String) -> Result<(), String> {
        let relative = confined_relative(&run.dir, &path)?;
        let remote_id = run.remote_id;
        let remote = self
            .inner
            .store
            .call(move |s| s.remote_by_id(remote_id))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("remote {} is no longer remembered", run.remote))?;
        let address: RemoteAddress =
            serde_json::from_value(remote.transport.clone()).map_err(|e| {
                format!(
                    "the stored address of remote {} is unreadable: {e}",
                    run.remote
                )
            })?;
        let bytes = match &address {
            RemoteAddress::Local { dir, .. } => read_local(dir, &relative).await?,
            RemoteAddress::Ssh { .. } => {
                let root = remote.agent_root.clone().ok_or_else(|| {
                    format!(
                        "remote {} has not been synced yet; its storage root is unknown",
                        run.remote
                    )
                })?;
                let full = format!("{}/{}", root.trim_end_matches('/'), relative.display());
                self.read_over_sftp(remote_id, &run.remote, &address, &full)
                    .await?
            }
        };
        let key = run.key;
        let stored = self
            .inner
            .store
            .call(move |s| {
                let (sha, _) = s.put_file(bytes.as_slice(), MAX_FETCH_BYTES)?;
                s.record_cached_file(key, &path, &sha)
            })
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        if stored {
            Ok(())
        } else {
            Err("the run's manifest no longer lists this file".into())
        }
    }

    async fn read_over_sftp(
        &self,
        remote_id: RemoteId,
        name: &str,
        address: &RemoteAddress,
        full: &str,
    ) -> Result<Vec<u8>, String> {
        let session = self.session(remote_id, address).await?;
        let result = read_sftp(&session, full).await;
        if result.is_err() && session.is_closed() {
            // Drop the dead connection so the next fetch reconnects.
            self.inner.sessions.lock().await.remove(&remote_id);
        }
        result.map_err(|e| format!("cannot read {full} from {name}: {e}"))
    }

    async fn session(
        &self,
        remote_id: RemoteId,
        address: &RemoteAddress,
    ) -> Result<Arc<SshSession>, String> {
        let mut sessions = self.inner.sessions.lock().await;
        if let Some(s) = sessions.get(&remote_id).filter(|s| !s.is_closed()) {
            return Ok(Arc::clone(s));
        }
        let RemoteAddress::Ssh {
            target,
            port,
            identity,
            jump,
            ..
        } = address
        else {
            return Err("not an SSH remote".into());
        };
        let opts = ssh::ConnectOptions {
            port: *port,
            identity: identity.clone(),
            jump: jump.clone(),
            ..ssh::ConnectOptions::default()
        };
        let resolved = ssh::resolve_target(target, &opts).map_err(|e| e.to_string())?;
        let session = Arc::new(
            ssh::connect(&resolved, &opts)
                .await
                .map_err(|e| e.to_string())?,
        );
        sessions.insert(remote_id, Arc::clone(&session));
        Ok(session)
    }
}

impl runicorn_web::FileFetcher for RemoteFiles {
    fn fetch(&self, run: RunRow, path: String) -> BoxFuture<'static, Result<(), String>> {
        let this = self.clone();
        Box::pin(async move { this.fetch_file(run, path).await })
    }
}

/// `run_dir/path` as a relative path with no `..`, no root and no prefix: it stays inside the
/// remote's storage root whatever the manifest says.
fn confined_relative(run_dir: &str, path: &str) -> Result<PathBuf, String> {
    let joined = Path::new(run_dir).join(path);
    if joined
        .components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
    {
        Ok(joined)
    } else {
        Err(format!("{path:?} is not a path inside the run directory"))
    }
}

async fn read_local(root: &Path, relative: &Path) -> Result<Vec<u8>, String> {
    let root = root.to_owned();
    let full = root.join(relative);
    tokio::task::spawn_blocking(move || read_local_blocking(&root, &full))
        .await
        .map_err(|e| format!("reading a local file failed: {e}"))?
}

/// The local read, by the agent's reading rules: the resolved path must stay inside the root
/// (links included), and only a regular file is read (a FIFO would block for ever), at most
/// [`MAX_FETCH_BYTES`] of it whatever its metadata says.
fn read_local_blocking(root: &Path, full: &Path) -> Result<Vec<u8>, String> {
    let shown = full.display().to_string();
    let canonical_root =
        std::fs::canonicalize(root).map_err(|e| format!("cannot open {shown}: {e}"))?;
    let canonical = std::fs::canonicalize(full).map_err(|e| format!("cannot open {shown}: {e}"))?;
    if !canonical.starts_with(&canonical_root) {
        return Err(format!("{shown} leads outside the remote's root"));
    }
    match safe_read::read_bounded(&canonical, &canonical_root, MAX_FETCH_BYTES) {
        Ok(bytes) => Ok(bytes),
        Err(safe_read::ReadError::TooLarge { .. }) => Err(format!(
            "{shown} is larger than {} MiB; the dashboard does not fetch files that large",
            MAX_FETCH_BYTES / (1024 * 1024)
        )),
        Err(e) => Err(e.to_string()),
    }
}

async fn read_sftp(session: &SshSession, full: &str) -> Result<Vec<u8>, String> {
    let sftp = session.sftp().await.map_err(|e| e.to_string())?;
    let file = sftp.open(full).await.map_err(|e| e.to_string())?;
    let bytes = read_bounded(file, full).await;
    let _ = sftp.close().await;
    bytes
}

/// Reads at most [`MAX_FETCH_BYTES`]; a larger file is refused rather than cut.
async fn read_bounded(
    reader: impl tokio::io::AsyncRead + Unpin,
    shown: &str,
) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    reader
        .take(MAX_FETCH_BYTES + 1)
        .read_to_end(&mut bytes)
        .await
        .map_err(|e| format!("cannot read {shown}: {e}"))?;
    if bytes.len() as u64 > MAX_FETCH_BYTES {
        return Err(format!(
            "{shown} is larger than {} MiB; the dashboard does not fetch files that large",
            MAX_FETCH_BYTES / (1024 * 1024)
        ));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_paths_stay_inside_the_run() {
        assert!(confined_relative("runs/a", "media/x.png").is_ok());
        assert!(confined_relative("runs/a", "../../etc/passwd").is_err());
        assert!(confined_relative("runs/a", "/etc/passwd").is_err());
    }

    #[tokio::test]
    async fn local_files_are_read_and_escapes_refused() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("run/media")).unwrap();
        std::fs::write(root.path().join("run/media/a.png"), b"png").unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), b"s").unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), root.path().join("run/link"))
            .unwrap();
        assert_eq!(
            read_local(root.path(), Path::new("run/media/a.png"))
                .await
                .unwrap(),
            b"png"
        );
        let err = read_local(root.path(), Path::new("run/link"))
            .await
            .unwrap_err();
        assert!(err.contains("outside"), "{err}");
    }

    #[tokio::test]
    async fn a_fifo_or_device_link_is_refused_without_blocking() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("run")).unwrap();
        let fifo = std::ffi::CString::new(
            root.path()
                .join("run/pipe.png")
                .into_os_string()
                .into_encoded_bytes(),
        )
        .unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
        let read = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            read_local(root.path(), Path::new("run/pipe.png")),
        )
        .await
        .expect("a FIFO must not block the read");
        assert!(read.unwrap_err().contains("FIFO"));
    }
}
