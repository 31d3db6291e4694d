//! The alerts agents raised about runs, as the sync stored them: `GET /api/alerts` (the
//! unacknowledged ones, newest first; `?all` for every one; `?run=REF` for one run's),
//! `POST /api/alerts/{id}/ack` and `POST /api/alerts/ack-all`. The event stream
//! (`/api/events`) announces new ones as `alerts` events ([`AlertsEvent`]).

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::Json;
use runicorn_store::{AlertRow, AlertView};
use serde::Serialize;

use crate::error::ApiError;
use crate::routes::{resolve_run, ApiPath};
use crate::state::AppState;

/// At most this many alerts per answer.
pub const MAX_ALERTS_LISTED: usize = 1000;

/// One alert.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS), ts(rename = "Alert"))]
pub struct AlertDto {
    /// The hub's number of the alert (`POST /api/alerts/{id}/ack`).
    pub id: i64,
    /// The agent's id of the occurrence (`stalled@120`, `nonfinite:loss`, ...).
    pub alert_id: String,
    /// `stalled`, `crashed`, `failed`, `nonfinite` or `gpu_idle`.
    pub kind: String,
    pub message: String,
    pub key: Option<String>,
    pub step: Option<i64>,
    pub value: Option<String>,
    pub raised_at: f64,
    pub received_at: f64,
    pub acked_at: Option<f64>,
    pub remote: String,
    pub host: Option<String>,
    /// The run's key (`#/run/<key>`).
    pub run: i64,
    pub run_ref: String,
    pub run_id: String,
    pub path: String,
    pub alias: Option<String>,
}

impl From<AlertRow> for AlertDto {
    fn from(r: AlertRow) -> AlertDto {
        AlertDto {
            id: r.id,
            alert_id: r.alert_id,
            kind: r.kind,
            message: r.message,
            key: r.key,
            step: r.step,
            value: r.value,
            raised_at: r.raised_at,
            received_at: r.received_at,
            acked_at: r.acked_at,
            remote: r.remote,
            host: r.host,
            run: r.run,
            run_ref: r.run_ref,
            run_id: r.run_id,
            path: r.path,
            alias: r.alias,
        }
    }
}

/// `GET /api/alerts`.
#[derive(Debug, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS), ts(rename = "Alerts"))]
pub struct AlertsDto {
    pub alerts: Vec<AlertDto>,
    /// Alerts not acknowledged, in the whole store (the badge's count).
    pub unacked: u64,
}

/// The `alerts` event of `/api/events`: sent when alerts arrived or were acknowledged.
#[derive(Debug, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS), ts(rename = "AlertsEvent"))]
pub struct AlertsEvent {
    /// Alerts not acknowledged now.
    pub unacked: u64,
    /// The alerts new since the stream's last `alerts` event (or since it opened), oldest first.
    pub new: Vec<AlertDto>,
}

/// What acknowledging did.
#[derive(Debug, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS), ts(rename = "Acked"))]
pub struct AckedDto {
    /// Alerts acknowledged by this request.
    pub acked: u64,
    /// Alerts still not acknowledged.
    pub unacked: u64,
}

/// The query's pairs, decoded.
fn pairs(query: &str) -> Result<Vec<(String, String)>, ApiError> {
    serde_urlencoded::from_str(query)
        .map_err(|e| ApiError::bad_request(format!("unusable query: {e}")))
}

/// A query flag: present alone (`?all`) or `=1`/`=true`.
fn flag(pairs: &[(String, String)], name: &str) -> Result<bool, ApiError> {
    match pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
    {
        None | Some("0" | "false") => Ok(false),
        Some("" | "1" | "true") => Ok(true),
        Some(other) => Err(ApiError::bad_request(format!(
            "{name}={other:?}: expected {name}, {name}=true or {name}=false"
        ))),
    }
}

/// `GET /api/alerts[?all][&run=REF]`.
pub async fn list(
    State(state): State<Arc<AppState>>,
    RawQuery(query): RawQuery,
) -> Result<Json<AlertsDto>, ApiError> {
    let pairs = pairs(&query.unwrap_or_default())?;
    let view = if flag(&pairs, "all")? {
        AlertView::All
    } else {
        AlertView::Unacked
    };
    let run = match pairs.iter().find(|(k, _)| k == "run") {
        Some((_, reference)) => Some(resolve_run(&state, reference).await?.0),
        None => None,
    };
    let dto = state
        .pool
        .read(move |store| {
            let alerts = store.alerts(view, run, MAX_ALERTS_LISTED)?;
            Ok(AlertsDto {
                alerts: alerts.into_iter().map(AlertDto::from).collect(),
                unacked: store.alert_counts()?.0,
            })
        })
        .await?;
    Ok(Json(dto))
}

/// `POST /api/alerts/{id}/ack`.
pub async fn ack(
    State(state): State<Arc<AppState>>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<AckedDto>, ApiError> {
    let id: i64 = id.parse().map_err(|_| {
        ApiError::bad_request(format!(
            "{id:?} is not an alert id: use the `id` of an alert from GET /api/alerts"
        ))
    })?;
    let dto = state
        .pool
        .write(move |store| {
            if !store.ack_alert(id)? {
                return Err(ApiError::not_found(format!(
                    "no alert {id}: GET /api/alerts?all lists every alert"
                )));
            }
            Ok(AckedDto {
                acked: 1,
                unacked: store.alert_counts()?.0,
            })
        })
        .await?;
    Ok(Json(dto))
}

/// `POST /api/alerts/ack-all`.
pub async fn ack_all(State(state): State<Arc<AppState>>) -> Result<Json<AckedDto>, ApiError> {
    let dto = state
        .pool
        .write(|store| {
            let acked = store.ack_all_alerts()?;
            Ok(AckedDto {
                acked,
                unacked: store.alert_counts()?.0,
            })
        })
        .await?;
    Ok(Json(dto))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_of_the_query() {
        let of = |q: &str| flag(&pairs(q).unwrap(), "all");
        assert!(of("all").unwrap());
        assert!(of("run=3&all=true").unwrap());
        assert!(!of("all=0").unwrap());
        assert!(!of("").unwrap());
        assert!(of("all=maybe").is_err());
        assert_eq!(pairs("run=gpu%2F1").unwrap()[0].1, "gpu/1");
    }
}
