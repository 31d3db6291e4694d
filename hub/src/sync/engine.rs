//! One sync round and live follow. A round asks the agent what changed since the stored cursor,
//! stores that, then fetches the metric points and log bytes the store lacks, several requests
//! in flight at once. Every step is resumable: the cursor and each run's copy offsets are stored
//! with the data they describe, so a round cut anywhere starts again where it stopped, with no
//! point lost or stored twice.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use runicorn_protocol::wire::{LogBatch, LogWanted, PointsWanted};
use runicorn_store::RemoteId;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::client::AgentClient;
use super::error::SyncError;
use super::validate;
use crate::store_thread::StoreHandle;

/// Runs per `changes` answer.
pub const CHANGES_PER_REQUEST: u32 = 2000;
/// Environment variable that lowers the runs per `changes` answer (tests use it to make a
/// listing span many pages).
pub const ENV_PAGE_RUNS: &str = "RUNICORN_SYNC_PAGE_RUNS";

fn runs_per_page() -> u32 {
    std::env::var(ENV_PAGE_RUNS)
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        .filter(|n| (1..=CHANGES_PER_REQUEST).contains(n))
        .unwrap_or(CHANGES_PER_REQUEST)
}
/// Runs per `points` or `log` request.
pub const RUNS_PER_REQUEST: usize = 256;
/// Byte budget of one `points` answer (event-line bytes read by the agent).
pub const POINT_BYTES_PER_REQUEST: u64 = 6 * 1024 * 1024;
/// Byte budget of one `log` answer.
pub const LOG_BYTES_PER_REQUEST: u64 = 2 * 1024 * 1024;
/// Requests in flight at once.
pub const REQUESTS_IN_FLIGHT: usize = 4;

/// What a round moved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RoundStats {
    /// Runs whose state was listed as changed.
    pub runs: u64,
    /// Metric points stored.
    pub points: u64,
    /// Log bytes stored.
    pub log_bytes: u64,
    /// Requests sent (round trips, when not pipelined).
    pub requests: u64,
    /// Bytes of `events.jsonl` lines the store lacked after the change listing.
    pub event_bytes_total: u64,
    /// Of those, the bytes whose points are stored now.
    pub event_bytes_done: u64,
    /// Items of the agent's answers the hub refused alone (runs, files, one run's points or
    /// log chunk); the rest was stored. Recorded on the remote with the reasons.
    pub refused: u64,
    /// Runs and files the agent itself reported it could not send.
    pub agent_skipped: u64,
    /// Artifacts whose state was listed as changed.
    pub artifacts: u64,
}

/// Receives progress while a round runs.
pub trait RoundObserver: Send + Sync {
    fn progress(&self, stats: &RoundStats, bytes_received: u64);
    /// Alerts stored for the first time (their ids in the store), told once each, after the
    /// batch that brought them is committed. Must not block.
    fn new_alerts(&self, _ids: &[i64]) {}
}

fn store_err(e: impl std::fmt::Display) -> SyncError {
    SyncError::Store(e.to_string())
}

/// Brings the store's copy of `remote` up to date with the agent.
///
/// The change listing and the point fetching overlap: while the listing's next page is on its
/// way, the points of runs already stored are fetched, so neither the agent nor the store waits
/// for the other. Logs follow once both are done.
pub async fn sync_round(
    client: &Arc<AgentClient>,
    store: &StoreHandle,
    remote: RemoteId,
    observer: &dyn RoundObserver,
) -> Result<RoundStats, SyncError> {
    let stats = Mutex::new(RoundStats::default());
    let requests_before = client.requests_sent();
    // What shows as refused is what this round refuses.
    let cursor = store
        .call(move |s| {
            s.clear_answer_refusals(remote)?;
            s.cursor(remote)
        })
        .await
        .map_err(store_err)?
        .map_err(store_err)?;
    let (listing_tx, listing_rx) = watch::channel(false);
    let listing = list_changes(client, store, remote, cursor, &stats, observer, listing_tx);
    let points = fetch_points(client, store, remote, &stats, observer, listing_rx);
    tokio::try_join!(listing, points)?;
    fetch_logs(client, store, remote, &stats, observer).await?;
    let mut stats = snapshot(&stats);
    stats.requests = client.requests_sent() - requests_before;
    observer.progress(&stats, client.bytes_received());
    Ok(stats)
}

