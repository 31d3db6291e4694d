//! The API's routes, one module per resource of `docs/api.md`, and the router that joins them
//! with the embedded UI and the security layer.

pub mod alerts;
pub mod artifact_files;
pub mod artifacts;
pub mod bundles;
pub mod columns;
pub mod compare;
pub mod events;
pub mod files;
pub mod fleet;
pub mod live;
pub mod logs;
pub mod media;
pub mod metrics;
pub mod paths;
pub mod recycle_bin;
pub mod remotes;
pub mod runs;
pub mod system;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use runicorn_store::{RunKey, RunRef};

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use axum::http::{Method, Uri};
use serde::de::DeserializeOwned;

use crate::error::{ApiError, ErrorCode};
use crate::security::{guard_layer, Guard};
use crate::state::AppState;

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Longest a request may take until its answer starts (an event stream starts at once; a file
/// fetched from a remote gives up after 30 s).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(45);

/// Every route, the UI as the fallback, and the security layer around all of it.
pub fn router(state: Arc<AppState>, guard: Arc<Guard>) -> Router {
    Router::new()
        .route("/api/runs", get(runs::list))
        .route(
            "/api/runs/{run}",
            get(runs::detail).patch(runs::annotate).delete(runs::trash),
        )
        .route("/api/runs/{run}/restore", post(runs::restore))
        .route("/api/runs/{run}/purge", post(recycle_bin::purge))
        .route("/api/recycle-bin/empty", post(recycle_bin::empty))
        .route("/api/runs/{run}/metrics", get(metrics::get))
        .route("/api/runs/{run}/logs", get(logs::get))
        .route("/api/runs/{run}/live", get(live::stream))
        .route("/api/runs/{run}/files", get(files::list))
        .route("/api/runs/{run}/files/{*path}", get(files::get))
        .route("/api/runs/{run}/media", get(media::get))
        .route("/api/runs/{run}/system", get(system::get))
        .route("/api/paths", get(paths::get))
        .route("/api/columns", get(columns::get))
        .route("/api/remotes", get(remotes::get))
        .route("/api/fleet", get(fleet::get))
        .route(
            "/api/remotes/{name}",
            axum::routing::delete(remotes::remove),
        )
        .route("/api/remotes/{name}/pause", post(remotes::pause))
        .route("/api/remotes/{name}/resume", post(remotes::resume))
        .route("/api/remotes/{name}/sync", post(remotes::sync_now))
        .route("/api/remotes/{name}/rename", post(remotes::rename))
        .route("/api/artifacts", get(artifacts::list))
        .route(
            "/api/artifacts/{remote}/{type}/{name}",
            get(artifacts::detail),
        )
        .route("/api/runs/{run}/artifacts", get(artifacts::of_run))
        .route("/api/lineage", get(artifacts::lineage))
        .route(
            "/api/artifacts/{remote}/{type}/{name}/{version}/files/{*path}",
            get(artifact_files::get),
        )
        .route(
            "/api/remotes/{name}/blobs/{sha256}",
            get(artifact_files::blob),
        )
        .route("/api/compare", get(compare::get))
        .route("/api/events", get(events::stream))
        .route("/api/alerts", get(alerts::list))
        .route("/api/alerts/ack-all", post(alerts::ack_all))
        .route("/api/alerts/{id}/ack", post(alerts::ack))
        .route("/", get(crate::assets::index))
        .fallback(crate::assets::fallback)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(time_limit))
        // Bundle uploads and imports take longer than the time limit: merged after it.
        .merge(bundles::router())
        .layer(axum::middleware::from_fn_with_state(guard, guard_layer))
        .with_state(state)
}

/// Answers `503` when a request's answer has not started within [`REQUEST_TIMEOUT`].
async fn time_limit(request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::unavailable(format!(
            "{path} took longer than {} s; try again, or ask for less",
            REQUEST_TIMEOUT.as_secs()
        ))
        .into_response(),
    }
}

/// A route that exists, asked with a method it does not take.
async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        format!("{} does not take {method}", uri.path()),
    )
}

/// Path parameters, refused with the JSON error (axum's own `Path` answers in plain text).
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(t)| ApiPath(t))
            .map_err(|e| {
                ApiError::bad_request(format!(
                    "unusable path {}: {}",
                    parts.uri.path(),
                    e.body_text()
                ))
            })
    }
}

/// The key of the run a reference from the URL names (a key, a run id or `REMOTE/RUN_ID`, see
/// `runicorn_store::RunRef`), resolved on the store pool: a malformed reference is a `400`, an
/// unknown one a `404`, an ambiguous one a `409` listing the candidates.
pub async fn resolve_run(state: &AppState, reference: &str) -> Result<RunKey, ApiError> {
    let reference = RunRef::parse(reference)?;
    state
        .pool
        .read(move |store| Ok(store.resolve_run(&reference)?))
        .await
}
