//! Why an import was refused. Nothing was imported in any case: the store's rows are as they
//! were and the landed files are removed.

use std::path::PathBuf;

/// An import that did not happen, and why.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read {file}: {cause}")]
    Open { file: String, cause: std::io::Error },
    #[error("{file} is not a bundle: it is neither a runicorn bundle (zstd), nor upstream runicorn's `runicorn export` archive (.tar.gz), nor its viewer's export (.zip)")]
    UnknownKind { file: String },
    #[error("{file} was refused, nothing was imported: {cause}")]
    Refused {
        file: String,
        /// The member to blame, when one is.
        member: Option<String>,
        cause: String,
    },
    #[error("{name:?} is not a usable remote name (letters, digits, `.`, `-`, `_`); give one with --as NAME")]
    RemoteName { name: String },
    #[error(
        "--as names one remote, but {file} carries {sources} storage roots; import it without --as"
    )]
    AsWithManySources { file: String, sources: usize },
    #[error("cannot prepare a temporary directory {}: {cause}", path.display())]
    Temp {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("the agent reading the landed bundle failed: {0}")]
    Agent(String),
    #[error("the store: {0}")]
    Store(String),
}

impl ImportError {
    /// The bundle member to blame, when one is.
    pub fn member(&self) -> Option<&str> {
        match self {
            ImportError::Refused { member, .. } => member.as_deref(),
            _ => None,
        }
    }
}
