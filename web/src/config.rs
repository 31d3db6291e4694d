//! What the hub hands the dashboard: where the store is, where to listen, and how to bring a
//! run's file into the store's cache when the page asks for one that is not there yet.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::Arc;

use futures::future::BoxFuture;
use runicorn_store::RunRow;

/// The dashboard's default port.
pub const DEFAULT_PORT: u16 = 23300;

/// Brings a file of a run's manifest into the store's file cache (`Store::put_file` +
/// `Store::record_cached_file`), from the run's remote.
pub trait FileFetcher: Send + Sync + 'static {
    /// Fetch `path` of `run` from its remote into the store's file cache. The error says why
    /// it could not (the remote is disconnected, the file is gone, …).
    fn fetch(&self, run: RunRow, path: String) -> BoxFuture<'static, Result<(), String>>;
}

/// How to serve the dashboard.
#[derive(Clone)]
pub struct DashboardConfig {
    /// The hub's store folder; `Store::open` creates or migrates it at bind time.
    pub store_dir: PathBuf,
    /// Address to listen on (default 127.0.0.1).
    pub bind: IpAddr,
    /// Port; 0 picks any free one.
    pub port: u16,
    /// Fetches manifest files on demand; `None` serves what the cache already holds.
    pub files: Option<Arc<dyn FileFetcher>>,
}

impl DashboardConfig {
    /// 127.0.0.1:23300 over the store in `store_dir`, files from the cache only.
    pub fn new(store_dir: PathBuf) -> DashboardConfig {
        DashboardConfig {
            store_dir,
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: DEFAULT_PORT,
            files: None,
        }
    }
}

impl std::fmt::Debug for DashboardConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DashboardConfig")
            .field("store_dir", &self.store_dir)
            .field("bind", &self.bind)
            .field("port", &self.port)
            .field("files", &self.files.is_some())
            .finish()
    }
}
