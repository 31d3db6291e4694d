//! Lazy file bytes: brings one file of a run's manifest (an image the dashboard shows, a
//! checkpoint `runicorn-hub fetch` copies out) from its remote into the store's
//! content-addressed cache, on demand and of any size. Metadata is pulled eagerly by the sync;
//! bytes only when someone asks, and never twice.
//!
//! A transfer streams into a resumable partial file under the cache's `tmp/` (never whole in
//! memory), hashed while written, verified against the manifest's SHA-256 (or, for files the
//! agent does not hash, against the size and mtime it listed), then moved into the cache under
//! its hash. A cut transfer resumes from the partial's length. At most [`MAX_TRANSFERS`] run at
//! once, over SFTP on a connection of their own per remote, so the sync's connection is never
//! shared with bulk bytes.
//!
//! | module | owns |
//! |---|---|
//! | `error` | [`FetchError`] |
//! | `manifest_path` | the path rule: relative, normalised, under the root |
//! | `source` | opening the remote (SFTP) or local file, confined to the root's real path |
//! | `transfer` | the copy into the partial: reads in flight on one side, writing and hashing on a thread |
//! | `web` | the dashboard's `FileFetcher` over [`RemoteFiles`] |
//! | `earlier_copies` | the last cached copy of each file that grows, so a longer version fetches only what was appended |
//! | `idle_agents` | closing the kept chunk-list agent session of a remote after an idle time (60 s) |
//! | `archive_file` | files of upstream's `archive/` by root-relative path (rolling output copies, directory manifests) and listing a rolling directory copy |
//! | `content` | artifact contents by SHA-256: whole when small, else only the chunks the cache lacks (the agent's `chunks` list), each verified, then the whole |

mod archive_file;
mod content;
mod earlier_copies;
mod error;
mod idle_agents;
mod manifest_path;
mod source;
mod transfer;
mod web;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use runicorn_store::{FileCache, FileRow, Partial, RemoteId, RemoteRow, RunRow};
use tokio::sync::{Mutex, Semaphore};

pub use archive_file::{ArchiveCopy, ArchiveListing};
pub use content::{ContentWanted, MovedCounter, BLOB};
pub use error::FetchError;
pub use idle_agents::{CHUNK_AGENT_IDLE, CHUNK_AGENT_IDLE_ENV};
pub use manifest_path::check_manifest_path;

use crate::remote_address::RemoteAddress;
use crate::ssh::{self, SftpSession, SshSession};
use crate::store_thread::StoreHandle;
use source::{OpenError, SourceFile, Stat};
use transfer::CopyError;

/// Bytes of the file held so far, resumed bytes included; called as they land on disk.
pub type TransferProgress = Arc<dyn Fn(u64) + Send + Sync>;

/// Called once a transfer has its partial file, with a handle that reads it (positional reads
/// up to the reported progress see the bytes written).
pub type TransferStarted = Box<dyn FnOnce(std::fs::File) + Send>;

/// Transfers at once (per hub process, all remotes together).
pub const MAX_TRANSFERS: usize = 4;

/// A file of a run, in the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedFile {
    pub sha256: String,
    pub size: u64,
    /// The cached copy (`files/ab/cdef…`): read it, never write it.
    pub path: PathBuf,
}

/// Fetches manifest files of any remembered remote into the store's file cache.
#[derive(Clone)]
pub struct RemoteFiles {
    inner: Arc<Inner>,
}

struct Inner {
    store: StoreHandle,
    /// How SSH connects (the SSH directory, agent, timeouts); each remote's stored address
    /// sets the port, identity and jump hosts.
    connect_options: ssh::ConnectOptions,
    /// SFTP connections by remote, reused across transfers and reopened when closed.
    connections: Mutex<HashMap<RemoteId, Arc<SftpRemote>>>,
    transfers: Semaphore,
    /// Agent sessions kept for chunk lists, by remote (on the remote's file connection).
    agents: Mutex<HashMap<RemoteId, Arc<content::ChunkAgent>>>,
    /// How long a kept chunk-list session may sit unused (milliseconds; `idle_agents`).
    chunk_agent_idle_ms: std::sync::atomic::AtomicU64,
    /// The copy this process last cached of each file that grows (`earlier_copies`).
    earlier: std::sync::Mutex<earlier_copies::EarlierCopies>,
}

