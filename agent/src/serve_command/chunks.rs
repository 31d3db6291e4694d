//! Answering `chunks`: for each content the hub names by its whole-file SHA-256, where its
//! chunks are under the root (a packed content's chunk files, or a whole pool or upstream blob
//! file cut on the fly), from `runicorn_artifact_store::content::content_chunks`. The hub then
//! reads only the chunks it lacks, over SFTP, and checks each against its hash.
//!
//! Names are checked before they reach the file system (64 lowercase hex digits, nothing
//! else), and every location sent back must pass the wire's path rule, so an answer never
//! points the hub outside the root. A content that cannot be found is answered with its
//! `error`, not by failing the request.

use runicorn_protocol::run_format::artifacts::is_sha256_hex;
use runicorn_protocol::wire::{
    check_wire_path, encode_frame, Body, ChunkListBatch, ChunksRequest, ContentChunks, Envelope,
};

use super::request_error::RequestError;
use super::shared::Shared;

/// Most contents one request may name (the hub asks for a few at a time).
pub const MAX_CONTENTS: usize = 64;

/// Builds the encoded answer frame for a `chunks` request.
pub fn answer(shared: &Shared, id: u64, req: &ChunksRequest) -> Result<Vec<u8>, RequestError> {
    if req.contents.len() > MAX_CONTENTS {
        return Err(RequestError::TooLarge {
            limit: shared.out.limit(),
            what: format!(
                "{} contents asked for at once; ask for at most {MAX_CONTENTS}",
                req.contents.len()
            ),
        });
    }
    let contents = req
        .contents
        .iter()
        .map(|sha| locate(&shared.root, sha))
        .collect();
    let envelope = Envelope {
        id,
        body: Body::ChunkList(ChunkListBatch { contents }),
    };
    encode_frame(&envelope, shared.out.limit()).map_err(|e| RequestError::TooLarge {
        limit: shared.out.limit(),
        what: format!("{e}; ask for fewer contents at once"),
    })
}

/// The chunk list of one content, or why there is none.
pub fn locate(root: &std::path::Path, sha256: &str) -> ContentChunks {
    if !is_sha256_hex(sha256) {
        return failed(sha256, "not a SHA-256 (64 lowercase hex digits)".into());
    }
    let mut found = runicorn_artifact_store::content::content_chunks(root, sha256);
    if let Some(bad) = found
        .chunks
        .iter()
        .find(|c| check_wire_path(&c.path).is_err())
    {
        let path = bad.path.clone();
        return failed(
            sha256,
            format!("its chunk path {path:?} is not a plain path under the storage root"),
        );
    }
    found.sha256 = sha256.to_owned();
    found
}

fn failed(sha256: &str, error: String) -> ContentChunks {
    ContentChunks {
        sha256: sha256.to_owned(),
        size: 0,
        chunks: vec![],
        error: Some(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use runicorn_artifact_store::chunking::sha256_hex;

    #[test]
    fn a_whole_pool_file_is_listed_by_chunks_and_bad_names_are_refused() {
        let root = tempfile::tempdir().unwrap();
        let mut rng = fastrand::Rng::with_seed(3);
        let data: Vec<u8> = (0..700_000).map(|_| rng.u8(..)).collect();
        let sha = sha256_hex(&data);
        let pool = root.path().join("artifacts/.pool").join(&sha[..2]);
        std::fs::create_dir_all(&pool).unwrap();
        std::fs::write(pool.join(&sha), &data).unwrap();
        let listed = locate(root.path(), &sha);
        assert_eq!(listed.error, None);
        assert_eq!(listed.size, data.len() as u64);
        let mut at = 0u64;
        for c in &listed.chunks {
            assert!(check_wire_path(&c.path).is_ok(), "{}", c.path);
            let (o, n) = (c.offset as usize, c.size as usize);
            assert_eq!(sha256_hex(&data[o..o + n]), c.sha256);
            at += u64::from(c.size);
        }
        assert_eq!(at, data.len() as u64);
        for bad in ["../../etc/passwd", "ABC", &"0".repeat(64)] {
            let answer = locate(root.path(), bad);
            assert!(answer.error.is_some() && answer.chunks.is_empty(), "{bad}");
        }
    }
}
