//! A run's upstream assets (`assets.json`, written by upstream runicorn 0.6/0.7) as a flat list
//! of [`AssetEntry`]: the code snapshot, datasets, pretrained models and archived outputs, each
//! with where its saved bytes live below the agent's storage root.
//!
//! Upstream writes `archive_path` and `manifest_path` as ABSOLUTE paths of the writing machine
//! (its `storage_dir`). Nothing here ever returns one: a location is the part of such a path from
//! its last `archive/` component on (`archive/blobs/…`, `archive/manifests/…`,
//! `archive/outputs/…`), checked to hold only plain components, or, when the path is missing or
//! unusable, the location the content-addressed layout gives the fingerprint
//! (`archive/blobs/<sha[:2]>/<sha>`, `archive/manifests/<category>/<fp[:2]>/<fp>.json`).
//! Pure functions over a `serde_json::Value`; no I/O. The hub CLI (`fetch assets`) and the web
//! API derive blob locations from these entries.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::file_cache::is_sha256_hex;

/// Which part of `assets.json` an entry comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AssetCategory {
    /// `code.snapshot`: the zipped workspace.
    Code,
    /// `datasets[]`.
    Dataset,
    /// `pretrained[]`.
    Pretrained,
    /// `outputs[]`: archived checkpoints, logs and directories.
    Output,
}

impl AssetCategory {
    /// The category's directory under `archive/manifests/` in upstream's layout.
    pub fn manifest_dir(self) -> &'static str {
        match self {
            AssetCategory::Code => "code",
            AssetCategory::Dataset => "datasets",
            AssetCategory::Pretrained => "pretrained",
            AssetCategory::Output => "outputs",
        }
    }

    /// The name used in JSON and on the command line (`code`, `dataset`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            AssetCategory::Code => "code",
            AssetCategory::Dataset => "dataset",
            AssetCategory::Pretrained => "pretrained",
            AssetCategory::Output => "output",
        }
    }
}

/// Whether an asset is one file or a directory of files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AssetKind {
    File,
    Dir,
}

/// One asset of a run, with root-relative locations only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssetEntry {
    pub category: AssetCategory,
    /// The dataset's, model's or output's name; `code_snapshot.zip` for the code snapshot.
    pub name: String,
    /// Whether upstream copied the bytes into `archive/` (false: only recorded).
    pub saved: bool,
    pub kind: AssetKind,
    /// The SHA-256 of a saved file's bytes (its fingerprint when `fingerprint_kind` is
    /// `sha256`). Fetched bytes must hash to it.
    pub sha256: Option<String>,
    /// The root-relative manifest (`archive/manifests/<category>/<fp[:2]>/<fp>.json`) of a saved
    /// directory held in the content-addressed store; its `files` map names each file's blob.
    pub manifest: Option<String>,
    /// The root-relative location of the saved bytes: a blob `archive/blobs/<sha[:2]>/<sha>`, a
    /// manifest (same as [`AssetEntry::manifest`]), or a rolling copy under
    /// `archive/outputs/rolling/<run>/…` (a file, or a directory whose files are copies and
    /// which carries a `.complete` marker). `None` when not saved or not locatable.
    pub archive: Option<String>,
    /// Bytes, when `assets.json` says (`total_size_bytes`).
    pub size: Option<u64>,
    /// Files of a directory, when `assets.json` says (`file_count`).
    pub file_count: Option<u64>,
    /// Where it came from, as written on the writing machine (`uri`, `path_or_uri`, an output's
    /// `path`, the snapshot's `workspace_root`): for display only, never to read.
    pub uri: Option<String>,
    /// An output's key (`outputs/best.pt`), a dataset's context (`train`), a pretrained model's
    /// source type (`local`, `huggingface`): for display.
    pub detail: Option<String>,
    /// An output's archive mode (`rolling`, `dedup`, …).
    pub mode: Option<String>,
}

/// The name given to the code snapshot's entry.
pub const CODE_SNAPSHOT_NAME: &str = "code_snapshot.zip";

