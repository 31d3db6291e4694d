//! Offline bundles (`docs/run-format.md`, "Offline bundles (format)"): one zstd-compressed tar
//! file carrying run directories (and artifact versions) of one or more storage roots, its manifest first. This crate owns the
//! format ([`format`]), the writer ([`writer`]) and a reader that checks everything and refuses
//! hostile or damaged bundles ([`reader`], bounded by [`limits`]). Exporting and importing
//! (agent, hub) are built on it elsewhere.

mod counting;
pub mod error;
pub mod format;
mod frames;
pub mod hostile;
pub mod limits;
pub mod paths;
pub mod reader;
pub mod upstream;
pub mod writer;

pub use counting::CountingWriter;
pub use error::BundleError;
pub use format::{
    Annotation, ArtifactVersionRef, Manifest, ManifestMember, Source, FORMAT_VERSION,
    METADATA_ONLY_FILES,
};
pub use limits::Limits;
pub use reader::{read_bundle, LandedMember, ReadBundle};
pub use writer::{
    write_bundle, write_bundle_generated, write_bundle_known, write_bundle_with_progress,
    GeneratedFile, KnownHash, KnownHashes, NoProgress, Omit, OmittedFile, Phase, Progress, Skipped,
    SourceInput, WriteOptions, WriteReport,
};
