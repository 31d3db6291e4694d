//! Offline bundles in the dashboard (docs/api.md, "Bundles"): `POST /api/bundles/export` (the
//! selected runs as a bundle download), `POST /api/bundles/exports` then `GET
//! /api/bundles/exports/{id}` (the same, written first and then downloaded by the browser
//! straight to disk), `POST /api/bundles/uploads` (a bundle file streamed to
//! a temporary file under the store, never held in memory) and
//! `POST /api/bundles/uploads/{id}/import` (a dry run's preview, or the import itself). The
//! hub's [`BundleService`] does the work; this module only moves bytes, keeps the uploads and
//! their temporary files, and turns the service's answers into HTTP.
//!
//! These routes are served outside the request time limit (a large upload or import takes
//! longer than it); the security layer guards them like every other route.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::StreamExt;
use runicorn_store::{valid_remote_name, RunKey, RunRef};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::bundle_reports::{
    BundleFailure, BundleService, ExportContents, ExportReport, ImportReport,
};
use crate::error::ApiError;
use crate::routes::ApiPath;
use crate::state::AppState;

/// Largest bundle file an upload accepts.
pub const MAX_UPLOAD_BYTES: u64 = 8 << 30;
/// Uploads not imported within this time are removed.
pub const UPLOAD_MAX_AGE: Duration = Duration::from_secs(3600);
/// Where uploads wait, under the store folder.
pub const UPLOADS_DIR: &str = "tmp/uploads";
/// Where exports are written before they are streamed, under the store folder.
pub const EXPORTS_DIR: &str = "tmp/exports";
/// Most run references one export takes.
pub const MAX_EXPORT_RUNS: usize = 10_000;
/// Largest JSON body of these routes (an export of [`MAX_EXPORT_RUNS`] run ids fits).
pub const MAX_JSON_BODY_BYTES: usize = 1 << 20;
/// Longest upload name kept (in characters).
const MAX_NAME_CHARS: usize = 200;
/// Bytes read from an export file per body chunk.
const CHUNK_BYTES: usize = 256 * 1024;

/// The bundle routes, for the router to serve outside its time limit.
pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/bundles/export", post(export))
        .route("/api/bundles/exports", post(export_for_later))
        .route("/api/bundles/exports/{id}", get(export_download))
        .route("/api/bundles/uploads", post(upload))
        .route("/api/bundles/uploads/{id}/import", post(import))
        .method_not_allowed_fallback(super::method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_JSON_BODY_BYTES))
}

/// The uploads waiting for an import, by id.
#[derive(Default)]
pub struct Uploads {
    waiting: Mutex<HashMap<String, Upload>>,
}

/// One uploaded bundle file.
#[derive(Debug, Clone)]
struct Upload {
    name: String,
    path: PathBuf,
    received: SystemTime,
}

impl Uploads {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Upload>> {
        // A panic while the map was held leaves it consistent (each change is one insert or
        // remove), so a poisoned lock is used as it is.
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes the upload `id` out of the list while it is imported.
    fn take(&self, id: &str) -> Option<Upload> {
        self.lock().remove(id)
    }

    fn put(&self, id: String, upload: Upload) {
        self.lock().insert(id, upload);
    }

    /// Forgets uploads older than [`UPLOAD_MAX_AGE`] and returns their files, to delete.
    fn expire(&self, now: SystemTime) -> Vec<PathBuf> {
        let mut waiting = self.lock();
        let old: Vec<String> = waiting
            .iter()
            .filter(|(_, u)| older_than_max_age(u.received, now))
            .map(|(id, _)| id.clone())
            .collect();
        old.iter()
            .filter_map(|id| waiting.remove(id).map(|u| u.path))
            .collect()
    }

