//! `GET /api/runs/{id}/metrics`: a run's series, downsampled by the store (each bucket keeps
//! its smallest and largest value, so spikes survive) or raw within the bound.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use runicorn_store::{SeriesAxis, SeriesQuery};
use serde::Serialize;

use crate::dto::SeriesDto;
use crate::error::ApiError;
use crate::query::Params;
use crate::routes::{run_key, ApiPath};
use crate::state::AppState;

/// Most points per series a request may ask for.
pub const MAX_POINTS: u64 = 20_000;
/// Most points a raw series may hold (413 beyond).
pub const MAX_RAW_POINTS: u64 = 1_000_000;

#[derive(Debug, Serialize)]
pub struct MetricsDto {
    pub run: i64,
    pub x: &'static str,
    pub series: Vec<SeriesDto>,
}

/// The range and resolution part of a series request (`x`, `points`, `from`, `to`, `raw`).
pub fn series_query(params: &Params, default_points: u64) -> Result<SeriesQuery, ApiError> {
    let axis = match params.choice("x", &["step", "time"], "step")? {
        "time" => SeriesAxis::Time,
        _ => SeriesAxis::Step,
    };
    let max_points = params.number("points", default_points, MAX_POINTS)?;
    if max_points < 2 {
        return Err(ApiError::bad_request(
            "parameter points must be at least 2 (each bucket keeps its min and max)",
        ));
    }
    let from = params.float("from")?;
    let to = params.float("to")?;
    if let (Some(f), Some(t)) = (from, to) {
        if f > t {
            return Err(ApiError::bad_request(format!(
                "parameter from={f} is after to={t}"
            )));
        }
    }
    Ok(SeriesQuery {
        axis,
        from,
        to,
        max_points: max_points as u32,
        raw: params.flag("raw", false)?,
        raw_limit: MAX_RAW_POINTS,
    })
}

pub fn axis_name(axis: SeriesAxis) -> &'static str {
    match axis {
        SeriesAxis::Time => "time",
        SeriesAxis::Step => "step",
    }
}

/// `GET /api/runs/{id}/metrics`.
pub async fn get(
    State(state): State<Arc<AppState>>,
    ApiPath(id): ApiPath<String>,
    params: Params,
) -> Result<Json<MetricsDto>, ApiError> {
    let key = run_key(&id)?;
    let query = series_query(&params, 2_000)?;
    let asked = params.list("keys");
    let x = axis_name(query.axis);
    let series = state
        .pool
        .read(move |store| {
            let run = store.run_by_key(key)?.ok_or(ApiError::no_run(key.0))?;
            let keys = asked.unwrap_or_else(|| run.keys.clone());
            let mut series = Vec::with_capacity(keys.len());
            for name in keys {
                let points = store.series(key, &name, &query)?.ok_or_else(|| {
                    ApiError::not_found(format!("run {} has no metric {name:?}", key.0))
                })?;
                series.push(SeriesDto::new(None, points));
            }
            Ok(series)
        })
        .await?;
    Ok(Json(MetricsDto {
        run: key.0,
        x,
        series,
    }))
}
