//! `GET /api/events`: one Server-Sent Event `changed` at most once a second while the store
//! changes, so the runs table and the remotes page refresh, and an `alerts` event when alerts
//! arrived or were acknowledged (the new ones with it, each once per stream). Also the helpers
//! both event streams use.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::dto::now;
use crate::error::ApiError;
use crate::routes::alerts::{AlertDto, AlertsEvent, MAX_ALERTS_LISTED};
use crate::state::{closed, AppState};

/// How often a comment keeps a quiet stream open.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// Least time between two `changed` events.
pub const CHANGED_EVERY: Duration = Duration::from_secs(1);

/// An SSE response fed by a channel: the producer task ends when the client goes away (its
/// sends fail) or the server shuts down.
pub fn sse_from(rx: mpsc::Receiver<Event>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|event| (Ok(event), rx))
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
}

/// An event named `name` carrying `data` as JSON.
pub fn json_event(name: &str, data: &impl Serialize) -> Event {
    let json = serde_json::to_string(data).unwrap_or_else(|_| "null".to_owned());
    Event::default().event(name).data(json)
}

#[derive(Serialize)]
#[cfg_attr(test, derive(ts_rs::TS), ts(rename = "ChangedEvent"))]
pub(crate) struct Changed {
    at: f64,
}

/// `GET /api/events`.
pub async fn stream(
    State(state): State<Arc<AppState>>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let place = state.stream_place()?;
    let (tx, rx) = mpsc::channel(4);
    let mut ticks = state.ticks.clone();
    ticks.mark_unchanged();
    let closing = state.closing.clone();
    // What this stream's reader knows of the alerts: their count and the newest.
    let mut alerts_seen = state.pool.read(|store| Ok(store.alert_counts()?)).await?;
    let reader = Arc::clone(&state);
    tokio::spawn(async move {
        let _place = place; // held while the stream is open
        loop {
            tokio::select! {
                changed = ticks.changed() => if changed.is_err() { break },
                _ = closed(closing.clone()) => break,
                _ = tx.closed() => break,
            }
            if tx
                .send(json_event("changed", &Changed { at: now() }))
                .await
                .is_err()
            {
                break;
            }
            if let Some((event, seen)) = alerts_event(&reader, alerts_seen).await {
                alerts_seen = seen;
                if tx.send(json_event("alerts", &event)).await.is_err() {
                    break;
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(CHANGED_EVERY) => {}
                _ = closed(closing.clone()) => break,
            }
        }
    });
    Ok(sse_from(rx))
}

/// The `alerts` event to send when the alerts changed since `seen` (unacknowledged count,
/// newest id), with the new state; `None` when nothing changed (or the store cannot say).
async fn alerts_event(
    state: &Arc<AppState>,
    seen: (u64, i64),
) -> Option<(AlertsEvent, (u64, i64))> {
    let (_, newest_seen) = seen;
    state
        .pool
        .read(move |store| {
            let now = store.alert_counts()?;
            if now == seen {
                return Ok(None);
            }
            let new = if now.1 > newest_seen {
                store.alerts_after(newest_seen, MAX_ALERTS_LISTED)?
            } else {
                Vec::new()
            };
            Ok(Some((
                AlertsEvent {
                    unacked: now.0,
                    new: new.into_iter().map(AlertDto::from).collect(),
                },
                now,
            )))
        })
        .await
        .ok()
        .flatten()
}