    /// The files of the uploads still waiting.
    fn files(&self) -> BTreeSet<PathBuf> {
        self.lock().values().map(|u| u.path.clone()).collect()
    }
}

fn older_than_max_age(at: SystemTime, now: SystemTime) -> bool {
    now.duration_since(at).is_ok_and(|age| age > UPLOAD_MAX_AGE)
}

/// The service, or `503` saying where bundles are served.
fn service(state: &AppState) -> Result<Arc<dyn BundleService>, ApiError> {
    state.bundles.clone().ok_or_else(|| {
        ApiError::unavailable(
            "this dashboard was started without bundle support; open the dashboard with \
             `runicorn-hub ui`, or use `runicorn-hub export` and `runicorn-hub import`",
        )
    })
}

/// The body of `400 bad_bundle`: the API's error shape with the member to blame.
#[derive(Debug, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS), ts(rename = "BundleRefused"))]
pub struct BundleRefusedBody {
    pub error: BundleRefusedDetail,
}

/// Why a bundle was refused: `code` is `bad_bundle`; nothing was imported.
#[derive(Debug, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS), ts(rename = "BundleRefusedDetail"))]
pub struct BundleRefusedDetail {
    pub code: String,
    pub message: String,
    /// The bundle member to blame, when one is.
    pub member: Option<String>,
}

/// `400 bad_bundle` naming the member: nothing was imported.
fn bundle_refused(failure: BundleFailure) -> Response {
    let body = BundleRefusedBody {
        error: BundleRefusedDetail {
            code: "bad_bundle".to_owned(),
            message: failure.message,
            member: failure.member,
        },
    };
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}

/// A request body the JSON routes take, refused with the JSON error when unusable.
fn parse_body<T: serde::de::DeserializeOwned>(
    body: Result<Bytes, BytesRejection>,
    shape: &str,
) -> Result<T, ApiError> {
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::too_large(format!(
                "request body larger than {} KiB",
                MAX_JSON_BODY_BYTES / 1024
            ))
        } else {
            ApiError::bad_request(format!("unreadable request body: {e}"))
        }
    })?;
    serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("the body must be {shape}: {e}")))
}

