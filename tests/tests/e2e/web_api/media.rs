//! `GET /api/runs/{run}/media`: a run's images by key with step and caption from its image
//! events (`events.jsonl` fetched on demand, then cached), and from the `media/` file names with
//! a note when the events cannot be had.

use std::sync::Arc;

use super::files::LocalFetcher;
use super::world::{run_by_run_id, Served, World};

#[test]
fn media_come_from_the_image_events_else_from_file_names() {
    let world = World::new();
    let cache_only = world.serve();
    let id = run_by_run_id(&cache_only, "runa")["key"].as_i64().unwrap();

    // Nothing fetched and no fetcher: the keys the file names carry, no steps, and why.
    let m = cache_only.json(&format!("/api/runs/{id}/media"));
    assert_eq!(m["source"], "file_names", "{m}");
    assert!(
        m["note"].as_str().unwrap().contains("events.jsonl"),
        "{}",
        m["note"]
    );
    let keys: Vec<&str> = m["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["sample"], "PNG by name; the SVG is no image by name");
    assert_eq!(m["keys"][0]["images"][0]["step"], serde_json::Value::Null);

    // With a fetcher: the events, each image's key and step as logged (step 1, no caption).
    let fetching = Served::start(
        world.hub_dir.path(),
        Some(Arc::new(LocalFetcher {
            root: world.root.path().to_owned(),
            hub_dir: world.hub_dir.path().to_owned(),
        })),
    );
    let m = fetching.json(&format!("/api/runs/{id}/media"));
    assert_eq!(m["source"], "events", "{m}");
    assert_eq!(m["note"], serde_json::Value::Null);
    let keys: Vec<&str> = m["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["drawing", "sample"]);
    for k in m["keys"].as_array().unwrap() {
        let image = &k["images"][0];
        assert_eq!(image["step"], 1);
        assert_eq!(image["caption"], serde_json::Value::Null);
        let path = image["path"].as_str().unwrap();
        assert!(path.starts_with("media/"), "{path}");
        assert_eq!(
            image["url"],
            format!("/api/runs/{id}/files/{path}"),
            "the file route serves it"
        );
        assert_eq!(fetching.get(image["url"].as_str().unwrap()).status, 200);
    }

    // events.jsonl is cached now: the cache-only dashboard reads the events too.
    let m = cache_only.json(&format!("/api/runs/{id}/media"));
    assert_eq!(m["source"], "events", "{m}");

    let r = cache_only.get("/api/runs/999999/media");
    assert_eq!(r.status, 404);
}
