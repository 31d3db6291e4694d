//! Deleting runs for good from the hub's recycle bin: `POST /api/runs/{run}/purge` (one run,
//! which must be in the recycle bin) and `POST /api/recycle-bin/empty` (all of them). Nothing
//! on the runs' servers is touched; the sync leaves purged runs out from then on.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use runicorn_store::{PurgeRefusal, PurgeReport};
use serde::Serialize;

use crate::error::{ApiError, ErrorCode};
use crate::routes::{resolve_run, ApiPath};
use crate::state::AppState;

/// What a purge did.
#[derive(Debug, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS), ts(rename = "Purged"))]
pub struct PurgedDto {
    /// Runs deleted for good.
    pub purged: u64,
    /// File contents removed from the hub's file cache (no other run named them).
    pub cached_files_removed: u64,
}

impl From<PurgeReport> for PurgedDto {
    fn from(r: PurgeReport) -> PurgedDto {
        PurgedDto {
            purged: r.runs,
            cached_files_removed: r.cached_files_removed,
        }
    }
}

/// `POST /api/runs/{run}/purge`.
pub async fn purge(
    State(state): State<Arc<AppState>>,
    ApiPath(reference): ApiPath<String>,
) -> Result<Json<PurgedDto>, ApiError> {
    let key = resolve_run(&state, &reference).await?;
    let outcome = state
        .pool
        .write(move |store| Ok(store.purge_run(key)?))
        .await?;
    match outcome {
        Ok(report) => Ok(Json(report.into())),
        Err(PurgeRefusal::NoRun) => Err(ApiError::no_run(key.0)),
        Err(PurgeRefusal::NotInRecycleBin) => Err(ApiError::new(
            ErrorCode::Conflict,
            format!(
                "run {} is not in the recycle bin: only a run there can be deleted for good; \
                 move it there first (DELETE /api/runs/{})",
                key.0, key.0
            ),
        )),
    }
}

/// `POST /api/recycle-bin/empty`.
pub async fn empty(State(state): State<Arc<AppState>>) -> Result<Json<PurgedDto>, ApiError> {
    let report = state
        .pool
        .write(|store| Ok(store.empty_recycle_bin()?))
        .await?;
    Ok(Json(report.into()))
}