/// Every asset named by a run's `assets.json` value, in the file's order (code, datasets,
/// pretrained, outputs). Entries that are not objects are skipped; a value that is not an object
/// gives no entries.
pub fn asset_entries(assets: &Value) -> Vec<AssetEntry> {
    let mut out = Vec::new();
    if let Some(snapshot) = assets.pointer("/code/snapshot").filter(|v| v.is_object()) {
        out.push(entry(
            AssetCategory::Code,
            snapshot,
            CODE_SNAPSHOT_NAME.to_string(),
            text(snapshot, "workspace_root"),
            None,
        ));
    }
    let lists = [
        ("datasets", AssetCategory::Dataset),
        ("pretrained", AssetCategory::Pretrained),
        ("outputs", AssetCategory::Output),
    ];
    for (key, category) in lists {
        let Some(items) = assets.get(key).and_then(Value::as_array) else {
            continue;
        };
        for item in items.iter().filter(|v| v.is_object()) {
            let name = text(item, "name")
                .or_else(|| text(item, "key"))
                .unwrap_or_default();
            let (uri, detail) = match category {
                AssetCategory::Dataset => (text(item, "uri"), text(item, "context")),
                AssetCategory::Pretrained => (text(item, "path_or_uri"), text(item, "source_type")),
                _ => (text(item, "path"), text(item, "key")),
            };
            out.push(entry(category, item, name, uri, detail));
        }
    }
    out
}

fn entry(
    category: AssetCategory,
    item: &Value,
    name: String,
    uri: Option<String>,
    detail: Option<String>,
) -> AssetEntry {
    let saved = item.get("saved").and_then(Value::as_bool).unwrap_or(false);
    let fingerprint_kind = text(item, "fingerprint_kind");
    let fingerprint = text(item, "fingerprint").map(|f| f.to_ascii_lowercase());
    let archive_path = text(item, "archive_path").and_then(|p| archive_relative(&p));
    let manifest_path = text(item, "manifest_path").and_then(|p| archive_relative(&p));
    let kind = match text(item, "kind").as_deref() {
        Some("dir") => AssetKind::Dir,
        Some("file") => AssetKind::File,
        _ if fingerprint_kind.as_deref() == Some("sha256_manifest") => AssetKind::Dir,
        _ if category == AssetCategory::Code => AssetKind::File,
        _ if item.get("file_count").is_some() => AssetKind::Dir,
        _ => AssetKind::File,
    };
    let sha256 = match (kind, fingerprint_kind.as_deref(), &fingerprint) {
        (AssetKind::File, Some("sha256"), Some(fp)) if is_sha256_hex(fp) => Some(fp.clone()),
        _ => None,
    };
    let manifest = if !saved {
        None
    } else {
        manifest_path
            .clone()
            .filter(|p| p.starts_with("archive/manifests/"))
            .or_else(|| {
                archive_path
                    .clone()
                    .filter(|p| p.starts_with("archive/manifests/"))
            })
            .or_else(|| match (kind, fingerprint_kind.as_deref(), &fingerprint) {
                // No usable path at all: the content-addressed layout's place for it.
                (AssetKind::Dir, Some("sha256_manifest"), Some(fp))
                    if archive_path.is_none() && is_sha256_hex(fp) =>
                {
                    Some(format!(
                        "archive/manifests/{}/{}/{fp}.json",
                        category.manifest_dir(),
                        &fp[..2]
                    ))
                }
                _ => None,
            })
    };
    let archive = if !saved {
        None
    } else {
        archive_path.or_else(|| manifest.clone()).or_else(|| {
            sha256
                .as_ref()
                .map(|sha| format!("archive/blobs/{}/{sha}", &sha[..2]))
        })
    };
    AssetEntry {
        category,
        name,
        saved,
        kind,
        sha256,
        manifest,
        archive,
        size: item.get("total_size_bytes").and_then(Value::as_u64),
        file_count: item.get("file_count").and_then(Value::as_u64),
        uri,
        detail,
        mode: text(item, "mode"),
    }
}

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_string)
}

