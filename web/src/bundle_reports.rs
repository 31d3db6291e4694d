//! Offline bundles as the hub's CLI (`--json`) and the API speak of them: what an import did or
//! would do ([`ImportReport`]), what an export wrote ([`ExportReport`]), and the
//! [`BundleService`] through which the dashboard asks the hub to export and import (the hub owns
//! the agent and the bundle reader; the dashboard only moves bytes and shows the reports).

use std::path::PathBuf;

use futures::future::BoxFuture;
use runicorn_store::RunKey;
use serde::{Deserialize, Serialize};

/// What an import did, or would do with `dry_run`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct ImportReport {
    /// Nothing was changed: this is what the import would do.
    pub dry_run: bool,
    /// One entry per bundle file, in the order given.
    pub bundles: Vec<ImportedBundle>,
    pub totals: ImportTotals,
}

/// One bundle file of an import.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct ImportedBundle {
    /// The file as the user named it (`-` for standard input, the upload's name in the API).
    pub file: String,
    pub kind: BundleKind,
    /// Creation time written in the bundle (seconds since the epoch), when it says.
    pub created_at: Option<f64>,
    /// One entry per storage root the bundle carries (an agent's export has one; a hub's
    /// export one per remote).
    pub sources: Vec<ImportedSource>,
}

/// What kind of file a bundle is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum BundleKind {
    /// Our format (`docs/run-format.md`, "Offline bundles").
    Runicorn,
    /// Upstream runicorn's `runicorn export` archive (`.tar.gz`).
    UpstreamTar,
    /// Upstream runicorn's viewer export (`.zip`).
    UpstreamZip,
}

/// One storage root of a bundle and the remote its runs go to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct ImportedSource {
    /// The remote the runs are stored under (the bundle's source name, or `--as`).
    pub remote: String,
    /// The remote did not exist before this import.
    pub remote_created: bool,
    /// The machine and root the bundle says the runs came from.
    pub host: Option<String>,
    pub root: Option<String>,
    pub runs: Vec<ImportedRun>,
    /// Artifacts inserted or updated.
    pub artifacts: u64,
}

/// One run of an import and what happened to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct ImportedRun {
    /// Run directory relative to its root (the run's key on its remote).
    pub dir: String,
    pub run_id: String,
    pub path: String,
    pub status: String,
    pub verdict: RunVerdict,
}

/// What an import does to one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum RunVerdict {
    /// The store did not have it.
    New,
    /// The bundle's copy is further along (more points or log, a final status): stored.
    Updated,
    /// The store already holds exactly this.
    Unchanged,
    /// The store's copy is further along than the bundle's: the store's is kept.
    Older,
}

/// Sums over every bundle of an import.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct ImportTotals {
    pub runs_new: u64,
    pub runs_updated: u64,
    pub runs_unchanged: u64,
    pub runs_older: u64,
    /// Metric points stored (in a dry run: that would be stored).
    pub points: u64,
    pub log_bytes: u64,
    /// Run files whose bytes came into the file cache, and their bytes.
    pub files: u64,
    pub file_bytes: u64,
}

/// What an export wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct ExportReport {
    /// Where it went (`-` for standard output).
    pub file: String,
    pub runs: u64,
    /// Files listed in the manifest, with their bytes inside and those only listed
    /// (`--metadata-only`, or not in the hub's cache).
    pub members: u64,
    pub omitted: u64,
    /// Distinct contents written (files sharing bytes count once) and their bytes.
    pub contents: u64,
    pub content_bytes: u64,
    /// Size of the bundle file.
    pub bundle_bytes: u64,
    /// Artifact versions carried (`with_artifacts`), each with its manifest and metadata.
    pub artifact_versions: u64,
    /// Files left out and why (links, devices).
    pub skipped: Vec<ExportSkipped>,
}

/// What an export carries besides each run's records, events and log: the choices of
/// `runicorn-hub export` and of the dashboard's export.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportContents {
    /// Carry only the records, events and logs; list every other file without its bytes.
    pub metadata_only: bool,
    /// Carry the artifact versions the runs produced or used: their manifests, metadata and
    /// (unless `metadata_only`) the contents the hub's cache holds.
    pub with_artifacts: bool,
}

/// A file an export left out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct ExportSkipped {
    pub path: String,
    pub reason: String,
}

/// Why an import was refused: the message names the bundle, the member (when one is to
/// blame) and what to do. Nothing was imported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct BundleFailure {
    pub message: String,
    /// The bundle member to blame, when one is.
    pub member: Option<String>,
}

/// What the hub gives the dashboard for exporting and importing bundles.
pub trait BundleService: Send + Sync + 'static {
    /// Writes a bundle of `runs` (with their annotations) to the file `out`.
    fn export(
        &self,
        runs: Vec<RunKey>,
        contents: ExportContents,
        out: PathBuf,
    ) -> BoxFuture<'static, Result<ExportReport, BundleFailure>>;

    /// Imports the bundle file `bundle` (any kind [`BundleKind`] names; `name` is what to call
    /// it in the report) under `as_remote` when given; with `dry_run`, changes nothing and
    /// says what it would do.
    fn import(
        &self,
        bundle: PathBuf,
        name: String,
        dry_run: bool,
        as_remote: Option<String>,
    ) -> BoxFuture<'static, Result<ImportReport, BundleFailure>>;
}
