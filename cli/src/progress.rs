//! Progress on stderr (indicatif), drawn only when stderr is a terminal: piped or redirected
//! output never gets bar frames. Templates carry no colour, so `NO_COLOR` needs no case of its
//! own. [`DelayedProgress`] stays hidden until work has gone on long enough to be worth a bar;
//! [`spinner`] is a ticking line for work of unknown length.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often a spinner redraws by itself.
const SPINNER_TICK: Duration = Duration::from_millis(120);

/// True when progress may be drawn: stderr is a terminal.
pub fn stderr_is_terminal() -> bool {
    std::io::stderr().is_terminal()
}

/// A bar style from `template` with `=> ` as the bar's characters; `None` if the template does
/// not parse (the bar then keeps its default style).
pub fn bar_style(template: &str) -> Option<ProgressStyle> {
    ProgressStyle::with_template(template)
        .ok()
        .map(|s| s.progress_chars("=> "))
}

/// A spinner on stderr with the style `template` (e.g. `"{spinner} {msg} ({elapsed})"`),
/// ticking on its own. Callers create it only when [`stderr_is_terminal`].
pub fn spinner(template: &str) -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar.enable_steady_tick(SPINNER_TICK);
    bar
}

/// A progress bar on stderr for work over `len` items, drawn only on a terminal and only once
/// [`show`](Self::show) is called (callers do so when the work has taken a second), so quick
/// work stays quiet.
pub struct DelayedProgress {
    bar: ProgressBar,
    shown: AtomicBool,
    on_terminal: bool,
}

impl DelayedProgress {
    /// A hidden bar of `len` items labelled `what`.
    pub fn new(len: usize, what: &'static str) -> Self {
        Self::with_terminal(len, what, stderr_is_terminal())
    }

    fn with_terminal(len: usize, what: &'static str, on_terminal: bool) -> Self {
        let bar = ProgressBar::with_draw_target(Some(len as u64), ProgressDrawTarget::hidden());
        if let Some(style) = bar_style("{msg} [{bar:30}] {pos}/{len} ({eta})") {
            bar.set_style(style);
        }
        bar.set_message(what);
        DelayedProgress {
            bar,
            shown: AtomicBool::new(false),
            on_terminal,
        }
    }

    /// `n` more items done.
    pub fn inc(&self, n: u64) {
        self.bar.inc(n);
    }

    /// Starts drawing (once, and only on a terminal).
    pub fn show(&self) {
        if self.on_terminal && !self.shown.swap(true, Ordering::Relaxed) {
            self.bar.set_draw_target(ProgressDrawTarget::stderr());
        }
    }

    /// Back to zero items done (the work starts over another way).
    pub fn reset(&self) {
        self.bar.reset();
    }

    /// Done: the bar's line is cleared.
    pub fn finish_and_clear(&self) {
        self.bar.finish_and_clear();
    }

    /// Items done so far.
    pub fn position(&self) -> u64 {
        self.bar.position()
    }

    /// True while nothing is drawn.
    pub fn is_hidden(&self) -> bool {
        self.bar.is_hidden()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delayed_bar_is_hidden_until_shown() {
        let p = DelayedProgress::with_terminal(10, "reading runs", true);
        p.inc(3);
        assert!(p.is_hidden());
        assert_eq!(p.position(), 3);
        p.reset();
        assert_eq!(p.position(), 0);
        p.finish_and_clear();
    }

    #[test]
    fn off_a_terminal_show_draws_nothing() {
        let p = DelayedProgress::with_terminal(10, "reading runs", false);
        p.show();
        p.show();
        assert!(p.is_hidden());
        p.finish_and_clear();
    }

    #[test]
    fn the_templates_in_use_parse() {
        assert!(bar_style("{msg} [{bar:30}] {percent}% ({eta})").is_some());
        assert!(bar_style("{msg} [{bar:30}] {pos}/{len} ({eta})").is_some());
        let s = spinner("{spinner} {msg} ({elapsed})");
        s.finish_and_clear();
    }
}
