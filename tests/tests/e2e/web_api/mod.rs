//! The dashboard's HTTP API (docs/api.md) against a real store filled by a real sync
//! (`runicorn-hub connect local:DIR --once` over runs written with the Rust writer), served by
//! the real `runicorn_web::Dashboard` on loopback and driven over raw HTTP/1.1, so each test
//! can send any `Host` or `Origin` header.
//!
//! One module per resource; `world` builds the sample runs and serves them.

mod annotations;
mod artifacts;
mod bundles;
mod catalog;
mod compare;
mod compare_stats;
mod files;
mod filter_language;
mod listing;
mod live;
mod logs;
mod media;
mod metrics;
mod run_detail;
mod security;
mod startup;
mod system;
mod world;