fn snapshot(stats: &Mutex<RoundStats>) -> RoundStats {
    stats.lock().map(|s| *s).unwrap_or_default()
}

fn update(stats: &Mutex<RoundStats>, f: impl FnOnce(&mut RoundStats)) -> RoundStats {
    match stats.lock() {
        Ok(mut s) => {
            f(&mut s);
            *s
        }
        Err(_) => RoundStats::default(),
    }
}

/// Pages through the change feed from `cursor`, storing each page; the next page is requested
/// before the current one is stored. Sets `done` to true at the end.
async fn list_changes(
    client: &Arc<AgentClient>,
    store: &StoreHandle,
    remote: RemoteId,
    cursor: Option<runicorn_protocol::wire::Cursor>,
    stats: &Mutex<RoundStats>,
    observer: &dyn RoundObserver,
    done: watch::Sender<bool>,
) -> Result<(), SyncError> {
    let page = runs_per_page();
    let request = |cursor| {
        let client = Arc::clone(client);
        tokio::spawn(async move { client.changes(cursor, page).await })
    };
    let mut in_flight = Some(request(cursor));
    while let Some(answer) = in_flight.take() {
        let mut batch = answer
            .await
            .map_err(|e| store_err(format!("a sync task failed: {e}")))??;
        // Artifacts that break a rule are refused alone; the rest of the batch is stored.
        let refused_artifacts = validate::artifact_items(&mut batch);
        let artifacts_refused = refused_artifacts.len() as u64;
        let more = batch.more;
        if more {
            in_flight = Some(request(Some(batch.cursor.clone())));
        }
        let agent_skipped = batch.skipped.len() as u64
            + batch
                .runs
                .iter()
                .map(|r| r.skipped_files_total.max(r.skipped_files.len() as u64))
                .sum::<u64>();
        // The store leaves out (and records) the runs and files that break the path rule.
        let (outcome, missing) = store
            .call(move |s| {
                if !refused_artifacts.is_empty() {
                    s.record_refusals(remote, runicorn_store::KIND_ARTIFACT, &refused_artifacts)?;
                }
                let outcome = s.apply_change_batch(remote, &batch)?;
                Ok::<_, runicorn_store::StoreError>((outcome, s.points_bytes_pending(remote)?))
            })
            .await
            .map_err(store_err)?
            .map_err(store_err)?;
        if outcome.refused_runs + outcome.refused_files + artifacts_refused > 0 {
            tracing::warn!(
                remote = client.remote(),
                runs = outcome.refused_runs,
                files = outcome.refused_files,
                artifacts = artifacts_refused,
                "items of a change batch refused; the rest is stored"
            );
        }
        let now = update(stats, |s| {
            s.runs += outcome.runs;
            s.refused += outcome.refused_runs + outcome.refused_files + artifacts_refused;
            s.artifacts += outcome.artifacts;
            s.agent_skipped += agent_skipped;
            s.event_bytes_total = s.event_bytes_done + missing;
        });
        observer.progress(&now, client.bytes_received());
        observer.new_alerts(&outcome.new_alerts);
        // Wake the point fetcher: this page's runs are pending now.
        done.send_replace(!more);
    }
    Ok(())
}

/// What one `points` or `log` request moved.
struct Fetched {
    /// Points stored (0 for logs).
    points: u64,
    /// Run directories whose item the hub refused: not asked again this round.
    refused: Vec<String>,
    /// Bytes of the source file covered.
    bytes: u64,
    /// Whether the store's copy moved at all.
    progressed: bool,
}

/// Sends one request per group of `pending`, at most [`REQUESTS_IN_FLIGHT`] at once, each
/// storing its own answer; calls `on_done` as each finishes. Returns whether any moved.
async fn pipelined<W, Fut>(
    pending: Vec<W>,
    fetch: impl Fn(Vec<W>) -> Fut,
    mut on_done: impl FnMut(&Fetched),
) -> Result<bool, SyncError>
where
    W: Clone,
    Fut: std::future::Future<Output = Result<Fetched, SyncError>> + Send + 'static,
{
    let mut tasks = JoinSet::new();
    let mut groups = pending.chunks(RUNS_PER_REQUEST).map(<[W]>::to_vec);
    let mut progressed = false;
    loop {
        while tasks.len() < REQUESTS_IN_FLIGHT {
            let Some(group) = groups.next() else { break };
            tasks.spawn(fetch(group));
        }
        let Some(done) = tasks.join_next().await else {
            return Ok(progressed);
        };
        let fetched = done.map_err(|e| store_err(format!("a sync task failed: {e}")))??;
        progressed |= fetched.progressed;
        on_done(&fetched);
    }
}

