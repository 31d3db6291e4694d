//! The artifact store on a server's storage root (`docs/run-format.md`, "Artifacts"): what the
//! Rust writer, `runicorn-agent artifacts` and the agent's `chunks` answers do with
//! `<root>/artifacts/`. The files' shapes are `runicorn_protocol::run_format::artifacts`.

pub mod chunking;
pub mod content;
pub mod error;
pub mod layout;
pub mod listing;
pub mod locks;
pub mod pool;
pub mod writer;

pub use error::StoreError;

#[cfg(test)]
mod testing;
