//! The export's progress bar: bytes hashed, then bytes written, on stderr; hidden when stderr
//! is not a terminal (so `-o -` into a pipe, and tests, see no frames).

use indicatif::{ProgressBar, ProgressDrawTarget};
use runicorn_bundle::{Phase, Progress};
use runicorn_cli::progress::{bar_style, stderr_is_terminal};

/// A [`Progress`] drawn as one indicatif bar.
pub struct BundleProgress {
    bar: ProgressBar,
}

impl BundleProgress {
    pub fn new() -> BundleProgress {
        let bar = ProgressBar::with_draw_target(
            Some(0),
            if stderr_is_terminal() {
                ProgressDrawTarget::stderr()
            } else {
                ProgressDrawTarget::hidden()
            },
        );
        if let Some(style) =
            bar_style("{msg:8} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ({eta})")
        {
            bar.set_style(style);
        }
        BundleProgress { bar }
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl Progress for BundleProgress {
    fn start(&mut self, phase: Phase, total_bytes: u64) {
        self.bar.set_message(match phase {
            Phase::Hashing => "hashing",
            Phase::Writing => "writing",
        });
        self.bar.set_length(total_bytes);
        self.bar.set_position(0);
    }

    fn advance(&mut self, bytes: u64) {
        self.bar.inc(bytes);
    }
}
