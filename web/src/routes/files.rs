//! `GET /api/runs/{run}/files`: a page of a run's manifest, by path, within a path prefix.
//! `GET /api/runs/{run}/files/{path}`: one file of a run's manifest, served only out of the
//! store's content-addressed cache (manifest path → cached SHA-256 → `Store::file_path`), so
//! no request can name a file outside it. A cached file answers `Range` requests (206/416) and
//! is held under a shared lock while streamed (a cache clean-up skips it). A file not cached
//! yet is fetched from its remote when the hub gave a fetcher, and streamed to the client while
//! it arrives; its last byte is sent only once the whole file is verified, so a file that fails
//! verification never completes a download. Any size: nothing is held whole in memory.

use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use runicorn_store::{FileCache, FileRow, RunKey, RunRow};
use serde::Serialize;

use crate::config::{FetchFailure, FetchFailureKind, FetchedFile, FileFetcher};
use runicorn_protocol::wire::check_wire_path;

use crate::content_type;
use crate::dto::FileDto;
use crate::error::{ApiError, ErrorCode};
use crate::query::Params;
use crate::routes::{resolve_run, ApiPath};
use crate::state::AppState;

/// Bytes read from a file and sent at once.
const CHUNK: u64 = 256 * 1024;

/// Files are shown, never run: a stricter policy than the page's.
const FILE_CSP: &str =
    "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; sandbox";

/// Files a page lists when `limit` is not given.
pub const DEFAULT_FILES_LIMIT: u64 = 1_000;
/// Most files a page lists.
pub const MAX_FILES_LIMIT: u64 = 10_000;

/// One page of `GET /api/runs/{run}/files`.
#[derive(Debug, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS), ts(rename = "RunFilesPage"))]
pub struct FilesPage {
    /// Sorted by path.
    pub files: Vec<FileDto>,
    /// Files matching `prefix` in all (the page may hold fewer).
    pub total: u64,
}

/// `GET /api/runs/{run}/files?prefix=&limit=&offset=`: the run's files whose path starts with
/// `prefix` (a plain string prefix), sorted by path.
pub async fn list(
    State(state): State<Arc<AppState>>,
    ApiPath(reference): ApiPath<String>,
    params: Params,
) -> Result<Json<FilesPage>, ApiError> {
    let key = resolve_run(&state, &reference).await?;
    let prefix = params.short_text("prefix")?.unwrap_or("").to_owned();
    let limit = params.number_in("limit", DEFAULT_FILES_LIMIT, 1, MAX_FILES_LIMIT)?;
    let offset = params.number("offset", 0, u64::from(u32::MAX))?;
    let page = state
        .pool
        .read(move |store| {
            store.run_by_key(key)?.ok_or(ApiError::no_run(key.0))?;
            let (files, total) = store.files_page(key, &prefix, limit, offset)?;
            Ok(FilesPage {
                files: files.iter().map(|f| FileDto::new(key.0, f)).collect(),
                total,
            })
        })
        .await?;
    Ok(Json(page))
}

/// Refuses a path that is not a plain relative path inside a run (`..`, absolute, empty or `.`
/// segments, backslashes, NUL): the wire's one path rule, by which the manifest was stored.
pub fn check_run_file_path(path: &str) -> Result<(), ApiError> {
    check_wire_path(path).map_err(|why| {
        ApiError::bad_request(format!(
            "file path {path:?} is not a relative path inside the run: {why}"
        ))
    })
}

/// `GET /api/runs/{run}/files/{*path}`.
pub async fn get(
    State(state): State<Arc<AppState>>,
    ApiPath((reference, path)): ApiPath<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let key = resolve_run(&state, &reference).await?;
    check_run_file_path(&path)?;
    let lookup_path = path.clone();
    let (run, file, cached) = state
        .pool
        .read(move |store| {
            let run = store.run_by_key(key)?.ok_or(ApiError::no_run(key.0))?;
            let file = store.file(key, &lookup_path)?.ok_or_else(|| {
                ApiError::not_found(format!("run {} has no file {lookup_path:?}", key.0))
            })?;
            let cached = file
                .cached_sha256
                .as_deref()
                .and_then(|sha| store.file_path(sha).map(|p| (sha.to_owned(), p)));
            Ok((run, file, cached))
        })
        .await?;
    if let Some((sha256, cached)) = cached {
        return serve_cached(cached, &sha256, &path, &headers).await;
    }
    let Some(fetcher) = state.files.clone() else {
        return Err(not_cached(key, &path));
    };
    fetch_and_stream(fetcher, run, file, path, &headers).await
}

