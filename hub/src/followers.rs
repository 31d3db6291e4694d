//! Following remotes live for as long as a command runs (`ui`: every remote; `connect` and
//! `demo`: one). Each beat ([`FOLLOW_BEAT_SECONDS`]) it renews the follow leases it holds in
//! the store (a write only when a heartbeat is due), claims the lease of every remote in its scope that nobody follows (remotes added
//! by other commands are picked up so), starts a supervisor for each remote it holds, and stops
//! the supervisor of a remote that was removed, paused or taken over. A "sync now" request
//! found at a beat wakes the remote's supervisor, or restarts one that gave up. A remote that
//! another live process follows is left to it, and taken over if that process stops.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::LocalBoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use runicorn_store::{RemoteId, RemoteRow, FOLLOW_BEAT_SECONDS};
use tokio::sync::{oneshot, Notify};

use crate::remote_address::RemoteAddress;
use crate::store_thread::StoreHandle;
use crate::supervisor::{run_remote, Mode, OpenOptions, RemoteJob, SessionEvents};
use crate::sync::SyncError;

/// Which remotes a follower takes on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every remote that is neither removed nor paused (`ui`).
    All,
    /// This one (`connect`, `demo`); following ends when it is removed.
    One(RemoteId),
}

/// How a follower follows.
#[derive(Debug, Clone)]
pub struct FollowConfig {
    /// The name it holds leases under (see [`follower_name`]).
    pub me: String,
    pub scope: Scope,
    pub open: OpenOptions,
    /// Seconds between rounds when no notice came.
    pub safety_interval: Duration,
}

/// Consecutive beats whose store calls failed before following ends.
const MAX_FAILED_TICKS: u32 = 5;

/// After a transient failure made a supervisor give up, it is started again after this long
/// (or at once on "retry now").
pub const RETRY_GIVEN_UP: Duration = Duration::from_secs(300);

/// The name a process holds leases under: `ui pid 4242 on laptop`. Unique per live process.
pub fn follower_name(command: &str) -> String {
    format!(
        "{command} pid {} on {}",
        std::process::id(),
        runicorn_store::this_host()
    )
}

/// What the follower reports besides the sessions' own events.
pub trait FollowerEvents: SessionEvents {
    /// `remote` is followed by another live process (told once per remote and process).
    fn followed_elsewhere(&self, _remote: &str, _by: &str) {}
    /// The supervisor of `remote` stopped on an error (retried later when it is transient).
    fn gave_up(&self, _remote: &str, _error: &SyncError) {}
    /// `remote` is not followed because its stored address is unreadable.
    fn unusable(&self, _remote: &str, _why: &str) {}
    /// `remote` was removed or paused: this process no longer follows it.
    fn let_go(&self, _remote: &str) {}
}

/// A supervisor this process runs (or ran) for a remote whose lease it holds.
struct Following {
    name: String,
    wake: Arc<Notify>,
    /// Dropping or sending stops the supervisor; `None` once it ended.
    stop: Option<oneshot::Sender<()>>,
    /// It ended on an error, at this time, and whether the error was transient.
    gave_up: Option<(Instant, bool)>,
}

type Ended<'a> = LocalBoxFuture<'a, (RemoteId, Result<(), SyncError>)>;

