//! `GET /api/remotes`: each remote's state (live, offline, paused, not followed, imported, removed; its
//! follower, last sync, lag, last error, counts), never its transport settings. And managing
//! them (token-guarded writes like every other): `POST /api/remotes/{name}/pause`, `/resume`,
//! `/sync` ("sync now", and "retry now" for one whose connection is lost: a request the
//! remote's follower picks up within seconds), `/rename` (`{"name": NEW}`), and
//! `DELETE /api/remotes/{name}` (`?forget_runs=true` also deletes its runs). Each write answers
//! with the remote as `GET` lists it (`{"forgotten": true}` once forgotten).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Query, State};
use axum::Json;
use runicorn_store::{valid_remote_name, RenameOutcome, Store};
use serde::{Deserialize, Serialize};

use crate::dto::{now, RemoteDto};
use crate::error::{ApiError, ErrorCode};
use crate::routes::ApiPath;
use crate::state::AppState;

#[derive(Debug, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS), ts(rename = "RemotesAnswer"))]
pub struct RemotesDto {
    pub remotes: Vec<RemoteDto>,
}

/// `GET /api/remotes`.
pub async fn get(State(state): State<Arc<AppState>>) -> Result<Json<RemotesDto>, ApiError> {
    let rows = state.pool.read(|store| Ok(store.remotes()?)).await?;
    let at = now();
    Ok(Json(RemotesDto {
        remotes: rows.iter().map(|r| RemoteDto::new(r, at)).collect(),
    }))
}

fn no_remote(name: &str) -> ApiError {
    ApiError::not_found(format!(
        "no remote named {name:?}; GET /api/remotes lists them"
    ))
}

/// Runs `change` on the writer, then answers with the remote named `answer_as` (a `404` when
/// `change` says no such remote).
async fn write_remote(
    state: &AppState,
    name: String,
    answer_as: String,
    change: impl FnOnce(&mut Store, &str) -> Result<bool, ApiError> + Send + 'static,
) -> Result<Json<RemoteDto>, ApiError> {
    let row = state
        .pool
        .write(move |store| {
            if !change(store, &name)? {
                return Err(no_remote(&name));
            }
            store
                .remote(&answer_as)?
                .ok_or_else(|| no_remote(&answer_as))
        })
        .await?;
    Ok(Json(RemoteDto::new(&row, now())))
}

/// `POST /api/remotes/{name}/pause`.
pub async fn pause(
    State(state): State<Arc<AppState>>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<RemoteDto>, ApiError> {
    write_remote(&state, name.clone(), name, |s, n| {
        Ok(s.set_remote_paused(n, true)?)
    })
    .await
}

/// `POST /api/remotes/{name}/resume`.
pub async fn resume(
    State(state): State<Arc<AppState>>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<RemoteDto>, ApiError> {
    write_remote(&state, name.clone(), name, |s, n| {
        Ok(s.set_remote_paused(n, false)?)
    })
    .await
}

/// `POST /api/remotes/{name}/sync`: "sync now" / "retry now". A paused remote, or one known only
/// from imported bundles (there is no link to sync over), is a `409`.
pub async fn sync_now(
    State(state): State<Arc<AppState>>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<RemoteDto>, ApiError> {
    write_remote(&state, name.clone(), name, |s, n| {
        if let Some(r) = s.remote(n)? {
            if r.paused && r.removed_at.is_none() {
                return Err(ApiError::new(
                    ErrorCode::Conflict,
                    format!("remote {n:?} is paused; resume it to sync it"),
                ));
            }
            if r.imported && r.removed_at.is_none() {
                return Err(ApiError::new(
                    ErrorCode::Conflict,
                    format!(
                        "remote {n:?} is known only from imported bundles, so there is nothing to \
                         sync; import a newer bundle, or give it a link with \
                         `runicorn-hub connect USER@HOST --name {n}`"
                    ),
                ));
            }
        }
        Ok(s.request_sync(n, now())?)
    })
    .await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RenameBody {
    name: String,
}

/// `POST /api/remotes/{name}/rename` with `{"name": NEW}`: `400` for an unusable name, `409`
/// when another remote has it.
pub async fn rename(
    State(state): State<Arc<AppState>>,
    ApiPath(name): ApiPath<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<RemoteDto>, ApiError> {
    let body = body.map_err(|e| ApiError::bad_request(format!("unreadable request body: {e}")))?;
    let RenameBody { name: new } = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(format!("the body must be {{\"name\": NEW_NAME}}: {e}"))
    })?;
    if !valid_remote_name(&new) {
        return Err(ApiError::bad_request(format!(
            "remote name {new:?} must be 1-64 characters of letters, digits, '-', '_' or '.'"
        )));
    }
    let target = new.clone();
    write_remote(&state, name, new, move |s, old| {
        match s.rename_remote(old, &target)? {
            RenameOutcome::Renamed => Ok(true),
            RenameOutcome::Unknown => Ok(false),
            RenameOutcome::NameTaken => Err(ApiError::new(
                ErrorCode::Conflict,
                format!("a remote named {target:?} exists already; remove or rename it first"),
            )),
        }
    })
    .await
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RemoveQuery {
    #[serde(default)]
    forget_runs: bool,
}

/// What `DELETE /api/remotes/{name}` answers.
#[derive(Debug, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS), ts(rename = "RemoteRemoved"))]
pub struct RemovedDto {
    /// The remote as listed now (`state: "removed"`); `null` once forgotten.
    pub remote: Option<RemoteDto>,
    /// Its runs were deleted too.
    pub forgotten: bool,
}

/// `DELETE /api/remotes/{name}[?forget_runs=true]`: nobody syncs it any more; its runs stay
/// (shown as from a removed remote) unless `forget_runs`.
pub async fn remove(
    State(state): State<Arc<AppState>>,
    ApiPath(name): ApiPath<String>,
    query: Result<Query<RemoveQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<RemovedDto>, ApiError> {
    let Query(q) =
        query.map_err(|e| ApiError::bad_request(format!("unusable query: {}", e.body_text())))?;
    let forget = q.forget_runs;
    let row = state
        .pool
        .write(move |store| {
            let existed = if forget {
                store.remove_remote(&name)?
            } else {
                store.retire_remote(&name, now())?
            };
            if !existed {
                return Err(no_remote(&name));
            }
            Ok(store.remote(&name)?)
        })
        .await?;
    Ok(Json(RemovedDto {
        remote: row.map(|r| RemoteDto::new(&r, now())),
        forgotten: forget,
    }))
}
