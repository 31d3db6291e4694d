//! Packing (`runicorn-agent artifacts pack`): under the exclusive pool lock, every whole pool
//! file of at least `CHUNKED_MIN_FILE_BYTES` becomes chunks: the chunks the chunk store lacks
//! are written, then the recipe (atomically), then every `v<N>/files/<path>` holding that
//! content (found through the manifests) and the whole file are removed. A crash at any point
//! leaves each content readable whole or from its recipe; packing again finishes the job.
//!
//! [`pack_next_idle`] is the agent's background packing while it serves: one content per step,
//! never waiting for the pool lock, cutting under the shared lock and holding it exclusive only
//! to remove the whole copies.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, BufReader};
use std::path::{Path, PathBuf};

use runicorn_protocol::run_format::artifacts::{
    is_sha256_hex, ChunkRecipe, ChunkerParams, CHUNKED_MIN_FILE_BYTES, VERSION_FILES_DIR,
};
use runicorn_protocol::run_format::json_file::write_json_atomic;

use crate::chunking::cut_stream;
use crate::error::{IoContext, StoreError};
use crate::versions_scan::{fanout_files, scan_versions};
use crate::{layout, locks};

/// What packing did (or, in a dry run, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PackReport {
    pub dry_run: bool,
    /// Whole files turned (or to turn) into chunks, and their bytes.
    pub contents: usize,
    pub bytes: u64,
    /// Chunks written, and their bytes (the rest were already held).
    pub new_chunks: usize,
    pub new_chunk_bytes: u64,
    pub reused_chunks: usize,
    /// `files/` copies or links removed.
    pub links_removed: usize,
    /// What was left alone and why.
    pub notes: Vec<String>,
}

/// The whole pool files packing would take: `(sha256, size, path)`.
fn candidates(root: &Path) -> Vec<(String, u64, PathBuf)> {
    fanout_files(&layout::pool_dir(root))
        .into_iter()
        .filter(|(name, _)| is_sha256_hex(name))
        .filter_map(|(name, path)| {
            let size = fs::symlink_metadata(&path).ok()?.len();
            (size >= CHUNKED_MIN_FILE_BYTES).then_some((name, size, path))
        })
        .collect()
}

/// Packs the pool under `root`; `on_bytes(n)` is told of each `n` bytes read. The total to
/// expect is [`pack_total`].
pub fn pack(
    root: &Path,
    dry_run: bool,
    on_bytes: &mut dyn FnMut(u64),
) -> Result<PackReport, StoreError> {
    let mut report = PackReport {
        dry_run,
        ..PackReport::default()
    };
    if !layout::artifacts_dir(root).is_dir() {
        return Ok(report);
    }
    let _lock = locks::pool_exclusive(root)?;
    let todo = candidates(root);
    if dry_run {
        report.contents = todo.len();
        report.bytes = todo.iter().map(|(_, size, _)| size).sum();
        return Ok(report);
    }
    let holders = holders(root, &mut report.notes);
    for (sha, size, path) in todo {
        match pack_one(root, &sha, &path, on_bytes, &mut report) {
            Ok(()) => {}
            Err(StoreError::Damaged(why)) => {
                report.notes.push(why);
                continue;
            }
            Err(other) => return Err(other),
        }
        report.links_removed += drop_whole_copies(&path, holders.get(&sha))?;
        report.contents += 1;
        report.bytes += size;
    }
    Ok(report)
}

/// Where each content is held in version folders (`v<N>/files/<path>`), from the manifests; a
/// version without a readable manifest is noted.
fn holders(root: &Path, notes: &mut Vec<String>) -> HashMap<String, Vec<PathBuf>> {
    let mut holders: HashMap<String, Vec<PathBuf>> = HashMap::new();
    for version in scan_versions(root) {
        match &version.manifest {
            Ok(manifest) => {
                for file in &manifest.files {
                    holders
                        .entry(file.sha256.clone())
                        .or_default()
                        .push(version.dir.join(VERSION_FILES_DIR).join(&file.path));
                }
            }
            Err(why) => notes.push(format!(
                "{}: {why}; its files/ copies of packed contents stay (they still take space)",
                version.rel
            )),
        }
    }
    holders
}

/// Once a content's recipe is written: removes its `files/` copies or links and the whole pool
/// file; returns how many copies went.
fn drop_whole_copies(whole: &Path, held: Option<&Vec<PathBuf>>) -> Result<usize, StoreError> {
    let mut removed = 0;
    for held in held.into_iter().flatten() {
        match fs::remove_file(held) {
            Ok(()) => removed += 1,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(StoreError::io(held, e)),
        }
    }
    match fs::remove_file(whole) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(StoreError::io(whole, e)),
    }
    Ok(removed)
}

