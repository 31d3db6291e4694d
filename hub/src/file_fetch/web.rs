//! The dashboard's [`runicorn_web::FileFetcher`] over [`RemoteFiles`]: failures sorted into
//! the kinds the file route answers with.

use futures::future::BoxFuture;
use runicorn_store::{CachedLayout, RemoteId, RunRow};
use runicorn_web::{
    ContentAsk, FetchFailure, FetchFailureKind, FetchProgress, FetchStarted, FetchedFile,
    FileFetcher,
};

use super::{FetchError, RemoteFiles};

impl FileFetcher for RemoteFiles {
    fn fetch(
        &self,
        run: RunRow,
        path: String,
        progress: Option<FetchProgress>,
        started: Option<FetchStarted>,
    ) -> BoxFuture<'static, Result<FetchedFile, FetchFailure>> {
        let this = self.clone();
        Box::pin(async move {
            match this
                .ensure_cached_observed(run, path, progress, started)
                .await
            {
                Ok(f) => Ok(FetchedFile {
                    sha256: f.sha256,
                    size: f.size,
                    path: f.path,
                }),
                Err(e) => Err(FetchFailure {
                    kind: kind_of(&e),
                    message: e.to_string(),
                }),
            }
        })
    }

    fn fetch_content(
        &self,
        remote: RemoteId,
        content: ContentAsk,
    ) -> BoxFuture<'static, Result<CachedLayout, FetchFailure>> {
        let this = self.clone();
        Box::pin(async move {
            let want = super::ContentWanted {
                sha256: content.sha256,
                size: content.size,
                stored: content.stored,
                label: content.label,
            };
            this.ensure_content(remote, want, None, Default::default())
                .await
                .map_err(|e| FetchFailure {
                    kind: kind_of(&e),
                    message: e.to_string(),
                })
        })
    }
}

fn kind_of(e: &FetchError) -> FetchFailureKind {
    match e {
        FetchError::Offline { .. } => FetchFailureKind::Offline,
        FetchError::NotInManifest { .. } | FetchError::ContentMissing { .. } => {
            FetchFailureKind::NotFound
        }
        FetchError::BadPath { .. }
        | FetchError::OutsideRoot { .. }
        | FetchError::NotRegular { .. } => FetchFailureKind::Refused,
        _ => FetchFailureKind::Failed,
    }
}
