//! `FetchError`: why a file of a run could not be brought into the cache. Every message names
//! the file, the run or the remote, and says what to do.

use runicorn_store::StoreError;

/// Why [`super::RemoteFiles::ensure_cached`] failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("run {run} has no file {path:?} in its manifest; list its files with the Files tab or the API")]
    NotInManifest { run: String, path: String },

    #[error("file path {path:?} is refused: {reason}")]
    BadPath { path: String, reason: String },

    #[error(
        "remote {remote} is no longer remembered; connect it again with `runicorn-hub connect`"
    )]
    UnknownRemote { remote: String },

    #[error("the stored address of remote {remote} is unreadable ({reason}); connect it again with `runicorn-hub connect`")]
    BadAddress { remote: String, reason: String },

    #[error("remote {remote} has not been synced yet, so its storage root is unknown; run `runicorn-hub connect` first")]
    NotSynced { remote: String },

    #[error("remote {remote} is offline ({reason}) and file {path:?} is not in the hub's cache; try again once the server is reachable")]
    Offline {
        remote: String,
        path: String,
        reason: String,
    },

    #[error("the transfer of {path:?} from {remote} broke off after {done} of {size} bytes ({reason}); the next attempt resumes from there")]
    Interrupted {
        remote: String,
        path: String,
        done: u64,
        size: u64,
        reason: String,
    },

    #[error("cannot read {path:?} on {remote}: {reason}")]
    Remote {
        remote: String,
        path: String,
        reason: String,
    },

    #[error("{path:?} on {remote} leads outside the agent's storage root (to {resolved}); it was not read")]
    OutsideRoot {
        remote: String,
        path: String,
        resolved: String,
    },

    #[error("{path:?} on {remote} is not a regular file; it was not read")]
    NotRegular { remote: String, path: String },

    #[error("{path:?} on {remote} changed since the hub last synced it ({reason}); sync again (`runicorn-hub connect`) and retry")]
    Changed {
        remote: String,
        path: String,
        reason: String,
    },

    #[error("the bytes of {path:?} from {remote} do not match the manifest's SHA-256 (expected {expected}, got {actual}); they were discarded, not cached. Sync again; if it persists, the file changes on the server or the link corrupts data")]
    HashMismatch {
        remote: String,
        path: String,
        expected: String,
        actual: String,
    },

    #[error("the bytes of {what} are not on {remote} ({reason}); nothing was fetched. Its pool may have lost them (check with `runicorn-agent artifacts` there)")]
    ContentMissing {
        remote: String,
        what: String,
        reason: String,
    },

    #[error("a chunk of {what} from {remote} ({location}) does not match its SHA-256 (expected {chunk}, got {actual}); it was refused and nothing of it was cached. The copy on the server is damaged or the link corrupts data: check the server's pool (`runicorn-agent artifacts gc --dry-run` lists damage) and retry")]
    ChunkRefused {
        remote: String,
        what: String,
        chunk: String,
        location: String,
        actual: String,
    },

    #[error("the agent on {remote} sent an unusable chunk list for {what}: {reason}; nothing was fetched. Check or upgrade runicorn-agent on that server")]
    BadChunkList {
        remote: String,
        what: String,
        reason: String,
    },

    #[error("the agent on {remote} cannot list chunks (it lacks the `chunks` capability); upgrade it (`runicorn-hub connect --install-agent`) to fetch artifacts")]
    AgentTooOld { remote: String },

    #[error("cannot write {}: {source}; check the output directory's free space and permissions", path.display())]
    LocalWrite {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("hub file cache: {0}")]
    Cache(#[from] StoreError),

    #[error("the hub's store thread stopped; restart runicorn-hub")]
    StoreGone,
}

impl FetchError {
    /// True when the remote could not be reached at all (nothing was transferred).
    pub fn is_offline(&self) -> bool {
        matches!(self, FetchError::Offline { .. })
    }

    /// True when the link failed mid-way (a partial transfer is kept for the next attempt).
    pub fn is_interrupted(&self) -> bool {
        matches!(self, FetchError::Interrupted { .. })
    }
}

impl From<crate::store_thread::StoreGone> for FetchError {
    fn from(_: crate::store_thread::StoreGone) -> FetchError {
        FetchError::StoreGone
    }
}