async fn fetch_points(
    client: &Arc<AgentClient>,
    store: &StoreHandle,
    remote: RemoteId,
    stats: &Mutex<RoundStats>,
    observer: &dyn RoundObserver,
    mut listing_done: watch::Receiver<bool>,
) -> Result<(), SyncError> {
    // Runs whose points the hub refused are not asked again this round (the next asks again).
    let mut refused_dirs: HashSet<String> = HashSet::new();
    loop {
        // Read the listing's state before asking what is pending, so a page stored in between
        // is never missed.
        let listed_all = *listing_done.borrow_and_update();
        let mut pending: Vec<PointsWanted> = store
            .call(move |s| s.pending_points(remote, 1_000_000))
            .await
            .map_err(store_err)?
            .map_err(store_err)?;
        pending.retain(|w| !refused_dirs.contains(&w.dir));
        let progressed = if pending.is_empty() {
            false
        } else {
            let fetch = |group: Vec<PointsWanted>| {
                let client = Arc::clone(client);
                let store = store.clone();
                async move {
                    let checked = client.points(group, POINT_BYTES_PER_REQUEST).await?;
                    let (batch, refused) = (checked.batch, checked.refused);
                    let bytes: u64 = batch.runs.iter().map(|r| r.to.saturating_sub(r.from)).sum();
                    let truncated = batch.runs.iter().any(|r| r.truncated);
                    let refused_dirs = refused.iter().map(|e| e.name.clone()).collect();
                    let ingested = store
                        .call(move |s| {
                            let ingested = s.ingest_points(remote, &batch)?;
                            s.record_refusals(remote, runicorn_store::KIND_POINTS, &refused)?;
                            Ok::<_, runicorn_store::StoreError>(ingested)
                        })
                        .await
                        .map_err(store_err)?
                        .map_err(store_err)?;
                    Ok(Fetched {
                        points: ingested.points,
                        refused: refused_dirs,
                        bytes,
                        progressed: bytes > 0 || truncated,
                    })
                }
            };
            pipelined(pending, fetch, |f| {
                refused_dirs.extend(f.refused.iter().cloned());
                let now = update(stats, |s| {
                    s.points += f.points;
                    s.refused += f.refused.len() as u64;
                    s.event_bytes_done += f.bytes;
                });
                observer.progress(&now, client.bytes_received());
            })
            .await?
        };
        if !progressed {
            if listed_all {
                // Nothing more to fetch, or the agent had nothing more to give for what the
                // store still lacks (a file that shrank between listing and reading): the next
                // round settles it.
                return Ok(());
            }
            // Wait for the listing's next page (an error there ends the round anyway).
            if listing_done.changed().await.is_err() {
                return Ok(());
            }
        }
    }
}

async fn fetch_logs(
    client: &Arc<AgentClient>,
    store: &StoreHandle,
    remote: RemoteId,
    stats: &Mutex<RoundStats>,
    observer: &dyn RoundObserver,
) -> Result<(), SyncError> {
    // Runs whose log chunk the hub refused are not asked again this round.
    let mut refused_dirs: HashSet<String> = HashSet::new();
    loop {
        let mut pending: Vec<LogWanted> = store
            .call(move |s| s.pending_logs(remote, 1_000_000))
            .await
            .map_err(store_err)?
            .map_err(store_err)?;
        pending.retain(|w| !refused_dirs.contains(&w.dir));
        if pending.is_empty() {
            return Ok(());
        }
        let fetch = |group: Vec<LogWanted>| {
            let client = Arc::clone(client);
            let store = store.clone();
            // A first tail starts the copy even when it is empty; after that only new bytes
            // count (a last line still being written is not sent, and must not loop).
            let first_tail = group.iter().any(|w| w.offset.is_none());
            async move {
                let checked = client.log(group, LOG_BYTES_PER_REQUEST).await?;
                let (mut batch, refused) = (checked.batch, checked.refused);
                if !client.sends_exact_logs() {
                    keep_exact_chunks(&mut batch, client.remote());
                }
                let bytes: u64 = batch.runs.iter().map(|r| r.to.saturating_sub(r.from)).sum();
                // A group whose every chunk was refused does not count as a first tail: it
                // would be asked again at once, for ever.
                let first_tail = first_tail && !batch.runs.is_empty();
                let progressed = bytes > 0 || first_tail || batch.runs.iter().any(|r| r.truncated);
                let refused_dirs = refused.iter().map(|e| e.name.clone()).collect();
                store
                    .call(move |s| {
                        s.ingest_logs(remote, &batch)?;
                        s.record_refusals(remote, runicorn_store::KIND_LOG, &refused)
                    })
                    .await
                    .map_err(store_err)?
                    .map_err(store_err)?;
                Ok(Fetched {
                    points: 0,
                    refused: refused_dirs,
                    bytes,
                    progressed,
                })
            }
        };
        let progressed = pipelined(pending, fetch, |f| {
            refused_dirs.extend(f.refused.iter().cloned());
            let now = update(stats, |s| {
                s.log_bytes += f.bytes;
                s.refused += f.refused.len() as u64;
            });
            observer.progress(&now, client.bytes_received());
        })
        .await?;
        if !progressed {
            return Ok(());
        }
    }
}

