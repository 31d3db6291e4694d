//! The agent protocol: what the hub and `runicorn-agent serve --stdio` say to each other over a
//! byte stream (an SSH exec channel, or a child process's pipes). Specified in
//! `docs/protocol.md`.
//!
//! This module owns the frame format (`frame`), the message types (`messages`) and the
//! non-finite number encoding inside them (`float`). It performs no I/O of its own beyond reading
//! and writing frames on a stream it is given.

pub mod alerts;
pub mod artifacts;
pub mod float;
pub mod frame;
pub mod host;
pub mod messages;

pub use alerts::*;
pub use artifacts::*;
pub use frame::{decode_payload, encode_frame, read_frame, write_frame, FrameError};
pub use host::*;
pub use messages::*;

/// Name both peers put in their `hello`.
pub const PROTOCOL_NAME: &str = "runicorn-sync";
/// The protocol version this build speaks. A peer offering no common version is refused.
pub const PROTOCOL_VERSION: u32 = 1;
/// Largest frame payload a peer accepts unless its `hello` says otherwise (16 MiB).
pub const DEFAULT_MAX_FRAME_BYTES: u32 = 16 * 1024 * 1024;
/// Smallest `max_frame_bytes` a peer may announce (so batches always fit one run's records).
pub const MIN_MAX_FRAME_BYTES: u32 = 1024 * 1024;
/// Capabilities of this build, announced in `hello`.
pub const CAPABILITIES: &[&str] = &[
    "changes",
    "points",
    "log",
    "subscribe",
    "manifest-sha256",
    LOG_BYTES_CAPABILITY,
    ARTIFACTS_CAPABILITY,
    CHUNKS_CAPABILITY,
    HOST_CAPABILITY,
];
/// The capability of an agent that answers a `log` request marked `exact` with the file's exact
/// bytes (`text` or `bytes_b64`, see [`LogChunk`]). Older agents send lossy text.
pub const LOG_BYTES_CAPABILITY: &str = "log-bytes";
/// Announced by a session served by the resident agent (`runicorn-agent daemon`, reached
/// through `serve --stdio`); the protocol is the same, this only tells the hub where it landed.
pub const RESIDENT_CAPABILITY: &str = "resident";
