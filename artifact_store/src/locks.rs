//! The store's two locks (`flock`, released when dropped): the pool lock
//! `artifacts/.pool/.lock` (writers hold it shared from pooling bytes until their version is in
//! `versions.json`; packing and garbage collection hold it exclusive), and an artifact's `.lock`
//! (held exclusive to rewrite its `versions.json` or claim a version).

use std::fs::{self, File, OpenOptions};
use std::path::Path;

use runicorn_protocol::run_format::artifacts::{ARTIFACT_LOCK, POOL_LOCK};

use crate::error::{IoContext, StoreError};
use crate::layout;

/// A held lock; dropping it releases the lock.
#[derive(Debug)]
pub struct HeldLock {
    _file: File,
}

fn open_lock_file(path: &Path) -> Result<File, StoreError> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).at(parent)?;
    }
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .at(path)
}

/// The pool lock, shared (writers). Waits while packing or gc runs.
pub fn pool_shared(root: &Path) -> Result<HeldLock, StoreError> {
    let path = layout::artifacts_dir(root).join(POOL_LOCK);
    let file = open_lock_file(&path)?;
    file.lock_shared().at(&path)?;
    Ok(HeldLock { _file: file })
}

/// The pool lock, exclusive (packing, gc). Waits for writers in the middle of logging.
pub fn pool_exclusive(root: &Path) -> Result<HeldLock, StoreError> {
    let path = layout::artifacts_dir(root).join(POOL_LOCK);
    let file = open_lock_file(&path)?;
    file.lock().at(&path)?;
    Ok(HeldLock { _file: file })
}

/// The pool lock, shared, only if no one holds it exclusive now (`None`: packing or gc is at
/// work).
pub fn try_pool_shared(root: &Path) -> Result<Option<HeldLock>, StoreError> {
    let path = layout::artifacts_dir(root).join(POOL_LOCK);
    let file = open_lock_file(&path)?;
    match file.try_lock_shared() {
        Ok(()) => Ok(Some(HeldLock { _file: file })),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(StoreError::io(&path, e)),
    }
}

/// The pool lock, exclusive, only if no one holds it now (`None`: a writer, packing or gc is at
/// work; the background packer tries again later rather than wait).
pub fn try_pool_exclusive(root: &Path) -> Result<Option<HeldLock>, StoreError> {
    let path = layout::artifacts_dir(root).join(POOL_LOCK);
    let file = open_lock_file(&path)?;
    match file.try_lock() {
        Ok(()) => Ok(Some(HeldLock { _file: file })),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(StoreError::io(&path, e)),
    }
}

/// An artifact's own lock, exclusive, in its folder `dir` (which must exist).
pub fn artifact_exclusive(dir: &Path) -> Result<HeldLock, StoreError> {
    let path = dir.join(ARTIFACT_LOCK);
    let file = open_lock_file(&path)?;
    file.lock().at(&path)?;
    Ok(HeldLock { _file: file })
}