/// A random id for a temporary file (32 hex digits).
fn new_id() -> Result<String, ApiError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)
        .map_err(|e| ApiError::internal(format!("no random id from the OS: {e}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Creates `<store>/<sub>` (and its parents).
async fn temp_dir(state: &AppState, sub: &str) -> Result<PathBuf, ApiError> {
    let dir = state.store_dir.join(sub);
    tokio::fs::create_dir_all(&dir).await.map_err(|e| {
        ApiError::internal(format!(
            "cannot create the folder {}: {e}; check the hub's store folder is writable",
            dir.display()
        ))
    })?;
    Ok(dir)
}

/// Removes expired uploads and, in the temporary folders, files older than an hour that no
/// waiting upload owns (left by an earlier hub, or by an export cut short).
async fn sweep(state: &AppState) {
    let now = SystemTime::now();
    let mut doomed = state.uploads.expire(now);
    let keep = state.uploads.files();
    let dirs = [
        state.store_dir.join(UPLOADS_DIR),
        state.store_dir.join(EXPORTS_DIR),
    ];
    let stale = tokio::task::spawn_blocking(move || {
        for dir in dirs {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                let old = entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|at| older_than_max_age(at, now));
                if old && !keep.contains(&path) {
                    doomed.push(path);
                }
            }
        }
        for path in &doomed {
            let _ = std::fs::remove_file(path);
        }
    });
    if let Err(e) = stale.await {
        tracing::warn!(error = %e, "sweeping old bundle uploads failed");
    }
}

/// A run reference as the export body gives it: a key (number) or any reference (string).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RefItem {
    Key(i64),
    Text(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportBody {
    runs: Vec<RefItem>,
    #[serde(default)]
    metadata_only: bool,
    #[serde(default)]
    with_artifacts: bool,
}

/// `POST /api/bundles/export`: `{runs, metadata_only, with_artifacts}` → the bundle file as a
/// download, streamed once written.
async fn export(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let written = write_export(&state, body).await?;
    let file = open_and_unlink(&written.path).await?;
    Ok(download(file, written.report.bundle_bytes, written.runs).await)
}

/// `POST /api/bundles/exports`: the same body → `201 {id, filename, size, report}`, the bundle
/// waiting under the store folder for one `GET /api/bundles/exports/{id}` (within an hour). A
/// browser saves that download straight to disk, where the answer of `POST …/export` would
/// have to be held in the page's memory first.
async fn export_for_later(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let written = write_export(&state, body).await?;
    let answer = ExportReady {
        filename: download_name(written.runs),
        size: written.report.bundle_bytes,
        id: written.id,
        report: written.report,
    };
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

/// `GET /api/bundles/exports/{id}`: the bundle `POST /api/bundles/exports` wrote, as a download,
/// once (its file is removed as the download starts).
async fn export_download(
    State(state): State<Arc<AppState>>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let runs = parse_export_id(&id).ok_or_else(|| {
        ApiError::not_found(format!(
            "no export {id:?}: ids are what POST /api/bundles/exports answers"
        ))
    })?;
    let path = state
        .store_dir
        .join(EXPORTS_DIR)
        .join(format!("{id}.rbundle"));
    let file = match tokio::fs::File::open(&path).await {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(ApiError::not_found(format!(
                "export {id} is gone: it downloads once, within an hour of being written; \
                 export the runs again"
            )))
        }
        Err(e) => {
            return Err(ApiError::internal(format!(
                "cannot read the export {}: {e}",
                path.display()
            )))
        }
    };
    let _ = tokio::fs::remove_file(&path).await;
    let size = file.metadata().await.map(|m| m.len()).unwrap_or(0);
    Ok(download(file, size, runs).await)
}

/// What `POST /api/bundles/exports` answers.
#[derive(Debug, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct ExportReady {
    /// Download it once with `GET /api/bundles/exports/{id}`.
    pub id: String,
    /// The name to save it under.
    pub filename: String,
    pub size: u64,
    pub report: ExportReport,
}

/// An export written under the store folder.
struct WrittenExport {
    /// `<32 hex>-<runs>`: the file is `<exports>/<id>.rbundle`.
    id: String,
    path: PathBuf,
    runs: usize,
    report: ExportReport,
}

/// The runs of an export id (`<32 hex>-<runs>`), `None` for anything else.
fn parse_export_id(id: &str) -> Option<usize> {
    let (hex, runs) = id.split_once('-')?;
    let hex_ok = hex.len() == 32 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    let runs_ok = !runs.is_empty() && runs.len() <= 5 && runs.bytes().all(|b| b.is_ascii_digit());
    (hex_ok && runs_ok).then(|| runs.parse().ok()).flatten()
}

/// `runicorn-<n>-runs-<YYYY-MM-DD>.rbundle`.
fn download_name(runs: usize) -> String {
    format!(
        "runicorn-{runs}-runs-{}.rbundle",
        utc_date(SystemTime::now())
    )
}

/// `file` (of `size` bytes, a bundle of `runs` runs) as an attachment.
async fn download(file: tokio::fs::File, size: u64, runs: usize) -> Response {
    let size = match file.metadata().await {
        Ok(m) => m.len(),
        Err(_) => size,
    };
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/zstd"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    let filename = download_name(runs);
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    (headers, Body::from_stream(file_chunks(file))).into_response()
}

/// Checks an export body, resolves its runs and has the service write their bundle under the
/// store folder.
async fn write_export(
    state: &AppState,
    body: Result<Bytes, BytesRejection>,
) -> Result<WrittenExport, ApiError> {
    let service = service(state)?;
    let body: ExportBody = parse_body(
        body,
        r#"{"runs": [RUN, …], "metadata_only": false, "with_artifacts": false}"#,
    )?;
    if body.runs.is_empty() {
        return Err(ApiError::bad_request(
            "runs is empty: give at least one run reference to export",
        ));
    }
    if body.runs.len() > MAX_EXPORT_RUNS {
        return Err(ApiError::bad_request(format!(
            "{} runs asked; one export takes at most {MAX_EXPORT_RUNS}",
            body.runs.len()
        )));
    }
    // Each distinct reference resolved once, all on one store connection, in the order given.
    let mut seen = HashSet::new();
    let references: Vec<String> = body
        .runs
        .iter()
        .map(|item| match item {
            RefItem::Key(k) => k.to_string(),
            RefItem::Text(t) => t.clone(),
        })
        .filter(|r| seen.insert(r.clone()))
        .collect();
    let keys: Vec<RunKey> = state
        .pool
        .read(move |store| {
            let mut keys = Vec::with_capacity(references.len());
            let mut distinct = HashSet::new();
            for reference in &references {
                let key = store.resolve_run(&RunRef::parse(reference)?)?;
                if distinct.insert(key) {
                    keys.push(key);
                }
            }
            Ok(keys)
        })
        .await?;
    sweep(state).await;
    let dir = temp_dir(state, EXPORTS_DIR).await?;
    let runs = keys.len();
    let id = format!("{}-{runs}", new_id()?);
    let path = dir.join(format!("{id}.rbundle"));
    let contents = ExportContents {
        metadata_only: body.metadata_only,
        with_artifacts: body.with_artifacts,
    };
    // On a task of its own: a client that goes away does not cut the export short, and its
    // file is cleaned up all the same (by the next sweep when nobody downloads it).
    let out = path.clone();
    let written = tokio::spawn(async move {
        let result = service.export(keys, contents, out.clone()).await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(&out).await;
        }
        result
    })
    .await
    .map_err(|e| ApiError::internal(format!("the export stopped: {e}")))?;
    let report = written.map_err(|failure| {
        let mut message = failure.message;
        if let Some(member) = failure.member {
            message.push_str(&format!(" (file {member})"));
        }
        ApiError::internal(message)
    })?;
    Ok(WrittenExport {
        id,
        path,
        runs,
        report,
    })
}