/// What one step of background packing did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PackStep {
    /// No whole pool file old enough to pack.
    Nothing,
    /// The pool lock is held exclusive (pack or gc runs): try again later.
    Busy,
    /// This content is now chunks; its `files/` copies (`links_removed`) and whole file are
    /// gone.
    Packed {
        sha256: String,
        size: u64,
        links_removed: usize,
    },
    /// This content's chunks and recipe are written (it is listed as chunked), but a writer
    /// held the pool lock, so its whole file and `files/` copies stay until a later step.
    Cut { sha256: String },
    /// This content was left whole and why (its bytes do not match its name).
    Skipped { sha256: String, why: String },
}

/// One step of packing while an agent serves, never waiting for the pool lock: picks ONE whole
/// pool file of at least `CHUNKED_MIN_FILE_BYTES` last written more than `min_age` ago (`skip`
/// names contents to leave alone, ones found damaged before), cuts it into chunks and writes its
/// recipe holding the lock SHARED (writers go on logging; gc and pack wait), then, holding it
/// EXCLUSIVE only for that, removes the whole file and its `files/` copies. When the exclusive
/// lock is not free at once (a writer is logging) the content stays cut but whole
/// ([`PackStep::Cut`]) and a later step removes its copies without cutting it again. So a
/// writer waits at most for a scan of the manifests and a few unlinks.
pub fn pack_next_idle(
    root: &Path,
    min_age: std::time::Duration,
    skip: &std::collections::HashSet<String>,
) -> Result<PackStep, StoreError> {
    if !layout::artifacts_dir(root).is_dir() {
        return Ok(PackStep::Nothing);
    }
    let old_enough = |path: &Path| {
        fs::symlink_metadata(path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age >= min_age)
    };
    let Some((sha, size, path)) = candidates(root)
        .into_iter()
        .find(|(sha, _, path)| !skip.contains(sha) && old_enough(path))
    else {
        return Ok(PackStep::Nothing);
    };
    if !layout::recipe_file(root, &sha).is_file() {
        let Some(_shared) = locks::try_pool_shared(root)? else {
            return Ok(PackStep::Busy);
        };
        // Under the lock: gc may have taken it since the look above.
        if !path.is_file() {
            return Ok(PackStep::Nothing);
        }
        let mut report = PackReport::default();
        match pack_one(root, &sha, &path, &mut |_| {}, &mut report) {
            Ok(()) => {}
            Err(StoreError::Damaged(why)) => return Ok(PackStep::Skipped { sha256: sha, why }),
            Err(other) => return Err(other),
        }
    }
    let Some(_exclusive) = locks::try_pool_exclusive(root)? else {
        return Ok(PackStep::Cut { sha256: sha });
    };
    // gc may have removed a content no version names any more while no lock was held: then
    // there is nothing left to remove.
    if !layout::recipe_file(root, &sha).is_file() {
        return Ok(PackStep::Nothing);
    }
    let mut notes = Vec::new();
    let holders = holders(root, &mut notes);
    let links_removed = drop_whole_copies(&path, holders.get(&sha))?;
    Ok(PackStep::Packed {
        sha256: sha,
        size,
        links_removed,
    })
}

/// Bytes [`pack`] will read.
pub fn pack_total(root: &Path) -> u64 {
    candidates(root).iter().map(|(_, size, _)| size).sum()
}