/// Follows the remotes of `config.scope` until `stop` resolves (or, for [`Scope::One`], the
/// remote is removed, or its supervisor gives up: that error is returned), then stops every
/// supervisor and gives up every lease.
pub async fn follow_remotes(
    store: &StoreHandle,
    config: &FollowConfig,
    events: &dyn FollowerEvents,
    stop: impl Future<Output = ()>,
) -> Result<(), SyncError> {
    tokio::pin!(stop);
    let mut following: HashMap<RemoteId, Following> = HashMap::new();
    let mut tasks: FuturesUnordered<Ended<'_>> = FuturesUnordered::new();
    let mut told_elsewhere: HashSet<RemoteId> = HashSet::new();
    let mut unusable: HashMap<RemoteId, serde_json::Value> = HashMap::new();
    let mut beat = tokio::time::interval(Duration::from_secs_f64(FOLLOW_BEAT_SECONDS));
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut outcome = Ok(());
    let mut failed_ticks = 0u32;
    loop {
        tokio::select! {
            _ = &mut stop => break,
            Some((id, result)) = tasks.next(), if !tasks.is_empty() => {
                if let Some(e) = ended(store, config, events, &mut following, id, result).await {
                    if matches!(config.scope, Scope::One(_)) {
                        outcome = Err(e);
                        break;
                    }
                }
            }
            _ = beat.tick() => {
                match tick(
                    store, config, events, &mut following, &mut tasks,
                    &mut told_elsewhere, &mut unusable,
                ).await {
                    Ok(true) => failed_ticks = 0,
                    Ok(false) => break,
                    // A busy or briefly failing store is retried at the next beat; one that
                    // keeps failing ends following (the supervisors could not store anyway).
                    Err(e) => {
                        failed_ticks += 1;
                        tracing::warn!(error = %e, "following remotes: the store did not answer");
                        if failed_ticks >= MAX_FAILED_TICKS {
                            outcome = Err(SyncError::Store(e.to_string()));
                            break;
                        }
                    }
                }
            }
        }
    }
    // Stop every supervisor (each writes its remote disconnected), then give the leases up.
    for f in following.values_mut() {
        f.stop.take();
    }
    while let Some((_, _)) = tasks.next().await {}
    let me = config.me.clone();
    let ids: Vec<RemoteId> = following.keys().copied().collect();
    store
        .call(move |s| {
            for id in ids {
                let _ = s.release_follow(id, &me);
            }
        })
        .await
        .map_err(|e| SyncError::Store(e.to_string()))?;
    outcome
}

/// A supervisor ended: stopped on purpose (forget it; its lease is given up) or on an error
/// (keep the lease, so the remote shows offline with its error, and retry later), which is
/// returned.
async fn ended(
    store: &StoreHandle,
    config: &FollowConfig,
    events: &dyn FollowerEvents,
    following: &mut HashMap<RemoteId, Following>,
    id: RemoteId,
    result: Result<(), SyncError>,
) -> Option<SyncError> {
    let f = following.get_mut(&id)?;
    match result {
        Err(e) if f.stop.is_some() => {
            events.gave_up(&f.name, &e);
            f.stop = None;
            f.gave_up = Some((Instant::now(), e.is_transient()));
            Some(e)
        }
        _ => {
            following.remove(&id);
            let me = config.me.clone();
            let _ = store.call(move |s| s.release_follow(id, &me)).await;
            None
        }
    }
}