/// A remote's file connection: its own SSH connection, one SFTP session, the root's real path.
struct SftpRemote {
    ssh: SshSession,
    sftp: SftpSession,
    root_real: String,
}

/// Whether a transfer may start from the earlier cached copy of the same file.
#[derive(Clone, Copy)]
enum Seeding {
    EarlierCopy,
    None,
}

/// How one transfer ended when it did not fail.
enum Transferred {
    Cached(CachedFile),
    /// It started from an earlier copy that turned out not to be a prefix of the file.
    SeedWasNotAPrefix,
}

/// What the store says about a file before a transfer.
struct Known {
    file: FileRow,
    remote: RemoteRow,
    cache: FileCache,
    /// Already in the cache (recorded now if it came from another run's identical bytes).
    cached: Option<CachedFile>,
}

impl RemoteFiles {
    pub fn new(store: StoreHandle) -> RemoteFiles {
        RemoteFiles::with_connect_options(store, ssh::ConnectOptions::default())
    }

    /// Connecting with these options (tests point them at their own `~/.ssh`).
    pub fn with_connect_options(
        store: StoreHandle,
        connect_options: ssh::ConnectOptions,
    ) -> RemoteFiles {
        RemoteFiles {
            inner: Arc::new(Inner {
                store,
                connect_options,
                connections: Mutex::new(HashMap::new()),
                transfers: Semaphore::new(MAX_TRANSFERS),
                agents: Mutex::new(HashMap::new()),
                chunk_agent_idle_ms: std::sync::atomic::AtomicU64::new(
                    u64::try_from(idle_agents::chunk_agent_idle().as_millis()).unwrap_or(u64::MAX),
                ),
                earlier: std::sync::Mutex::default(),
            }),
        }
    }

    /// Closes each remote's kept chunk-list agent session after `idle` without use (default
    /// [`CHUNK_AGENT_IDLE`], or `$RUNICORN_CHUNK_AGENT_IDLE_SECS`); sessions opened from now on.
    pub fn set_chunk_agent_idle(&self, idle: std::time::Duration) {
        let ms = u64::try_from(idle.as_millis()).unwrap_or(u64::MAX).max(1);
        self.inner
            .chunk_agent_idle_ms
            .store(ms, std::sync::atomic::Ordering::Relaxed);
    }

    /// The file `path` of `run`'s manifest, in the cache: at once when it is there already
    /// (nothing is asked of the remote), else transferred, verified and recorded.
    pub async fn ensure_cached(
        &self,
        run: RunRow,
        path: String,
        progress: Option<TransferProgress>,
    ) -> Result<CachedFile, FetchError> {
        self.ensure_cached_observed(run, path, progress, None).await
    }

    /// [`RemoteFiles::ensure_cached`], telling `started` when a transfer begins (the dashboard
    /// streams the partial file while it grows).
    pub async fn ensure_cached_observed(
        &self,
        run: RunRow,
        path: String,
        progress: Option<TransferProgress>,
        started: Option<TransferStarted>,
    ) -> Result<CachedFile, FetchError> {
        let retry = (run.clone(), path.clone(), progress.clone());
        match self
            .transfer_file(run, path, progress, started, Seeding::EarlierCopy)
            .await?
        {
            Transferred::Cached(cached) => Ok(cached),
            // The earlier copy was not a prefix after all (the file was rewritten, not
            // appended to): once more, every byte from the remote.
            Transferred::SeedWasNotAPrefix => {
                let (run, path, progress) = retry;
                match self
                    .transfer_file(run.clone(), path.clone(), progress, None, Seeding::None)
                    .await?
                {
                    Transferred::Cached(cached) => Ok(cached),
                    // Unseeded transfers never answer this; a mismatch is an error there.
                    Transferred::SeedWasNotAPrefix => Err(FetchError::Changed {
                        remote: run.remote,
                        path,
                        reason: "it changed while it was fetched".to_owned(),
                    }),
                }
            }
        }
    }