/// Opens the written bundle and removes its name (the open file keeps its bytes until closed,
/// so nothing is left behind however the download ends).
async fn open_and_unlink(path: &Path) -> Result<tokio::fs::File, ApiError> {
    let file = tokio::fs::File::open(path).await;
    let _ = tokio::fs::remove_file(path).await;
    file.map_err(|e| {
        ApiError::internal(format!(
            "the export was written to {} but cannot be read back: {e}",
            path.display()
        ))
    })
}

/// The bytes of `file` as a body stream.
fn file_chunks(
    file: tokio::fs::File,
) -> impl futures::Stream<Item = Result<Bytes, io::Error>> + Send {
    futures::stream::unfold(Some(file), |file| async move {
        let mut file = file?;
        let mut buf = vec![0u8; CHUNK_BYTES];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(Bytes::from(buf)), Some(file)))
            }
            Err(e) => Some((Err(e), None)),
        }
    })
}

/// `YYYY-MM-DD` of `at`, in UTC.
fn utc_date(at: SystemTime) -> String {
    let days = at
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() / 86_400)
        .unwrap_or(0);
    let (y, m, d) = civil_from_days(days as i64);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The proleptic Gregorian date `days` after 1970-01-01 (eras of 400 years of 146 097 days;
/// years counted from March so the leap day ends a year).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month as u32, day as u32)
}

/// What an upload answers.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS), ts(rename = "BundleUpload"))]
pub struct UploadDto {
    /// Names the upload in `POST /api/bundles/uploads/{id}/import`.
    pub id: String,
    pub name: String,
    pub size: u64,
}

#[derive(Debug, Deserialize)]
struct UploadQuery {
    name: Option<String>,
}

/// A file being written that is removed unless kept.
struct PartialFile {
    path: PathBuf,
    kept: bool,
}

impl Drop for PartialFile {
    fn drop(&mut self) {
        if !self.kept {
            // The request may be dropped mid-body (the client went away): remove at once.
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// `POST /api/bundles/uploads?name=FILE` with the file's bytes as the body → `{id, name, size}`.
async fn upload(
    State(state): State<Arc<AppState>>,
    Query(query): Query<UploadQuery>,
    request: Request,
) -> Result<Json<UploadDto>, ApiError> {
    service(&state)?;
    let too_large = || {
        ApiError::too_large(format!(
            "the bundle is larger than {} GiB, the most an upload takes; import it with \
             `runicorn-hub import FILE` instead",
            MAX_UPLOAD_BYTES >> 30
        ))
    };
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_UPLOAD_BYTES) {
        return Err(too_large());
    }
    let name = upload_name(query.name.as_deref());
    sweep(&state).await;
    let dir = temp_dir(&state, UPLOADS_DIR).await?;
    let id = new_id()?;
    let path = dir.join(format!("{id}.upload"));
    let mut partial = PartialFile {
        path: path.clone(),
        kept: false,
    };
    let write_failed = |e: io::Error| {
        ApiError::internal(format!(
            "cannot write the upload to {}: {e}; free disk space in the hub's store folder",
            path.display()
        ))
    };
    let mut file = tokio::fs::File::create(&path).await.map_err(write_failed)?;
    let mut size: u64 = 0;
    let mut stream = request.into_body().into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::bad_request(format!("the upload of {name:?} was cut short: {e}"))
        })?;
        size += chunk.len() as u64;
        if size > MAX_UPLOAD_BYTES {
            return Err(too_large());
        }
        file.write_all(&chunk).await.map_err(write_failed)?;
    }
    file.flush().await.map_err(write_failed)?;
    file.sync_all().await.map_err(write_failed)?;
    drop(file);
    if size == 0 {
        return Err(ApiError::bad_request(format!(
            "the upload of {name:?} is empty: send the bundle file's bytes as the body"
        )));
    }
    partial.kept = true;
    state.uploads.put(
        id.clone(),
        Upload {
            name: name.clone(),
            path,
            received: SystemTime::now(),
        },
    );
    Ok(Json(UploadDto { id, name, size }))
}

