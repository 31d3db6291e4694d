//! Where a pooled content's bytes are, chunk by chunk ([`ContentChunks`]), for the agent's
//! `chunks` answer: a packed content's recipe points at chunk files; a whole pool file or an
//! upstream blob (`archive/blobs`) is cut on the fly and its chunks are ranges of that file.
//! Every path is relative to the root and every file is opened without leaving the root.

use std::io::{self, BufReader};
use std::path::Path;

use runicorn_protocol::run_format::artifacts::{is_sha256_hex, ChunkRecipe};
use runicorn_protocol::run_format::json_file::read_json_in;
use runicorn_protocol::run_format::safe_read::open_regular;
use runicorn_protocol::wire::artifacts::{ChunkLocation, ContentChunks};

use crate::chunking::cut_stream;
use crate::layout;

/// The chunk list of the content `sha256` under `root`, or an `error` saying why there is none.
/// Looks for a recipe first, then a whole pool file, then upstream's blob store.
pub fn content_chunks(root: &Path, sha256: &str) -> ContentChunks {
    let failed = |error: String| ContentChunks {
        sha256: sha256.to_owned(),
        size: 0,
        chunks: Vec::new(),
        next_chunk: None,
        error: Some(error),
    };
    if !is_sha256_hex(sha256) {
        return failed(format!(
            "{sha256:?} is not a content name (64 lowercase hex digits of a SHA-256)"
        ));
    }
    // Twice: packing may turn the whole file into chunks while it is being cut.
    for _ in 0..2 {
        if let Some(answer) = from_recipe(root, sha256) {
            return answer.unwrap_or_else(failed);
        }
        for rel in [layout::pool_rel(sha256), layout::blob_rel(sha256)] {
            match cut_file(root, &rel, sha256) {
                Ok(Some(answer)) => {
                    if root.join(&rel).is_file() {
                        return answer;
                    }
                    // Removed while cut (packed): look again.
                }
                Ok(None) => continue,
                Err(error) => return failed(error),
            }
        }
        if !layout::recipe_file(root, sha256).is_file() {
            break;
        }
    }
    failed(format!(
        "content {sha256} is in none of artifacts/.pool, artifacts/.chunks and archive/blobs on this server (removed by gc, or never pooled)"
    ))
}

/// The recipe's chunks, if the content has a recipe: `Some(Err)` when the recipe is damaged or a
/// chunk is missing.
fn from_recipe(root: &Path, sha256: &str) -> Option<Result<ContentChunks, String>> {
    let path = layout::recipe_file(root, sha256);
    let recipe: ChunkRecipe = match read_json_in(&path, root) {
        Ok(recipe) => recipe,
        Err(error) if error.is_not_found() => return None,
        Err(error) => return Some(Err(error.to_string())),
    };
    let rel = layout::recipe_rel(sha256);
    if recipe.sha256 != sha256 {
        return Some(Err(format!(
            "{rel} names content {} instead of its own; the pool is damaged",
            recipe.sha256
        )));
    }
    let total: u64 = recipe.chunks.iter().map(|c| u64::from(c.size)).sum();
    if total != recipe.size {
        return Some(Err(format!(
            "{rel}: its chunks add up to {total} bytes, not {}; the pool is damaged",
            recipe.size
        )));
    }
    let mut chunks = Vec::with_capacity(recipe.chunks.len());
    for chunk in recipe.chunks {
        if !is_sha256_hex(&chunk.sha256) {
            return Some(Err(format!(
                "{rel} names a chunk {:?} that is not a SHA-256",
                chunk.sha256
            )));
        }
        let chunk_path = layout::chunk_rel(&chunk.sha256);
        if !root.join(&chunk_path).is_file() {
            return Some(Err(format!(
                "{chunk_path} (a chunk of content {sha256}) is missing; the pool is damaged"
            )));
        }
        chunks.push(ChunkLocation {
            sha256: chunk.sha256,
            size: chunk.size,
            path: chunk_path,
            offset: 0,
        });
    }
    Some(Ok(ContentChunks {
        sha256: sha256.to_owned(),
        size: recipe.size,
        chunks,
        next_chunk: None,
        error: None,
    }))
}

