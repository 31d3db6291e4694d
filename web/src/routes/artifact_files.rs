//! `GET /api/artifacts/{remote}/{type}/{name}/v{N}/files/{*path}`: the bytes of one file of an
//! artifact version. The file is looked up in the synced tables (its SHA-256, size, how the
//! server holds it); its content is served out of the hub's cache (a whole file, or its chunks
//! one after the other), brought there first through the hub's fetcher when missing (only the
//! chunks the cache lacks cross the link, each verified, then the whole). `Range` is answered
//! (206/416) over either layout. A remote that cannot be reached for an uncached content is
//! `503 remote_offline`; a cached one is served whatever the remote's state.
//!
//! `GET /api/remotes/{name}/blobs/{sha256}`: an upstream blob (`archive/blobs/…` of a run's
//! assets) by its SHA-256, the same way (its size comes from the agent's chunk list).
//!
//! While a content streams it is held against `runicorn-hub cache gc` (its whole file, or its
//! hold file for chunks, under a shared lock: `ContentReader::open_held`), so a gc at the same
//! moment keeps it and the download completes; opening touches its files (at most once a
//! minute each), so the cache's least-recently-used order counts downloads as uses.

use std::io::{Read, Seek, SeekFrom};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use runicorn_protocol::wire::check_wire_path;
use runicorn_store::{CachedLayout, ContentReader};

use super::files::{fetch_error, ranged_response};
use crate::config::ContentAsk;
use crate::error::ApiError;
use crate::routes::ApiPath;
use crate::state::AppState;

/// Bytes read and sent at once.
const PIECE: usize = 256 * 1024;

/// `vN` → N.
fn version_number(text: &str) -> Option<u64> {
    text.strip_prefix('v')
        .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|d| d.parse().ok())
}

