//! Syncing with agents: the protocol client (`client`), the checks every answer passes before it
//! is stored (`validate`), sync rounds and live follow (`engine`), and the errors (`error`).

pub mod client;
pub mod engine;
pub mod error;
pub mod validate;

pub use client::AgentClient;
pub use engine::{follow, sync_round, Quiet, RoundObserver, RoundStats};
pub use error::SyncError;
