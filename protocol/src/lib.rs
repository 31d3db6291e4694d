//! The shared language of Runicorn.
//!
//! Everything that crosses a boundary between our programs lives here: today the run format on
//! disk (`run_format`), which training scripts write and the agent reads; later the wire messages
//! of the agent protocol. This crate depends on nothing else of ours, so every other crate may use
//! it.

pub mod parallel;
pub mod run_format;