/// `GET /api/artifacts/{remote}/{type}/{name}/{version}/files/{*path}`.
pub async fn get(
    State(state): State<Arc<AppState>>,
    ApiPath((remote, kind, name, version, path)): ApiPath<(String, String, String, String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let number = version_number(&version).ok_or_else(|| {
        ApiError::bad_request(format!(
            "version {version:?} is not a version like v3 (aliases are resolved by the artifact's page)"
        ))
    })?;
    check_wire_path(&path).map_err(|why| {
        ApiError::bad_request(format!(
            "file path {path:?} is not a relative path inside the version: {why}"
        ))
    })?;
    let label = format!("{name}:v{number}/{path}");
    let (r, k, n, p) = (remote.clone(), kind.clone(), name.clone(), path.clone());
    let shown = label.clone();
    let (remote_id, file) = state
        .pool
        .read(move |store| {
            let (remote_id, file) = store
                .artifact_file(&r, &k, &n, number, &p)?
                .ok_or_else(|| {
                    ApiError::not_found(format!(
                        "no file {p:?} in version v{number} of artifact {n:?} (type {k:?}) on remote {r}; \
                         list its files with GET /api/artifacts/{r}/{k}/{n}"
                    ))
                })?;
            Ok((remote_id, file))
        })
        .await?;
    let ask = ContentAsk {
        sha256: file.sha256.clone(),
        size: file.size,
        stored: file.stored.clone(),
        label,
    };
    let reader = held_content(&state, remote_id, ask, Some(file.size), &shown).await?;
    serve_content(reader, &file.sha256, &path, &headers).await
}

/// The content `ask` of `remote_id` open for reading with every part of it held (see
/// [`ContentReader::open_held`]): from the cache, else fetched first. A part removed by a
/// `cache gc` between the lookup and the opening sends it round again (the fetch brings back
/// only what went). `size` is the content's when known (a blob's comes from its layout).
async fn held_content(
    state: &Arc<AppState>,
    remote_id: runicorn_store::RemoteId,
    ask: ContentAsk,
    size: Option<u64>,
    shown: &str,
) -> Result<ContentReader, ApiError> {
    const ATTEMPTS: usize = 3;
    for attempt in 1..=ATTEMPTS {
        let sha = ask.sha256.clone();
        let cached = state
            .pool
            .read(move |store| Ok(store.cached_layout(&sha)?))
            .await?;
        let layout = match cached {
            Some(layout) => layout,
            None if size == Some(0) => CachedLayout::Chunks(vec![]),
            None => {
                let Some(fetcher) = state.files.clone() else {
                    return Err(ApiError::not_found(format!(
                        "{shown} is not in the hub's cache yet"
                    )));
                };
                fetcher
                    .fetch_content(remote_id, ask.clone())
                    .await
                    .map_err(|f| fetch_error(&f))?
            }
        };
        let content = ask.sha256.clone();
        let opened = tokio::task::spawn_blocking(move || {
            let size = match size {
                Some(s) => s,
                None => layout.size()?,
            };
            ContentReader::open_held(&layout, size, &content)
        })
        .await
        .map_err(|e| ApiError::internal(format!("reading {shown} stopped: {e}")))?;
        match opened {
            Ok(reader) => return Ok(reader),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && attempt < ATTEMPTS => {
                tracing::debug!("{shown}: {e}; looking it up again");
            }
            Err(e) => {
                return Err(ApiError::internal(format!(
                    "cannot read {shown} from the hub's cache: {e}; try again"
                )))
            }
        }
    }
    Err(ApiError::internal(format!(
        "{shown} kept being removed from the hub's cache while opened; try again"
    )))
}

/// `GET /api/remotes/{name}/blobs/{sha256}`.
pub async fn blob(
    State(state): State<Arc<AppState>>,
    ApiPath((remote, sha256)): ApiPath<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if !runicorn_store::is_sha256_hex(&sha256) {
        return Err(ApiError::bad_request(format!(
            "{sha256:?} is not a SHA-256 (64 lowercase hex digits)"
        )));
    }
    let name = remote.clone();
    let remote_id = state
        .pool
        .read(move |store| {
            let row = store.remote(&name)?.ok_or_else(|| {
                ApiError::not_found(format!(
                    "no remote named {name:?}; GET /api/remotes lists them"
                ))
            })?;
            Ok(row.id)
        })
        .await?;
    let ask = ContentAsk {
        sha256: sha256.clone(),
        size: 0,
        stored: "blob".into(),
        label: format!("blob {sha256}"),
    };
    let shown = format!("blob {sha256} of {remote}");
    let reader = held_content(&state, remote_id, ask, None, &shown).await?;
    serve_content(reader, &sha256, &sha256, &headers).await
}

/// Serves a cached content, whole or a range of it.
async fn serve_content(
    reader: ContentReader,
    sha256: &str,
    path: &str,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let size = reader.size();
    let etag = format!("\"{sha256}\"");
    if headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == etag.as_bytes())
    {
        return Ok(StatusCode::NOT_MODIFIED.into_response());
    }
    let mut response = ranged_response(headers, &etag, size, path, |start, end| {
        Body::from_stream(stream(reader, start, end))
    });
    if let Ok(v) = HeaderValue::from_str(&format!(
        "attachment; filename=\"{}\"",
        path.rsplit('/')
            .next()
            .unwrap_or(path)
            .replace(['"', '\\'], "_")
    )) {
        response
            .headers_mut()
            .insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
}

/// Reads `start..end` of a content a piece at a time on the blocking pool.
fn stream(
    reader: ContentReader,
    start: u64,
    end: u64,
) -> impl futures::Stream<Item = std::io::Result<Vec<u8>>> + Send {
    futures::stream::try_unfold((reader, start), move |(reader, at)| async move {
        if at >= end {
            return Ok(None);
        }
        let len = usize::try_from(end - at).map_or(PIECE, |l| l.min(PIECE));
        let (reader, piece) = tokio::task::spawn_blocking(move || {
            let mut reader = reader;
            let mut buf = vec![0u8; len];
            reader.seek(SeekFrom::Start(at))?;
            let mut filled = 0;
            while filled < len {
                let n = reader.read(&mut buf[filled..])?;
                if n == 0 {
                    break;
                }
                filled += n;
            }
            buf.truncate(filled);
            Ok::<_, std::io::Error>((reader, buf))
        })
        .await
        .map_err(std::io::Error::other)??;
        if piece.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the cached content is shorter than listed",
            ));
        }
        let next = at + piece.len() as u64;
        Ok(Some((piece, (reader, next))))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_written_v_and_a_number() {
        assert_eq!(version_number("v3"), Some(3));
        assert_eq!(version_number("v"), None);
        assert_eq!(version_number("3"), None);
        assert_eq!(version_number("best"), None);
        assert_eq!(version_number("v1x"), None);
    }
}
