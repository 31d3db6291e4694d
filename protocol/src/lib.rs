//! The shared language of Runicorn.
//!
//! Everything that crosses a boundary between our programs lives here: today the run format on
//! disk (`run_format`), which training scripts write and the agent reads, and the wire protocol
//! between the hub and the agent (`wire`). This crate depends on nothing else of ours, so every other crate may use
//! it.

pub mod parallel;
pub mod run_format;
pub mod wire;
