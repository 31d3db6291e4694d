//! `GET /api/runs/{run}/media`: a run's images grouped by key, each with its step, caption and
//! time, as the run's `image` events record them (docs/run-format.md: `events.jsonl` lines of
//! type `image` naming a `media/` file). The hub stores metric points, not these events, so the
//! route reads the run's `events.jsonl` from the file cache, fetching it from its remote when
//! the hub can; when it cannot (the remote offline and the file never fetched), the images are
//! listed from the manifest's `media/` files with the key their name carries
//! (`<epoch_ms>_<hex>_<key>.<ext>`) and no step or caption, and the answer says why.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use runicorn_store::{FileRow, RunKey};
use serde::Serialize;
use serde_json::Value;

use runicorn_protocol::run_format::names::media_image_key as key_of_file_name;

use crate::dto::file_url;
use crate::error::ApiError;
use crate::routes::{resolve_run, ApiPath};
use crate::state::AppState;

/// Most images one answer lists (`truncated` says when there were more).
pub const MAX_MEDIA_IMAGES: usize = 20_000;
/// Most `media/` files of the manifest the fallback reads.
const MAX_MEDIA_FILES: u64 = 20_000;
const EVENTS: &str = "events.jsonl";
/// Largest `events.jsonl` fetched from a remote for its image events; beyond it, the images are
/// listed from their file names (a run that long would cost its whole event log to show them).
pub const MAX_EVENTS_FETCH: u64 = 128 * 1024 * 1024;

/// Where the answer's images come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum MediaSource {
    /// The run's `image` events: key, step and caption as logged.
    Events,
    /// The manifest's `media/` file names: the key only.
    FileNames,
}

/// One logged image.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct MediaImage {
    pub step: Option<i64>,
    pub caption: Option<String>,
    /// Unix seconds when it was logged.
    pub time: Option<f64>,
    /// The file, relative to the run (`media/…`).
    pub path: String,
    /// Where the dashboard serves the file.
    pub url: String,
}

/// The images of one key, by step (images without a step last, by time).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct MediaKey {
    pub key: String,
    pub images: Vec<MediaImage>,
}

/// `GET /api/runs/{run}/media`.
#[derive(Debug, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS), ts(rename = "MediaAnswer"))]
pub struct MediaDto {
    pub run: i64,
    pub source: MediaSource,
    /// Why the images come from file names (`source` is `file_names`), else null.
    pub note: Option<String>,
    /// Sorted by key.
    pub keys: Vec<MediaKey>,
    pub truncated: bool,
}

/// `GET /api/runs/{run}/media`.
pub async fn get(
    State(state): State<Arc<AppState>>,
    ApiPath(reference): ApiPath<String>,
) -> Result<Json<MediaDto>, ApiError> {
    let key = resolve_run(&state, &reference).await?;
    let (run, events, cached, media) = state
        .pool
        .read(move |store| {
            let run = store.run_by_key(key)?.ok_or(ApiError::no_run(key.0))?;
            let events = store.file(key, EVENTS)?;
            let cached = events
                .as_ref()
                .and_then(|f| f.cached_sha256.as_deref())
                .and_then(|sha| store.file_path(sha));
            let (media, _) = store.files_page(key, "media/", MAX_MEDIA_FILES, 0)?;
            Ok((run, events, cached, media))
        })
        .await?;
    if media.is_empty() {
        // No image was logged: nothing to read, nothing to fetch.
        return Ok(Json(answer(
            key,
            MediaSource::Events,
            None,
            Vec::new(),
            false,
        )));
    }
    let events_file: Result<PathBuf, String> = match (cached, events, state.files.clone()) {
        (Some(path), _, _) => Ok(path),
        (None, None, _) => Err(format!("run {} has no {EVENTS} in its manifest", key.0)),
        (None, Some(f), _) if f.size > MAX_EVENTS_FETCH => Err(format!(
            "{EVENTS} of run {} is {} MiB, more than the {} MiB fetched for image captions;              `runicorn-hub fetch {} --files {EVENTS}` brings it, then steps and captions show",
            key.0,
            f.size >> 20,
            MAX_EVENTS_FETCH >> 20,
            key.0
        )),
        (None, Some(_), None) => Err(format!(
            "{EVENTS} of run {} is not in the hub's cache, and this dashboard fetches no files",
            key.0
        )),
        (None, Some(_), Some(fetcher)) => fetcher
            .fetch(run, EVENTS.to_owned(), None, None)
            .await
            .map(|f| f.path)
            .map_err(|failure| failure.message),
    };
    let answer = tokio::task::spawn_blocking(move || match events_file {
        Ok(path) => match images_from_events(&path) {
            Ok((images, truncated)) => answer(key, MediaSource::Events, None, images, truncated),
            Err(e) => {
                let note = format!("could not read {EVENTS} of run {}: {e}", key.0);
                from_file_names(key, &media, note)
            }
        },
        Err(note) => from_file_names(key, &media, note),
    })
    .await
    .map_err(|e| ApiError::internal(format!("reading the images of run {}: {e}", key.0)))?;
    Ok(Json(answer))
}

