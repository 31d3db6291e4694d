//! `GET /api/runs/{run}/live`: one run's new points, log text and state as Server-Sent Events.
//! Each stream keeps a cursor (the last step sent per key, the log offset sent, the run as last
//! sent) and, at every store change, reads what lies past it: a few statements per change
//! whatever the number of keys (see [`LiveCursor::poll`]).

use std::sync::Arc;

use axum::extract::State;
use axum::response::sse::{Event, Sse};
use futures::Stream;
use runicorn_store::{KeyExtent, RunKey, RunProgress, Store};
use serde::Serialize;
use tokio::sync::mpsc;

use crate::dto::{LivePointsDto, RunDto};
use crate::error::ApiError;
use crate::query::Params;
use crate::routes::events::{json_event, sse_from};
use crate::routes::logs;
use crate::routes::{resolve_run, ApiPath};
use crate::state::{closed, AppState};

/// Most points sent at one change (the rest follow at once, in further events).
const POINTS_PER_EVENT: usize = 200_000;
/// Most log bytes sent at one change.
const LOG_BYTES_PER_EVENT: usize = 1024 * 1024;

#[derive(Serialize)]
#[cfg_attr(test, derive(ts_rs::TS), ts(rename = "LiveMetricsEvent"))]
pub(crate) struct MetricsEvent {
    series: Vec<LivePointsDto>,
}

#[derive(Serialize)]
#[cfg_attr(test, derive(ts_rs::TS), ts(rename = "LiveLogEvent"))]
pub(crate) struct LogEvent {
    offset: u64,
    next: u64,
    text: String,
}

/// Where one key's stream stands: the last step sent, and how many points the key had
/// stored when that was sent (so the points stored since bound what a read can return).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct KeyCursor {
    after: i64,
    seen: u64,
}

/// What one stream has sent so far.
struct LiveCursor {
    run: RunKey,
    /// Where a key not in `keys` starts.
    after_step: i64,
    /// Per key id, in key-id order.
    keys: Vec<(i64, KeyCursor)>,
    /// The run's stored point count at the last metrics read: unchanged, nothing to read.
    points_read: Option<u64>,
    /// The run's last step at the last metrics read.
    last_step_read: Option<i64>,
    /// The last read stopped at [`POINTS_PER_EVENT`]: read again without waiting.
    more: bool,
    log_offset: u64,
    /// The last log event was cut short: more stored bytes wait (poll again without a change).
    log_behind: bool,
    /// The run's fingerprint as last sent (`RunProgress::shown`).
    shown: String,
}

/// What one poll found.
struct Polled {
    events: Vec<Event>,
    /// Points are left to send: poll again at once.
    more: bool,
}

impl LiveCursor {
    /// Reads what is new since the last call, as events; `None` when the run is gone. The
    /// cost is a few statements whatever the number of keys: the run's point count (unchanged:
    /// done), the keys' stored totals (one index range), and the new points of the keys that
    /// grew (one statement).
    fn poll(&mut self, store: &Store) -> Result<Option<Polled>, ApiError> {
        let Some(progress) = store.run_progress(self.run)? else {
            return Ok(None);
        };
        let mut events = Vec::new();
        if self.more || self.points_read != Some(progress.points) {
            let series = self.new_points(store, &progress)?;
            self.points_read = Some(progress.points);
            self.last_step_read = progress.last_step;
            if !series.is_empty() {
                events.push(json_event("metrics", &MetricsEvent { series }));
            }
        }
        if let Some(log) = self.new_log_text(store)? {
            events.push(json_event("log", &log));
        }
        if progress.shown != self.shown {
            if let Some(run) = store.run_by_key(self.run)? {
                events.push(json_event("run", &RunDto::from(&run)));
            }
            self.shown = progress.shown;
        }
        Ok(Some(Polled {
            events,
            more: self.more,
        }))
    }

