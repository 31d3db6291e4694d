//! Shared CLI helpers for both binaries (`runicorn-agent` and `runicorn-hub`).
//!
//! | module | owns |
//! |---|---|
//! | [`safe_text`] | making text from run directories and remotes safe to print on a terminal |

pub mod safe_text;

pub use safe_text::{safe, safe_lines, SafeText};