/// The upload's name for reports: the file name the browser gave (no folders, no control
/// characters, at most [`MAX_NAME_CHARS`]), or `upload`.
fn upload_name(given: Option<&str>) -> String {
    let base = given.unwrap_or("").rsplit(['/', '\\']).next().unwrap_or("");
    let clean: String = base
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_NAME_CHARS)
        .collect();
    let clean = clean.trim();
    if clean.is_empty() {
        "upload".to_owned()
    } else {
        clean.to_owned()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportBody {
    #[serde(default)]
    dry_run: bool,
    #[serde(default)]
    as_remote: Option<String>,
}

/// `POST /api/bundles/uploads/{id}/import` with `{dry_run, as_remote}` → `ImportReport`, or
/// `400 bad_bundle` naming the member.
async fn import(
    State(state): State<Arc<AppState>>,
    ApiPath(id): ApiPath<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let service = service(&state)?;
    let body: ImportBody = parse_body(body, r#"{"dry_run": true, "as_remote": null}"#)?;
    let as_remote = body.as_remote.filter(|r| !r.is_empty());
    if let Some(remote) = &as_remote {
        if !valid_remote_name(remote) {
            return Err(ApiError::bad_request(format!(
                "as_remote {remote:?} must be 1-64 characters of letters, digits, '-', '_' or '.'"
            )));
        }
    }
    sweep(&state).await;
    let Some(upload) = state.uploads.take(&id) else {
        return Err(ApiError::not_found(format!(
            "no upload {id:?} is waiting (imported already, older than an hour, or being \
             imported now); upload the bundle again"
        )));
    };
    // On a task of its own: a client that goes away does not cut the import short (it is
    // applied whole or not at all either way), and the upload is put back or removed.
    let dry_run = body.dry_run;
    let shared = Arc::clone(&state);
    let outcome = tokio::spawn(async move {
        let outcome = service
            .import(upload.path.clone(), upload.name.clone(), dry_run, as_remote)
            .await;
        if outcome.is_ok() && !dry_run {
            remove_upload(&upload.path).await;
        } else {
            shared.uploads.put(id, upload);
        }
        outcome
    })
    .await
    .map_err(|e| ApiError::internal(format!("the import stopped: {e}")))?;
    match outcome {
        Ok(report) => Ok(Json::<ImportReport>(report).into_response()),
        Err(failure) => Ok(bundle_refused(failure)),
    }
}

async fn remove_upload(path: &Path) {
    if let Err(e) = tokio::fs::remove_file(path).await {
        tracing::warn!(file = %path.display(), error = %e, "removing an imported upload failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_the_utc_calendar_day() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(59), (1970, 3, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_427), (2025, 12, 5));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        let at = UNIX_EPOCH + Duration::from_secs(1_764_900_000);
        assert_eq!(utc_date(at), "2025-12-05");
    }

    #[test]
    fn upload_names_keep_only_the_file_name() {
        assert_eq!(upload_name(Some("runs.rbundle")), "runs.rbundle");
        assert_eq!(upload_name(Some("../../etc/passwd")), "passwd");
        assert_eq!(upload_name(Some("C:\\Users\\me\\a.rbundle")), "a.rbundle");
        assert_eq!(upload_name(Some("a\u{0}b\nc")), "abc");
        assert_eq!(upload_name(Some("")), "upload");
        assert_eq!(upload_name(None), "upload");
        assert_eq!(upload_name(Some(&"x".repeat(500))).len(), MAX_NAME_CHARS);
    }

    #[test]
    fn uploads_expire_after_an_hour() {
        let uploads = Uploads::default();
        let now = SystemTime::now();
        let upload = |secs: u64, path: &str| Upload {
            name: "b".into(),
            path: PathBuf::from(path),
            received: now - Duration::from_secs(secs),
        };
        uploads.put("old".into(), upload(3_601, "/x/old"));
        uploads.put("new".into(), upload(10, "/x/new"));
        assert_eq!(uploads.expire(now), vec![PathBuf::from("/x/old")]);
        assert!(uploads.take("old").is_none());
        assert_eq!(
            uploads.take("new").map(|u| u.path),
            Some(PathBuf::from("/x/new"))
        );
    }
}