/// Drops the chunks of an older agent whose lossy text does not hold exactly the bytes of its
/// range (the log held bytes that are not UTF-8): storing them would shift every later offset.
/// That run's copy stops there until the agent is upgraded; the other runs go on.
fn keep_exact_chunks(batch: &mut LogBatch, remote: &str) {
    batch.runs.retain(|c| {
        let exact = c.to.checked_sub(c.from) == Some(c.bytes.len() as u64);
        if !exact {
            tracing::warn!(
                remote,
                dir = c.dir,
                from = c.from,
                "the log holds bytes that are not UTF-8 and this runicorn-agent is too old to \
                 send them exactly; upgrade runicorn-agent on the remote to sync the rest of it"
            );
        }
        exact
    });
}

/// After a first round: subscribe and run a round whenever the agent says something changed,
/// `wake` is notified (a "sync now"), or every `safety_interval` regardless, until the link dies
/// or `stop` resolves.
#[allow(clippy::too_many_arguments)] // each is a distinct input of the follow loop
pub async fn follow(
    client: &Arc<AgentClient>,
    store: &StoreHandle,
    remote: RemoteId,
    safety_interval: Duration,
    wake: &tokio::sync::Notify,
    observer: &dyn RoundObserver,
    mut on_round: impl FnMut(&RoundStats, Duration),
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), SyncError> {
    client.subscribe().await?;
    tokio::pin!(stop);
    // A change may have landed between the first round and the subscription.
    let started = std::time::Instant::now();
    let stats = sync_round(client, store, remote, observer).await?;
    record_sync(store, remote).await?;
    on_round(&stats, started.elapsed());
    loop {
        tokio::select! {
            _ = &mut stop => return Ok(()),
            notice = client.next_notice() => {
                if notice.is_none() {
                    return Err(SyncError::ConnectionLost {
                        remote: client.remote().to_owned(),
                        cause: "the agent closed the connection".into(),
                    });
                }
            }
            _ = tokio::time::sleep(safety_interval) => {}
            _ = wake.notified() => {}
        }
        client.drain_notices().await;
        let started = std::time::Instant::now();
        let stats = sync_round(client, store, remote, observer).await?;
        record_sync(store, remote).await?;
        on_round(&stats, started.elapsed());
    }
}

/// Records a successful round on the remote.
pub async fn record_sync(store: &StoreHandle, remote: RemoteId) -> Result<(), SyncError> {
    let now = runicorn_cli::now();
    store
        .call(move |s| s.record_sync(remote, now, None))
        .await
        .map_err(store_err)?
        .map_err(store_err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use runicorn_protocol::wire::LogChunk;

    #[test]
    fn an_older_agents_inexact_chunks_are_dropped_and_the_rest_kept() {
        let chunk = |dir: &str, text: &str, len: u64| LogChunk {
            dir: dir.into(),
            from: 0,
            to: len,
            bytes: text.as_bytes().to_vec(),
            truncated: false,
            eof: true,
        };
        let mut batch = LogBatch {
            runs: vec![
                chunk("runs/a/1", "ok\n", 3),
                chunk("runs/a/2", "\u{FFFD}\n", 2),
            ],
        };
        keep_exact_chunks(&mut batch, "gpu");
        assert_eq!(batch.runs.len(), 1);
        assert_eq!(batch.runs[0].dir, "runs/a/1");
    }
}
