//! The live-update heartbeat: one task per dashboard asks SQLite every 200 ms whether another
//! connection committed (`PRAGMA data_version`, through `Store::data_version`) and bumps a
//! watch channel when so. That covers the hub's own sync, a separate `runicorn-hub connect`
//! process, and the dashboard's own writer alike.

use std::time::Duration;

use runicorn_store::Store;
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

/// How often the store is asked.
pub const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// Starts the poller on its own read-only connection; it ends when `closing` turns true or
/// every receiver of `ticks` is gone.
pub fn spawn_poller(reader: Store, ticks: watch::Sender<u64>, closing: watch::Receiver<bool>) {
    tokio::spawn(async move {
        let mut store = Some(reader);
        let mut last: Option<i64> = None;
        let mut interval = tokio::time::interval(POLL_INTERVAL);
        interval.set_missed_tick_behavior(MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                _ = interval.tick() => {}
                _ = crate::state::closed(closing.clone()) => break,
            }
            if ticks.is_closed() {
                break;
            }
            let Some(s) = store.take() else { break };
            let Ok((s, version)) = tokio::task::spawn_blocking(move || {
                let v = s.data_version();
                (s, v)
            })
            .await
            else {
                break;
            };
            store = Some(s);
            match version {
                Ok(v) => {
                    if last.is_some_and(|l| l != v) {
                        ticks.send_modify(|t| *t = t.wrapping_add(1));
                    }
                    last = Some(v);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "dashboard: cannot poll the store for changes")
                }
            }
        }
    });
}
