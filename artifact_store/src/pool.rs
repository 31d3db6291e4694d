//! The content pool's bytes: putting a file in it (whole, or as chunks with a recipe), and
//! reading a content back (from its whole file, or assembled from its chunks), always checked
//! against its SHA-256. Callers hold the pool lock (see [`crate::locks`]) around writes.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use runicorn_protocol::run_format::artifacts::{ChunkRecipe, ChunkerParams};
use runicorn_protocol::run_format::json_file::{read_json_in, write_json_atomic};
use sha2::{Digest, Sha256};

use crate::chunking::{cut_stream, hex, sha256_hex};
use crate::error::{IoContext, StoreError};
use crate::layout;

/// Bytes moved per read while copying.
const COPY_BLOCK: usize = 1 << 20;

/// A content now in the pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pooled {
    pub sha256: String,
    pub size: u64,
}

/// A fresh temp file path in `artifacts/.pool/tmp/`.
pub(crate) fn temp_path(root: &Path, what: &str) -> Result<PathBuf, StoreError> {
    let dir = layout::pool_tmp_dir(root);
    fs::create_dir_all(&dir).at(&dir)?;
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    Ok(dir.join(format!(
        "{}-{nanos}-{:08x}-{what}",
        std::process::id(),
        fastrand::u32(..)
    )))
}

/// Moves a finished temp file to `dest` (read-only), unless `dest` already holds it.
fn publish(tmp: &Path, dest: &Path) -> Result<(), StoreError> {
    if dest.is_file() {
        fs::remove_file(tmp).at(tmp)?;
        return Ok(());
    }
    if let Some(parent) = dest.parent() {
        fs::create_dir_all(parent).at(parent)?;
    }
    fs::set_permissions(tmp, fs::Permissions::from_mode(0o444)).at(tmp)?;
    fs::rename(tmp, dest).at(dest)
}

