//! The commands of `runicorn-hub`, one module each, and what they share: opening the store
//! (`store_dir`), the terminal (`terminal`), diagnostics (`logging`).

pub mod connect;
pub mod dashboard;
pub mod demo;
pub mod list;
pub mod logging;
pub mod remotes;
pub mod sync_command;
pub mod terminal;
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

/// True when the error is a closed stdout (`runicorn-hub ls | head`), which is not a failure.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        let io = cause
            .downcast_ref::<std::io::Error>()
            .map(std::io::Error::kind);
        let json = cause
            .downcast_ref::<serde_json::Error>()
            .and_then(serde_json::Error::io_error_kind);
        io.or(json) == Some(std::io::ErrorKind::BrokenPipe)
    })
}