fn from_file_names(key: RunKey, media: &[FileRow], note: String) -> MediaDto {
    let images: Vec<(String, MediaImage)> = media
        .iter()
        .filter_map(|f| key_of_file_name(&f.path).map(|(k, time)| (k, f, time)))
        .map(|(k, f, time)| {
            let image = MediaImage {
                step: None,
                caption: None,
                time,
                path: f.path.clone(),
                url: String::new(),
            };
            (k, image)
        })
        .collect();
    let truncated = images.len() > MAX_MEDIA_IMAGES;
    answer(key, MediaSource::FileNames, Some(note), images, truncated)
}

fn answer(
    key: RunKey,
    source: MediaSource,
    note: Option<String>,
    images: Vec<(String, MediaImage)>,
    truncated: bool,
) -> MediaDto {
    let mut keys: std::collections::BTreeMap<String, Vec<MediaImage>> = Default::default();
    for (k, mut image) in images.into_iter().take(MAX_MEDIA_IMAGES) {
        image.url = file_url(key.0, &image.path);
        keys.entry(k).or_default().push(image);
    }
    let keys = keys
        .into_iter()
        .map(|(key, mut images)| {
            images.sort_by(|a, b| {
                (a.step.is_none(), a.step, a.time.unwrap_or(f64::INFINITY))
                    .partial_cmp(&(b.step.is_none(), b.step, b.time.unwrap_or(f64::INFINITY)))
                    .unwrap_or(std::cmp::Ordering::Equal)
            });
            MediaKey { key, images }
        })
        .collect();
    MediaDto {
        run: key.0,
        source,
        note,
        keys,
        truncated,
    }
}

/// The `image` events of an `events.jsonl` file as (key, image without its URL), at most
/// [`MAX_MEDIA_IMAGES`] (and whether there were more). Lines that are not image events, or
/// not JSON (a torn last line), are passed over.
pub fn images_from_events(path: &Path) -> std::io::Result<(Vec<(String, MediaImage)>, bool)> {
    let file = std::fs::File::open(path)?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut line = Vec::new();
    let mut out = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        // Cheap test first: metrics lines (nearly all of them) hold no `"image"`.
        if !line.windows(7).any(|w| w == b"\"image\"") {
            continue;
        }
        let Ok(event) = serde_json::from_slice::<Value>(&line) else {
            continue;
        };
        if event["type"] != "image" {
            continue;
        }
        let data = &event["data"];
        let (Some(key), Some(path)) = (data["key"].as_str(), data["path"].as_str()) else {
            continue;
        };
        if out.len() == MAX_MEDIA_IMAGES {
            return Ok((out, true));
        }
        out.push((
            key.to_owned(),
            MediaImage {
                step: data["step"].as_i64(),
                caption: data["caption"].as_str().map(str::to_owned),
                time: event["ts"].as_f64(),
                path: path.to_owned(),
                url: String::new(),
            },
        ));
    }
    Ok((out, false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_events_are_read_and_other_lines_passed_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(EVENTS);
        std::fs::write(
            &path,
            concat!(
                "{\"ts\": 1.0, \"type\": \"metrics\", \"data\": {\"loss\": 1, \"global_step\": 1}}\n",
                "{\"ts\": 2.5, \"type\": \"image\", \"data\": {\"key\": \"samples\", \"path\": \"media/2500_abcdef_samples.png\", \"step\": 3, \"caption\": \"a cat\"}}\n",
                "{\"ts\": 3.0, \"type\": \"image\", \"data\": {\"key\": \"attn\", \"path\": \"media/3000_abcdef_attn.png\", \"step\": null, \"caption\": null}}\n",
                "{\"ts\": 4.0, \"type\": \"image\", \"data\": {\"key\": \"torn"
            ),
        )
        .unwrap();
        let (images, truncated) = images_from_events(&path).unwrap();
        assert!(!truncated);
        assert_eq!(images.len(), 2);
        assert_eq!(images[0].0, "samples");
        assert_eq!(images[0].1.step, Some(3));
        assert_eq!(images[0].1.caption.as_deref(), Some("a cat"));
        assert_eq!(images[0].1.time, Some(2.5));
        assert_eq!(images[1].1.step, None);
        let dto = answer(RunKey(7), MediaSource::Events, None, images, false);
        let keys: Vec<&str> = dto.keys.iter().map(|k| k.key.as_str()).collect();
        assert_eq!(keys, ["attn", "samples"]);
        assert_eq!(
            dto.keys[1].images[0].url,
            "/api/runs/7/files/media/2500_abcdef_samples.png"
        );
    }
}