/// Copies `source` into the pool whole (once per content); its hash and size.
pub fn put_whole(root: &Path, source: &Path) -> Result<Pooled, StoreError> {
    let tmp = temp_path(root, "whole")?;
    let result = (|| {
        let mut input = File::open(source).at(source)?;
        let mut out = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .at(&tmp)?;
        let mut digest = Sha256::new();
        let mut size = 0u64;
        let mut block = vec![0u8; COPY_BLOCK];
        loop {
            let n = match input.read(&mut block) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(StoreError::io(source, e)),
            };
            digest.update(&block[..n]);
            out.write_all(&block[..n]).at(&tmp)?;
            size += n as u64;
        }
        out.sync_data().at(&tmp)?;
        let sha256 = hex(&digest.finalize());
        if layout::recipe_file(root, &sha256).is_file() {
            // Already held as chunks.
            fs::remove_file(&tmp).at(&tmp)?;
        } else {
            publish(&tmp, &layout::pool_file(root, &sha256))?;
        }
        Ok(Pooled { sha256, size })
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Cuts `reader` into chunks, storing those the chunk store lacks, and writes the content's
/// recipe (unless it has one); its hash and size.
pub fn put_chunked<R: Read>(root: &Path, reader: R, what: &Path) -> Result<Pooled, StoreError> {
    let mut write_error = None;
    let cut = cut_stream(reader, |_, piece, bytes| {
        if let Err(error) = store_chunk(root, &piece.sha256, bytes) {
            let message = error.to_string();
            write_error = Some(error);
            return Err(io::Error::other(message));
        }
        Ok(())
    });
    if let Some(error) = write_error {
        return Err(error);
    }
    let cut = cut.at(what)?;
    let recipe_path = layout::recipe_file(root, &cut.sha256);
    if !recipe_path.is_file() {
        let recipe = ChunkRecipe {
            format: 1,
            sha256: cut.sha256.clone(),
            size: cut.size,
            chunker: ChunkerParams::current(),
            chunks: cut.chunks,
        };
        if let Some(parent) = recipe_path.parent() {
            fs::create_dir_all(parent).at(parent)?;
        }
        write_json_atomic(&recipe_path, &recipe).at(&recipe_path)?;
    }
    Ok(Pooled {
        sha256: cut.sha256,
        size: cut.size,
    })
}

/// Writes one chunk to `.chunks/<sha[:2]>/<sha>` unless it is there.
fn store_chunk(root: &Path, sha256: &str, bytes: &[u8]) -> Result<(), StoreError> {
    let dest = layout::chunk_file(root, sha256);
    if dest.is_file() {
        return Ok(());
    }
    let tmp = temp_path(root, "chunk")?;
    let result = fs::write(&tmp, bytes)
        .at(&tmp)
        .and_then(|()| publish(&tmp, &dest));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Copies `source` into the pool: as chunks when `chunked` and it is at least
/// [`runicorn_protocol::run_format::artifacts::CHUNKED_MIN_FILE_BYTES`], else whole.
pub fn put_file(root: &Path, source: &Path, chunked: bool) -> Result<Pooled, StoreError> {
    let size = fs::metadata(source).at(source)?.len();
    if chunked && size >= runicorn_protocol::run_format::artifacts::CHUNKED_MIN_FILE_BYTES {
        let file = File::open(source).at(source)?;
        put_chunked(root, BufReader::with_capacity(COPY_BLOCK, file), source)
    } else {
        put_whole(root, source)
    }
}

/// The recipe of a content held as chunks, if it has one.
pub fn read_recipe(root: &Path, sha256: &str) -> Result<Option<ChunkRecipe>, StoreError> {
    let path = layout::recipe_file(root, sha256);
    match read_json_in::<ChunkRecipe>(&path, root) {
        Ok(recipe) => Ok(Some(recipe)),
        Err(error) if error.is_not_found() => Ok(None),
        Err(error) => Err(error.into()),
    }
}

/// Writes the content `sha256` to `out`, from its whole pool file or its chunks, checking each
/// chunk and the whole against their SHA-256; the bytes written.
pub fn copy_content(root: &Path, sha256: &str, out: &mut dyn Write) -> Result<u64, StoreError> {
    let whole = layout::pool_file(root, sha256);
    let mut digest = Sha256::new();
    let mut size = 0u64;
    match File::open(&whole) {
        Ok(mut file) => {
            let mut block = vec![0u8; COPY_BLOCK];
            loop {
                let n = match file.read(&mut block) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(StoreError::io(&whole, e)),
                };
                digest.update(&block[..n]);
                out.write_all(&block[..n])
                    .map_err(|e| StoreError::io(Path::new("<output>"), e))?;
                size += n as u64;
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let Some(recipe) = read_recipe(root, sha256)? else {
                return Err(StoreError::NotFound(format!(
                    "content {sha256} is neither whole in {} nor chunked ({}); the pool lost it",
                    layout::pool_rel(sha256),
                    layout::recipe_rel(sha256)
                )));
            };
            for chunk in &recipe.chunks {
                let path = layout::chunk_file(root, &chunk.sha256);
                let bytes = fs::read(&path).at(&path)?;
                if bytes.len() != chunk.size as usize || sha256_hex(&bytes) != chunk.sha256 {
                    return Err(StoreError::Damaged(format!(
                        "{}: its bytes are not chunk {} of content {sha256}; the chunk store is damaged",
                        layout::chunk_rel(&chunk.sha256),
                        chunk.sha256
                    )));
                }
                digest.update(&bytes);
                out.write_all(&bytes)
                    .map_err(|e| StoreError::io(Path::new("<output>"), e))?;
                size += bytes.len() as u64;
            }
        }
        Err(e) => return Err(StoreError::io(&whole, e)),
    }
    let got = hex(&digest.finalize());
    if got != sha256 {
        return Err(StoreError::Damaged(format!(
            "content {sha256} reads back as {got}; the pool is damaged"
        )));
    }
    Ok(size)
}

/// Writes the content `sha256` to the file `dest` (through a temp file beside it, so `dest`
/// only ever holds checked bytes).
pub fn materialise(root: &Path, sha256: &str, dest: &Path) -> Result<u64, StoreError> {
    let parent = dest.parent().unwrap_or_else(|| Path::new("."));
    fs::create_dir_all(parent).at(parent)?;
    let tmp = parent.join(format!(
        ".{}.tmp-{}-{:08x}",
        dest.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        std::process::id(),
        fastrand::u32(..)
    ));
    let result = (|| {
        let mut file = File::create(&tmp).at(&tmp)?;
        let size = {
            let mut buffered = io::BufWriter::with_capacity(COPY_BLOCK, &mut file);
            let size = copy_content(root, sha256, &mut buffered)?;
            buffered.flush().at(&tmp)?;
            size
        };
        file.sync_data().at(&tmp)?;
        fs::rename(&tmp, dest).at(dest)?;
        Ok(size)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Hashes a file on disk (to verify it).
pub fn hash_file(path: &Path) -> Result<(String, u64), StoreError> {
    let mut file = File::open(path).at(path)?;
    let mut digest = Sha256::new();
    let mut block = vec![0u8; COPY_BLOCK];
    let mut size = 0u64;
    loop {
        let n = match file.read(&mut block) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(StoreError::io(path, e)),
        };
        digest.update(&block[..n]);
        size += n as u64;
    }
    Ok((hex(&digest.finalize()), size))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Fixture;

    fn noise(len: usize, seed: u64) -> Vec<u8> {
        let mut rng = fastrand::Rng::with_seed(seed);
        (0..len).map(|_| rng.u8(..)).collect()
    }

    #[test]
    fn whole_and_chunked_contents_read_back_checked() {
        let fx = Fixture::new();
        let src = fx.root().join("src.bin");
        let data = noise(5 << 20, 9);
        fs::write(&src, &data).unwrap();
        let whole = put_whole(fx.root(), &src).unwrap();
        assert_eq!(whole.sha256, sha256_hex(&data));
        let pooled = layout::pool_file(fx.root(), &whole.sha256);
        assert_eq!(
            fs::metadata(&pooled).unwrap().permissions().mode() & 0o777,
            0o444
        );
        let mut out = Vec::new();
        copy_content(fx.root(), &whole.sha256, &mut out).unwrap();
        assert_eq!(out, data);

        let other = fx.root().join("other");
        let edited: Vec<u8> = data.iter().map(|b| b ^ 1).collect();
        fs::write(&other, &edited).unwrap();
        let chunked = put_file(fx.root(), &other, true).unwrap();
        assert!(!layout::pool_file(fx.root(), &chunked.sha256).exists());
        let dest = fx.root().join("out/x.bin");
        materialise(fx.root(), &chunked.sha256, &dest).unwrap();
        assert_eq!(fs::read(&dest).unwrap(), edited);

        // A damaged chunk is refused, naming it.
        let recipe = read_recipe(fx.root(), &chunked.sha256).unwrap().unwrap();
        let victim = layout::chunk_file(fx.root(), &recipe.chunks[3].sha256);
        fs::set_permissions(&victim, fs::Permissions::from_mode(0o644)).unwrap();
        fs::write(&victim, b"garbage").unwrap();
        let error = copy_content(fx.root(), &chunked.sha256, &mut io::sink()).unwrap_err();
        assert!(
            error.to_string().contains(&recipe.chunks[3].sha256),
            "{error}"
        );
        // No temp files are left behind.
        assert_eq!(
            fs::read_dir(layout::pool_tmp_dir(fx.root()))
                .unwrap()
                .count(),
            0
        );
    }
}