fn not_cached(key: RunKey, path: &str) -> ApiError {
    ApiError::not_found(format!(
        "file {path:?} of run {} is not in the hub's cache yet",
        key.0
    ))
}

/// The headers every file answer carries.
fn file_headers(response: &mut Response, path: &str, etag: Option<&str>) {
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type::of_run_file(path)),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(FILE_CSP),
    );
    if let Some(v) = etag.and_then(|e| HeaderValue::from_str(e).ok()) {
        h.insert(header::ETAG, v);
    }
}

/// A byte range of a file, `start..end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ByteRange {
    pub(super) start: u64,
    pub(super) end: u64,
}

/// What a `Range` header asks of a file of `size` bytes.
#[derive(Debug, PartialEq, Eq)]
enum RangeAsk {
    /// No range (or one we answer in full: several ranges, another unit, bad syntax).
    Whole,
    Part(ByteRange),
    Unsatisfiable,
}

/// Parses a single `bytes=` range (`a-b`, `a-`, `-n`) against `size`.
fn parse_range(value: &str, size: u64) -> RangeAsk {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return RangeAsk::Whole;
    };
    if spec.contains(',') {
        return RangeAsk::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeAsk::Whole;
    };
    let number = |s: &str| s.trim().parse::<u64>().ok();
    match (first.trim().is_empty(), last.trim().is_empty()) {
        (true, true) => RangeAsk::Whole,
        (true, false) => match number(last) {
            Some(0) => RangeAsk::Unsatisfiable,
            Some(n) if size > 0 => RangeAsk::Part(ByteRange {
                start: size.saturating_sub(n),
                end: size,
            }),
            Some(_) => RangeAsk::Unsatisfiable,
            None => RangeAsk::Whole,
        },
        (false, open_end) => {
            let Some(start) = number(first) else {
                return RangeAsk::Whole;
            };
            let end = if open_end {
                Some(size)
            } else {
                number(last).map(|l| l.saturating_add(1).min(size))
            };
            match end {
                None => RangeAsk::Whole,
                Some(_) if start >= size => RangeAsk::Unsatisfiable,
                Some(end) if end <= start => RangeAsk::Whole,
                Some(end) => RangeAsk::Part(ByteRange { start, end }),
            }
        }
    }
}

/// `416 Range Not Satisfiable` with the file's size.
fn unsatisfiable(path: &str, size: u64) -> Response {
    let mut r = ApiError::new(
        ErrorCode::BadRequest,
        format!("the range asked of file {path:?} is outside its {size} bytes"),
    )
    .into_response();
    *r.status_mut() = StatusCode::RANGE_NOT_SATISFIABLE;
    if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
        r.headers_mut().insert(header::CONTENT_RANGE, v);
    }
    r
}

/// `Content-Length` and `Content-Range` of a 206 answer.
fn set_range_headers(r: &mut Response, range: ByteRange, size: u64) {
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_LENGTH,
        HeaderValue::from(range.end - range.start),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("bytes {}-{}/{size}", range.start, range.end - 1))
    {
        h.insert(header::CONTENT_RANGE, v);
    }
}

/// Serves a cached file, whole or a range of it, under a shared lock, touching its mtime.
async fn serve_cached(
    cached: PathBuf,
    sha256: &str,
    path: &str,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let etag = format!("\"{sha256}\"");
    if headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == etag.as_bytes())
    {
        return Ok(StatusCode::NOT_MODIFIED.into_response());
    }
    let shown = path.to_owned();
    let (file, size) = tokio::task::spawn_blocking(move || -> std::io::Result<_> {
        let file = std::fs::File::open(&cached)?;
        // Held while the body streams: `cache gc` skips a file it cannot lock exclusively. A
        // clean-up holding it right now cannot remove the open file from under us either.
        let _ = file.try_lock_shared();
        FileCache::touch(&cached);
        let size = file.metadata()?.len();
        Ok((file, size))
    })
    .await
    .map_err(|e| ApiError::internal(format!("reading the cached copy of {shown:?} stopped: {e}")))?
    .map_err(|e| ApiError::internal(format!("cannot read the cached copy of {path:?}: {e}")))?;
    let file = Arc::new(file);
    Ok(ranged_response(headers, &etag, size, path, |start, end| {
        Body::from_stream(read_stream(file, start, end))
    }))
}

