//! The artifact store on a server's storage root (`docs/run-format.md`, "Artifacts"): what the
//! Rust writer, `runicorn-agent artifacts` and the agent's `chunks` answers do with
//! `<root>/artifacts/`. The files' shapes are `runicorn_protocol::run_format::artifacts`.

pub mod chunking;
pub mod content;
pub mod layout;
pub mod listing;

#[cfg(test)]
mod testing;