    async fn transfer_file(
        &self,
        run: RunRow,
        path: String,
        progress: Option<TransferProgress>,
        started: Option<TransferStarted>,
        seeding: Seeding,
    ) -> Result<Transferred, FetchError> {
        check_manifest_path(&path)?;
        let known = self.known(&run, &path).await?;
        if let Some(cached) = known.cached {
            touch(&cached.path).await;
            if let Some(p) = &progress {
                p(cached.size);
            }
            return Ok(Transferred::Cached(cached));
        }
        let address: RemoteAddress = serde_json::from_value(known.remote.transport.clone())
            .map_err(|e| FetchError::BadAddress {
                remote: run.remote.clone(),
                reason: e.to_string(),
            })?;
        let relative = manifest_path::relative_to_root(&run.dir, &path)?;
        // A permit per transfer; the semaphore is never closed.
        let _permit = self
            .inner
            .transfers
            .acquire()
            .await
            .map_err(|_| FetchError::StoreGone)?;
        let source_id = format!(
            "{}\n{relative}\n{}\n{}\n{}",
            run.remote_id.0,
            known.file.size,
            known.file.mtime,
            known.file.sha256.as_deref().unwrap_or("")
        );
        let cache = known.cache.clone();
        let size = known.file.size;
        let partial = blocking(move || cache.open_partial(&source_id, size)).await?;
        // Another transfer of the same file may have finished while this one waited.
        if let Some(cached) = self.known(&run, &path).await?.cached {
            if partial.is_empty() {
                discard(partial).await;
            }
            touch(&cached.path).await;
            return Ok(Transferred::Cached(cached));
        }
        let (partial, seeded) = match seeding {
            Seeding::EarlierCopy => self.seed_from_earlier(&run, &path, &known, partial).await?,
            Seeding::None => (partial, false),
        };
        let offset = partial.len();
        let opened = match &address {
            RemoteAddress::Offline { .. } => Err(FetchError::Offline {
                remote: run.remote.clone(),
                path: path.clone(),
                reason: "it is known only from imported bundles: `runicorn-hub connect USER@HOST --name NAME` gives it a link".to_owned(),
            }),
            RemoteAddress::Local { dir, .. } => source::open_local(dir, &relative, offset)
                .await
                .map_err(|e| open_error(&run.remote, &path, e)),
            RemoteAddress::Ssh { .. } => {
                self.open_over_sftp(&run, &known.remote, &address, &relative, &path, offset)
                    .await
            }
        };
        let (mut source, stat) = match opened {
            Ok(opened) => opened,
            Err(e) => {
                if seeded {
                    discard(partial).await;
                }
                return Err(e);
            }
        };
        // A file that only grew since the manifest was read (a run's `system.jsonl`, a log)
        // still holds the listed bytes at its start: those are copied, and the manifest's
        // SHA-256 proves they are unchanged. Without a hash nothing can prove it.
        let grew_with_hash = stat.size > size && known.file.sha256.is_some();
        if stat.size != size && !grew_with_hash {
            return Err(FetchError::Changed {
                remote: run.remote.clone(),
                path,
                reason: format!("its size is {} bytes, the manifest says {size}", stat.size),
            });
        }
        if let Some(started) = started {
            match std::fs::File::open(partial.path()) {
                Ok(reader) => started(reader),
                Err(e) => tracing::warn!("cannot reopen {}: {e}", partial.path().display()),
            }
        }
        if let Some(p) = &progress {
            p(offset);
        }
        let (partial, failure) = transfer::copy_into(&mut source, partial, size, progress).await;
        if let Some(failure) = failure {
            return Err(self.copy_failed(&run, path, partial, size, failure).await);
        }
        // Without a hash in the manifest, the file must still be the one the manifest listed.
        let after = match known.file.sha256 {
            Some(_) => None,
            None => Some(source.stat().await),
        };
        drop(source);
        if let Err(e) = verify(&run, &path, &known.file, &partial, after) {
            discard(partial).await;
            if seeded {
                self.forget_earlier(&run, &path);
                return Ok(Transferred::SeedWasNotAPrefix);
            }
            tracing::warn!("{e}");
            return Err(e);
        }
        let cache = known.cache.clone();
        let content = blocking(move || partial.commit(&cache)).await?;
        let key = run.key;
        let sha = content.sha256.clone();
        let recorded_path = path.clone();
        let listed = self
            .inner
            .store
            .call(move |s| s.record_cached_file(key, &recorded_path, &sha))
            .await??;
        if !listed {
            return Err(FetchError::NotInManifest { run: run.id, path });
        }
        self.remember_earlier(&run, &path, &content.sha256, content.size);
        Ok(Transferred::Cached(CachedFile {
            sha256: content.sha256,
            size: content.size,
            path: content.path,
        }))
    }

