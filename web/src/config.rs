//! What the hub hands the dashboard: where the store is, where to listen, how to bring a run's
//! file into the store's cache when the page asks for one that is not there yet, and the
//! bundle service that exports and imports offline bundles.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::Arc;

use futures::future::BoxFuture;
use runicorn_store::{CachedLayout, RemoteId, RunRow};

use crate::bundle_reports::BundleService;

/// The dashboard's default port.
pub const DEFAULT_PORT: u16 = 23300;

/// Bytes of a file held so far (resumed bytes included), reported as they are written.
pub type FetchProgress = Arc<dyn Fn(u64) + Send + Sync>;

/// Told once a transfer has begun, with a handle on the file it writes: bytes up to the last
/// reported progress can be read from it (at their offsets) while the transfer goes on.
pub type FetchStarted = Box<dyn FnOnce(std::fs::File) + Send>;

/// A file of a run, in the store's cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedFile {
    pub sha256: String,
    pub size: u64,
    /// The cached copy.
    pub path: PathBuf,
}

/// What kind of failure a fetch met, for the status the route answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchFailureKind {
    /// The remote could not be reached: `503`, code `remote_offline`.
    Offline,
    /// The run's manifest has no such file: `404`.
    NotFound,
    /// The path or the file is refused (outside the root, not a regular file): `403`.
    Refused,
    /// Anything else (a cut link, bytes that do not match, a full disk): `503`.
    Failed,
}

/// Why a fetch failed; the message names the file and the remote and says what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchFailure {
    pub kind: FetchFailureKind,
    pub message: String,
}

/// Brings a file of a run's manifest into the store's file cache, from the run's remote.
pub trait FileFetcher: Send + Sync + 'static {
    /// Fetch `path` of `run` into the store's file cache (at once when it is there already),
    /// reporting progress and the start of a transfer.
    fn fetch(
        &self,
        run: RunRow,
        path: String,
        progress: Option<FetchProgress>,
        started: Option<FetchStarted>,
    ) -> BoxFuture<'static, Result<FetchedFile, FetchFailure>>;

    /// Brings an artifact content (by its whole SHA-256) of `remote` into the cache, only the
    /// chunks the cache lacks crossing the link; says how the cache holds it. A fetcher that
    /// cannot fetch contents answers `Failed`.
    fn fetch_content(
        &self,
        remote: RemoteId,
        content: ContentAsk,
    ) -> BoxFuture<'static, Result<CachedLayout, FetchFailure>> {
        let _ = (remote, content);
        Box::pin(async {
            Err(FetchFailure {
                kind: FetchFailureKind::Failed,
                message: "this hub serves artifact files from its cache only".into(),
            })
        })
    }
}

/// An artifact content the download route asks a [`FileFetcher`] for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentAsk {
    pub sha256: String,
    pub size: u64,
    /// How the server holds it (`whole`, `chunked`, `missing`).
    pub stored: String,
    /// What to call it in messages.
    pub label: String,
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
    /// Exports and imports bundles for the dashboard; `None` answers the bundle routes with
    /// `503`.
    pub bundles: Option<Arc<dyn BundleService>>,
}

impl DashboardConfig {
    /// 127.0.0.1:23300 over the store in `store_dir`, files from the cache only.
    pub fn new(store_dir: PathBuf) -> DashboardConfig {
        DashboardConfig {
            store_dir,
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: DEFAULT_PORT,
            files: None,
            bundles: None,
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
            .field("bundles", &self.bundles.is_some())
            .finish()
    }
}
