//! What sync sessions show on stderr: a progress line while a round runs (an indicatif spinner,
//! then a bar once the size is known; on a terminal only), one summary line per round, and the
//! live status line while following. Shared by `connect`, `sync`, `ui` and `demo`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use runicorn_cli::human::{bytes, figure};
use runicorn_cli::{progress, safe, safe_lines, time, warning_label};
use runicorn_protocol::wire::Hello;

use runicorn_cli::error_label;
use runicorn_hub::followers::FollowerEvents;
use runicorn_hub::prefetch::Prefetcher;
use runicorn_hub::supervisor::SessionEvents;
use runicorn_hub::sync::{RoundObserver, RoundStats, SyncError};
use runicorn_store::RemoteId;

use super::alert_hook::AlertHook;

/// What a round left out, for its summary line (empty when nothing was).
fn skipped_note(stats: &RoundStats) -> String {
    let left_out = stats.refused + stats.agent_skipped;
    if left_out == 0 {
        return String::new();
    }
    format!(
        "; {} left out ({} refused by the hub, {} skipped by the agent; reasons: `runicorn-hub remotes`)",
        figure(left_out),
        figure(stats.refused),
        figure(stats.agent_skipped)
    )
}

/// Progress of sync sessions on stderr: a spinner line with runs, points and bytes while a
/// round runs (on a terminal only), and one summary line per round.
pub struct SyncReporter {
    bar: Mutex<Option<indicatif::ProgressBar>>,
    on_terminal: bool,
    quiet: bool,
    /// Points and rounds seen while following.
    live_totals: Mutex<(u64, u64)>,
    /// The first round is done: what follows are live updates.
    following: std::sync::atomic::AtomicBool,
    /// Told after each round that brought runs, with the remotes' ids by name (remotes a
    /// follower takes on later are added).
    prefetch: Option<(Prefetcher, Mutex<HashMap<String, RemoteId>>)>,
    /// `--on-alert`: told of every new alert.
    alert_hook: Option<AlertHook>,
}

impl SyncReporter {
    pub fn new(quiet: bool) -> SyncReporter {
        SyncReporter {
            bar: Mutex::new(None),
            on_terminal: progress::stderr_is_terminal(),
            quiet,
            live_totals: Mutex::new((0, 0)),
            following: std::sync::atomic::AtomicBool::new(false),
            prefetch: None,
            alert_hook: None,
        }
    }

    /// Tells `hook` of every alert the sync stores for the first time.
    pub fn with_alert_hook(mut self, hook: Option<AlertHook>) -> SyncReporter {
        self.alert_hook = hook;
        self
    }

    /// Queues a prefetch of each remote in `remotes` (name → id) after its first round and
    /// after every round that changed runs.
    pub fn with_prefetch(
        mut self,
        prefetcher: Prefetcher,
        remotes: HashMap<String, RemoteId>,
    ) -> SyncReporter {
        self.prefetch = Some((prefetcher, Mutex::new(remotes)));
        self
    }

    fn queue_prefetch(&self, remote: &str, stats: &RoundStats, first: bool) {
        if let Some((prefetcher, ids)) = &self.prefetch {
            let id = ids.lock().ok().and_then(|ids| ids.get(remote).copied());
            if let Some(id) = id.filter(|_| first || stats.runs > 0) {
                prefetcher.remote_synced(id);
            }
        }
    }

    fn with_bar(&self, f: impl FnOnce(&indicatif::ProgressBar)) {
        if !self.on_terminal || self.quiet {
            return;
        }
        let Ok(mut slot) = self.bar.lock() else {
            return;
        };
        let bar = slot.get_or_insert_with(|| progress::spinner("{spinner} {msg} ({elapsed})"));
        f(bar);
    }

    fn clear_bar(&self) {
        if let Ok(mut slot) = self.bar.lock() {
            if let Some(bar) = slot.take() {
                bar.finish_and_clear();
            }
        }
    }

    fn line(&self, text: &str) {
        if self.quiet {
            return;
        }
        self.clear_bar();
        eprintln!("{text}");
    }
}

impl RoundObserver for SyncReporter {
    fn new_alerts(&self, ids: &[i64]) {
        if let Some(hook) = &self.alert_hook {
            hook.notify(ids);
        }
    }

