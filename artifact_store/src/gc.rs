//! Garbage collection of the pool (`runicorn-agent artifacts gc [--dry-run]`): under the
//! exclusive pool lock (so no writer is between pooling and naming its bytes), the live set is
//! every SHA-256 named by a manifest of any version; whole pool files and recipes of other
//! contents go, then chunks no remaining recipe names, then temp files older than an hour and
//! version folders an interrupted `rm` left aside an hour ago.
//! A version folder without a readable manifest stops it: it cannot tell what that version
//! uses, so it deletes nothing and names the folder. Upstream's `archive/` is never touched.

use std::collections::HashSet;
use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime};

use runicorn_protocol::run_format::artifacts::{is_sha256_hex, RECIPE_SUFFIX};

use crate::error::{IoContext, StoreError};
use crate::versions_scan::{fanout_files, scan_versions};
use crate::{layout, locks, pool};

/// Temp files younger than this may belong to a writer at work; gc leaves them.
pub const TEMP_MIN_AGE: Duration = Duration::from_secs(3600);

/// What gc removed (or, in a dry run, would remove).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct GcReport {
    pub dry_run: bool,
    /// Version folders read.
    pub versions: usize,
    /// Distinct contents named by them.
    pub live_contents: usize,
    pub whole_files: usize,
    pub whole_bytes: u64,
    pub recipes: usize,
    pub chunks: usize,
    pub chunk_bytes: u64,
    pub temp_files: usize,
    pub temp_bytes: u64,
    /// Folders of versions whose deletion was interrupted (`.removed-v<N>-…`, an hour old).
    pub interrupted_removals: usize,
    /// What gc could not decide and so kept (a damaged recipe keeps every chunk).
    pub notes: Vec<String>,
}

impl GcReport {
    /// Every byte reclaimed (or reclaimable).
    pub fn total_bytes(&self) -> u64 {
        self.whole_bytes + self.chunk_bytes + self.temp_bytes
    }
}

/// Collects garbage under `root` (`dry_run`: only says what it would remove).
pub fn collect_garbage(root: &Path, dry_run: bool) -> Result<GcReport, StoreError> {
    let mut report = GcReport {
        dry_run,
        ..GcReport::default()
    };
    if !layout::artifacts_dir(root).is_dir() {
        return Ok(report);
    }
    let _lock = locks::pool_exclusive(root)?;
    let versions = scan_versions(root);
    let unreadable: Vec<String> = versions
        .iter()
        .filter_map(|v| {
            v.manifest
                .as_ref()
                .err()
                .map(|why| format!("{} ({why})", v.rel))
        })
        .collect();
    if !unreadable.is_empty() {
        return Err(StoreError::Refused(format!(
            "gc refused, nothing deleted: it cannot tell what these versions use: {}. Fix or restore the manifest, or delete the version with `runicorn-agent artifacts rm NAME:vN` (a writer that crashed while logging leaves such a folder)",
            unreadable.join("; ")
        )));
    }
    let live: HashSet<String> = versions
        .iter()
        .filter_map(|v| v.manifest.as_ref().ok())
        .flat_map(|m| m.files.iter().map(|f| f.sha256.clone()))
        .collect();
    report.versions = versions.len();
    report.live_contents = live.len();

    // Whole files and recipes of contents no version names.
    let mut kept_recipes = Vec::new();
    for (file_name, path) in fanout_files(&layout::pool_dir(root)) {
        let (sha, is_recipe) = match file_name.strip_suffix(RECIPE_SUFFIX) {
            Some(sha) => (sha.to_owned(), true),
            None => (file_name.clone(), false),
        };
        if !is_sha256_hex(&sha) {
            continue; // not ours to judge
        }
        if live.contains(&sha) {
            if is_recipe {
                kept_recipes.push(sha);
            }
            continue;
        }
        let size = fs::symlink_metadata(&path).map(|m| m.len()).unwrap_or(0);
        if is_recipe {
            report.recipes += 1;
        } else {
            report.whole_files += 1;
            report.whole_bytes += size;
        }
        if !dry_run {
            remove_file(&path)?;
        }
    }

    // Chunks no remaining recipe names.
    let mut named = HashSet::new();
    let mut chunks_decidable = true;
    for sha in &kept_recipes {
        match pool::read_recipe(root, sha) {
            Ok(Some(recipe)) => named.extend(recipe.chunks.into_iter().map(|c| c.sha256)),
            Ok(None) => {}
            Err(error) => {
                chunks_decidable = false;
                report.notes.push(format!(
                    "kept every chunk: a live content's recipe is unreadable: {error}"
                ));
            }
        }
    }
    if chunks_decidable {
        for (file_name, path) in fanout_files(&layout::chunks_dir(root)) {
            if !is_sha256_hex(&file_name) || named.contains(&file_name) {
                continue;
            }
            report.chunks += 1;
            report.chunk_bytes += fs::symlink_metadata(&path).map(|m| m.len()).unwrap_or(0);
            if !dry_run {
                remove_file(&path)?;
            }
        }
    }

    // Old temp files (a writer or packer that died).
    let tmp = layout::pool_tmp_dir(root);
    if let Ok(entries) = fs::read_dir(&tmp) {
        let now = SystemTime::now();
        for entry in entries.filter_map(Result::ok) {
            let Ok(meta) = entry.metadata() else { continue };
            let old = meta
                .modified()
                .ok()
                .and_then(|m| now.duration_since(m).ok())
                .is_some_and(|age| age >= TEMP_MIN_AGE);
            if meta.is_file() && old {
                report.temp_files += 1;
                report.temp_bytes += meta.len();
                if !dry_run {
                    remove_file(&entry.path())?;
                }
            }
        }
    }
    // Versions an interrupted `rm` left aside (already out of versions.json).
    let now = SystemTime::now();
    for (kind, name) in crate::listing::artifact_dirs(root) {
        let dir = layout::artifact_dir(root, &kind, &name);
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.filter_map(Result::ok) {
            let aside = entry
                .file_name()
                .to_string_lossy()
                .starts_with(".removed-v");
            let old = entry
                .metadata()
                .ok()
                .filter(|m| m.is_dir())
                .and_then(|m| m.modified().ok())
                .and_then(|m| now.duration_since(m).ok())
                .is_some_and(|age| age >= TEMP_MIN_AGE);
            if aside && old {
                report.interrupted_removals += 1;
                if !dry_run {
                    fs::remove_dir_all(entry.path()).at(&entry.path())?;
                }
            }
        }
    }
    Ok(report)
}