/// The part of an absolute path written by upstream from its last `archive` component that is
/// followed by `blobs`, `manifests` or `outputs`, joined with `/`. Accepts `/` and `\`
/// separators (a root written on Windows). `None` when there is no such component or any
/// component after it is empty-after-trim, `.`, `..` or holds a drive colon.
pub fn archive_relative(path: &str) -> Option<String> {
    let parts: Vec<&str> = path.split(['/', '\\']).filter(|p| !p.is_empty()).collect();
    let start = (0..parts.len().saturating_sub(1)).rev().find(|&i| {
        parts[i] == "archive" && matches!(parts[i + 1], "blobs" | "manifests" | "outputs")
    })?;
    let tail = &parts[start..];
    if tail.len() < 3 {
        return None;
    }
    if tail
        .iter()
        .any(|p| *p == "." || *p == ".." || p.contains(':') || p.contains('\0'))
    {
        return None;
    }
    Some(tail.join("/"))
}

/// One file of a directory manifest (`archive/manifests/…/<fp>.json`): its path inside the
/// directory, its blob's SHA-256 and its size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEntry {
    pub path: String,
    pub sha256: String,
    pub size: u64,
}

/// The files an upstream directory manifest lists, sorted by path. Paths with `..`, absolute
/// paths, or entries without a valid SHA-256 are left out (never written outside the target).
pub fn manifest_entries(manifest: &Value) -> Vec<ManifestEntry> {
    let Some(files) = manifest.get("files").and_then(Value::as_object) else {
        return Vec::new();
    };
    let mut out: Vec<ManifestEntry> = files
        .iter()
        .filter(|(path, _)| safe_relative(path))
        .filter_map(|(path, f)| {
            let sha = f.get("sha256")?.as_str()?.to_ascii_lowercase();
            if !is_sha256_hex(&sha) {
                return None;
            }
            Some(ManifestEntry {
                path: path.replace('\\', "/"),
                sha256: sha,
                size: f.get("size_bytes").and_then(Value::as_u64).unwrap_or(0),
            })
        })
        .collect();
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// Whether `path` is a plain relative path (no root, no drive, no `.`/`..`, no empty parts).
pub fn safe_relative(path: &str) -> bool {
    !path.is_empty()
        && !path.starts_with(['/', '\\'])
        && path.split(['/', '\\']).all(|p| {
            !p.is_empty() && p != "." && p != ".." && !p.contains(':') && !p.contains('\0')
        })
}

/// The blob location `archive/blobs/<sha[:2]>/<sha>` of a content (`sha256` must be hex).
pub fn blob_path(sha256: &str) -> String {
    format!("archive/blobs/{}/{sha256}", &sha256[..2.min(sha256.len())])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fixture() -> Value {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/upstream-0.7.2-assets/runs/assets/compat/20261205_025340_694eef/assets.json"
        );
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn the_upstream_fixture_gives_every_asset_with_relative_locations() {
        let entries = asset_entries(&fixture());
        let names: Vec<(&str, &str)> = entries
            .iter()
            .map(|e| (e.category.as_str(), e.name.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("code", "code_snapshot.zip"),
                ("dataset", "cifar"),
                ("dataset", "labels"),
                ("dataset", "unsaved"),
                ("pretrained", "backbone"),
                ("pretrained", "hub-model"),
                ("output", "train.log"),
                ("output", "ckpt_dir"),
                ("output", "best.pt"),
                ("output", "final.pt"),
            ]
        );
        for e in &entries {
            for p in [&e.archive, &e.manifest].into_iter().flatten() {
                assert!(p.starts_with("archive/"), "{p}");
                assert!(!p.contains("/tmp/"), "{p}");
            }
        }
        let code = &entries[0];
        assert_eq!(code.kind, AssetKind::File);
        assert_eq!(
            code.archive.as_deref(),
            Some(
                "archive/blobs/b9/b91074e4b79f2b6b0190706ab8c685705d82c2e2e745512ce888ba6c9ab38bca"
            )
        );
        assert_eq!(code.sha256.as_deref().map(|s| &s[..4]), Some("b910"));
        let cifar = &entries[1];
        assert_eq!(cifar.kind, AssetKind::Dir);
        assert_eq!(cifar.sha256, None);
        assert_eq!(
            cifar.manifest.as_deref(),
            Some("archive/manifests/datasets/b6/b61b532c9777f0536a9b71d663b4e03b3e095d75e0c5be0b44f15f388747fef3.json")
        );
        assert_eq!(cifar.archive, cifar.manifest);
        assert_eq!((cifar.size, cifar.file_count), (Some(13248), Some(3)));
        let unsaved = &entries[3];
        assert!(!unsaved.saved);
        assert_eq!(
            (unsaved.archive.as_ref(), unsaved.sha256.as_ref()),
            (None, None)
        );
        assert!(!entries[5].saved);
        let train_log = &entries[6];
        assert_eq!(train_log.sha256, None, "a stat fingerprint is no hash");
        assert!(train_log
            .archive
            .as_deref()
            .unwrap()
            .starts_with("archive/outputs/rolling/20261205_025340_694eef/"));
        let ckpt = &entries[7];
        assert_eq!((ckpt.kind, ckpt.manifest.as_ref()), (AssetKind::Dir, None));
        assert!(ckpt.archive.as_deref().unwrap().ends_with("_ckpt_dir"));
        let best = &entries[8];
        assert_eq!(
            best.sha256.as_deref(),
            Some("e163cb955e7d8d41bf472ab8ea61b1228e6d7890b638ae60e861afc6b27c7dff")
        );
        assert!(best.archive.as_deref().unwrap().contains("/rolling/"));
        assert_eq!(entries[9].mode.as_deref(), Some("dedup"));
    }

    #[test]
    fn absolute_paths_are_cut_at_the_last_archive_component() {
        assert_eq!(
            archive_relative("/srv/archive/data/archive/blobs/ab/abc").as_deref(),
            Some("archive/blobs/ab/abc")
        );
        assert_eq!(
            archive_relative(r"C:\Users\me\rn\archive\manifests\datasets\b6\x.json").as_deref(),
            Some("archive/manifests/datasets/b6/x.json")
        );
        assert_eq!(
            archive_relative("/tmp/archive/blobs/../../etc/passwd"),
            None
        );
        assert_eq!(archive_relative("/tmp/elsewhere/file"), None);
        assert_eq!(archive_relative("/tmp/archive/blobs"), None);
    }

    #[test]
    fn missing_paths_fall_back_to_the_content_addressed_layout() {
        let sha = "ab".repeat(32);
        let v = json!({
            "datasets": [{"name": "d", "saved": true, "fingerprint_kind": "sha256_manifest", "fingerprint": sha}],
            "pretrained": [{"name": "p", "saved": true, "fingerprint_kind": "sha256", "fingerprint": sha.to_uppercase()}],
            "outputs": [{"key": "k", "kind": "file", "saved": true, "fingerprint_kind": "sha256", "fingerprint": "not-hex"}]
        });
        let e = asset_entries(&v);
        assert_eq!(
            e[0].manifest.as_deref(),
            Some(format!("archive/manifests/datasets/ab/{sha}.json").as_str())
        );
        assert_eq!(e[1].archive.as_deref(), Some(blob_path(&sha).as_str()));
        assert_eq!(e[2].name, "k");
        assert_eq!((e[2].sha256.as_ref(), e[2].archive.as_ref()), (None, None));
        assert!(asset_entries(&json!([1, 2])).is_empty());
        assert!(asset_entries(&json!({"datasets": "x", "outputs": [3]})).is_empty());
    }

    #[test]
    fn manifest_entries_skip_unsafe_paths_and_bad_hashes() {
        let sha = "cd".repeat(32);
        let m = json!({"files": {
            "b/x.bin": {"sha256": sha, "size_bytes": 4},
            "a.txt": {"sha256": sha, "size_bytes": 1},
            "../evil": {"sha256": sha, "size_bytes": 1},
            "/abs": {"sha256": sha, "size_bytes": 1},
            "bad": {"sha256": "zz", "size_bytes": 1}
        }});
        let e = manifest_entries(&m);
        let paths: Vec<&str> = e.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["a.txt", "b/x.bin"]);
        assert_eq!(e[1].size, 4);
    }
}