    /// The new points of the keys that grew, at most about [`POINTS_PER_EVENT`]; sets
    /// `more` when some are left.
    ///
    /// Finding the keys that grew: usually new points lie past the run's last step at the
    /// previous read, so the keys past it (one filtered statement, the filter in SQLite) are
    /// taken, and when the points they gained add up to all the points the run gained, no
    /// other key changed. Otherwise (a lagging key, a new key, points left over) every key's
    /// totals are read and merged with the cursors, both in key-id order.
    fn new_points(
        &mut self,
        store: &Store,
        progress: &RunProgress,
    ) -> Result<Vec<LivePointsDto>, ApiError> {
        let quick = match (self.more, self.points_read, self.last_step_read) {
            (false, Some(before), Some(last)) if progress.points >= before => {
                let grown = store.key_extents_after(self.run, last)?;
                let gained: u64 = grown
                    .iter()
                    .map(|e| e.points.saturating_sub(self.cursor_of(e.key).seen))
                    .sum();
                // Both reads must see the same commit: the run's count is read again.
                let same = store
                    .run_progress(self.run)?
                    .is_some_and(|now| now.points == progress.points);
                (same && gained == progress.points - before).then_some(grown)
            }
            _ => None,
        };
        let candidates: Vec<(usize, KeyExtent)> = match quick {
            Some(grown) => {
                for e in &grown {
                    if let Err(at) = self.keys.binary_search_by_key(&e.key, |&(k, _)| k) {
                        let start = KeyCursor {
                            after: self.after_step,
                            seen: 0,
                        };
                        self.keys.insert(at, (e.key, start));
                    }
                }
                grown
                    .into_iter()
                    .filter_map(|e| {
                        let i = self.keys.binary_search_by_key(&e.key, |&(k, _)| k).ok()?;
                        Some((i, e))
                    })
                    .collect()
            }
            None => self.merge_all(store.key_extents(self.run)?),
        };
        self.read_grown(store, candidates)
    }

    fn cursor_of(&self, key: i64) -> KeyCursor {
        match self.keys.binary_search_by_key(&key, |&(k, _)| k) {
            Ok(i) => self.keys[i].1,
            Err(_) => KeyCursor {
                after: self.after_step,
                seen: 0,
            },
        }
    }

    /// Rebuilds the cursors from every key's totals (keys gone are dropped, new ones start at
    /// `after_step`); the keys with points past their cursor, as (index, totals).
    fn merge_all(&mut self, mut extents: Vec<KeyExtent>) -> Vec<(usize, KeyExtent)> {
        if !extents.is_sorted_by_key(|e| e.key) {
            extents.sort_unstable_by_key(|e| e.key);
        }
        let default = KeyCursor {
            after: self.after_step,
            seen: 0,
        };
        let mut old = std::mem::take(&mut self.keys).into_iter().peekable();
        let mut keys: Vec<(i64, KeyCursor)> = Vec::with_capacity(extents.len());
        let mut grown = Vec::new();
        for extent in extents {
            while old.next_if(|(k, _)| *k < extent.key).is_some() {}
            let mut cursor = old
                .next_if(|(k, _)| *k == extent.key)
                .map_or(default, |(_, c)| c);
            if extent.last_step > cursor.after {
                grown.push((keys.len(), extent));
            } else {
                // Nothing past the cursor (points rewritten or added before it).
                cursor.seen = extent.points;
            }
            keys.push((extent.key, cursor));
        }
        self.keys = keys;
        grown
    }

    /// Reads the new points of `grown` (indexes into the cursors, in key order) while the
    /// upper bound of their count (the points stored since each cursor was set) fits the
    /// budget: in one statement, or a key alone too big in parts.
    fn read_grown(
        &mut self,
        store: &Store,
        grown: Vec<(usize, KeyExtent)>,
    ) -> Result<Vec<LivePointsDto>, ApiError> {
        self.more = false;
        let mut batch: Vec<(usize, KeyExtent)> = Vec::new();
        let mut budget = 0usize;
        for (i, extent) in grown {
            let bound = usize::try_from(extent.points.saturating_sub(self.keys[i].1.seen))
                .unwrap_or(usize::MAX)
                .max(1);
            if budget + bound > POINTS_PER_EVENT {
                self.more = true;
                if batch.is_empty() {
                    return self.read_in_parts(store, i);
                }
                break;
            }
            budget += bound;
            batch.push((i, extent));
        }
        let asked: Vec<(i64, i64)> = batch
            .iter()
            .map(|&(i, _)| (self.keys[i].0, self.keys[i].1.after))
            .collect();
        let mut got = store
            .points_after_keys(self.run, &asked)?
            .into_iter()
            .peekable();
        let mut series = Vec::new();
        for (i, extent) in batch {
            // Every new point of this key was read: its cursor moves to the key's end.
            let key = self.keys[i].0;
            self.keys[i].1.seen = extent.points;
            if let Some((_, points)) = got.next_if(|(k, _)| *k == key) {
                if let Some(&last) = points.steps.last() {
                    self.keys[i].1.after = last;
                }
                series.push(live_dto(points));
            }
        }
        Ok(series)
    }