fn remove_file(path: &Path) -> Result<(), StoreError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other.at(path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remove::remove_version;
    use crate::testing::Fixture;
    use crate::writer::{log_artifact_with, Artifact, LogOptions};

    fn noise(len: usize, seed: u64) -> Vec<u8> {
        let mut rng = fastrand::Rng::with_seed(seed);
        (0..len).map(|_| rng.u8(..)).collect()
    }

    fn verify_all(root: &Path) {
        for v in scan_versions(root) {
            for f in v.manifest.unwrap().files {
                let mut out = Vec::new();
                pool::copy_content(root, &f.sha256, &mut out).unwrap();
                assert_eq!(out.len() as u64, f.size);
            }
        }
    }

    #[test]
    fn deleting_v2_then_gc_keeps_v1_and_v3() {
        let fx = Fixture::new();
        let root = fx.root();
        let base = noise(6 << 20, 1);
        let shared_small = b"config shared by all".to_vec();
        for v in 1..=3u8 {
            let mut data = base.clone();
            let at = usize::from(v) << 20;
            data[at..at + 300_000].fill(v);
            fs::write(root.join("w.bin"), &data).unwrap();
            fs::write(root.join("cfg"), &shared_small).unwrap();
            fs::write(root.join("only"), [v; 10]).unwrap();
            let mut art = Artifact::new("m", "model").unwrap();
            art.add_file(&root.join("w.bin"), None).unwrap();
            art.add_file(&root.join("cfg"), None).unwrap();
            art.add_file(&root.join("only"), None).unwrap();
            let chunked = LogOptions {
                chunk_large_files: true,
            };
            log_artifact_with(root, &art, &[], None, &chunked).unwrap();
        }
        remove_version(root, "m:v2", None).unwrap();
        let dry = collect_garbage(root, true).unwrap();
        assert_eq!(dry.whole_files, 1); // v2's "only"
        assert_eq!(dry.recipes, 1); // v2's w.bin
        assert!(dry.chunks >= 1);
        verify_all(root);
        let before = fanout_files(&layout::chunks_dir(root)).len();
        let done = collect_garbage(root, false).unwrap();
        assert_eq!(
            (done.whole_files, done.recipes, done.chunks),
            (dry.whole_files, dry.recipes, dry.chunks)
        );
        assert_eq!(
            fanout_files(&layout::chunks_dir(root)).len(),
            before - done.chunks
        );
        verify_all(root);
        let again = collect_garbage(root, false).unwrap();
        assert_eq!(again.total_bytes(), 0);
    }

    #[test]
    fn a_damaged_manifest_refuses_naming_it() {
        let fx = Fixture::new();
        let root = fx.root();
        crate::testing::write_version(root, "model", "m", 1, &[("a", b"a")]);
        crate::testing::write_version(root, "model", "m", 2, &[("a", b"b")]);
        fs::write(root.join("artifacts/model/m/v2/manifest.json"), "{").unwrap();
        let error = collect_garbage(root, true).unwrap_err().to_string();
        assert!(error.contains("artifacts/model/m/v2"), "{error}");
        fs::create_dir_all(root.join("artifacts/model/m/v3")).unwrap();
        fs::write(
            root.join("artifacts/model/m/v2/manifest.json"),
            r#"{"files":[]}"#,
        )
        .unwrap();
        let error = collect_garbage(root, false).unwrap_err().to_string();
        assert!(
            error.contains("artifacts/model/m/v3 (it has no manifest.json)"),
            "{error}"
        );
        assert_eq!(fanout_files(&layout::pool_dir(root)).len(), 2);
    }
}
