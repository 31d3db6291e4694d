//! What every route shares: the store connections, the live-update ticks, the shutdown signal
//! and the file fetcher.

use std::sync::Arc;

use tokio::sync::watch;

use crate::assets::IndexPage;
use crate::config::FileFetcher;
use crate::store_pool::StorePool;

/// The router's state.
pub struct AppState {
    pub pool: Arc<StorePool>,
    pub files: Option<Arc<dyn FileFetcher>>,
    /// Bumped each time the store changed (another connection committed).
    pub ticks: watch::Receiver<u64>,
    /// Becomes true when the server shuts down: open event streams end.
    pub closing: watch::Receiver<bool>,
    /// `index.html` with this process's token.
    pub index: IndexPage,
}

/// Resolves when the server is shutting down (or its state is gone).
pub async fn closed(mut closing: watch::Receiver<bool>) {
    let _ = closing.wait_for(|&c| c).await;
}
