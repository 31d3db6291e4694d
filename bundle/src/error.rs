//! The typed errors of writing and reading a bundle. Reader errors name the member (the tar
//! entry or the manifest path) and the reason.

use std::io;
use std::path::PathBuf;

/// What went wrong writing or reading a bundle.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    // --- writer ---
    #[error("run directory {run:?} cannot be bundled: {reason}")]
    InvalidRunDir { run: String, reason: String },
    #[error("{path:?} cannot be bundled: {reason}")]
    InvalidExtraPath { path: String, reason: String },
    #[error("file {path} changed while it was being bundled (size or content differs); retry once the run stops writing it")]
    FileChanged { path: PathBuf },
    #[error("file {path} no longer has the SHA-256 the agent's index cached for it (its content changed, its size and modification time did not); the bundle written so far is incomplete: export again, hashing every file")]
    StaleKnownHash { path: PathBuf },
    #[error("reading {path}: {source}")]
    ReadFile { path: PathBuf, source: io::Error },
    #[error("writing the bundle: {0}")]
    WriteBundle(#[source] io::Error),

    // --- reader ---
    #[error("bundle is damaged at member {member:?}: {reason}")]
    Corrupt { member: String, reason: String },
    #[error("bundle is truncated in member {member:?}")]
    Truncated { member: String },
    #[error("the first member is {found:?}, not bundle.json: not a bundle or a damaged one")]
    ManifestNotFirst { found: String },
    #[error("bundle.json is {size} bytes, over the limit of {limit}")]
    ManifestTooLarge { size: u64, limit: u64 },
    #[error("bundle.json is not a valid manifest: {reason}")]
    ManifestInvalid { reason: String },
    #[error("bundle.json has format version {version}, not supported (this reader knows version 1); use a newer runicorn")]
    UnknownFormatVersion { version: u64 },
    #[error("member {member:?} has a path that climbs out with `..`")]
    PathTraversal { member: String },
    #[error("member {member:?} has an absolute path")]
    AbsolutePath { member: String },
    #[error("member {member:?} has an invalid path: {reason}")]
    InvalidPath { member: String, reason: String },
    #[error("member {member:?} is a symbolic link; bundles hold regular files only")]
    Symlink { member: String },
    #[error("member {member:?} is a hard link; bundles hold regular files only")]
    HardLink { member: String },
    #[error("member {member:?} is a {kind}; bundles hold regular files only")]
    SpecialFile { member: String, kind: String },
    #[error("member {member:?} appears twice")]
    DuplicateMember { member: String },
    #[error("member {member:?} is a directory in one place and a file in another")]
    PathConflict { member: String },
    #[error("member {member:?} says {expected} bytes but {what} {actual}")]
    SizeMismatch {
        member: String,
        expected: u64,
        what: &'static str,
        actual: u64,
    },
    #[error("member {member:?} takes the bundle over its limit of {limit} uncompressed bytes (a decompression bomb?)")]
    TotalSizeExceeded { member: String, limit: u64 },
    #[error("member {member:?} decompresses over {limit} times its compressed size (a decompression bomb?)")]
    CompressionRatioExceeded { member: String, limit: u64 },
    #[error("member {member:?} has SHA-256 {actual}, the manifest says {expected}")]
    ChecksumMismatch {
        member: String,
        expected: String,
        actual: String,
    },
    #[error("member {member:?} is in the manifest but not in the bundle")]
    MissingMember { member: String },
    #[error("member {member:?} is in the bundle but not in the manifest")]
    UnlistedMember { member: String },
    #[error("member {member:?} is listed as omitted, yet its content is in the bundle")]
    OmittedContent { member: String },
    #[error("destination {path} must be an existing empty directory")]
    DestinationNotEmpty { path: PathBuf },
    #[error("writing {path}: {source}")]
    WriteFile { path: PathBuf, source: io::Error },
}

impl BundleError {
    /// The member the error names, when it names one.
    pub fn member(&self) -> Option<&str> {
        use BundleError::*;
        match self {
            Corrupt { member, .. }
            | Truncated { member }
            | PathTraversal { member }
            | AbsolutePath { member }
            | InvalidPath { member, .. }
            | Symlink { member }
            | HardLink { member }
            | SpecialFile { member, .. }
            | DuplicateMember { member }
            | PathConflict { member }
            | SizeMismatch { member, .. }
            | TotalSizeExceeded { member, .. }
            | CompressionRatioExceeded { member, .. }
            | ChecksumMismatch { member, .. }
            | MissingMember { member }
            | UnlistedMember { member }
            | OmittedContent { member } => Some(member),
            ManifestNotFirst { .. }
            | ManifestTooLarge { .. }
            | ManifestInvalid { .. }
            | UnknownFormatVersion { .. } => Some(crate::format::MANIFEST_NAME),
            _ => None,
        }
    }
}
