//! The hub's store on a thread of its own: SQLite calls block, so async code hands them to this
//! thread as closures and awaits the answer, and the runtime's workers never wait on the disk.
//! One thread means one writer, which is what SQLite wants.

use std::path::Path;
use std::sync::mpsc;

use runicorn_store::{Store, StoreError};
use tokio::sync::oneshot;

type Job = Box<dyn FnOnce(&mut Store) + Send>;

/// A handle to the store thread; cloning it shares the thread.
#[derive(Clone)]
pub struct StoreHandle {
    jobs: mpsc::Sender<Job>,
}

/// The store thread is gone (it panicked or was shut down).
#[derive(Debug, thiserror::Error)]
#[error("the store thread stopped")]
pub struct StoreGone;

impl StoreHandle {
    /// Opens the store in `dir` on a new thread.
    pub fn open(dir: &Path) -> Result<StoreHandle, StoreError> {
        let store = Store::open(dir)?;
        Ok(Self::spawn(store))
    }

    /// Moves an open store to a new thread.
    pub fn spawn(mut store: Store) -> StoreHandle {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("runicorn-store".into())
            .spawn(move || {
                while let Ok(job) = rx.recv() {
                    job(&mut store);
                }
            })
            .map(|_| ())
            .unwrap_or_else(|e| tracing::error!("cannot start the store thread: {e}"));
        StoreHandle { jobs: tx }
    }

    /// Runs `f` on the store thread and returns its result.
    pub async fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Store) -> R + Send + 'static,
    ) -> Result<R, StoreGone> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |store| {
            let _ = tx.send(f(store));
        });
        self.jobs.send(job).map_err(|_| StoreGone)?;
        rx.await.map_err(|_| StoreGone)
    }
}
