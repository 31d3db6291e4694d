//! Answering `chunks`: for each content the hub names by its whole-file SHA-256, where its
//! chunks are under the root (a packed content's chunk files, or a whole pool or upstream blob
//! file cut on the fly), from `runicorn_artifact_store::content::content_chunks`. The hub then
//! reads only the chunks it lacks, over SFTP, and checks each against its hash.
//!
//! Names are checked before they reach the file system (64 lowercase hex digits, nothing
//! else), and every location sent back must pass the wire's path rule, so an answer never
//! points the hub outside the root. A content that cannot be found is answered with its
//! `error`, not by failing the request.
//!
//! Long lists (a content of several GiB has more chunk entries than a frame holds) go in pages
//! (`start_chunk`, `max_chunks` → `next_chunk`): each page stays within its share of the
//! hub's frame limit, whatever the hub asked.

use std::sync::{Arc, Mutex, PoisonError};

use runicorn_protocol::run_format::artifacts::is_sha256_hex;
use runicorn_protocol::wire::{
    check_wire_path, encode_frame, Body, ChunkListBatch, ChunksRequest, ContentChunks, Envelope,
};

use super::request_error::RequestError;
use super::shared::Shared;
use super::sizing::json_len;

/// Most contents one request may name (the hub asks for a few at a time).
pub const MAX_CONTENTS: usize = 64;

/// Bytes of a frame kept for the envelope and each content's fields besides its chunks.
const FRAME_RESERVE: usize = 4096;
const CONTENT_RESERVE: usize = 512;

/// The last long list answered in pages, so the next pages of it are not computed again (a
/// whole file cut on the fly means reading all of it). Only later pages use it: a request from
/// the first chunk always looks again, so a fetch never starts from an old list.
#[derive(Default)]
pub struct PagedLists {
    last: Mutex<Option<Arc<ContentChunks>>>,
}

impl PagedLists {
    fn get(&self, sha256: &str) -> Option<Arc<ContentChunks>> {
        let last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        last.as_ref().filter(|l| l.sha256 == sha256).cloned()
    }

    fn keep(&self, list: Arc<ContentChunks>) {
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) = Some(list);
    }
}

/// Builds the encoded answer frame for a `chunks` request: one page of each content's list,
/// every page within an equal share of the hub's frame limit.
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
    let limit = shared.out.limit() as usize;
    let budget = limit.saturating_sub(FRAME_RESERVE) / req.contents.len().max(1);
    let start = req.start_chunk.unwrap_or(0);
    let contents = req
        .contents
        .iter()
        .map(|sha| {
            let full = match shared.paged_lists.get(sha).filter(|_| start > 0) {
                Some(kept) => kept,
                None => Arc::new(locate(&shared.root, sha)),
            };
            let answer = page(&full, start, req.max_chunks, budget);
            if answer.next_chunk.is_some() {
                shared.paged_lists.keep(full);
            }
            answer
        })
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

/// The page of `full` from chunk `start`: at most `max` chunks (when set) and at most about
/// `budget` bytes of JSON, but always at least one chunk while any remain (a chunk's entry is a
/// few hundred bytes, far below any frame limit), so paging always moves on.
pub fn page(full: &ContentChunks, start: u64, max: Option<u32>, budget: usize) -> ContentChunks {
    let mut answer = ContentChunks {
        sha256: full.sha256.clone(),
        size: full.size,
        chunks: Vec::new(),
        next_chunk: None,
        error: full.error.clone(),
    };
    if full.error.is_some() {
        return answer;
    }
    let from = usize::try_from(start)
        .unwrap_or(usize::MAX)
        .min(full.chunks.len());
    let most = max.map_or(usize::MAX, |m| (m as usize).max(1));
    let room = budget.saturating_sub(CONTENT_RESERVE);
    let mut used = 0usize;
    for chunk in &full.chunks[from..] {
        let cost = json_len(chunk) + 1;
        if !answer.chunks.is_empty() && (answer.chunks.len() >= most || used + cost > room) {
            break;
        }
        used += cost;
        answer.chunks.push(chunk.clone());
    }
    let next = from + answer.chunks.len();
    if next < full.chunks.len() {
        answer.next_chunk = Some(next as u64);
    }
    answer
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
        next_chunk: None,
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

    #[test]
    fn long_lists_come_in_pages_within_the_budget_and_join_to_the_whole() {
        let root = tempfile::tempdir().unwrap();
        let mut rng = fastrand::Rng::with_seed(5);
        let data: Vec<u8> = (0..3_000_000).map(|_| rng.u8(..)).collect();
        let sha = sha256_hex(&data);
        let pool = root.path().join("artifacts/.pool").join(&sha[..2]);
        std::fs::create_dir_all(&pool).unwrap();
        std::fs::write(pool.join(&sha), &data).unwrap();
        let full = locate(root.path(), &sha);
        assert!(full.chunks.len() > 20, "{}", full.chunks.len());

        // By count: pages of 7 that join to the whole list.
        let mut joined = Vec::new();
        let mut start = 0;
        let mut pages = 0;
        loop {
            let p = page(&full, start, Some(7), usize::MAX);
            assert!(p.chunks.len() <= 7 && !p.chunks.is_empty());
            joined.extend(p.chunks);
            pages += 1;
            match p.next_chunk {
                Some(next) => {
                    assert_eq!(next, joined.len() as u64);
                    start = next;
                }
                None => break,
            }
        }
        assert_eq!(joined, full.chunks);
        assert_eq!(pages, full.chunks.len().div_ceil(7));

        // By bytes: a budget for about three entries gives pages that fit it.
        let one = json_len(&full.chunks[0]) + 1;
        let p = page(&full, 0, None, CONTENT_RESERVE + 3 * one + 10);
        assert!((2..=3).contains(&p.chunks.len()), "{}", p.chunks.len());
        assert!(json_len(&p) < CONTENT_RESERVE + 3 * one + 10);
        // A budget too small for any still moves on by one chunk.
        let p = page(&full, 5, None, 1);
        assert_eq!((p.chunks.len(), p.next_chunk), (1, Some(6)));
        // The last page, and a start past the end: no next page.
        let last = page(&full, full.chunks.len() as u64 - 1, None, usize::MAX);
        assert_eq!((last.chunks.len(), last.next_chunk), (1, None));
        let past = page(&full, 10_000, None, usize::MAX);
        assert!(past.chunks.is_empty() && past.next_chunk.is_none());
        // Everything when it fits, as an unpaged answer.
        let all = page(&full, 0, None, usize::MAX);
        assert_eq!(
            (all.chunks.len(), all.next_chunk),
            (full.chunks.len(), None)
        );
    }
}
