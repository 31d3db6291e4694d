//! `GET /api/runs/{run}/files`: a page of a run's manifest, by path, within a path prefix.
//! `GET /api/runs/{run}/files/{path}`: one file of a run's manifest, served only out of the
//! store's content-addressed cache (manifest path → cached SHA-256 → `Store::file_path`), so
//! no request can name a file outside it. A file not cached yet is fetched from its remote
//! first when the hub gave a fetcher (bounded in size and time).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use runicorn_store::{RunKey, RunRow};
use serde::Serialize;

use crate::content_type;
use crate::dto::FileDto;
use crate::error::ApiError;
use crate::query::Params;
use crate::routes::{resolve_run, ApiPath};
use crate::state::AppState;

/// Largest file fetched and served.
pub const MAX_FILE_BYTES: u64 = 50 * 1024 * 1024;
/// How long a fetch from the remote may take.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(30);

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

/// Refuses a path that is not a plain relative path inside a run (`..`, absolute, empty
/// segments, backslashes, control characters).
pub fn check_run_file_path(path: &str) -> Result<(), ApiError> {
    let bad = path.is_empty()
        || path.starts_with('/')
        || path.contains('\\')
        || path.chars().any(char::is_control)
        || path
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..");
    if bad {
        return Err(ApiError::bad_request(format!(
            "file path {path:?} is not a relative path inside the run"
        )));
    }
    Ok(())
}

/// Where a file stands in the store.
enum Lookup {
    Cached { sha256: String, size: u64 },
    NotCached { run: Box<RunRow>, size: u64 },
}

async fn lookup(state: &AppState, key: RunKey, path: String) -> Result<Lookup, ApiError> {
    state
        .pool
        .read(move |store| {
            let run = store.run_by_key(key)?.ok_or(ApiError::no_run(key.0))?;
            let file = store.file(key, &path)?.ok_or_else(|| {
                ApiError::not_found(format!("run {} has no file {path:?}", key.0))
            })?;
            Ok(match file.cached_sha256 {
                Some(sha256) => Lookup::Cached {
                    sha256,
                    size: file.size,
                },
                None => Lookup::NotCached {
                    run: Box::new(run),
                    size: file.size,
                },
            })
        })
        .await
}

/// `GET /api/runs/{run}/files/{*path}`.
pub async fn get(
    State(state): State<Arc<AppState>>,
    ApiPath((reference, path)): ApiPath<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let key = resolve_run(&state, &reference).await?;
    check_run_file_path(&path)?;
    let mut found = lookup(&state, key, path.clone()).await?;
    if let Lookup::NotCached { run, size } = found {
        let Some(fetcher) = state.files.clone() else {
            return Err(not_cached(key, &path));
        };
        if size > MAX_FILE_BYTES {
            return Err(too_large(key, &path, size));
        }
        match tokio::time::timeout(FETCH_TIMEOUT, fetcher.fetch(*run, path.clone())).await {
            Ok(Ok(())) => {}
            Ok(Err(why)) => {
                return Err(ApiError::unavailable(format!(
                    "file {path:?} of run {} could not be fetched from its remote: {why}",
                    key.0
                )))
            }
            Err(_) => {
                return Err(ApiError::unavailable(format!(
                    "file {path:?} of run {} was not fetched from its remote within {} s",
                    key.0,
                    FETCH_TIMEOUT.as_secs()
                )))
            }
        }
        found = lookup(&state, key, path.clone()).await?;
    }
    let Lookup::Cached { sha256, size } = found else {
        return Err(not_cached(key, &path));
    };
    if size > MAX_FILE_BYTES {
        return Err(too_large(key, &path, size));
    }
    let etag = format!("\"{sha256}\"");
    if headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == etag.as_bytes())
    {
        return Ok(StatusCode::NOT_MODIFIED.into_response());
    }
    let sha = sha256.clone();
    let cached = state
        .pool
        .read(move |store| Ok(store.file_path(&sha)))
        .await?;
    let Some(file) = cached else {
        return Err(not_cached(key, &path));
    };
    let bytes = tokio::fs::read(&file).await.map_err(|e| {
        ApiError::internal(format!(
            "cannot read the cached copy {} of file {path:?}: {e}",
            file.display()
        ))
    })?;
    let mut response = bytes.into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type::of_run_file(&path)),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(FILE_CSP),
    );
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    Ok(response)
}

fn not_cached(key: RunKey, path: &str) -> ApiError {
    ApiError::not_found(format!(
        "file {path:?} of run {} is not in the hub's cache yet",
        key.0
    ))
}

fn too_large(key: RunKey, path: &str, size: u64) -> ApiError {
    ApiError::too_large(format!(
        "file {path:?} of run {} has {size} bytes; the dashboard serves at most {} MiB",
        key.0,
        MAX_FILE_BYTES / 1024 / 1024
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_relative_paths_pass() {
        for ok in ["media/a.png", "a", "x/y/z.txt", "a..b"] {
            assert!(check_run_file_path(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "/etc/passwd",
            "../store.sqlite",
            "media/../../x",
            "a//b",
            "a\\b",
            "./a",
            "a\u{0}",
        ] {
            assert!(check_run_file_path(bad).is_err(), "{bad:?}");
        }
    }
}