/// Cuts one whole file into the chunk store and writes its recipe.
fn pack_one(
    root: &Path,
    sha: &str,
    path: &Path,
    on_bytes: &mut dyn FnMut(u64),
    report: &mut PackReport,
) -> Result<(), StoreError> {
    let file = File::open(path).at(path)?;
    let mut failure = None;
    let cut = cut_stream(
        BufReader::with_capacity(1 << 20, file),
        |_, piece, bytes| {
            on_bytes(bytes.len() as u64);
            match crate::pool::store_chunk(root, &piece.sha256, bytes) {
                Ok(true) => {
                    report.new_chunks += 1;
                    report.new_chunk_bytes += bytes.len() as u64;
                    Ok(())
                }
                Ok(false) => {
                    report.reused_chunks += 1;
                    Ok(())
                }
                Err(error) => {
                    let message = error.to_string();
                    failure = Some(error);
                    Err(io::Error::other(message))
                }
            }
        },
    );
    if let Some(error) = failure {
        return Err(error);
    }
    let cut = cut.at(path)?;
    if cut.sha256 != sha {
        return Err(StoreError::Damaged(format!(
            "{}: its bytes hash to {}, not its name; left whole (the pool is damaged: restore it)",
            layout::pool_rel(sha),
            cut.sha256
        )));
    }
    // The chunks are on disk before the recipe names them and the whole file goes.
    crate::pool::sync_file_system(&layout::chunks_dir(root))?;
    let recipe_path = layout::recipe_file(root, sha);
    let recipe = ChunkRecipe {
        format: 1,
        sha256: sha.to_owned(),
        size: cut.size,
        chunker: ChunkerParams::current(),
        chunks: cut.chunks,
    };
    write_json_atomic(&recipe_path, &recipe).at(&recipe_path)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{write_version, Fixture};

    fn noise(len: usize, seed: u64) -> Vec<u8> {
        let mut rng = fastrand::Rng::with_seed(seed);
        (0..len).map(|_| rng.u8(..)).collect()
    }

    #[test]
    fn packing_turns_large_whole_files_into_shared_chunks() {
        let fx = Fixture::new();
        let root = fx.root();
        let a = noise(5 << 20, 1);
        let mut b = a.clone();
        b[3 << 20..(3 << 20) + 1000].fill(0);
        let sha_a = write_version(root, "model", "m", 1, &[("w", &a), ("s", b"small")])[0].clone();
        let sha_b = write_version(root, "model", "m", 2, &[("w", &b)])[0].clone();
        let dry = pack(root, true, &mut |_| {}).unwrap();
        assert_eq!((dry.contents, dry.bytes), (2, 10 << 20));
        let mut seen = 0;
        let done = pack(root, false, &mut |n| seen += n).unwrap();
        assert_eq!(seen, 10 << 20);
        assert_eq!(done.contents, 2);
        assert_eq!(done.links_removed, 2);
        assert!(done.reused_chunks > done.new_chunks / 3, "{done:?}");
        assert!(!layout::pool_file(root, &sha_a).exists());
        assert!(!root.join("artifacts/model/m/v1/files/w").exists());
        assert!(root.join("artifacts/model/m/v1/files/s").exists());
        for (sha, data) in [(&sha_a, &a), (&sha_b, &b)] {
            let mut out = Vec::new();
            crate::pool::copy_content(root, sha, &mut out).unwrap();
            assert_eq!(&out, data);
        }
        let change = crate::listing::read_artifact(root, "model", "m");
        assert_eq!(
            change.versions[0].files[0].stored,
            runicorn_protocol::wire::artifacts::StoredAs::Chunked
        );
        assert_eq!(pack(root, false, &mut |_| {}).unwrap().contents, 0);
    }

    #[test]
    fn background_steps_pack_one_old_content_at_a_time_and_never_wait_for_the_lock() {
        use std::collections::HashSet;
        use std::time::Duration;
        let fx = Fixture::new();
        let root = fx.root();
        let skip = HashSet::new();
        assert_eq!(
            pack_next_idle(root, Duration::ZERO, &skip).unwrap(),
            PackStep::Nothing
        );
        let a = noise(5 << 20, 3);
        let b = noise(4 << 20, 4);
        write_version(
            root,
            "model",
            "m",
            1,
            &[("a", &a), ("b", &b), ("s", b"small")],
        );
        // Too fresh: left for later.
        let step = pack_next_idle(root, Duration::from_secs(3600), &skip).unwrap();
        assert_eq!(step, PackStep::Nothing);
        // gc holds the lock: the step does not wait.
        let gc = locks::pool_exclusive(root).unwrap();
        let step = pack_next_idle(root, Duration::ZERO, &skip).unwrap();
        assert_eq!(step, PackStep::Busy);
        drop(gc);
        // A writer holds it shared: the content is cut, its whole copies stay for later.
        let writer = locks::pool_shared(root).unwrap();
        let PackStep::Cut { sha256: cut } = pack_next_idle(root, Duration::ZERO, &skip).unwrap()
        else {
            panic!("not cut");
        };
        assert!(layout::recipe_file(root, &cut).is_file());
        assert!(layout::pool_file(root, &cut).is_file());
        drop(writer);
        let mut packed = HashSet::new();
        for _ in 0..2 {
            match pack_next_idle(root, Duration::ZERO, &skip).unwrap() {
                PackStep::Packed {
                    sha256,
                    links_removed,
                    ..
                } => {
                    assert_eq!(links_removed, 1);
                    packed.insert(sha256);
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(packed.len(), 2);
        assert_eq!(
            pack_next_idle(root, Duration::ZERO, &skip).unwrap(),
            PackStep::Nothing
        );
        assert!(!root.join("artifacts/model/m/v1/files/a").exists());
        assert!(root.join("artifacts/model/m/v1/files/s").exists());
        for data in [&a, &b] {
            let mut out = Vec::new();
            crate::pool::copy_content(root, &crate::chunking::sha256_hex(data), &mut out).unwrap();
            assert!(&out == data);
        }

        // A damaged whole file is skipped, named, and left whole.
        let c = noise(4 << 20, 5);
        let sha_c = write_version(root, "model", "m", 2, &[("c", &c)])[0].clone();
        let pooled = layout::pool_file(root, &sha_c);
        let mut perms = fs::metadata(&pooled).unwrap().permissions();
        #[allow(clippy::permissions_set_readonly_false)]
        perms.set_readonly(false);
        fs::set_permissions(&pooled, perms).unwrap();
        fs::write(&pooled, noise(4 << 20, 6)).unwrap();
        let step = pack_next_idle(root, Duration::ZERO, &skip).unwrap();
        assert!(
            matches!(&step, PackStep::Skipped { sha256, .. } if *sha256 == sha_c),
            "{step:?}"
        );
        assert!(pooled.exists());
        let skip: HashSet<String> = [sha_c].into();
        assert_eq!(
            pack_next_idle(root, Duration::ZERO, &skip).unwrap(),
            PackStep::Nothing
        );
    }
}
