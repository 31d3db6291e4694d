//! Artifact contents on demand (issue 13, item 4), by their whole-file SHA-256: a content the
//! cache holds (whole, or every chunk of it) costs nothing; a small content the server keeps
//! whole in its pool comes whole, like a run's file; any other content comes by chunks. The
//! agent tells where the content's chunks are (`chunks`), the hub reads over SFTP (or locally)
//! only the chunks its cache lacks, whatever remote or version brought the others, keeps each
//! one only once it hashes to its name, checks the whole content's SHA-256 through the cached
//! chunks, and then records the content's chunk rows.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures::StreamExt;

use runicorn_protocol::run_format::artifacts::{
    fanout_path, is_sha256_hex, ChunkerParams, ARTIFACTS_DIR, CHUNKED_MIN_FILE_BYTES, POOL_DIR,
};
use runicorn_protocol::wire::{
    check_wire_path, Body, ChunkLocation, ChunksRequest, ContentChunks, CHUNKS_CAPABILITY,
};
use runicorn_store::{
    hash_content, layout_on_disk, CachedLayout, ChunkCache, ContentChunk, ContentReader, RemoteId,
    RemoteRow,
};

use super::source::{self, SourceFile};
use super::{blocking, discard, transfer, FetchError, RemoteFiles, TransferProgress};
use crate::local_transport::{local_agent_program, spawn_local_agent};
use crate::open_link::{start_agent_over, OpenOptions};
use crate::remote_address::RemoteAddress;
use crate::sync::AgentClient;

/// Most bytes of consecutive chunks read in one go.
const SEGMENT_BYTES: u64 = 4 << 20;
/// Segments read at once (each on its own SFTP file handle, on the one file connection).
const SEGMENTS_IN_FLIGHT: usize = 8;

/// `ContentWanted::stored` of an upstream blob (`archive/blobs/…`) whose size the hub does
/// not know: the agent's chunk list gives it, and the whole SHA-256 is checked as always.
pub const BLOB: &str = "blob";

/// One content to bring into the cache.
#[derive(Debug, Clone)]
pub struct ContentWanted {
    pub sha256: String,
    pub size: u64,
    /// How the server said it holds it: `whole`, `chunked`, `missing` (artifact files), or
    /// [`BLOB`] (an upstream blob by its SHA-256, size unknown until the agent lists it: asked
    /// for by chunks).
    pub stored: String,
    /// What to call it in messages (`model:v3/weights.bin`).
    pub label: String,
}

/// What crossed the link (and what did not), across the contents of one fetch.
#[derive(Debug, Default)]
pub struct MovedCounter {
    /// Bytes read from the remote (chunks and whole files).
    pub bytes_moved: AtomicU64,
    /// Chunks read from the remote.
    pub chunks_moved: AtomicU64,
    /// Chunks of the contents fetched by chunks, whether read or already held.
    pub chunks_total: AtomicU64,
    /// Contents that were in the cache already.
    pub contents_cached: AtomicU64,
}

/// An agent session kept for chunk lists (one per remote), with what keeps it alive.
pub(super) struct ChunkAgent {
    client: AgentClient,
    /// Closed once unused for a while (`idle_agents`).
    last_use: super::idle_agents::LastUse,
}

impl ChunkAgent {
    pub(super) fn last_use(&self) -> &super::idle_agents::LastUse {
        &self.last_use
    }
}

