//! The commands of `runicorn-hub`, one module each, and what they share: opening the store
//! (`store_dir`), the sync progress on stderr (`sync_reporter`), stopping on Ctrl-C (`ctrl_c`),
//! diagnostics (`logging`). Terminal helpers (colour, labels, tables, progress bars, time) come
//! from `runicorn_cli`.

pub mod alert_hook;
pub mod alerts;
pub mod artifacts;
pub mod cache;
pub mod connect;
pub mod ctrl_c;
pub mod dashboard;
pub mod demo;
pub mod demo_artifacts;
pub mod demo_runs;
pub mod demo_wrapped;
pub mod export;
pub mod fetch;
pub mod fetch_artifact;
pub mod fetch_assets;
pub mod fleet;
pub mod import;
pub mod list;
pub mod list_columns;
pub mod logging;
pub mod metrics;
pub mod prefetch_args;
pub mod recycle_bin;
pub mod remotes;
pub mod sync_command;
pub mod sync_reporter;
pub mod ui;

use std::path::PathBuf;

use anyhow::Context;
use runicorn_hub::store_thread::StoreHandle;

/// The store directory: `--hub-dir`, else `$RUNICORN_HUB_DIR`, else the platform default.
pub fn store_dir(explicit: Option<PathBuf>) -> PathBuf {
    explicit.unwrap_or_else(runicorn_store::default_dir)
}

/// Opens the store on its own thread.
pub fn open_store(explicit: Option<PathBuf>) -> anyhow::Result<(StoreHandle, PathBuf)> {
    let dir = store_dir(explicit);
    let handle = StoreHandle::open(&dir)
        .with_context(|| format!("cannot open the hub's store in {}", dir.display()))?;
    Ok((handle, dir))
}

/// A tokio runtime for one command.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}
