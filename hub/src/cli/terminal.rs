//! How the hub talks to a terminal: colour only on a terminal without `NO_COLOR`, labels for
//! messages, and the sync progress line (an indicatif bar drawn only on a terminal).

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use runicorn_cli::{safe, safe_lines};
use runicorn_protocol::wire::Hello;

use runicorn_hub::supervisor::SessionEvents;
use runicorn_hub::sync::{RoundObserver, RoundStats, SyncError};

fn color_on(stream_is_terminal: bool) -> bool {
    stream_is_terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// `error` (red on a terminal).
pub fn error_label() -> String {
    paint(color_on(std::io::stderr().is_terminal()), "1;31", "error")
}

/// `warning` (yellow on a terminal).
pub fn warning_label() -> String {
    paint(color_on(std::io::stderr().is_terminal()), "1;33", "warning")
}

/// True when stdout wants colour.
pub fn color_stdout() -> bool {
    color_on(std::io::stdout().is_terminal())
}

/// Wraps `text` in an ANSI colour when `on`.
pub fn paint(on: bool, sgr: &str, text: &str) -> String {
    if on {
        format!("\x1b[{sgr}m{text}\x1b[0m")
    } else {
        text.to_owned()
    }
}

/// Human figures: 1234567 → "1.23M".
pub fn figure(n: u64) -> String {
    match n {
        0..=9_999 => n.to_string(),
        10_000..=999_999 => format!("{:.1}k", n as f64 / 1e3),
        1_000_000..=999_999_999 => format!("{:.2}M", n as f64 / 1e6),
        _ => format!("{:.2}G", n as f64 / 1e9),
    }
}

/// Human byte sizes.
pub fn bytes(n: u64) -> String {
    match n {
        0..=1023 => format!("{n} B"),
        1024..=1_048_575 => format!("{:.1} KiB", n as f64 / 1024.0),
        1_048_576..=1_073_741_823 => format!("{:.1} MiB", n as f64 / 1_048_576.0),
        _ => format!("{:.2} GiB", n as f64 / 1_073_741_824.0),
    }
}

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
}

impl SyncReporter {
    pub fn new(quiet: bool) -> SyncReporter {
        SyncReporter {
            bar: Mutex::new(None),
            on_terminal: std::io::stderr().is_terminal(),
            quiet,
            live_totals: Mutex::new((0, 0)),
            following: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn with_bar(&self, f: impl FnOnce(&indicatif::ProgressBar)) {
        if !self.on_terminal || self.quiet {
            return;
        }
        let Ok(mut slot) = self.bar.lock() else {
            return;
        };
        let bar = slot.get_or_insert_with(|| {
            let bar = indicatif::ProgressBar::new_spinner();
            if let Ok(style) =
                indicatif::ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
            {
                bar.set_style(style);
            }
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
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
    fn progress(&self, stats: &RoundStats, bytes_received: u64) {
        if self.following.load(std::sync::atomic::Ordering::Relaxed) {
            // Live rounds are small; the status line says enough.
            return;
        }
        self.with_bar(|bar| {
            if stats.event_bytes_total > 0 && bar.length().is_none() {
                // The listing is done and the size of what is missing is known: a real bar.
                bar.set_length(stats.event_bytes_total);
                if let Ok(style) =
                    indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {percent}% ({eta})")
                {
                    bar.set_style(style.progress_chars("=> "));
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
            safe(&agent.software),
            safe(agent.host.as_deref().unwrap_or("?")),
            safe(agent.root.as_deref().unwrap_or("?"))
        ));
    }

    fn round_done(&self, remote: &str, stats: &RoundStats, elapsed: Duration, first: bool) {
        if first {
            self.following
                .store(true, std::sync::atomic::Ordering::Relaxed);
            self.line(&format!(
                "{}: synced {} runs, {} points, {} of logs in {:.2} s ({} requests){}",
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
        let now = chrono::Local::now().format("%H:%M:%S");
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
}
