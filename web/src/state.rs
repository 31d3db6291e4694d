//! What every route shares: the store connections and folder, the live-update ticks, the
//! shutdown signal, the file fetcher, the bundle service and the bundle uploads waiting.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

use crate::error::ApiError;

use crate::assets::IndexPage;
use crate::bundle_reports::BundleService;
use crate::config::FileFetcher;
use crate::routes::bundles::Uploads;
use crate::store_pool::StorePool;

/// The router's state.
pub struct AppState {
    pub pool: Arc<StorePool>,
    pub files: Option<Arc<dyn FileFetcher>>,
    /// The hub's store folder (bundle uploads and exports wait under its `tmp/`).
    pub store_dir: PathBuf,
    /// Exports and imports bundles; `None`: the bundle routes answer `503`.
    pub bundles: Option<Arc<dyn BundleService>>,
    /// Uploaded bundle files waiting for their import.
    pub uploads: Uploads,
    /// Bumped each time the store changed (another connection committed).
    pub ticks: watch::Receiver<u64>,
    /// Becomes true when the server shuts down: open event streams end.
    pub closing: watch::Receiver<bool>,
    /// `index.html` with this process's token.
    pub index: IndexPage,
    /// Places for open event streams ([`MAX_STREAMS`]), so streams alone never fill the
    /// connection cap.
    pub streams: Arc<Semaphore>,
}

/// Most event streams (`/live` and `/api/events` together) open at once: half the connection
/// cap, so the other half always serves plain requests.
pub const MAX_STREAMS: usize = crate::connections::MAX_CONNECTIONS / 2;

impl AppState {
    /// A place for one more event stream, held until the stream ends; `503` when all are taken.
    pub fn stream_place(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        Arc::clone(&self.streams).try_acquire_owned().map_err(|_| {
            ApiError::unavailable(format!(
                "{MAX_STREAMS} event streams are open already; close some dashboard tabs"
            ))
        })
    }
}

/// Resolves when the server is shutting down (or its state is gone).
pub async fn closed(mut closing: watch::Receiver<bool>) {
    let _ = closing.wait_for(|&c| c).await;
}
