//! The store's error type: each message names the artifact, version or file and says what to do.

use std::io;
use std::path::{Path, PathBuf};

use runicorn_protocol::run_format::json_file::RecordError;

/// Why an artifact-store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file or folder could not be read or written.
    #[error("{path}: {cause}")]
    Io { path: PathBuf, cause: io::Error },
    /// A JSON file of the store could not be read.
    #[error(transparent)]
    Record(#[from] RecordError),
    /// A name, alias, reference or file path the caller gave is not acceptable.
    #[error("{0}")]
    Invalid(String),
    /// The artifact, version or file asked for does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The store holds something it should not (wrong bytes, a lost chunk).
    #[error("{0}")]
    Damaged(String),
    /// Garbage collection will not run: it cannot tell what is still in use.
    #[error("{0}")]
    Refused(String),
}

impl StoreError {
    pub(crate) fn io(path: &Path, cause: io::Error) -> StoreError {
        StoreError::Io {
            path: path.to_owned(),
            cause,
        }
    }
}

/// Adds the path to an I/O result.
pub(crate) trait IoContext<T> {
    fn at(self, path: &Path) -> Result<T, StoreError>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn at(self, path: &Path) -> Result<T, StoreError> {
        self.map_err(|cause| StoreError::io(path, cause))
    }
}