/// The answer for a whole content of `size` bytes or the range `headers` ask for (honoured
/// unless `If-Range` names another version), its body from `body(start, end)`, with the
/// file headers of `path`.
pub(super) fn ranged_response(
    headers: &HeaderMap,
    etag: &str,
    size: u64,
    path: &str,
    body: impl FnOnce(u64, u64) -> Body,
) -> Response {
    let if_range_ok = headers
        .get(header::IF_RANGE)
        .is_none_or(|v| v.as_bytes() == etag.as_bytes());
    let ask = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        Some(v) if if_range_ok => parse_range(v, size),
        _ => RangeAsk::Whole,
    };
    let mut response = match ask {
        RangeAsk::Unsatisfiable => return unsatisfiable(path, size),
        RangeAsk::Whole => {
            let mut r = Response::new(body(0, size));
            r.headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from(size));
            r
        }
        RangeAsk::Part(range) => {
            let mut r = Response::new(body(range.start, range.end));
            *r.status_mut() = StatusCode::PARTIAL_CONTENT;
            set_range_headers(&mut r, range, size);
            r
        }
    };
    response
        .headers_mut()
        .insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    file_headers(&mut response, path, Some(etag));
    response
}

/// Reads `start..end` of `file` a chunk at a time on the blocking pool.
fn read_stream(
    file: Arc<std::fs::File>,
    start: u64,
    end: u64,
) -> impl futures::Stream<Item = std::io::Result<Vec<u8>>> + Send {
    futures::stream::try_unfold(start, move |at| {
        let file = Arc::clone(&file);
        async move {
            if at >= end {
                return Ok(None);
            }
            let chunk = read_chunk(file, at, end).await?;
            let next = at + chunk.len() as u64;
            Ok(Some((chunk, next)))
        }
    })
}

/// Up to [`CHUNK`] bytes of `file` at `at`, never past `end`; an early end of file is an error.
async fn read_chunk(file: Arc<std::fs::File>, at: u64, end: u64) -> std::io::Result<Vec<u8>> {
    let len = usize::try_from((end - at).min(CHUNK)).unwrap_or(CHUNK as usize);
    let chunk = tokio::task::spawn_blocking(move || {
        let mut buf = vec![0u8; len];
        let n = file.read_at(&mut buf, at)?;
        buf.truncate(n);
        Ok::<_, std::io::Error>(buf)
    })
    .await
    .map_err(std::io::Error::other)??;
    if chunk.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the file is shorter than it was listed",
        ));
    }
    Ok(chunk)
}

/// Where a fetch the route started stands.
#[derive(Default)]
struct Transfer {
    /// The partial file, once the transfer began.
    file: Option<Arc<std::fs::File>>,
    /// Bytes written to it so far.
    written: u64,
    /// The fetch's end.
    outcome: Option<Result<FetchedFile, FetchFailure>>,
}

pub(super) fn fetch_error(failure: &FetchFailure) -> ApiError {
    let code = match failure.kind {
        FetchFailureKind::Offline => ErrorCode::RemoteOffline,
        FetchFailureKind::NotFound => ErrorCode::NotFound,
        FetchFailureKind::Refused => ErrorCode::Forbidden,
        FetchFailureKind::Failed => ErrorCode::Unavailable,
    };
    ApiError::new(code, failure.message.clone())
}

