//! The dashboard's store connections: a small pool of read-only [`Store`]s for the routes and
//! one writer for annotations and the recycle bin. Every call runs on tokio's blocking pool
//! (`spawn_blocking`), so SQLite never blocks an async task. The sync writes through its own
//! connection; WAL and SQLite's busy timeout let all of them share the file.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use runicorn_store::{Store, StoreError};
use tokio::sync::Semaphore;

use crate::error::ApiError;

/// Read connections kept open at most (the machine may have 2 cores; more buys nothing).
const READERS: usize = 4;

/// Read-only connections handed out one per call, and the one writer.
pub struct StorePool {
    dir: PathBuf,
    idle: Mutex<Vec<Store>>,
    permits: Semaphore,
    writer: Arc<Mutex<Store>>,
}

impl StorePool {
    /// Opens the store for writing (creating or migrating it) and one reader, so a store that
    /// cannot be read fails here rather than at the first request.
    pub fn open(dir: &Path) -> Result<StorePool, StoreError> {
        let writer = Store::open(dir)?;
        let reader = Store::open_read_only(dir)?;
        Ok(StorePool {
            dir: dir.to_owned(),
            idle: Mutex::new(vec![reader]),
            permits: Semaphore::new(READERS),
            writer: Arc::new(Mutex::new(writer)),
        })
    }

    /// A read-only connection of its own (for the live-update poller).
    pub fn open_reader(&self) -> Result<Store, StoreError> {
        Store::open_read_only(&self.dir)
    }

    /// Runs `f` on a read-only connection on the blocking pool.
    pub async fn read<T, F>(self: &Arc<Self>, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> Result<T, ApiError> + Send + 'static,
    {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| ApiError::unavailable("the dashboard is shutting down"))?;
        let pool = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let store = match pool.idle.lock().map(|mut idle| idle.pop()) {
                Ok(Some(store)) => store,
                _ => Store::open_read_only(&pool.dir)?,
            };
            let out = f(&store);
            if let Ok(mut idle) = pool.idle.lock() {
                idle.push(store);
            }
            out
        })
        .await?
    }

    /// Runs `f` on the writer on the blocking pool.
    pub async fn write<T, F>(self: &Arc<Self>, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Store) -> Result<T, ApiError> + Send + 'static,
    {
        let writer = Arc::clone(&self.writer);
        tokio::task::spawn_blocking(move || {
            let mut store = writer
                .lock()
                .map_err(|_| ApiError::internal("the dashboard's store writer failed earlier"))?;
            f(&mut store)
        })
        .await?
    }
}
