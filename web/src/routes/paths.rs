//! `GET /api/paths`: the tree of run paths with counts, under the same filters as the table.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use serde::Serialize;

use crate::error::ApiError;
use crate::query::{run_filter, Params};
use crate::state::AppState;
use crate::tree::{build_tree, PathNode};

#[derive(Debug, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS), ts(rename = "PathsAnswer"))]
pub struct PathsDto {
    pub total: u64,
    pub tree: PathNode,
}

/// `GET /api/paths`.
pub async fn get(
    State(state): State<Arc<AppState>>,
    params: Params,
) -> Result<Json<PathsDto>, ApiError> {
    let mut filter = run_filter(&params)?;
    filter.path_prefix = None; // the tree shows every path; `path` selects within it
    let counts = state
        .pool
        .read(move |store| Ok(store.path_counts(&filter)?))
        .await?;
    let tree = build_tree(&counts);
    Ok(Json(PathsDto {
        total: tree.count,
        tree,
    }))
}
