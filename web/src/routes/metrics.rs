//! `GET /api/runs/{run}/metrics`: a run's series, downsampled by the store (each bucket keeps
//! its smallest and largest value, so spikes survive) or raw within the bound.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use runicorn_store::{SeriesAxis, SeriesQuery};
use serde::Serialize;

use crate::dto::SeriesDto;
use crate::error::ApiError;
use crate::query::Params;
use crate::routes::{resolve_run, ApiPath};
use crate::state::AppState;

/// Most points per series a request may ask for.
pub const MAX_POINTS: u64 = 20_000;
/// Most points the raw series of one request may hold together (413 beyond).
pub const MAX_RAW_POINTS: u64 = 1_000_000;
/// Most series (keys) one answer holds: `keys` may name this many, and without `keys` the
/// run's keys come in pages of at most this many (`key_offset`, `key_limit`).
pub const MAX_METRIC_KEYS: u64 = 200;

#[derive(Debug, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS), ts(rename = "MetricsAnswer"))]
pub struct MetricsDto {
    pub run: i64,
    #[cfg_attr(test, ts(type = "\"step\" | \"time\""))]
    pub x: &'static str,
    pub series: Vec<SeriesDto>,
    /// How many metric keys the run has.
    pub key_count: u64,
    /// Without `keys`: the `key_offset` of the next page; `null` after the last.
    pub next_key_offset: Option<u64>,
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

/// `GET /api/runs/{run}/metrics`.
pub async fn get(
    State(state): State<Arc<AppState>>,
    ApiPath(reference): ApiPath<String>,
    params: Params,
) -> Result<Json<MetricsDto>, ApiError> {
    let key = resolve_run(&state, &reference).await?;
    let mut query = series_query(&params, 2_000)?;
    let asked = params.bounded_list("keys", MAX_METRIC_KEYS as usize)?;
    let key_offset = params.number("key_offset", 0, u64::from(u32::MAX))?;
    let key_limit = params.number_in("key_limit", MAX_METRIC_KEYS, 1, MAX_METRIC_KEYS)?;
    if asked.is_some()
        && (params.text("key_offset").is_some() || params.text("key_limit").is_some())
    {
        return Err(ApiError::bad_request(
            "parameters key_offset and key_limit page through all keys; they cannot go with keys",
        ));
    }
    let x = axis_name(query.axis);
    let (series, key_count, next_key_offset) = state
        .pool
        .read(move |store| {
            let run = store.run_by_key(key)?.ok_or(ApiError::no_run(key.0))?;
            let (names, next) = match asked {
                Some(keys) => (keys, None),
                None => {
                    let page = store.metric_keys_page(key, key_offset, Some(key_limit))?;
                    let end = key_offset + page.len() as u64;
                    let next = (end < run.key_count).then_some(end);
                    (page.into_iter().map(|k| k.name).collect(), next)
                }
            };
            // The raw bound is for the whole answer: each raw series gets what is left.
            let mut raw_left = MAX_RAW_POINTS;
            let mut series = Vec::with_capacity(names.len());
            for name in names {
                query.raw_limit = raw_left;
                let points = store.series(key, &name, &query)?.ok_or_else(|| {
                    ApiError::not_found(format!("run {} has no metric {name:?}", key.0))
                })?;
                raw_left = raw_left.saturating_sub(points.total);
                series.push(SeriesDto::new(None, points));
            }
            Ok((series, run.key_count, next))
        })
        .await?;
    Ok(Json(MetricsDto {
        run: key.0,
        x,
        series,
        key_count,
        next_key_offset,
    }))
}
