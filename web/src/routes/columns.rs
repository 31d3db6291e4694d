//! `GET /api/columns`: the summary, config and metric keys found across runs, for the column
//! chooser and the filter box's completion (`metric.<key>.last|min|max`).

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use serde::Serialize;

use crate::error::ApiError;
use crate::state::AppState;

/// Most keys of each kind listed.
pub const MAX_COLUMN_KEYS: usize = 500;

#[derive(Debug, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS), ts(rename = "Columns"))]
pub struct ColumnsDto {
    pub summary: Vec<String>,
    pub config: Vec<String>,
    /// Metric keys (at most [`MAX_COLUMN_KEYS`], sorted).
    pub metrics: Vec<String>,
}

/// `GET /api/columns`.
pub async fn get(State(state): State<Arc<AppState>>) -> Result<Json<ColumnsDto>, ApiError> {
    let keys = state
        .pool
        .read(|store| Ok(store.column_keys(MAX_COLUMN_KEYS)?))
        .await?;
    Ok(Json(ColumnsDto {
        summary: keys.summary,
        config: keys.config,
        metrics: keys.metrics,
    }))
}