    /// Fills an empty partial with the copy this process last cached of the same file when that
    /// copy is shorter than the listed size (the file grew): only the rest is transferred, and
    /// the whole is verified against the manifest's SHA-256 as always. Returns the partial and
    /// whether it was seeded.
    async fn seed_from_earlier(
        &self,
        run: &RunRow,
        path: &str,
        known: &Known,
        partial: Partial,
    ) -> Result<(Partial, bool), FetchError> {
        // Even a partly copied seed is fine: the transfer goes on from its length and the
        // SHA-256 of the whole decides.
        if !partial.is_empty() || known.file.sha256.is_none() {
            return Ok((partial, false));
        }
        let earlier = self
            .inner
            .earlier
            .lock()
            .ok()
            .and_then(|m| m.get(run.key, path, known.file.size));
        let Some(copy) = earlier.and_then(|sha| known.cache.path_of(&sha)) else {
            return Ok((partial, false));
        };
        blocking(move || {
            let mut partial = partial;
            earlier_copies::append_copy(&copy, &mut partial)?;
            Ok((partial, true))
        })
        .await
    }

    fn remember_earlier(&self, run: &RunRow, path: &str, sha256: &str, size: u64) {
        if let Ok(mut m) = self.inner.earlier.lock() {
            m.remember(run.key, path, sha256, size);
        }
    }

    fn forget_earlier(&self, run: &RunRow, path: &str) {
        if let Ok(mut m) = self.inner.earlier.lock() {
            m.forget(run.key, path);
        }
    }

    /// The file's manifest entry, its remote, the cache, and the cached copy if there is one.
    async fn known(&self, run: &RunRow, path: &str) -> Result<Known, FetchError> {
        let (key, remote_id, path_owned) = (run.key, run.remote_id, path.to_owned());
        let (file, remote, cache, cached) = self
            .inner
            .store
            .call(move |s| -> Result<_, runicorn_store::StoreError> {
                let file = s.file(key, &path_owned)?;
                let remote = s.remote_by_id(remote_id)?;
                let cache = s.file_cache();
                let mut cached = None;
                if let Some(f) = &file {
                    if let Some(sha) = &f.cached_sha256 {
                        cached = s.file_path(sha).map(|p| (sha.clone(), p));
                    }
                    if cached.is_none() {
                        // The same bytes from another run or host: recorded, not transferred.
                        if let Some(sha) = &f.sha256 {
                            if let Some(p) = s.file_path(sha) {
                                if s.record_cached_file(key, &path_owned, sha)? {
                                    cached = Some((sha.clone(), p));
                                }
                            }
                        }
                    }
                }
                Ok((file, remote, cache, cached))
            })
            .await??;
        let file = file.ok_or_else(|| FetchError::NotInManifest {
            run: run.id.clone(),
            path: path.to_owned(),
        })?;
        let remote = remote.ok_or_else(|| FetchError::UnknownRemote {
            remote: run.remote.clone(),
        })?;
        let cached = cached.map(|(sha256, path)| CachedFile {
            sha256,
            size: file.size,
            path,
        });
        Ok(Known {
            file,
            remote,
            cache,
            cached,
        })
    }

    async fn open_over_sftp(
        &self,
        run: &RunRow,
        remote: &RemoteRow,
        address: &RemoteAddress,
        relative: &str,
        path: &str,
        offset: u64,
    ) -> Result<(SourceFile, Stat), FetchError> {
        let root = remote
            .agent_root
            .clone()
            .ok_or_else(|| FetchError::NotSynced {
                remote: run.remote.clone(),
            })?;
        let conn = self
            .connection(run.remote_id, address, &root)
            .await
            .map_err(|reason| FetchError::Offline {
                remote: run.remote.clone(),
                path: path.to_owned(),
                reason,
            })?;
        match source::open_sftp(&conn.sftp, &conn.root_real, relative, offset).await {
            Ok(opened) => Ok(opened),
            Err(e) => {
                if conn.ssh.is_closed() {
                    self.forget(run.remote_id).await;
                    return Err(FetchError::Offline {
                        remote: run.remote.clone(),
                        path: path.to_owned(),
                        reason: conn
                            .ssh
                            .disconnect_reason()
                            .unwrap_or_else(|| "the connection closed".into()),
                    });
                }
                Err(open_error(&run.remote, path, e))
            }
        }
    }

