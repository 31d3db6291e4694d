//! `GET /api/runs/{id}/live`: one run's new points, log text and state as Server-Sent Events.
//! Each stream keeps a cursor (the last step sent per key, the log offset sent, the run as last
//! sent) and, at every store change, reads what lies past it.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::State;
use axum::response::sse::{Event, Sse};
use futures::Stream;
use runicorn_store::{RunKey, RunRow, Store};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::dto::{LivePointsDto, RunDto};
use crate::error::ApiError;
use crate::query::Params;
use crate::routes::events::{json_event, sse_from};
use crate::routes::logs;
use crate::routes::{run_key, ApiPath};
use crate::state::{closed, AppState};

/// Points read per key and query.
const POINTS_PER_READ: usize = 10_000;
/// Most points sent per key at one change (the rest follow at the next).
const POINTS_PER_EVENT: usize = 200_000;
/// Most log bytes sent at one change.
const LOG_BYTES_PER_EVENT: usize = 1024 * 1024;

#[derive(Serialize)]
struct MetricsEvent {
    series: Vec<LivePointsDto>,
}

#[derive(Serialize)]
struct LogEvent {
    offset: u64,
    next: u64,
    text: String,
}

/// What a `run` event reports a change of: status, alias, summary, notes, tags.
type RunFingerprint = (
    String,
    Option<String>,
    Option<Value>,
    Option<String>,
    Vec<String>,
);

/// What one stream has sent so far.
struct LiveCursor {
    run: RunKey,
    /// Where a key not in `steps` starts.
    after_step: i64,
    steps: HashMap<String, i64>,
    log_offset: u64,
    /// The last log event was cut short: more stored bytes wait (poll again without a change).
    log_behind: bool,
    shown: Option<RunFingerprint>,
}

impl LiveCursor {
    fn fingerprint(run: &RunRow) -> RunFingerprint {
        (
            run.status.clone(),
            run.alias.clone(),
            run.summary.clone(),
            run.notes.clone(),
            run.tags.clone(),
        )
    }

    /// Reads what is new since the last call, as events; `None` when the run is gone.
    fn poll(&mut self, store: &Store) -> Result<Option<Vec<Event>>, ApiError> {
        let Some(run) = store.run_by_key(self.run)? else {
            return Ok(None);
        };
        let mut events = Vec::new();
        let mut series = Vec::new();
        for key in &run.keys {
            let mut after = *self.steps.get(key).unwrap_or(&self.after_step);
            let mut points = LivePointsDto {
                key: key.clone(),
                steps: Vec::new(),
                times: Vec::new(),
                values: Vec::new(),
            };
            while points.steps.len() < POINTS_PER_EVENT {
                let got = store.series_after(self.run, key, after, POINTS_PER_READ)?;
                let Some(&last) = got.steps.last() else { break };
                let full = got.steps.len() >= POINTS_PER_READ;
                after = last;
                points.steps.extend(got.steps);
                points.times.extend(got.times);
                points.values.extend(got.values);
                if !full {
                    break;
                }
            }
            self.steps.insert(key.clone(), after);
            if !points.steps.is_empty() {
                series.push(points);
            }
        }
        if !series.is_empty() {
            events.push(json_event("metrics", &MetricsEvent { series }));
        }
        if let Some(log) = self.new_log_text(store)? {
            events.push(json_event("log", &log));
        }
        let fingerprint = Self::fingerprint(&run);
        if self.shown.as_ref() != Some(&fingerprint) {
            if self.shown.is_some() {
                events.push(json_event("run", &RunDto::from(&run)));
            }
            self.shown = Some(fingerprint);
        }
        Ok(Some(events))
    }

    /// The stored log bytes after the ones sent, cut like a page of `GET /logs` (after a
    /// newline, or without splitting a valid character); `text` is their lossy decoding and
    /// `offset`/`next` byte offsets of the remote file.
    fn new_log_text(&mut self, store: &Store) -> Result<Option<LogEvent>, ApiError> {
        let limit = LOG_BYTES_PER_EVENT as u64;
        let want = limit + logs::MAX_CHAR_BYTES;
        let chunks = store.log_chunks_since(self.run, self.log_offset, want)?;
        let (offset, mut bytes) = logs::read_from(&chunks, self.log_offset, want);
        let read = bytes.len();
        bytes.truncate(logs::page_end(&bytes, limit));
        self.log_behind = bytes.len() < read;
        if bytes.is_empty() {
            return Ok(None);
        }
        let next = offset + bytes.len() as u64;
        self.log_offset = next;
        let text = String::from_utf8_lossy(&bytes).into_owned();
        Ok(Some(LogEvent { offset, next, text }))
    }
}

/// `GET /api/runs/{id}/live`.
pub async fn stream(
    State(state): State<Arc<AppState>>,
    ApiPath(id): ApiPath<String>,
    params: Params,
) -> Result<Sse<impl Stream<Item = Result<Event, std::convert::Infallible>>>, ApiError> {
    let key = run_key(&id)?;
    let after_step = params.integer("after_step")?;
    let log_offset = params.integer("log_offset")?;
    if log_offset.is_some_and(|o| o < 0) {
        return Err(ApiError::bad_request(
            "parameter log_offset must not be negative",
        ));
    }
    let (run, key_steps) = state
        .pool
        .read(move |store| {
            let run = store.run_by_key(key)?.ok_or(ApiError::no_run(key.0))?;
            let keys = store.metric_keys(key)?;
            Ok((run, keys))
        })
        .await?;
    // Without `after_step`, each key starts after its own last step now (a key may lag
    // behind the run's last step), and a key that appears later is sent whole.
    let steps = match after_step {
        Some(_) => HashMap::new(),
        None => key_steps
            .into_iter()
            .map(|k| (k.name, k.last_step))
            .collect(),
    };
    let mut cursor = LiveCursor {
        run: key,
        after_step: after_step.unwrap_or(i64::MIN),
        steps,
        log_offset: log_offset
            .map(|o| o as u64)
            .unwrap_or(run.log_synced.map_or(0, |(_, end)| end)),
        log_behind: false,
        shown: Some(LiveCursor::fingerprint(&run)),
    };
    let (tx, rx) = mpsc::channel::<Event>(16);
    let mut ticks = state.ticks.clone();
    let pool = Arc::clone(&state.pool);
    let closing = state.closing.clone();
    tokio::spawn(async move {
        loop {
            ticks.mark_unchanged();
            let polled = pool
                .read(move |store| {
                    let events = cursor.poll(store);
                    Ok((cursor, events))
                })
                .await;
            let events = match polled {
                Ok((c, events)) => {
                    cursor = c;
                    events
                }
                Err(e) => {
                    tracing::warn!(run = key.0, error = %e.message, "live updates stopped");
                    return;
                }
            };
            match events {
                Ok(Some(events)) => {
                    for event in events {
                        if tx.send(event).await.is_err() {
                            return;
                        }
                    }
                }
                Ok(None) => return, // the run was forgotten
                Err(e) => tracing::warn!(run = key.0, error = %e.message, "live update failed"),
            }
            if std::mem::take(&mut cursor.log_behind) {
                continue; // the rest of a long log burst, without waiting for another change
            }
            tokio::select! {
                changed = ticks.changed() => if changed.is_err() { return },
                _ = closed(closing.clone()) => return,
                _ = tx.closed() => return,
            }
        }
    });
    Ok(sse_from(rx))
}