/// Cuts the whole file `rel` (relative to the root): `Ok(None)` when it does not exist, an error
/// when it cannot be read or its bytes are not the content.
fn cut_file(root: &Path, rel: &str, sha256: &str) -> Result<Option<ContentChunks>, String> {
    let path = root.join(rel);
    let file = match open_regular(&path, root) {
        Ok(file) => file,
        Err(error) if error.is_not_found() => return Ok(None),
        Err(error) => return Err(error.to_string()),
    };
    let mut chunks = Vec::new();
    let cut = cut_stream(
        BufReader::with_capacity(1 << 20, file),
        |offset, piece, _| {
            chunks.push(ChunkLocation {
                sha256: piece.sha256.clone(),
                size: piece.size,
                path: rel.to_owned(),
                offset,
            });
            Ok::<(), io::Error>(())
        },
    )
    .map_err(|error| format!("{rel}: cannot read: {error}"))?;
    if cut.sha256 != sha256 {
        return Err(format!(
            "{rel}: its bytes hash to {} instead; the file is damaged",
            cut.sha256
        ));
    }
    Ok(Some(ContentChunks {
        sha256: sha256.to_owned(),
        size: cut.size,
        chunks,
        next_chunk: None,
        error: None,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunking::sha256_hex;
    use crate::testing::Fixture;
    use runicorn_protocol::run_format::artifacts::ChunkerParams;
    use runicorn_protocol::run_format::json_file::write_json_atomic;
    use std::fs;

    fn noise(len: usize, seed: u64) -> Vec<u8> {
        let mut rng = fastrand::Rng::with_seed(seed);
        (0..len).map(|_| rng.u8(..)).collect()
    }

    fn put(root: &Path, rel: &str, bytes: &[u8]) {
        let path = root.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, bytes).unwrap();
    }

    fn assemble(root: &Path, answer: &ContentChunks) -> Vec<u8> {
        let mut out = Vec::new();
        for c in &answer.chunks {
            let bytes = fs::read(root.join(&c.path)).unwrap();
            let start = c.offset as usize;
            let piece = &bytes[start..start + c.size as usize];
            assert_eq!(sha256_hex(piece), c.sha256);
            out.extend_from_slice(piece);
        }
        out
    }

    #[test]
    fn a_whole_pool_file_is_cut_on_the_fly() {
        let fx = Fixture::new();
        let data = noise(600_000, 3);
        let sha = sha256_hex(&data);
        put(fx.root(), &layout::pool_rel(&sha), &data);
        let answer = content_chunks(fx.root(), &sha);
        assert_eq!(answer.error, None);
        assert_eq!(answer.size, data.len() as u64);
        assert!(answer.chunks.len() > 2);
        assert!(answer
            .chunks
            .iter()
            .all(|c| c.path == layout::pool_rel(&sha)));
        assert_eq!(assemble(fx.root(), &answer), data);
    }

    #[test]
    fn an_upstream_blob_is_cut_on_the_fly() {
        let fx = Fixture::new();
        let data = noise(100_000, 4);
        let sha = sha256_hex(&data);
        put(
            fx.root(),
            &format!("archive/blobs/{}/{sha}", &sha[..2]),
            &data,
        );
        let answer = content_chunks(fx.root(), &sha);
        assert_eq!(answer.error, None);
        assert_eq!(assemble(fx.root(), &answer), data);
    }

    #[test]
    fn a_recipe_points_at_chunk_files() {
        let fx = Fixture::new();
        let data = noise(500_000, 5);
        let sha = sha256_hex(&data);
        let mut refs = Vec::new();
        let cut = cut_stream(&data[..], |_, piece, bytes| {
            put(fx.root(), &layout::chunk_rel(&piece.sha256), bytes);
            refs.push(piece.clone());
            Ok(())
        })
        .unwrap();
        let recipe = ChunkRecipe {
            format: 1,
            sha256: sha.clone(),
            size: cut.size,
            chunker: ChunkerParams::current(),
            chunks: refs,
        };
        fs::create_dir_all(layout::recipe_file(fx.root(), &sha).parent().unwrap()).unwrap();
        write_json_atomic(&layout::recipe_file(fx.root(), &sha), &recipe).unwrap();
        let answer = content_chunks(fx.root(), &sha);
        assert_eq!(answer.error, None);
        assert!(answer
            .chunks
            .iter()
            .all(|c| c.offset == 0 && c.path.starts_with("artifacts/.chunks/")));
        assert_eq!(assemble(fx.root(), &answer), data);

        // A lost chunk is reported, naming it.
        let lost = &recipe.chunks[1];
        fs::remove_file(layout::chunk_file(fx.root(), &lost.sha256)).unwrap();
        let answer = content_chunks(fx.root(), &sha);
        assert!(answer.error.unwrap().contains(&lost.sha256));
    }

    #[test]
    fn cut_on_the_fly_and_packed_give_the_same_chunks() {
        let fx = Fixture::new();
        let data = noise(6 << 20, 8);
        let sha =
            crate::testing::write_version(fx.root(), "model", "m", 1, &[("w", &data)])[0].clone();
        let before = content_chunks(fx.root(), &sha);
        crate::pack::pack(fx.root(), false, &mut |_| {}).unwrap();
        let after = content_chunks(fx.root(), &sha);
        assert_eq!(before.error, None);
        assert_eq!(after.error, None);
        assert!(after.chunks[0].path.starts_with("artifacts/.chunks/"));
        let names = |c: &ContentChunks| -> Vec<(String, u32)> {
            c.chunks
                .iter()
                .map(|c| (c.sha256.clone(), c.size))
                .collect()
        };
        assert_eq!(names(&before), names(&after));
        assert_eq!(assemble(fx.root(), &after), data);
    }

    #[test]
    fn absent_damaged_and_bad_names_are_errors() {
        let fx = Fixture::new();
        let sha = sha256_hex(b"nothing here");
        let answer = content_chunks(fx.root(), &sha);
        assert!(answer.error.unwrap().contains("in none of"));
        put(fx.root(), &layout::pool_rel(&sha), b"other bytes");
        let answer = content_chunks(fx.root(), &sha);
        assert!(answer.error.unwrap().contains("damaged"));
        let answer = content_chunks(fx.root(), "../../etc/passwd");
        assert!(answer.error.unwrap().contains("not a content name"));
    }

    #[test]
    fn a_link_out_of_the_root_is_refused() {
        let fx = Fixture::new();
        let outside = tempfile::tempdir().unwrap();
        let data = b"secret".to_vec();
        let sha = sha256_hex(&data);
        fs::write(outside.path().join("x"), &data).unwrap();
        let pooled = layout::pool_file(fx.root(), &sha);
        fs::create_dir_all(pooled.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(outside.path().join("x"), &pooled).unwrap();
        let answer = content_chunks(fx.root(), &sha);
        assert!(answer.error.unwrap().contains("outside the storage root"));
    }
}