/// One beat: renew leases, act on requests, let go of what is no longer ours, claim what is
/// free. Returns false when a [`Scope::One`] remote is gone or removed.
#[allow(clippy::too_many_arguments)] // the follower's state, borrowed from its loop
async fn tick<'a>(
    store: &'a StoreHandle,
    config: &FollowConfig,
    events: &'a dyn FollowerEvents,
    following: &mut HashMap<RemoteId, Following>,
    tasks: &mut FuturesUnordered<Ended<'a>>,
    told_elsewhere: &mut HashSet<RemoteId>,
    unusable: &mut HashMap<RemoteId, serde_json::Value>,
) -> anyhow::Result<bool> {
    let me = config.me.clone();
    let now = runicorn_cli::now();
    let (held, rows) = store
        .call(move |s| -> Result<_, runicorn_store::StoreError> {
            Ok((s.beat_follows(&me, now)?, s.remotes()?))
        })
        .await??;
    let held: HashMap<RemoteId, bool> = held.into_iter().collect();
    let rows: HashMap<RemoteId, RemoteRow> = rows.into_iter().map(|r| (r.id, r)).collect();

    // Ours no more (removed, paused, or taken over after our heartbeat stalled): stop.
    for (id, f) in following.iter_mut() {
        if !held.contains_key(id) && f.stop.take().is_some() {
            events.let_go(&f.name);
        }
    }
    // A stopping supervisor stays listed until it ended (so it is not started twice).
    following.retain(|id, f| held.contains_key(id) || f.gave_up.is_none());

    // Requests and retries.
    let mut restart = Vec::new();
    for (id, &requested) in &held {
        let Some(f) = following.get(id) else {
            continue;
        };
        match f.gave_up {
            None if requested => f.wake.notify_one(),
            Some((at, transient)) if requested || (transient && at.elapsed() >= RETRY_GIVEN_UP) => {
                restart.push(*id);
            }
            _ => {}
        }
    }
    for id in restart {
        following.remove(&id);
        if let Some(row) = rows.get(&id) {
            start(store, config, events, following, tasks, unusable, row);
        }
    }

    // Claim what is free.
    let wanted: Vec<&RemoteRow> = rows
        .values()
        .filter(|r| match &config.scope {
            Scope::All => true,
            Scope::One(id) => r.id == *id,
        })
        .filter(|r| r.removed_at.is_none() && !r.paused && !following.contains_key(&r.id))
        // Known only from bundles: nothing to follow.
        .filter(|r| {
            serde_json::from_value::<RemoteAddress>(r.transport.clone())
                .map_or(true, |a| a.is_reachable())
        })
        .collect();
    for row in wanted {
        if unusable.get(&row.id) == Some(&row.transport) {
            continue;
        }
        let (id, me) = (row.id, config.me.clone());
        let claimed = store
            .call(move |s| s.claim_follow(id, &me, runicorn_cli::now()))
            .await??;
        if claimed {
            told_elsewhere.remove(&id);
            start(store, config, events, following, tasks, unusable, row);
        } else if told_elsewhere.insert(id) {
            let by = row.live_follower(now).unwrap_or("another process");
            events.followed_elsewhere(&row.name, by);
        }
    }

    Ok(match &config.scope {
        Scope::All => true,
        Scope::One(id) => rows.get(id).is_some_and(|r| r.removed_at.is_none()),
    })
}

/// Starts a supervisor for a remote whose lease this process holds.
fn start<'a>(
    store: &'a StoreHandle,
    config: &FollowConfig,
    events: &'a dyn FollowerEvents,
    following: &mut HashMap<RemoteId, Following>,
    tasks: &mut FuturesUnordered<Ended<'a>>,
    unusable: &mut HashMap<RemoteId, serde_json::Value>,
    row: &RemoteRow,
) {
    let address = match serde_json::from_value::<RemoteAddress>(row.transport.clone()) {
        Ok(a) => a,
        Err(e) => {
            events.unusable(
                &row.name,
                &format!(
                    "its stored address is unreadable ({e}); `runicorn-hub connect` it again to fix it"
                ),
            );
            unusable.insert(row.id, row.transport.clone());
            let (id, me) = (row.id, config.me.clone());
            tasks.push(Box::pin(async move {
                let _ = store.call(move |s| s.release_follow(id, &me)).await;
                (id, Ok(()))
            }));
            return;
        }
    };
    let mut job = RemoteJob::new(&row.name, row.id, address, Mode::Follow);
    job.open = config.open.clone();
    job.safety_interval = config.safety_interval;
    job.lease = Some(config.me.clone());
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    following.insert(
        row.id,
        Following {
            name: row.name.clone(),
            wake: job.wake.clone(),
            stop: Some(stop_tx),
            gave_up: None,
        },
    );
    events.following(&row.name, row.id);
    let id = row.id;
    tasks.push(Box::pin(async move {
        let stopped = async move {
            let _ = stop_rx.await;
        };
        (id, run_remote(&job, store, events, stopped).await)
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follower_names_say_which_process() {
        let name = follower_name("ui");
        assert!(name.starts_with(&format!("ui pid {} on ", std::process::id())));
    }
}