impl RemoteFiles {
    /// Brings the content `want` of `remote_id` into the cache (see the module doc) and says
    /// how the cache holds it. `progress` sees the bytes held so far, cached ones included.
    pub async fn ensure_content(
        &self,
        remote_id: RemoteId,
        want: ContentWanted,
        progress: Option<TransferProgress>,
        moved: Arc<MovedCounter>,
    ) -> Result<CachedLayout, FetchError> {
        if !is_sha256_hex(&want.sha256) {
            return Err(FetchError::BadPath {
                path: want.label.clone(),
                reason: format!("{:?} is not a SHA-256", want.sha256),
            });
        }
        let sha = want.sha256.clone();
        let (remote, cached, chunk_cache) = self
            .inner
            .store
            .call(move |s| -> Result<_, runicorn_store::StoreError> {
                Ok((
                    s.remote_by_id(remote_id)?,
                    s.cached_layout(&sha)?,
                    s.chunk_cache(),
                ))
            })
            .await??;
        let remote = remote.ok_or_else(|| FetchError::UnknownRemote {
            remote: format!("#{}", remote_id.0),
        })?;
        if let Some(layout) = cached {
            // Just used: last in the order of a cache clean-up.
            let paths: Vec<std::path::PathBuf> = match &layout {
                CachedLayout::Whole(p) => vec![p.clone()],
                CachedLayout::Chunks(c) => c.iter().map(|(_, p)| p.clone()).collect(),
            };
            let _ = tokio::task::spawn_blocking(move || {
                for p in paths {
                    runicorn_store::FileCache::touch(&p);
                }
            })
            .await;
            moved.contents_cached.fetch_add(1, Ordering::Relaxed);
            if let Some(p) = &progress {
                p(want.size);
            }
            return Ok(layout);
        }
        if want.size == 0 && want.stored != BLOB {
            let sha = want.sha256.clone();
            let path = self
                .inner
                .store
                .call(move |s| {
                    s.put_file(std::io::empty(), 0)?;
                    Ok::<_, runicorn_store::StoreError>(s.file_path(&sha))
                })
                .await??;
            return path
                .map(CachedLayout::Whole)
                .ok_or(FetchError::HashMismatch {
                    remote: remote.name.clone(),
                    path: want.label.clone(),
                    expected: want.sha256.clone(),
                    actual: "the SHA-256 of no bytes".into(),
                });
        }
        if want.stored == "missing" {
            return Err(FetchError::ContentMissing {
                remote: remote.name.clone(),
                what: want.label.clone(),
                reason: "its server listed it as missing from the artifact pool".into(),
            });
        }
        let address: RemoteAddress =
            serde_json::from_value(remote.transport.clone()).map_err(|e| {
                FetchError::BadAddress {
                    remote: remote.name.clone(),
                    reason: e.to_string(),
                }
            })?;
        let _permit = self
            .inner
            .transfers
            .acquire()
            .await
            .map_err(|_| FetchError::StoreGone)?;
        if want.stored == "whole" && want.size < CHUNKED_MIN_FILE_BYTES {
            match self
                .fetch_whole(&remote, &address, &want, progress.clone(), &moved)
                .await
            {
                Ok(layout) => return Ok(layout),
                // Not in the pool as a whole file (packed since?): ask for its chunks.
                Err(FetchError::Remote { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        let first = self
            .fetch_chunks(
                &remote,
                &address,
                &want,
                chunk_cache.clone(),
                progress.clone(),
                &moved,
            )
            .await;
        match first {
            // A file the list pointed into went away: the agent packs whole pool files in the
            // background, so the list is asked for afresh, once (the chunks already read stay
            // cached and are not read again).
            Err(FetchError::Remote { .. }) => {
                self.fetch_chunks(&remote, &address, &want, chunk_cache, progress, &moved)
                    .await
            }
            other => other,
        }
    }

    /// A small pooled content, whole, through a resumable partial like a run's file.
    async fn fetch_whole(
        &self,
        remote: &RemoteRow,
        address: &RemoteAddress,
        want: &ContentWanted,
        progress: Option<TransferProgress>,
        moved: &MovedCounter,
    ) -> Result<CachedLayout, FetchError> {
        let relative = format!("{ARTIFACTS_DIR}/{POOL_DIR}/{}", fanout_path(&want.sha256));
        let cache = self.inner.store.call(|s| s.file_cache()).await?;
        let source_id = format!("{}\n{relative}\n{}", remote.id.0, want.size);
        let size = want.size;
        let partial = {
            let cache = cache.clone();
            blocking(move || cache.open_partial(&source_id, size)).await?
        };
        let offset = partial.len();
        let (mut src, stat) = self
            .open_source(remote, address, &relative, offset, want)
            .await?;
        if stat.size != size {
            return Err(FetchError::Changed {
                remote: remote.name.clone(),
                path: want.label.clone(),
                reason: format!(
                    "its pool file has {} bytes, the hub expects {size}",
                    stat.size
                ),
            });
        }
        let (partial, failure) = transfer::copy_into(&mut src, partial, size, progress).await;
        if let Some(failure) = failure {
            let reason = match failure {
                transfer::CopyError::Source(r) => r,
                transfer::CopyError::Short { got } => format!("it ended after {got} bytes"),
                transfer::CopyError::Write(e) => return Err(FetchError::Cache(e)),
            };
            return Err(FetchError::Interrupted {
                remote: remote.name.clone(),
                path: want.label.clone(),
                done: partial.len(),
                size,
                reason,
            });
        }
        let actual = partial.sha256();
        if actual != want.sha256 {
            discard(partial).await;
            return Err(FetchError::HashMismatch {
                remote: remote.name.clone(),
                path: want.label.clone(),
                expected: want.sha256.clone(),
                actual,
            });
        }
        moved
            .bytes_moved
            .fetch_add(size - offset, Ordering::Relaxed);
        let content = blocking(move || partial.commit(&cache)).await?;
        Ok(CachedLayout::Whole(content.path))
    }

    /// A content by chunks: the agent's chunk list, the missing chunks read and checked, the
    /// whole checked, the rows recorded.
    async fn fetch_chunks(
        &self,
        remote: &RemoteRow,
        address: &RemoteAddress,
        want: &ContentWanted,
        chunk_cache: ChunkCache,
        progress: Option<TransferProgress>,
        moved: &MovedCounter,
    ) -> Result<CachedLayout, FetchError> {
        let listed = self.chunk_list(remote, address, want).await?;
        let sized;
        let want = if want.stored == BLOB && listed.error.is_none() {
            sized = ContentWanted {
                size: listed.size,
                ..want.clone()
            };
            &sized
        } else {
            want
        };
        let chunks = check_chunk_list(&remote.name, want, listed)?;
        moved
            .chunks_total
            .fetch_add(chunks.len() as u64, Ordering::Relaxed);
        let held: HashSet<String> = {
            let (cache, names) = (
                chunk_cache.clone(),
                chunks.iter().map(|c| c.sha256.clone()).collect::<Vec<_>>(),
            );
            tokio::task::spawn_blocking(move || {
                names
                    .into_iter()
                    .filter(|n| cache.path_of(n).is_some())
                    .collect()
            })
            .await
            .map_err(|_| FetchError::StoreGone)?
        };
        let done: u64 = chunks
            .iter()
            .filter(|c| held.contains(&c.sha256))
            .map(|c| u64::from(c.size))
            .sum();
        if let Some(p) = &progress {
            p(done);
        }
        let done = Arc::new(AtomicU64::new(done));
        let mut reads = futures::stream::iter(segments(&chunks, held))
            .map(|segment| {
                self.fetch_segment(
                    remote,
                    address,
                    want,
                    &chunk_cache,
                    segment,
                    moved,
                    (&done, &progress),
                )
            })
            .buffer_unordered(SEGMENTS_IN_FLIGHT);
        while let Some(read) = reads.next().await {
            read?;
        }
        drop(reads);
        let rows = content_rows(&chunks);
        let (cache, rows_for_check, size, expected) = (
            chunk_cache.clone(),
            rows.clone(),
            want.size,
            want.sha256.clone(),
        );
        let checked = tokio::task::spawn_blocking(move || {
            let layout = layout_on_disk(&cache, rows_for_check)
                .ok_or_else(|| "a chunk left the cache during the fetch".to_owned())?;
            let mut reader = ContentReader::new(&layout, size);
            let (sha, n) = hash_content(&mut reader).map_err(|e| e.to_string())?;
            Ok::<_, String>((layout, sha, n))
        })
        .await
        .map_err(|_| FetchError::StoreGone)?;
        let (layout, actual, n) = checked.map_err(|reason| FetchError::Remote {
            remote: remote.name.clone(),
            path: want.label.clone(),
            reason,
        })?;
        if actual != expected || n != size {
            return Err(FetchError::HashMismatch {
                remote: remote.name.clone(),
                path: want.label.clone(),
                expected,
                actual,
            });
        }
        let content = want.sha256.clone();
        self.inner
            .store
            .call(move |s| s.record_content_chunks(&content, &rows))
            .await??;
        Ok(layout)
    }

    /// Reads one segment of missing chunks (consecutive in one file) and keeps each chunk
    /// whose bytes hash to its name; the first that does not fails the fetch.
    #[allow(clippy::too_many_arguments)]
    async fn fetch_segment(
        &self,
        remote: &RemoteRow,
        address: &RemoteAddress,
        want: &ContentWanted,
        chunk_cache: &ChunkCache,
        segment: Segment,
        moved: &MovedCounter,
        (done, progress): (&AtomicU64, &Option<TransferProgress>),
    ) -> Result<(), FetchError> {
        let (mut src, _) = self
            .open_source(remote, address, &segment.path, segment.offset, want)
            .await?;
        let total = segment.len();
        let bytes = read_exact(&mut src, total as usize)
            .await
            .map_err(|reason| FetchError::Interrupted {
                remote: remote.name.clone(),
                path: want.label.clone(),
                done: done.load(Ordering::Relaxed),
                size: want.size,
                reason: format!(
                    "reading {} bytes of {} at {}: {reason}",
                    total, segment.path, segment.offset
                ),
            })?;
        drop(src);
        let cache = chunk_cache.clone();
        let chunks = segment.chunks.clone();
        let kept = blocking(move || {
            let mut at = 0usize;
            for c in &chunks {
                let end = at + c.size as usize;
                if let Err(refused) = cache.put(&c.sha256, &bytes[at..end])? {
                    return Ok(Err((refused, c.path.clone())));
                }
                at = end;
            }
            Ok(Ok(()))
        })
        .await?;
        if let Err((refused, location)) = kept {
            tracing::warn!(
                "remote {}: chunk {} of {} refused: its bytes hash to {}",
                remote.name,
                refused.expected,
                want.label,
                refused.actual
            );
            return Err(FetchError::ChunkRefused {
                remote: remote.name.clone(),
                what: want.label.clone(),
                chunk: refused.expected,
                location,
                actual: refused.actual,
            });
        }
        moved.bytes_moved.fetch_add(total, Ordering::Relaxed);
        moved
            .chunks_moved
            .fetch_add(segment.chunks.len() as u64, Ordering::Relaxed);
        let now = done.fetch_add(total, Ordering::Relaxed) + total;
        if let Some(p) = progress {
            p(now);
        }
        Ok(())
    }

    /// Opens `relative` (under the root) at `offset` on the remote, by the file rules.
    pub(super) async fn open_source(
        &self,
        remote: &RemoteRow,
        address: &RemoteAddress,
        relative: &str,
        offset: u64,
        want: &ContentWanted,
    ) -> Result<(SourceFile, source::Stat), FetchError> {
        check_wire_path(relative).map_err(|reason| FetchError::BadPath {
            path: relative.to_owned(),
            reason,
        })?;
        match address {
            RemoteAddress::Offline { .. } => Err(FetchError::Offline {
                remote: remote.name.clone(),
                path: want.label.clone(),
                reason: "it is known only from imported bundles: `runicorn-hub connect USER@HOST --name NAME` gives it a link".to_owned(),
            }),
            RemoteAddress::Local { dir, .. } => source::open_local(dir, relative, offset)
                .await
                .map_err(|e| super::open_error(&remote.name, &want.label, e)),
            RemoteAddress::Ssh { .. } => {
                let root = self.root_of(remote)?;
                let conn = self
                    .connection(remote.id, address, &root)
                    .await
                    .map_err(|reason| FetchError::Offline {
                        remote: remote.name.clone(),
                        path: want.label.clone(),
                        reason,
                    })?;
                match source::open_sftp(&conn.sftp, &conn.root_real, relative, offset).await {
                    Ok(opened) => Ok(opened),
                    Err(e) => {
                        if conn.ssh.is_closed() {
                            self.forget(remote.id).await;
                            return Err(FetchError::Offline {
                                remote: remote.name.clone(),
                                path: want.label.clone(),
                                reason: "the connection closed".into(),
                            });
                        }
                        Err(super::open_error(&remote.name, &want.label, e))
                    }
                }
            }
        }
    }

    pub(super) fn root_of(&self, remote: &RemoteRow) -> Result<String, FetchError> {
        remote
            .agent_root
            .clone()
            .ok_or_else(|| FetchError::NotSynced {
                remote: remote.name.clone(),
            })
    }

    /// The agent's whole chunk list of one content, page after page (see [`join_page`]), on
    /// the remote's kept agent session (opened, or reopened after a failure, as needed).
    async fn chunk_list(
        &self,
        remote: &RemoteRow,
        address: &RemoteAddress,
        want: &ContentWanted,
    ) -> Result<ContentChunks, FetchError> {
        let max_chunks = chunk_page_max();
        let mut whole: Option<ContentChunks> = None;
        loop {
            let start_chunk = whole.as_ref().map(|w| w.chunks.len() as u64);
            let page = self
                .chunk_page(remote, address, want, start_chunk, max_chunks)
                .await?;
            let next = join_page(&mut whole, page).map_err(|reason| FetchError::BadChunkList {
                remote: remote.name.clone(),
                what: want.label.clone(),
                reason,
            })?;
            if !next {
                // `join_page` always leaves a list once it has seen a page.
                return Ok(whole.unwrap_or_default());
            }
        }
    }

    /// One page of the agent's chunk list of one content.
    async fn chunk_page(
        &self,
        remote: &RemoteRow,
        address: &RemoteAddress,
        want: &ContentWanted,
        start_chunk: Option<u64>,
        max_chunks: Option<u32>,
    ) -> Result<ContentChunks, FetchError> {
        let agent = self.chunk_agent(remote, address, want).await?;
        let answer = agent
            .client
            .request(Body::Chunks(ChunksRequest {
                contents: vec![want.sha256.clone()],
                start_chunk,
                max_chunks,
            }))
            .await;
        let answer = match answer {
            Ok(a) => a,
            Err(e) => {
                self.inner.agents.lock().await.remove(&remote.id);
                return Err(FetchError::Offline {
                    remote: remote.name.clone(),
                    path: want.label.clone(),
                    reason: format!("asking its agent for the chunk list: {e}"),
                });
            }
        };
        match answer {
            Body::ChunkList(mut batch) if batch.contents.len() == 1 => Ok(batch.contents.remove(0)),
            Body::Error(e) => Err(FetchError::BadChunkList {
                remote: remote.name.clone(),
                what: want.label.clone(),
                reason: format!("its agent answered: {} ({})", e.message, e.code),
            }),
            other => Err(FetchError::BadChunkList {
                remote: remote.name.clone(),
                what: want.label.clone(),
                reason: format!("its agent answered with {}", other.kind()),
            }),
        }
    }

    async fn chunk_agent(
        &self,
        remote: &RemoteRow,
        address: &RemoteAddress,
        want: &ContentWanted,
    ) -> Result<Arc<ChunkAgent>, FetchError> {
        let mut agents = self.inner.agents.lock().await;
        if let Some(a) = agents.get(&remote.id) {
            a.last_use.touch();
            return Ok(Arc::clone(a));
        }
        let offline = |reason: String| FetchError::Offline {
            remote: remote.name.clone(),
            path: want.label.clone(),
            reason,
        };
        let link = match address {
            RemoteAddress::Offline { .. } => return Err(offline("it is known only from imported bundles: `runicorn-hub connect USER@HOST --name NAME` gives it a link".to_owned())),
            RemoteAddress::Local { dir, agent, .. } => {
                spawn_local_agent(&local_agent_program(agent.as_deref()), dir, &[])
                    .map_err(|e| offline(e.to_string()))?
            }
            RemoteAddress::Ssh { agent, root, .. } => {
                let root_known = self.root_of(remote)?;
                let conn = self
                    .connection(remote.id, address, &root_known)
                    .await
                    .map_err(offline)?;
                start_agent_over(
                    &conn.ssh,
                    agent.as_deref(),
                    root.as_deref(),
                    &remote.name,
                    &OpenOptions::default(),
                )
                .await
                .map_err(|e| offline(e.to_string()))?
            }
        };
        let client = AgentClient::handshake(link)
            .await
            .map_err(|e| offline(e.to_string()))?;
        if !client
            .peer()
            .capabilities
            .iter()
            .any(|c| c == CHUNKS_CAPABILITY)
        {
            return Err(FetchError::AgentTooOld {
                remote: remote.name.clone(),
            });
        }
        let agent = Arc::new(ChunkAgent {
            client,
            last_use: super::idle_agents::LastUse::new(),
        });
        agents.insert(remote.id, Arc::clone(&agent));
        super::idle_agents::close_when_idle(
            Arc::downgrade(&self.inner),
            remote.id,
            Arc::downgrade(&agent),
            std::time::Duration::from_millis(
                self.inner
                    .chunk_agent_idle_ms
                    .load(std::sync::atomic::Ordering::Relaxed),
            ),
        );
        Ok(agent)
    }
}

/// Most chunks asked for per page of a chunk list: `RUNICORN_CHUNK_PAGE_MAX` when set (tests
/// force small pages with it), else none (the agent fills its frame).
fn chunk_page_max() -> Option<u32> {
    std::env::var("RUNICORN_CHUNK_PAGE_MAX")
        .ok()
        .and_then(|v| v.trim().parse::<u32>().ok())
        .filter(|&n| n > 0)
}

/// Adds one page of a chunk list to what came before (`whole`, `None` before the first page);
/// says whether another page follows. Pages must be of the same content and size, and each must
/// move the list on (`next_chunk` past what is held), so a confused agent cannot loop the hub
/// or make it take part of a list for all of it (a list with pages still to come is never
/// returned as whole).
fn join_page(whole: &mut Option<ContentChunks>, page: ContentChunks) -> Result<bool, String> {
    if page.error.is_some() {
        // The content is gone (or damaged) since an earlier page: the whole list says so.
        *whole = Some(page);
        return Ok(false);
    }
    let next = page.next_chunk;
    let added = page.chunks.len();
    let held = match whole {
        None => {
            *whole = Some(ContentChunks {
                next_chunk: None,
                ..page
            });
            whole.as_ref().map_or(0, |w| w.chunks.len() as u64)
        }
        Some(list) => {
            if page.sha256 != list.sha256 || page.size != list.size {
                return Err(format!(
                    "a later page is of content {} ({} bytes), the first of {} ({} bytes)",
                    page.sha256, page.size, list.sha256, list.size
                ));
            }
            list.chunks.extend(page.chunks);
            list.chunks.len() as u64
        }
    };
    match next {
        None => Ok(false),
        Some(n) if n == held && added > 0 => Ok(true),
        Some(n) => Err(format!(
            "a page ends at chunk {held} but says the next starts at {n}"
        )),
    }
}

/// Checks the agent's chunk list of `want`: its content, hashes, sizes within the chunker's
/// bounds, paths by the wire's rule, and sizes adding up to the content's.
fn check_chunk_list(
    remote: &str,
    want: &ContentWanted,
    listed: ContentChunks,
) -> Result<Vec<ChunkLocation>, FetchError> {
    let bad = |reason: String| FetchError::BadChunkList {
        remote: remote.to_owned(),
        what: want.label.clone(),
        reason,
    };
    if let Some(error) = listed.error {
        return Err(FetchError::ContentMissing {
            remote: remote.to_owned(),
            what: want.label.clone(),
            reason: error,
        });
    }
    if listed.sha256 != want.sha256 {
        return Err(bad(format!("it listed content {} instead", listed.sha256)));
    }
    let mut total = 0u64;
    for c in &listed.chunks {
        if !is_sha256_hex(&c.sha256) {
            return Err(bad(format!("chunk name {:?} is not a SHA-256", c.sha256)));
        }
        if c.size == 0 || c.size > ChunkerParams::MAX {
            return Err(bad(format!("chunk {} has {} bytes", c.sha256, c.size)));
        }
        check_wire_path(&c.path).map_err(|r| bad(format!("chunk path {:?}: {r}", c.path)))?;
        total += u64::from(c.size);
    }
    if total != want.size {
        return Err(bad(format!(
            "its chunks add up to {total} bytes, the content has {}",
            want.size
        )));
    }
    Ok(listed.chunks)
}

/// Missing chunks that are consecutive in one file on the server, read in one go.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Segment {
    path: String,
    offset: u64,
    chunks: Vec<ChunkLocation>,
}

impl Segment {
    fn len(&self) -> u64 {
        self.chunks.iter().map(|c| u64::from(c.size)).sum()
    }
}

/// The chunks not `held` (each once), grouped into segments of at most [`SEGMENT_BYTES`].
fn segments(chunks: &[ChunkLocation], mut held: HashSet<String>) -> Vec<Segment> {
    let mut out: Vec<Segment> = Vec::new();
    for loc in chunks {
        if !held.insert(loc.sha256.clone()) {
            continue;
        }
        if let Some(last) = out.last_mut() {
            let len = last.len();
            if last.path == loc.path
                && last.offset + len == loc.offset
                && len + u64::from(loc.size) <= SEGMENT_BYTES
            {
                last.chunks.push(loc.clone());
                continue;
            }
        }
        out.push(Segment {
            path: loc.path.clone(),
            offset: loc.offset,
            chunks: vec![loc.clone()],
        });
    }
    out
}

/// The `content_chunks` rows of a chunk list (offsets within the content).
fn content_rows(chunks: &[ChunkLocation]) -> Vec<ContentChunk> {
    let mut offset = 0u64;
    chunks
        .iter()
        .map(|c| {
            let row = ContentChunk {
                chunk: c.sha256.clone(),
                offset,
                size: u64::from(c.size),
            };
            offset += u64::from(c.size);
            row
        })
        .collect()
}

/// Reads exactly `n` bytes (a chunk) from the source.
async fn read_exact(src: &mut SourceFile, n: usize) -> Result<Vec<u8>, String> {
    let mut buf = vec![0u8; n];
    let mut filled = 0;
    while filled < n {
        match src.read(&mut buf[filled..]).await {
            Ok(0) => return Err(format!("the file ended {} bytes early", n - filled)),
            Ok(k) => filled += k,
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn want(size: u64) -> ContentWanted {
        ContentWanted {
            sha256: "a".repeat(64),
            size,
            stored: "chunked".into(),
            label: "m:v1/w.bin".into(),
        }
    }

    fn loc(size: u32, path: &str) -> ChunkLocation {
        ChunkLocation {
            sha256: "b".repeat(64),
            size,
            path: path.into(),
            offset: 0,
        }
    }

    #[test]
    fn chunk_lists_are_checked_before_any_byte_moves() {
        let list = |chunks| ContentChunks {
            sha256: "a".repeat(64),
            size: 30,
            chunks,
            next_chunk: None,
            error: None,
        };
        assert!(check_chunk_list("gpu", &want(30), list(vec![loc(10, "x"), loc(20, "y")])).is_ok());
        for bad in [
            vec![loc(10, "x")],
            vec![loc(10, "../x"), loc(20, "y")],
            vec![loc(10, "/etc/passwd"), loc(20, "y")],
            vec![loc(0, "x"), loc(30, "y")],
        ] {
            let e = check_chunk_list("gpu", &want(30), list(bad)).unwrap_err();
            assert!(matches!(e, FetchError::BadChunkList { .. }), "{e}");
        }
        let missing = ContentChunks {
            error: Some("not in the pool".into()),
            ..list(vec![])
        };
        let e = check_chunk_list("gpu", &want(30), missing).unwrap_err();
        assert!(e.to_string().contains("not in the pool"), "{e}");
        let rows = content_rows(&[loc(10, "x"), loc(20, "y")]);
        // Consecutive missing chunks of one file are read together; held ones are skipped.
        let at = |sha: char, size: u32, path: &str, offset: u64| ChunkLocation {
            sha256: sha.to_string().repeat(64),
            size,
            path: path.into(),
            offset,
        };
        let list = [
            at('1', 10, "w", 0),
            at('2', 10, "w", 10),
            at('3', 10, "w", 20),
            at('4', 10, "w", 30),
            at('1', 10, "w", 40),
            at('5', 10, "c/5", 0),
        ];
        let held: HashSet<String> = ["3".repeat(64)].into_iter().collect();
        let segs = segments(&list, held);
        let shape: Vec<(u64, usize)> = segs.iter().map(|s| (s.offset, s.chunks.len())).collect();
        assert_eq!(shape, vec![(0, 2), (30, 1), (0, 1)]);
        assert_eq!((rows[1].offset, rows[1].size), (10, 20));
    }

    #[test]
    fn pages_join_into_one_list_and_a_confused_agent_is_refused() {
        let page = |chunks: Vec<ChunkLocation>, next: Option<u64>| ContentChunks {
            sha256: "a".repeat(64),
            size: 30,
            chunks,
            next_chunk: next,
            error: None,
        };
        let three: Vec<ChunkLocation> = (0..3).map(|_| loc(10, "artifacts/.pool/aa/x")).collect();
        let mut whole = None;
        assert_eq!(
            join_page(&mut whole, page(three[..2].to_vec(), Some(2))),
            Ok(true)
        );
        assert_eq!(
            whole.as_ref().unwrap().next_chunk,
            None,
            "never kept as whole"
        );
        assert_eq!(
            join_page(&mut whole, page(three[2..].to_vec(), None)),
            Ok(false)
        );
        assert_eq!(whole.unwrap().chunks, three);

        // A page that skips or repeats chunks, or does not move on.
        for (second, next) in [(1, Some(4)), (1, Some(2)), (0, Some(2))] {
            let mut whole = None;
            join_page(&mut whole, page(three[..2].to_vec(), Some(2))).unwrap();
            let got = join_page(&mut whole, page(three[..second].to_vec(), next));
            assert!(got.is_err(), "{second} {next:?}");
        }
        // A later page of another content.
        let mut whole = None;
        join_page(&mut whole, page(three[..2].to_vec(), Some(2))).unwrap();
        let mut other = page(three[2..].to_vec(), None);
        other.size = 31;
        assert!(join_page(&mut whole, other)
            .unwrap_err()
            .contains("later page"));
        // An error on a later page ends the list with that error.
        let mut whole = None;
        join_page(&mut whole, page(three[..2].to_vec(), Some(2))).unwrap();
        let mut gone = page(vec![], None);
        gone.error = Some("removed by gc".into());
        assert_eq!(join_page(&mut whole, gone), Ok(false));
        assert!(whole.unwrap().error.is_some());
        // An old hub that takes only a first page finds the sizes do not add up.
        let partial = page(three[..2].to_vec(), Some(2));
        assert!(check_chunk_list("gpu", &want(30), partial).is_err());
    }
}