    /// The remote's file connection, opened (and the root's real path resolved) if needed.
    async fn connection(
        &self,
        remote_id: RemoteId,
        address: &RemoteAddress,
        root: &str,
    ) -> Result<Arc<SftpRemote>, String> {
        let mut connections = self.inner.connections.lock().await;
        if let Some(c) = connections.get(&remote_id).filter(|c| !c.ssh.is_closed()) {
            return Ok(Arc::clone(c));
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
            ..self.inner.connect_options.clone()
        };
        let resolved = ssh::resolve_target(target, &opts).map_err(|e| e.to_string())?;
        let session = ssh::connect(&resolved, &opts)
            .await
            .map_err(|e| e.to_string())?;
        let sftp = session.sftp().await.map_err(|e| e.to_string())?;
        let root_real = sftp
            .canonicalize(root)
            .await
            .map_err(|e| format!("cannot resolve the storage root {root}: {e}"))?;
        let conn = Arc::new(SftpRemote {
            ssh: session,
            sftp,
            root_real,
        });
        connections.insert(remote_id, Arc::clone(&conn));
        Ok(conn)
    }

    async fn forget(&self, remote_id: RemoteId) {
        self.inner.connections.lock().await.remove(&remote_id);
    }

    /// The error for a copy that did not complete; a cut link keeps the partial for a resume.
    async fn copy_failed(
        &self,
        run: &RunRow,
        path: String,
        partial: Partial,
        size: u64,
        failure: CopyError,
    ) -> FetchError {
        let remote = run.remote.clone();
        match failure {
            CopyError::Source(reason) => {
                self.forget_if_closed(run.remote_id).await;
                FetchError::Interrupted {
                    remote,
                    path,
                    done: partial.len(),
                    size,
                    reason,
                }
            }
            CopyError::Short { got } => {
                discard(partial).await;
                FetchError::Changed {
                    remote,
                    path,
                    reason: format!("it ended after {got} bytes, the manifest says {size}"),
                }
            }
            CopyError::Write(e) => {
                discard(partial).await;
                FetchError::Cache(e)
            }
        }
    }

    async fn forget_if_closed(&self, remote_id: RemoteId) {
        let mut connections = self.inner.connections.lock().await;
        if connections
            .get(&remote_id)
            .is_some_and(|c| c.ssh.is_closed())
        {
            connections.remove(&remote_id);
        }
    }
}

/// Checks the transferred bytes: the manifest's SHA-256 when it has one, else that the source
/// still has the size and mtime the manifest listed.
fn verify(
    run: &RunRow,
    path: &str,
    file: &FileRow,
    partial: &Partial,
    after: Option<Result<Stat, String>>,
) -> Result<(), FetchError> {
    let remote = run.remote.clone();
    if let Some(expected) = &file.sha256 {
        let actual = partial.sha256();
        if &actual != expected {
            return Err(FetchError::HashMismatch {
                remote,
                path: path.to_owned(),
                expected: expected.clone(),
                actual,
            });
        }
        return Ok(());
    }
    match after {
        Some(Ok(stat)) => {
            // The agent lists mtimes with a fraction; SFTP gives whole seconds.
            let listed = file.mtime.floor() as i64;
            if stat.size != file.size || stat.mtime.is_some_and(|m| m != listed) {
                return Err(FetchError::Changed {
                    remote,
                    path: path.to_owned(),
                    reason: "it was modified during or before the transfer".into(),
                });
            }
            Ok(())
        }
        Some(Err(reason)) => Err(FetchError::Remote {
            remote,
            path: path.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

fn open_error(remote: &str, path: &str, e: OpenError) -> FetchError {
    let (remote, path) = (remote.to_owned(), path.to_owned());
    match e {
        OpenError::Outside(resolved) => FetchError::OutsideRoot {
            remote,
            path,
            resolved,
        },
        OpenError::NotRegular => FetchError::NotRegular { remote, path },
        OpenError::RootGone(reason) => FetchError::Offline {
            remote,
            path,
            reason,
        },
        OpenError::Failed(reason) => FetchError::Remote {
            remote,
            path,
            reason,
        },
    }
}

/// Runs cache file work on the blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, runicorn_store::StoreError> + Send + 'static,
) -> Result<T, FetchError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result.map_err(FetchError::Cache),
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

async fn discard(partial: Partial) {
    let _ = tokio::task::spawn_blocking(move || partial.discard()).await;
}

async fn touch(path: &Path) {
    let path = path.to_owned();
    let _ = tokio::task::spawn_blocking(move || FileCache::touch(&path)).await;
}
