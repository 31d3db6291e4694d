//! Content-defined chunking: cutting a byte stream into chunks with the `fastcdc` crate
//! (FastCDC 2020) at [`ChunkerParams::current`], hashing each chunk and the whole stream with
//! SHA-256 in the same pass. The same bytes give the same chunks on every host, so successive
//! checkpoints that change in part share most of their chunks.
//!
//! The whole stream's hash runs on a second thread ([`with_background_hash`]), so cutting a
//! large file costs about one pass of chunk hashing on the caller's thread.

use std::io::{self, Read};

use fastcdc::v2020::{Error as CdcError, StreamCDC};
use runicorn_protocol::run_format::artifacts::{ChunkRef, ChunkerParams};
use sha2::{Digest, Sha256};

/// A stream cut into chunks: the whole stream's hash and size, and its chunks in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CutStream {
    pub sha256: String,
    pub size: u64,
    pub chunks: Vec<ChunkRef>,
}

/// Lowercase hex of a digest.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        text.push(DIGITS[usize::from(b >> 4)] as char);
        text.push(DIGITS[usize::from(b & 15)] as char);
    }
    text
}

/// The SHA-256 of `bytes` as lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Cuts `reader` into chunks; `on_chunk(offset, chunk, bytes)` sees each one as it is cut (to
/// store it, or to skip it when it is already held). The whole stream's SHA-256 is computed on a
/// second thread while this one cuts and hashes the chunks.
pub fn cut_stream<R: Read>(
    reader: R,
    mut on_chunk: impl FnMut(u64, &ChunkRef, &[u8]) -> io::Result<()>,
) -> io::Result<CutStream> {
    let params = ChunkerParams::current();
    let mut chunks = Vec::new();
    let mut size = 0u64;
    let cutter = StreamCDC::new(
        reader,
        params.min as usize,
        params.avg as usize,
        params.max as usize,
    );
    let sha256 = with_background_hash(|whole: &mut dyn FnMut(Vec<u8>)| -> io::Result<()> {
        for item in cutter {
            let chunk = item.map_err(|error| match error {
                CdcError::IoError(io) => io,
                other => io::Error::other(other.to_string()),
            })?;
            // A chunk is at most `ChunkerParams::MAX` (256 KiB) long, which fits a u32.
            let length = u32::try_from(chunk.length).unwrap_or(u32::MAX);
            let piece = ChunkRef {
                sha256: sha256_hex(&chunk.data),
                size: length,
            };
            on_chunk(chunk.offset, &piece, &chunk.data)?;
            size += chunk.length as u64;
            chunks.push(piece);
            whole(chunk.data);
        }
        Ok(())
    })?;
    Ok(CutStream {
        sha256,
        size,
        chunks,
    })
}

/// Runs `work`, which hands blocks of a stream in order to the function it is given; they are
/// hashed with SHA-256 on a second thread. The stream's hash (lowercase hex) once `work` is done.
pub fn with_background_hash<E>(
    work: impl FnOnce(&mut dyn FnMut(Vec<u8>)) -> Result<(), E>,
) -> Result<String, E> {
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(16);
        let hasher = scope.spawn(move || {
            let mut whole = Sha256::new();
            for block in rx {
                whole.update(&block);
            }
            hex(&whole.finalize())
        });
        let mut send = |block: Vec<u8>| {
            // The hasher only stops when the sender is dropped, so this cannot fail.
            let _ = tx.send(block);
        };
        let outcome = work(&mut send);
        drop(tx);
        // The hasher thread does nothing that can panic but hash; a panic there is resumed here.
        let digest = match hasher.join() {
            Ok(digest) => digest,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        outcome.map(|()| digest)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise(len: usize, seed: u64) -> Vec<u8> {
        let mut rng = fastrand::Rng::with_seed(seed);
        (0..len).map(|_| rng.u8(..)).collect()
    }

    #[test]
    fn chunks_tile_the_stream_and_hash_it() {
        let data = noise(3 << 20, 1);
        let mut seen = Vec::new();
        let cut = cut_stream(&data[..], |offset, piece, bytes| {
            assert_eq!(piece.sha256, sha256_hex(bytes));
            seen.push((offset, bytes.len()));
            Ok(())
        })
        .unwrap();
        assert_eq!(cut.size, data.len() as u64);
        assert_eq!(cut.sha256, sha256_hex(&data));
        let mut next = 0u64;
        for (offset, len) in seen {
            assert_eq!(offset, next);
            assert!(len <= ChunkerParams::MAX as usize);
            next += len as u64;
        }
        assert_eq!(next, data.len() as u64);
        assert!(cut.chunks.len() > 20, "{} chunks", cut.chunks.len());
    }

    #[test]
    fn an_edit_in_the_middle_changes_few_chunks() {
        let data = noise(4 << 20, 2);
        let mut edited = data.clone();
        edited[2 << 20..(2 << 20) + 1000].fill(7);
        edited.splice(1 << 20..1 << 20, [1u8, 2, 3]);
        let a = cut_stream(&data[..], |_, _, _| Ok(())).unwrap();
        let b = cut_stream(&edited[..], |_, _, _| Ok(())).unwrap();
        let known: std::collections::HashSet<_> = a.chunks.iter().map(|c| &c.sha256).collect();
        let new = b
            .chunks
            .iter()
            .filter(|c| !known.contains(&c.sha256))
            .count();
        assert!(new <= 6, "{new} of {} chunks changed", b.chunks.len());
    }

    #[test]
    fn empty_stream_has_no_chunks() {
        let cut = cut_stream(&[][..], |_, _, _| Ok(())).unwrap();
        assert_eq!(cut.size, 0);
        assert!(cut.chunks.is_empty());
        assert_eq!(cut.sha256, sha256_hex(b""));
    }
}
