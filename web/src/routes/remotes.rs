//! `GET /api/remotes`: each remote's state (connected, last sync, lag, last error, counts),
//! never its transport settings.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use serde::Serialize;

use crate::dto::{now, RemoteDto};
use crate::error::ApiError;
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