    fn progress(&self, stats: &RoundStats, bytes_received: u64) {
        if self.following.load(std::sync::atomic::Ordering::Relaxed) {
            // Live rounds are small; the status line says enough.
            return;
        }
        self.with_bar(|bar| {
            if stats.event_bytes_total > 0 && bar.length().is_none() {
                // The listing is done and the size of what is missing is known: a real bar.
                bar.set_length(stats.event_bytes_total);
                if let Some(style) = progress::bar_style("{msg} [{bar:30}] {percent}% ({eta})") {
                    bar.set_style(style);
                }
            }
            bar.set_position(stats.event_bytes_done.min(stats.event_bytes_total));
            bar.set_message(format!(
                "syncing: {} runs · {} points · {} received",
                figure(stats.runs),
                figure(stats.points),
                bytes(bytes_received)
            ))
        });
    }
}

impl SessionEvents for SyncReporter {
    fn connected(&self, remote: &str, agent: &Hello) {
        // Everything here is the agent's word: made terminal-safe.
        self.line(&format!(
            "{}: connected to {} on {} (root {})",
            safe(remote),
            safe(&runicorn_hub::sync::agent_software_label(agent)),
            safe(agent.host.as_deref().unwrap_or("?")),
            safe(agent.root.as_deref().unwrap_or("?"))
        ));
    }

    fn round_done(&self, remote: &str, stats: &RoundStats, elapsed: Duration, first: bool) {
        self.queue_prefetch(remote, stats, first);
        if first {
            self.following
                .store(true, std::sync::atomic::Ordering::Relaxed);
            let artifacts = if stats.artifacts > 0 {
                format!(", {} artifacts", figure(stats.artifacts))
            } else {
                String::new()
            };
            self.line(&format!(
                "{}: synced {} runs{artifacts}, {} points, {} of logs in {:.2} s ({} requests){}",
                safe(remote),
                figure(stats.runs),
                figure(stats.points),
                bytes(stats.log_bytes),
                elapsed.as_secs_f64(),
                stats.requests,
                skipped_note(stats)
            ));
            return;
        }
        // Live updates keep one status line on a terminal and stay quiet elsewhere.
        let now = time::clock_now();
        if let Ok(mut totals) = self.live_totals.lock() {
            totals.0 += stats.points;
            totals.1 += 1;
            let (points, rounds) = *totals;
            self.with_bar(|bar| {
                bar.set_message(format!(
                    "{}: live · last change {now} · {} points in {} updates since connecting",
                    safe(remote),
                    figure(points),
                    figure(rounds)
                ))
            });
        }
    }

    fn reconnecting(&self, remote: &str, error: &SyncError, delay: Duration) {
        self.line(&format!(
            "{}: {}: {}; reconnecting in {} s",
            warning_label(),
            safe(remote),
            safe_lines(&error.to_string()),
            delay.as_secs()
        ));
    }

    fn following(&self, remote: &str, id: RemoteId) {
        if let Some((_, ids)) = &self.prefetch {
            if let Ok(mut ids) = ids.lock() {
                ids.insert(remote.to_owned(), id);
            }
        }
        self.line(&format!("{}: following live", safe(remote)));
    }
}

impl FollowerEvents for SyncReporter {
    fn followed_elsewhere(&self, remote: &str, by: &str) {
        self.line(&format!(
            "{}: followed by {} already; this process takes over if that one stops",
            safe(remote),
            safe(by)
        ));
    }

    fn gave_up(&self, remote: &str, error: &SyncError) {
        // An error is printed even with --quiet; the store recorded it for the dashboard.
        self.clear_bar();
        eprintln!(
            "{}: {}: {}",
            error_label(),
            safe(remote),
            safe_lines(&error.to_string())
        );
    }

    fn unusable(&self, remote: &str, why: &str) {
        self.clear_bar();
        eprintln!(
            "{}: remote {} is not synced: {}",
            warning_label(),
            safe(remote),
            safe(why)
        );
    }

    fn let_go(&self, remote: &str) {
        self.line(&format!(
            "{}: removed or paused by another command; no longer following it",
            safe(remote)
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_round_that_left_nothing_out_has_no_note() {
        assert_eq!(skipped_note(&RoundStats::default()), "");
    }

    #[test]
    fn the_note_counts_both_sides() {
        let stats = RoundStats {
            refused: 2,
            agent_skipped: 12_000,
            ..RoundStats::default()
        };
        assert_eq!(
            skipped_note(&stats),
            "; 12.0k left out (2 refused by the hub, 12.0k skipped by the agent; reasons: `runicorn-hub remotes`)"
        );
    }
}