/// Fetches a file that is not cached and streams it while it arrives. The fetch runs on a task
/// of its own: a client that goes away leaves it to finish into the cache.
async fn fetch_and_stream(
    fetcher: Arc<dyn FileFetcher>,
    run: RunRow,
    file: FileRow,
    path: String,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let (tx, mut rx) = tokio::sync::watch::channel(Transfer::default());
    let tx = Arc::new(tx);
    let on_progress = {
        let tx = Arc::clone(&tx);
        Arc::new(move |n: u64| tx.send_modify(|t| t.written = n)) as crate::config::FetchProgress
    };
    let on_start = {
        let tx = Arc::clone(&tx);
        Box::new(move |f: std::fs::File| tx.send_modify(|t| t.file = Some(Arc::new(f))))
            as crate::config::FetchStarted
    };
    let fetch = fetcher.fetch(run, path.clone(), Some(on_progress), Some(on_start));
    tokio::spawn({
        let tx = Arc::clone(&tx);
        async move {
            let outcome = fetch.await;
            tx.send_modify(|t| t.outcome = Some(outcome));
        }
    });
    let (partial, outcome) = {
        let ready = rx
            .wait_for(|t| t.file.is_some() || t.outcome.is_some())
            .await
            .map_err(|_| ApiError::internal(format!("the fetch of {path:?} stopped")))?;
        (ready.file.clone(), ready.outcome.clone())
    };
    match (outcome, partial) {
        (Some(Err(failure)), _) => Err(fetch_error(&failure)),
        (Some(Ok(done)), _) => serve_cached(done.path, &done.sha256, &path, headers).await,
        (None, Some(partial)) => {
            let size = file.size;
            let etag = file.sha256.as_ref().map(|s| format!("\"{s}\""));
            // A range is honoured unless `If-Range` names another version (or the manifest has
            // no hash to compare it with): a resumed download gets its bytes as they arrive.
            let if_range_ok = headers
                .get(header::IF_RANGE)
                .is_none_or(|v| etag.as_ref().is_some_and(|e| v.as_bytes() == e.as_bytes()));
            let ask = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
                Some(v) if if_range_ok => parse_range(v, size),
                _ => RangeAsk::Whole,
            };
            let mut response = match ask {
                RangeAsk::Unsatisfiable => return Ok(unsatisfiable(&path, size)),
                RangeAsk::Whole => {
                    let mut r =
                        Response::new(Body::from_stream(arriving_stream(partial, rx, 0, size)));
                    r.headers_mut()
                        .insert(header::CONTENT_LENGTH, HeaderValue::from(size));
                    r
                }
                RangeAsk::Part(range) => {
                    let body = arriving_stream(partial, rx, range.start, range.end);
                    let mut r = Response::new(Body::from_stream(body));
                    *r.status_mut() = StatusCode::PARTIAL_CONTENT;
                    set_range_headers(&mut r, range, size);
                    r
                }
            };
            response
                .headers_mut()
                .insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
            file_headers(&mut response, &path, etag.as_deref());
            Ok(response)
        }
        (None, None) => Err(ApiError::internal(format!("the fetch of {path:?} stopped"))),
    }
}

/// Bytes `start..end` of a file being transferred, as they land; the answer's last byte
/// only after the whole file was verified, so bad bytes never complete a download.
fn arriving_stream(
    partial: Arc<std::fs::File>,
    rx: tokio::sync::watch::Receiver<Transfer>,
    start: u64,
    end: u64,
) -> impl futures::Stream<Item = std::io::Result<Vec<u8>>> + Send {
    futures::stream::try_unfold((rx, start), move |(mut rx, sent)| {
        let partial = Arc::clone(&partial);
        async move {
            loop {
                if sent >= end {
                    // Every byte went out, so the fetch ended well (the last waited for it).
                    return Ok(None);
                }
                let available = {
                    let t = rx.borrow_and_update();
                    match &t.outcome {
                        Some(Ok(_)) => end,
                        Some(Err(failure)) => {
                            return Err(std::io::Error::other(failure.message.clone()))
                        }
                        // The answer's last byte waits for the whole file's verification.
                        None => t.written.min(end.saturating_sub(1)),
                    }
                };
                if available > sent {
                    let chunk = read_chunk(Arc::clone(&partial), sent, available).await?;
                    let next = sent + chunk.len() as u64;
                    return Ok(Some((chunk, (rx, next))));
                }
                if rx.changed().await.is_err() {
                    return Err(std::io::Error::other("the transfer stopped"));
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_parsed_against_the_size() {
        let part = |start, end| RangeAsk::Part(ByteRange { start, end });
        assert_eq!(parse_range("bytes=0-9", 100), part(0, 10));
        assert_eq!(parse_range("bytes=90-", 100), part(90, 100));
        assert_eq!(parse_range("bytes=-10", 100), part(90, 100));
        assert_eq!(parse_range("bytes=-1000", 100), part(0, 100));
        assert_eq!(parse_range("bytes=50-1000", 100), part(50, 100));
        assert_eq!(parse_range("bytes=100-", 100), RangeAsk::Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 100), RangeAsk::Unsatisfiable);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), RangeAsk::Whole);
        assert_eq!(parse_range("items=0-1", 100), RangeAsk::Whole);
        assert_eq!(parse_range("bytes=x-1", 100), RangeAsk::Whole);
        assert_eq!(parse_range("bytes=5-2", 100), RangeAsk::Whole);
        assert_eq!(parse_range("bytes=0-", 0), RangeAsk::Unsatisfiable);
    }

    #[test]
    fn the_wire_path_rule_answers_400_naming_the_path() {
        // The rule itself is `check_wire_path`'s, tested in the protocol crate.
        assert!(check_run_file_path("media/a.png").is_ok());
        let err = check_run_file_path("media/../../x").unwrap_err();
        assert_eq!(err.code, ErrorCode::BadRequest);
        assert!(err.message.contains("media/../../x"), "{}", err.message);
    }
}