    /// The first [`POINTS_PER_EVENT`] new points of the key at index `i`.
    fn read_in_parts(&mut self, store: &Store, i: usize) -> Result<Vec<LivePointsDto>, ApiError> {
        let (key, cursor) = self.keys[i];
        let got = store.key_points_after(self.run, key, cursor.after, POINTS_PER_EVENT)?;
        let Some(&last) = got.steps.last() else {
            return Ok(Vec::new());
        };
        self.keys[i].1 = KeyCursor {
            after: last,
            seen: cursor.seen + got.steps.len() as u64,
        };
        Ok(vec![live_dto(got)])
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

fn live_dto(points: runicorn_store::SeriesPoints) -> LivePointsDto {
    LivePointsDto {
        key: points.key,
        steps: points.steps,
        times: points.times,
        values: points.values,
    }
}

/// `GET /api/runs/{run}/live`.
pub async fn stream(
    State(state): State<Arc<AppState>>,
    ApiPath(reference): ApiPath<String>,
    params: Params,
) -> Result<Sse<impl Stream<Item = Result<Event, std::convert::Infallible>>>, ApiError> {
    let key = resolve_run(&state, &reference).await?;
    let place = state.stream_place()?;
    let after_step = params.integer("after_step")?;
    let log_offset = params.integer("log_offset")?;
    if log_offset.is_some_and(|o| o < 0) {
        return Err(ApiError::bad_request(
            "parameter log_offset must not be negative",
        ));
    }
    let (run, progress, extents) = state
        .pool
        .read(move |store| {
            let run = store.run_by_key(key)?.ok_or(ApiError::no_run(key.0))?;
            let progress = store.run_progress(key)?.ok_or(ApiError::no_run(key.0))?;
            // Without `after_step`, each key starts after its own last step now (a key may
            // lag behind the run's last step), and a key that appears later is sent whole.
            let extents = match after_step {
                Some(_) => Vec::new(),
                None => store.key_extents(key)?,
            };
            Ok((run, progress, extents))
        })
        .await?;
    let mut keys: Vec<(i64, KeyCursor)> = extents
        .into_iter()
        .map(|e| {
            let cursor = KeyCursor {
                after: e.last_step,
                seen: e.points,
            };
            (e.key, cursor)
        })
        .collect();
    keys.sort_unstable_by_key(|&(k, _)| k);
    let mut cursor = LiveCursor {
        run: key,
        after_step: after_step.unwrap_or(i64::MIN),
        keys,
        points_read: after_step.is_none().then_some(progress.points),
        last_step_read: progress.last_step,
        more: false,
        log_offset: log_offset
            .map(|o| o as u64)
            .unwrap_or(run.log_synced.map_or(0, |(_, end)| end)),
        log_behind: false,
        shown: progress.shown,
    };
    let (tx, rx) = mpsc::channel::<Event>(16);
    let mut ticks = state.ticks.clone();
    let pool = Arc::clone(&state.pool);
    let closing = state.closing.clone();
    tokio::spawn(async move {
        let _place = place; // held while the stream is open
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
            let mut more = false;
            match events {
                Ok(Some(polled)) => {
                    more = polled.more;
                    for event in polled.events {
                        if tx.send(event).await.is_err() {
                            return;
                        }
                    }
                }
                Ok(None) => return, // the run was forgotten
                Err(e) => tracing::warn!(run = key.0, error = %e.message, "live update failed"),
            }
            if more || std::mem::take(&mut cursor.log_behind) {
                continue; // the rest of a long burst, without waiting for another change
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

#[cfg(test)]
mod tests {
    use super::*;
    use runicorn_protocol::wire::{
        ChangeBatch, Cursor, EventsState, PointBatch, RunChange, RunPoints, Series,
    };
    use runicorn_store::{RemoteId, RemoteSpec};

    const DIR: &str = "runs/p/r1";

    fn store() -> (tempfile::TempDir, Store, RemoteId, RunKey) {
        let tmp = tempfile::tempdir().unwrap();
        let mut store = Store::open(tmp.path()).unwrap();
        let remote = store
            .upsert_remote(&RemoteSpec {
                name: "gpu".into(),
                address: "gpu".into(),
                transport: serde_json::Value::Null,
            })
            .unwrap();
        let run = RunChange {
            dir: DIR.into(),
            seq: 1,
            id: "r1".into(),
            path: "p".into(),
            layout: "current".into(),
            status: "running".into(),
            events: EventsState {
                bytes: 1 << 30,
                ..EventsState::default()
            },
            ..RunChange::default()
        };
        let batch = ChangeBatch {
            reset: true,
            runs: vec![run],
            removed: vec![],
            cursor: Cursor {
                epoch: "e".into(),
                seq: 1,
            },
            more: false,
            skipped: vec![],
            skipped_listed: false,
            artifacts: vec![],
            removed_artifacts: vec![],
        };
        store.apply_change_batch(remote, &batch).unwrap();
        let key = store.run(remote, DIR).unwrap().unwrap().key;
        (tmp, store, remote, key)
    }

    /// Appends `steps` of `key` as the next 100 bytes of the run's events.
    fn add(store: &mut Store, remote: RemoteId, at: &mut u64, key: &str, steps: &[i64]) {
        let batch = PointBatch {
            runs: vec![RunPoints {
                dir: DIR.into(),
                from: *at,
                to: *at + 100,
                next_line: *at + 101,
                times: steps.iter().map(|&s| s as f64).collect(),
                series: vec![Series {
                    key: key.into(),
                    rows: None,
                    values: steps.iter().map(|&s| s as f64 * 2.0).collect(),
                }],
                steps: steps.to_vec(),
                ..RunPoints::default()
            }],
        };
        store.ingest_points(remote, &batch).unwrap();
        *at += 100;
    }

    /// A cursor as a stream without `after_step` starts it.
    fn cursor(store: &Store, run: RunKey) -> LiveCursor {
        let progress = store.run_progress(run).unwrap().unwrap();
        let mut keys: Vec<(i64, KeyCursor)> = store
            .key_extents(run)
            .unwrap()
            .into_iter()
            .map(|e| {
                let c = KeyCursor {
                    after: e.last_step,
                    seen: e.points,
                };
                (e.key, c)
            })
            .collect();
        keys.sort_unstable_by_key(|&(k, _)| k);
        LiveCursor {
            run,
            after_step: i64::MIN,
            keys,
            points_read: Some(progress.points),
            last_step_read: progress.last_step,
            more: false,
            log_offset: 0,
            log_behind: false,
            shown: progress.shown,
        }
    }

    fn poll(c: &mut LiveCursor, store: &Store) -> Vec<(String, Vec<i64>)> {
        let progress = store.run_progress(c.run).unwrap().unwrap();
        let got = c.new_points(store, &progress).unwrap();
        c.points_read = Some(progress.points);
        c.last_step_read = progress.last_step;
        got.into_iter().map(|s| (s.key, s.steps)).collect()
    }

    #[test]
    fn grown_lagging_and_new_keys_are_each_sent_once() {
        let (_tmp, mut store, remote, run) = store();
        let mut at = 0;
        add(&mut store, remote, &mut at, "a", &[0, 1, 2, 3, 4]);
        add(&mut store, remote, &mut at, "b", &[0, 1, 2]);
        let mut c = cursor(&store, run);
        assert!(poll(&mut c, &store).is_empty());
        // Past the run's last step: found by the filtered read.
        add(&mut store, remote, &mut at, "a", &[5, 6]);
        assert_eq!(poll(&mut c, &store), [("a".to_owned(), vec![5, 6])]);
        // A lagging key (its new step is below the run's last step): the full merge.
        add(&mut store, remote, &mut at, "b", &[3]);
        assert_eq!(poll(&mut c, &store), [("b".to_owned(), vec![3])]);
        // A key that appears later is sent whole.
        add(&mut store, remote, &mut at, "c", &[0, 1]);
        assert_eq!(poll(&mut c, &store), [("c".to_owned(), vec![0, 1])]);
        // Both at once, then nothing more.
        add(&mut store, remote, &mut at, "a", &[7]);
        add(&mut store, remote, &mut at, "c", &[2]);
        assert_eq!(
            poll(&mut c, &store),
            [("a".to_owned(), vec![7]), ("c".to_owned(), vec![2])]
        );
        assert!(poll(&mut c, &store).is_empty());
        assert!(!c.more);
    }

    #[test]
    fn after_step_sends_every_key_past_it() {
        let (_tmp, mut store, remote, run) = store();
        let mut at = 0;
        add(&mut store, remote, &mut at, "a", &[0, 1, 2, 3]);
        add(&mut store, remote, &mut at, "b", &[0, 1]);
        let mut c = cursor(&store, run);
        c.keys.clear();
        c.after_step = 0;
        c.points_read = None;
        assert_eq!(
            poll(&mut c, &store),
            [("a".to_owned(), vec![1, 2, 3]), ("b".to_owned(), vec![1])]
        );
        assert!(poll(&mut c, &store).is_empty());
    }
}
