//! The end-to-end scenarios, one module per area, all in this one test binary: the hub, the
//! web server and the store are linked once instead of once per scenario file (see "Building
//! the tests" in docs/PERFORMANCE.md).
//!
//! Every test runs in the same process, on parallel threads, so a test never changes what the
//! process shares: no `std::env::set_var` or `set_current_dir` (environment and working
//! directory go to the child `Command`), no fixed ports (bind port 0), one sshd and one temporary
//! HOME per test, and a child process is waited for by its own pid.
//!
//! Run one area with `cargo test -p runicorn-tests --test e2e web_api::`, one scenario by its
//! path (`… --test e2e web_api::listing::sorts_order_the_runs`).

mod agent_artifacts;
mod agent_daemon;
mod agent_export;
mod agent_ls;
mod agent_run;
mod agent_serve;
mod agent_stall;
mod agent_telemetry;
mod agent_terminal;
mod alerts;
mod artifact_fetch;
mod artifact_sync;
mod bundle_import;
mod chunk_cache;
mod daemon_telemetry;
mod data_out;
mod file_transfer;
mod fleet;
mod hostile_runs;
mod hostile_tree_props;
mod hub_connect_cli;
mod hub_demo;
mod hub_export;
mod hub_fetch_cache;
mod hub_ls;
mod hub_sync;
mod hub_tolerance;
mod hub_ui;
mod install_agent;
mod log_bytes;
mod portable_agent;
mod recycle_bin;
mod remotes_manage;
mod run_files;
mod run_refs;
mod ssh_transport;
mod terminal_safety;
mod upstream_assets;
mod upstream_compat;
mod web_api;
mod web_limits;
mod wheels;
