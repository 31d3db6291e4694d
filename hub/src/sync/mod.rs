//! Syncing with agents: the protocol client (`client`), the checks every answer passes before it
//! is stored (`validate`), sync rounds and live follow (`engine`), host samples for the fleet
//! view (`host`), and the errors (`error`).
//!
//! Other crates see the errors, a round's figures and its observer (what the binary reports),
//! and `validate` (its property tests); the client and the rounds are driven by `supervisor`.

mod client;
mod engine;
mod error;
mod host;
pub mod validate;

pub(crate) use client::{agent_is_older, AgentClient};
pub(crate) use engine::{follow, record_sync, sync_round};
pub use engine::{RoundObserver, RoundStats};
pub use error::SyncError;
pub(crate) use host::{HostPoller, ONE_OFF_HOST_WAIT};

/// Suffix of an agent's software name when its session is served by a resident agent (the
/// `resident` capability), as the store keeps it and listings show it.
pub const RESIDENT_SUFFIX: &str = " (resident)";

/// The agent's software as stored and shown: `runicorn-agent/0.1.0 (resident)` when the session
/// was served by the root's resident agent.
pub fn agent_software_label(agent: &runicorn_protocol::wire::Hello) -> String {
    let resident = agent
        .capabilities
        .iter()
        .any(|c| c == runicorn_protocol::wire::RESIDENT_CAPABILITY);
    if resident {
        format!("{}{RESIDENT_SUFFIX}", agent.software)
    } else {
        agent.software.clone()
    }
}
