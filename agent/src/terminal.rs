//! How the agent talks to a terminal: colour only when stdout is a terminal and `NO_COLOR` is
//! not set, and the labels of its messages.

use std::io::IsTerminal;

/// True when coloured output is wanted on stdout.
pub fn color_stdout() -> bool {
    std::io::stdout().is_terminal() && no_color_unset()
}

fn color_stderr() -> bool {
    std::io::stderr().is_terminal() && no_color_unset()
}

fn no_color_unset() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// `error` (red on a terminal), the label of a fatal message.
pub fn error_label() -> String {
    paint_if(color_stderr(), "1;31", "error")
}

/// `warning` (yellow on a terminal).
pub fn warning_label() -> String {
    paint_if(color_stderr(), "1;33", "warning")
}

/// Wraps `text` in an ANSI colour when `on`.
pub fn paint_if(on: bool, sgr: &str, text: &str) -> String {
    if on {
        format!("\x1b[{sgr}m{text}\x1b[0m")
    } else {
        text.to_owned()
    }
}

/// A progress bar on stderr for work over many items, drawn only on a terminal and only once
/// [`show`](Self::show) is called (callers do so when the work has taken a second), so quick
/// work stays quiet.
pub struct DelayedProgress {
    bar: indicatif::ProgressBar,
    shown: std::sync::atomic::AtomicBool,
    on_terminal: bool,
}

impl DelayedProgress {
    pub fn new(len: usize, what: &'static str) -> Self {
        let bar = indicatif::ProgressBar::with_draw_target(
            Some(len as u64),
            indicatif::ProgressDrawTarget::hidden(),
        );
        // A plain template: no colour codes, so NO_COLOR needs no special case.
        if let Ok(style) =
            indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} ({eta})")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(what);
        DelayedProgress {
            bar,
            shown: std::sync::atomic::AtomicBool::new(false),
            on_terminal: std::io::stderr().is_terminal(),
        }
    }

    pub fn inc(&self, n: u64) {
        self.bar.inc(n);
    }

    /// Starts drawing (once, and only on a terminal).
    pub fn show(&self) {
        if self.on_terminal && !self.shown.swap(true, std::sync::atomic::Ordering::Relaxed) {
            self.bar
                .set_draw_target(indicatif::ProgressDrawTarget::stderr());
        }
    }

    pub fn reset(&self) {
        self.bar.reset();
    }

    pub fn finish_and_clear(&self) {
        self.bar.finish_and_clear();
    }
}
