//! Alerts on the wire: what the agent raised about a run (stalled, crashed, failed, a
//! non-finite value of a watched metric, idle GPUs), carried with the run's state in change
//! batches (`RunChange::alerts`). Each alert's `id` is deterministic per occurrence, so an
//! alert derived again, by this agent or another, is the same alert and never counts twice.

use serde::{Deserialize, Serialize};

/// The run stopped making new steps while its writer is alive.
pub const ALERT_STALLED: &str = "stalled";
/// The run's writer died without saying how the run ended.
pub const ALERT_CRASHED: &str = "crashed";
/// The run ended `failed`.
pub const ALERT_FAILED: &str = "failed";
/// A watched metric logged NaN or an infinity.
pub const ALERT_NONFINITE: &str = "nonfinite";
/// Every GPU the run uses stayed idle for the run's `gpu_idle_after_s`.
pub const ALERT_GPU_IDLE: &str = "gpu_idle";
/// Every kind of alert.
pub const ALERT_KINDS: [&str; 5] = [
    ALERT_STALLED,
    ALERT_CRASHED,
    ALERT_FAILED,
    ALERT_NONFINITE,
    ALERT_GPU_IDLE,
];
/// At most this many alerts are kept and sent per run (the oldest are kept).
pub const MAX_ALERTS_PER_RUN: usize = 100;
/// Longest alert message sent, in bytes.
pub const MAX_ALERT_MESSAGE_BYTES: usize = 1000;

/// One alert about a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunAlert {
    /// Deterministic per occurrence: `stalled@<last step>`, `crashed`, `failed`,
    /// `nonfinite:<key>`, `gpu_idle@<start of the idle stretch, whole seconds>`.
    pub id: String,
    /// One of [`ALERT_KINDS`] (a hub keeps an unknown kind as it is).
    pub kind: String,
    /// When the agent raised it, epoch seconds.
    pub raised_at: f64,
    /// What happened, for a person.
    pub message: String,
    /// The metric of a `nonfinite` alert.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The step it concerns (the last step of a stall, the step of a non-finite value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<i64>,
    /// The value of a `nonfinite` alert: `NaN`, `Infinity` or `-Infinity`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// `message` cut to [`MAX_ALERT_MESSAGE_BYTES`] at a character boundary.
pub fn bounded_message(message: &str) -> String {
    if message.len() <= MAX_ALERT_MESSAGE_BYTES {
        return message.to_owned();
    }
    let mut end = MAX_ALERT_MESSAGE_BYTES;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &message[..end])
}
