//! `runicorn-hub import` and the dashboard's import: offline bundles into the store, checked
//! whole before anything changes and applied as one step.
//!
//! 1. `landing`: each bundle (ours, or upstream runicorn's `.tar.gz` / viewer `.zip`) is read by
//!    the bundle crate's checking readers into a fresh directory under `<store>/tmp/imports/`, on
//!    the store's file system; a hostile or damaged one is refused there, naming the member.
//! 2. `apply`: one store step ([`runicorn_store::Store::begin_atomic`]) around every source of
//!    every bundle; each landed root is read by a real agent and stored as a merge, exactly as a
//!    sync would store it, under the source's remote (or `--as`).
//! 3. Commit; or, for a dry run or on any error, roll back: the store's rows are as they were.
//!    The landed directories are removed either way.

mod apply;
mod error;
mod landing;

use std::path::{Path, PathBuf};

use runicorn_web::bundle_reports::{ImportReport, ImportTotals, ImportedBundle, RunVerdict};

use crate::store_thread::StoreHandle;
pub use error::ImportError;
pub use landing::ImportInput;

/// Receives progress while an import runs.
pub trait ImportObserver: Send + Sync {
    /// Compressed bytes of the current bundle read so far.
    fn bytes_read(&self, _bytes: u64) {}
    /// Runs listed by the agent over the current source.
    fn runs_listed(&self, _runs: u64) {}
    /// Points stored for the current source.
    fn points_stored(&self, _points: u64) {}
}

/// An observer that ignores everything.
pub struct Quiet;
impl ImportObserver for Quiet {}

/// How to import.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// The store folder.
    pub store_dir: PathBuf,
    /// Store every source under this remote instead of the name the bundle gives.
    pub as_remote: Option<String>,
    /// Change nothing; say what would change.
    pub dry_run: bool,
    /// The `runicorn-agent` that reads the landed roots.
    pub agent_program: PathBuf,
}

/// Imports `inputs` into the store as one step (see the module doc).
pub async fn import_bundles(
    inputs: Vec<ImportInput>,
    options: &ImportOptions,
    observer: &dyn ImportObserver,
) -> Result<ImportReport, ImportError> {
    let work = landing::work_dir(&options.store_dir)?;
    let result = import_landed(inputs, options, observer, &work).await;
    landing::remove_dir(&work).await;
    result
}

async fn import_landed(
    inputs: Vec<ImportInput>,
    options: &ImportOptions,
    observer: &dyn ImportObserver,
    work: &Path,
) -> Result<ImportReport, ImportError> {
    // Everything is checked before anything changes.
    let started = std::time::Instant::now();
    let mut landed = Vec::new();
    for (i, input) in inputs.into_iter().enumerate() {
        let dest = work.join(i.to_string());
        landed.push(landing::land(input, &dest, options.as_remote.as_deref(), observer).await?);
    }
    tracing::debug!(
        ms = started.elapsed().as_millis() as u64,
        "import: bundles landed"
    );

    let store_dir = options.store_dir.clone();
    let store = tokio::task::spawn_blocking(move || runicorn_store::Store::open(&store_dir))
        .await
        .map_err(|e| ImportError::Store(e.to_string()))?
        .map_err(|e| ImportError::Store(e.to_string()))?;
    let store = StoreHandle::spawn(store);
    call(&store, |s| s.begin_atomic()).await?;
    let applied = apply_all(&store, &landed, options, observer).await;
    match applied {
        Ok(report) if !options.dry_run => {
            call(&store, |s| s.commit_atomic()).await?;
            tracing::debug!(
                ms = started.elapsed().as_millis() as u64,
                "import: committed"
            );
            Ok(report)
        }
        Ok(report) => {
            call(&store, |s| s.rollback_atomic()).await?;
            Ok(report)
        }
        Err(e) => {
            let _ = call(&store, |s| s.rollback_atomic()).await;
            Err(e)
        }
    }
}

async fn call(
    store: &StoreHandle,
    f: impl FnOnce(&mut runicorn_store::Store) -> Result<(), runicorn_store::StoreError>
        + Send
        + 'static,
) -> Result<(), ImportError> {
    store
        .call(f)
        .await
        .map_err(|e| ImportError::Store(e.to_string()))?
        .map_err(|e| ImportError::Store(e.to_string()))
}

async fn apply_all(
    store: &StoreHandle,
    landed: &[landing::Landed],
    options: &ImportOptions,
    observer: &dyn ImportObserver,
) -> Result<ImportReport, ImportError> {
    let mut totals = ImportTotals::default();
    let mut bundles = Vec::new();
    for bundle in landed {
        let mut sources = Vec::new();
        for plan in &bundle.sources {
            let outcome = apply::import_source(
                store,
                plan,
                &options.agent_program,
                options.dry_run,
                observer,
            )
            .await?;
            for run in &outcome.report.runs {
                match run.verdict {
                    RunVerdict::New => totals.runs_new += 1,
                    RunVerdict::Updated => totals.runs_updated += 1,
                    RunVerdict::Unchanged => totals.runs_unchanged += 1,
                    RunVerdict::Older => totals.runs_older += 1,
                }
            }
            totals.points += outcome.points;
            totals.log_bytes += outcome.log_bytes;
            totals.files += outcome.files;
            totals.file_bytes += outcome.file_bytes;
            sources.push(outcome.report);
        }
        bundles.push(ImportedBundle {
            file: bundle.file.clone(),
            kind: bundle.kind,
            created_at: bundle.created_at,
            sources,
        });
    }
    Ok(ImportReport {
        dry_run: options.dry_run,
        bundles,
        totals,
    })
}
