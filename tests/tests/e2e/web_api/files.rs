//! `GET /api/runs/{id}/files/{path}`: served from the store's cache, fetched on demand through a
//! `FileFetcher`, only for paths in the run's manifest, SVG as plain text.

use std::path::PathBuf;
use std::sync::Arc;

use futures::future::BoxFuture;
use runicorn_store::{RunRow, Store};
use runicorn_web::{
    FetchFailure, FetchFailureKind, FetchProgress, FetchStarted, FetchedFile, FileFetcher,
};

use super::world::{error_message, run_by_run_id, Served, World, PNG};

/// Brings a file of a `local:` remote's run into the store's cache by reading it where the
/// run lives: the same job the hub's SFTP fetcher does for SSH remotes.
pub(super) struct LocalFetcher {
    pub(super) root: PathBuf,
    pub(super) hub_dir: PathBuf,
}

impl FileFetcher for LocalFetcher {
    fn fetch(
        &self,
        run: RunRow,
        path: String,
        _progress: Option<FetchProgress>,
        _started: Option<FetchStarted>,
    ) -> BoxFuture<'static, Result<FetchedFile, FetchFailure>> {
        let file = self.root.join(&run.dir).join(&path);
        let hub_dir = self.hub_dir.clone();
        let failed = |e: String| FetchFailure {
            kind: FetchFailureKind::Failed,
            message: e,
        };
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                let mut store = Store::open(&hub_dir).map_err(|e| e.to_string())?;
                let f = std::fs::File::open(&file).map_err(|e| e.to_string())?;
                let (sha, size) = store.put_file(f, 50 << 20).map_err(|e| e.to_string())?;
                store
                    .record_cached_file(run.key, &path, &sha)
                    .map_err(|e| e.to_string())?;
                let path = store.file_path(&sha).ok_or("not cached")?;
                Ok(FetchedFile {
                    sha256: sha,
                    size,
                    path,
                })
            })
            .await
            .map_err(|e| e.to_string())
            .and_then(|r: Result<FetchedFile, String>| r)
            .map_err(failed)
        })
    }
}

#[test]
fn files_are_served_from_the_cache_only_by_the_manifest() {
    let world = World::new();
    let cache_only = world.serve();
    let fetching = Served::start(
        world.hub_dir.path(),
        Some(Arc::new(LocalFetcher {
            root: world.root.path().to_owned(),
            hub_dir: world.hub_dir.path().to_owned(),
        })),
    );
    let id = run_by_run_id(&cache_only, "runa")["key"].as_i64().unwrap();
    let detail = cache_only.json(&format!("/api/runs/{id}"));
    let file = |ext: &str| {
        detail["files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["path"].as_str().unwrap().ends_with(ext))
            .unwrap_or_else(|| panic!("no {ext} in {detail}"))
            .clone()
    };
    let png = file(".png");
    let svg = file(".svg");
    assert_eq!(png["cached"], false);
    let png_url = png["url"].as_str().unwrap().to_owned();

    let r = cache_only.get(&png_url);
    assert_eq!(r.status, 404, "{}", r.text());
    assert!(error_message(&r).contains("cache"), "{}", r.text());

    let r = fetching.get(&png_url);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.body, PNG);
    assert_eq!(r.header("content-type"), Some("image/png"));
    // Once cached, the cache-only server has it too.
    let r = cache_only.get(&png_url);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, PNG);
    assert_eq!(
        cache_only.json(&format!("/api/runs/{id}"))["files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["url"] == png_url.as_str())
            .unwrap()["cached"],
        true
    );

    // SVG may hold script: served as plain text.
    let r = fetching.get(svg["url"].as_str().unwrap());
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/plain"));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));

    // Not in the manifest, or outside the run: refused, nothing read.
    let r = fetching.get(&format!("/api/runs/{id}/files/media/none.png"));
    assert_eq!(r.status, 404);
    assert!(error_message(&r).contains("media/none.png"), "{}", r.text());
    for target in [
        format!("/api/runs/{id}/files/..%2f..%2f..%2fstore.sqlite"),
        format!("/api/runs/{id}/files/media/..%2f..%2fmeta.json"),
        format!("/api/runs/{id}/files/%2fetc%2fpasswd"),
        format!("/api/runs/{id}/files/../../store.sqlite"),
    ] {
        let r = fetching.get(&target);
        assert!(
            r.status == 400 || r.status == 404,
            "{target}: {} {}",
            r.status,
            r.text()
        );
        assert!(!r.body.starts_with(b"SQLite format"), "{target}");
        assert!(!r.text().contains("root:"), "{target}");
    }
}
