//! The dashboard's [`BundleService`]: its export is [`crate::bundle_export::export_runs`] on the
//! blocking pool, its import [`crate::bundle_import::import_bundles`] of one uploaded file, each
//! answered in the words of `runicorn_web::bundle_reports` with the upload's own name in place
//! of its temporary path.

use std::io::{BufWriter, Write};
use std::path::PathBuf;

use futures::future::BoxFuture;
use runicorn_store::RunKey;
use runicorn_web::bundle_reports::{
    BundleFailure, BundleService, ExportContents, ExportReport, ImportReport,
};

use crate::bundle_import::{import_bundles, ImportInput, ImportOptions, Quiet};

/// Exports and imports bundles of the store in `store_dir` for the dashboard.
#[derive(Debug, Clone)]
pub struct HubBundles {
    pub store_dir: PathBuf,
    /// The `runicorn-agent` that reads imported roots.
    pub agent_program: PathBuf,
}

fn failure(message: String) -> BundleFailure {
    BundleFailure {
        message,
        member: None,
    }
}

impl BundleService for HubBundles {
    fn export(
        &self,
        runs: Vec<RunKey>,
        contents: ExportContents,
        out: PathBuf,
    ) -> BoxFuture<'static, Result<ExportReport, BundleFailure>> {
        let store_dir = self.store_dir.clone();
        Box::pin(async move {
            let task = tokio::task::spawn_blocking(move || {
                let file = std::fs::File::create(&out).map_err(|e| {
                    failure(format!(
                        "cannot write the bundle to {}: {e}; free disk space in the hub's store folder",
                        out.display()
                    ))
                })?;
                let mut writer = BufWriter::new(file);
                let mut report =
                    crate::bundle_export::export_runs(&store_dir, &runs, contents, &mut writer)
                        .map_err(|e| e.failure())?;
                writer.flush().map_err(|e| {
                    failure(format!("cannot write the bundle to {}: {e}", out.display()))
                })?;
                report.file = out.display().to_string();
                Ok(report)
            });
            task.await
                .unwrap_or_else(|e| Err(failure(format!("the export stopped: {e}"))))
        })
    }

    fn import(
        &self,
        bundle: PathBuf,
        name: String,
        dry_run: bool,
        as_remote: Option<String>,
    ) -> BoxFuture<'static, Result<ImportReport, BundleFailure>> {
        let options = ImportOptions {
            store_dir: self.store_dir.clone(),
            as_remote,
            dry_run,
            agent_program: self.agent_program.clone(),
        };
        Box::pin(async move {
            let path = bundle.display().to_string();
            let named = |text: String| text.replace(&path, &name);
            match import_bundles(vec![ImportInput::File(bundle.clone())], &options, &Quiet).await {
                Ok(mut report) => {
                    for b in &mut report.bundles {
                        b.file = named(b.file.clone());
                    }
                    Ok(report)
                }
                Err(e) => Err(BundleFailure {
                    message: named(e.to_string()),
                    member: e.member().map(str::to_owned),
                }),
            }
        })
    }
}
