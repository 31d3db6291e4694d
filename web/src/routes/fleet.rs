//! `GET /api/fleet`: every remote's host, its GPUs (use, memory, temperature, power, the run
//! holding each), free GPUs and totals, from the latest host samples the sync stored
//! (`crate::fleet` builds it, for the CLI's `runicorn-hub fleet` too).

use std::sync::Arc;

use axum::extract::State;
use axum::Json;

use crate::dto::now;
use crate::error::ApiError;
use crate::fleet::{read_fleet, FleetDto};
use crate::state::AppState;

/// `GET /api/fleet`.
pub async fn get(State(state): State<Arc<AppState>>) -> Result<Json<FleetDto>, ApiError> {
    let fleet = state
        .pool
        .read(|store| Ok(read_fleet(store, now())?))
        .await?;
    Ok(Json(fleet))
}
