//! `GET /api/runs/{run}/logs`: a page of the run's `logs.txt` as the store holds it, by byte
//! offset into the remote file. The store keeps the file's exact bytes; a page is the bytes
//! `offset..next`, cut after a newline (or, for one line longer than the page, where no valid
//! UTF-8 character is split), and its `text` is their lossy decoding: invalid bytes show as
//! U+FFFD without moving any offset. `?format=raw` downloads the stored bytes themselves.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header::{self, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use runicorn_store::{LogChunkRow, RunKey};
use serde::Serialize;

use crate::error::ApiError;
use crate::query::Params;
use crate::routes::{resolve_run, ApiPath};
use crate::state::AppState;
use crate::store_pool::StorePool;

/// Largest page.
pub const MAX_PAGE_BYTES: u64 = 1024 * 1024;
/// Page size when not asked.
pub const DEFAULT_PAGE_BYTES: u64 = 64 * 1024;
/// Bytes read from the store per step of a raw download.
const RAW_READ_BYTES: u64 = 1024 * 1024;
/// A UTF-8 character is at most this long: bytes read past a cut to see whether it splits one.
pub(crate) const MAX_CHAR_BYTES: u64 = 4;

/// One page of a log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct LogPage {
    pub start: u64,
    pub offset: u64,
    pub next: u64,
    pub end: u64,
    pub text: String,
    pub eof: bool,
}

/// What `format` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Raw,
}

/// `GET /api/runs/{run}/logs`.
pub async fn get(
    State(state): State<Arc<AppState>>,
    ApiPath(reference): ApiPath<String>,
    params: Params,
) -> Result<Response, ApiError> {
    let key = resolve_run(&state, &reference).await?;
    let format = match params.text("format") {
        None | Some("json") => Format::Json,
        Some("raw") => Format::Raw,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "parameter format={other:?} is not json or raw"
            )))
        }
    };
    let limit = params.number("limit", DEFAULT_PAGE_BYTES, MAX_PAGE_BYTES)?;
    if limit == 0 {
        return Err(ApiError::bad_request(
            "parameter limit=0 is too small (at least 1 byte)",
        ));
    }
    let offset = params.integer("offset")?;
    if let Some(o) = offset.filter(|&o| o < 0) {
        return Err(ApiError::bad_request(format!(
            "parameter offset={o} must not be negative"
        )));
    }
    let offset = offset.map(|o| o as u64);
    if format == Format::Raw {
        for name in ["offset", "limit"] {
            if params.text(name).is_some() {
                return Err(ApiError::bad_request(format!(
                    "parameter {name} does not go with format=raw (the whole stored log is sent)"
                )));
            }
        }
        return raw(&state.pool, key).await;
    }
    let page = state
        .pool
        .read(move |store| {
            let run = store.run_by_key(key)?.ok_or(ApiError::no_run(key.0))?;
            let Some((start, end)) = run.log_synced else {
                return Ok(LogPage {
                    start: 0,
                    offset: 0,
                    next: 0,
                    end: 0,
                    text: String::new(),
                    eof: true,
                });
            };
            let from = match offset {
                Some(o) => o.clamp(start, end),
                None => end.saturating_sub(limit).max(start),
            };
            let chunks = store.log_chunks_since(key, from, limit + MAX_CHAR_BYTES)?;
            Ok(page_of(
                &chunks,
                start,
                end,
                from,
                limit,
                offset.is_none() && from > start,
            ))
        })
        .await?;
    Ok(Json(page).into_response())
}

/// Cuts the page starting at `from` out of the chunks (which end after `from`). A tail page
/// (`skip_partial_line`) starts after its first newline so it begins with a whole line.
pub fn page_of(
    chunks: &[LogChunkRow],
    start: u64,
    end: u64,
    from: u64,
    limit: u64,
    skip_partial_line: bool,
) -> LogPage {
    let (mut offset, mut bytes) = read_from(chunks, from, limit + MAX_CHAR_BYTES);
    if skip_partial_line {
        if let Some(nl) = bytes
            .iter()
            .position(|&b| b == b'\n')
            .filter(|&nl| nl + 1 < bytes.len())
        {
            bytes.drain(..=nl);
            offset += nl as u64 + 1;
        }
    }
    bytes.truncate(page_end(&bytes, limit));
    let next = offset + bytes.len() as u64;
    LogPage {
        start,
        offset,
        next,
        end,
        // An empty page that is not at the end stands before bytes the store lacks.
        eof: next >= end || bytes.is_empty(),
        text: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

/// The contiguous stored bytes from `from` on, at most `want` of them (stopping at a gap in the
/// chunks); returns where they really start (the first chunk's start when `from` is before it).
pub(crate) fn read_from(chunks: &[LogChunkRow], from: u64, want: u64) -> (u64, Vec<u8>) {
    let mut bytes: Vec<u8> = Vec::new();
    let mut pos = from;
    let mut offset = from;
    for chunk in chunks {
        // What the chunk really holds: a copy stored as lossy text by an older hub may differ
        // in length from its range; offsets never go past what is there.
        let held = chunk.from + (chunk.bytes.len() as u64).min(chunk.to - chunk.from);
        if held <= pos {
            continue;
        }
        if chunk.from > pos {
            if !bytes.is_empty() {
                break; // a gap: this page ends before it
            }
            pos = chunk.from;
            offset = pos;
        }
        let skip = (pos - chunk.from) as usize;
        let room = want.saturating_sub(bytes.len() as u64);
        let take = (held - pos).min(room) as usize;
        bytes.extend_from_slice(&chunk.bytes[skip..skip + take]);
        pos += take as u64;
        if bytes.len() as u64 >= want || pos < chunk.to {
            break; // enough, or the rest of this chunk is not held
        }
    }
    (offset, bytes)
}

/// Where a page of at most `limit` bytes of `bytes` ends: all of them when they fit; else after
/// the last newline within the limit; else (one line longer than the page) at the limit, moved
/// back to the start of a valid UTF-8 character it would split, unless that would leave nothing
/// (then the page holds that one whole character).
pub(crate) fn page_end(bytes: &[u8], limit: u64) -> usize {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    if bytes.len() <= limit {
        return bytes.len();
    }
    if let Some(nl) = bytes[..limit].iter().rposition(|&b| b == b'\n') {
        return nl + 1;
    }
    match split_character(bytes, limit) {
        Some((0, width)) => width,
        Some((begin, _)) => begin,
        None => limit,
    }
}

/// The valid UTF-8 character that a cut at `at` would split, as (start, length).
fn split_character(bytes: &[u8], at: usize) -> Option<(usize, usize)> {
    (at.saturating_sub(3)..at).find_map(|begin| {
        let width = match bytes[begin] {
            0xC0..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF7 => 4,
            _ => return None,
        };
        let ch = bytes.get(begin..begin + width)?;
        (begin + width > at && std::str::from_utf8(ch).is_ok()).then_some((begin, width))
    })
}

/// `?format=raw`: the stored bytes `start..end` as a download, read from the store a step at a
/// time. Headers say where the copy starts and ends in the remote file (a copy that began with
/// the tail of a long log starts after 0).
async fn raw(pool: &Arc<StorePool>, key: RunKey) -> Result<Response, ApiError> {
    let (run_id, synced) = pool
        .read(move |store| {
            let run = store.run_by_key(key)?.ok_or(ApiError::no_run(key.0))?;
            Ok((run.id, run.log_synced))
        })
        .await?;
    let (start, end) = synced.unwrap_or((0, 0));
    let pool = Arc::clone(pool);
    let body = futures::stream::unfold(start, move |pos| {
        let pool = Arc::clone(&pool);
        async move {
            if pos >= end {
                return None;
            }
            let read = pool
                .read(move |store| {
                    let chunks = store.log_chunks_since(key, pos, RAW_READ_BYTES)?;
                    Ok(read_from(&chunks, pos, (end - pos).min(RAW_READ_BYTES)))
                })
                .await;
            match read {
                // The copy moved under us (dropped and fetched again): end the download short
                // rather than send bytes from somewhere else.
                Ok((at, bytes)) if at != pos || bytes.is_empty() => None,
                Ok((_, bytes)) => {
                    let next = pos + bytes.len() as u64;
                    Some((Ok::<_, std::io::Error>(Bytes::from(bytes)), next))
                }
                Err(e) => Some((Err(std::io::Error::other(e.message)), end)),
            }
        }
    });
    let mut response = Body::from_stream(body).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    let name: String = run_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}-logs.txt\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert("x-runicorn-log-start", HeaderValue::from(start));
    h.insert("x-runicorn-log-end", HeaderValue::from(end));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(from: u64, bytes: &[u8]) -> LogChunkRow {
        LogChunkRow {
            from,
            to: from + bytes.len() as u64,
            bytes: bytes.to_vec(),
        }
    }

    /// Walks every page of `file` (stored in `chunks` from 0) and checks the invariants.
    fn walk(chunks: &[LogChunkRow], file: &[u8], limit: u64) -> Vec<LogPage> {
        let end = file.len() as u64;
        let mut pages = Vec::new();
        let mut at = 0;
        loop {
            let page = page_of(chunks, 0, end, at, limit, false);
            assert_eq!(page.offset, at, "pages tile the file");
            assert!(page.next <= end && page.next > page.offset, "{page:?}");
            let bytes = &file[page.offset as usize..page.next as usize];
            assert_eq!(page.text, String::from_utf8_lossy(bytes));
            at = page.next;
            let eof = page.eof;
            pages.push(page);
            if eof {
                assert_eq!(at, end);
                return pages;
            }
        }
    }

    #[test]
    fn pages_end_at_a_line_boundary() {
        let chunks = [chunk(0, b"one\ntwo\n"), chunk(8, b"three\nfour\n")];
        let page = page_of(&chunks, 0, 19, 0, 10, false);
        assert_eq!(page.text, "one\ntwo\n");
        assert_eq!((page.offset, page.next, page.eof), (0, 8, false));
        let page = page_of(&chunks, 0, 19, page.next, 100, false);
        assert_eq!(page.text, "three\nfour\n");
        assert!(page.eof);
    }

    #[test]
    fn a_tail_page_starts_with_a_whole_line() {
        let chunks = [chunk(0, b"one\ntwo\nthree\n")];
        let page = page_of(&chunks, 0, 14, 14 - 8, 8, true);
        assert_eq!(page.text, "three\n");
        assert_eq!((page.offset, page.next, page.eof), (8, 14, true));
    }

    #[test]
    fn a_line_longer_than_the_page_is_cut_at_a_character() {
        let chunks = [chunk(0, "ééééé\n".as_bytes())];
        let page = page_of(&chunks, 0, 11, 0, 5, false);
        assert_eq!(page.text, "éé");
        assert_eq!(page.next, 4);
        let page = page_of(&chunks, 0, 11, 1, 5, false);
        assert_eq!(
            (page.offset, page.next, page.text.as_str()),
            (1, 6, "\u{FFFD}éé"),
            "a page starts at the byte asked for, even inside a character"
        );
        let page = page_of(&chunks, 0, 11, 0, 1, false);
        assert_eq!(
            (page.next, page.text.as_str()),
            (2, "é"),
            "one whole character"
        );
    }

    #[test]
    fn invalid_bytes_never_move_an_offset() {
        let mut file = b"ok\n\xFF\xFEbad\r\nprogress\rdone\n\x80\n".to_vec();
        file.extend("€".repeat(30).as_bytes());
        file.extend(b"\xE2\x82\n\xF0\x9F\x98\x80 smile\n");
        // The copy as the agent sent it: chunks cut anywhere, a character split between two.
        let chunks: Vec<LogChunkRow> = file
            .chunks(7)
            .enumerate()
            .map(|(i, c)| chunk(i as u64 * 7, c))
            .collect();
        for limit in [1, 2, 3, 4, 5, 8, 13, 64, 1 << 20] {
            let pages = walk(&chunks, &file, limit);
            for page in &pages {
                let bytes = &file[page.offset as usize..page.next as usize];
                if page.next < file.len() as u64 && bytes.last() != Some(&b'\n') {
                    assert!(
                        split_character(&file, page.next as usize).is_none() || limit < 4,
                        "limit {limit}: page {page:?} splits a character"
                    );
                }
            }
        }
        let all = page_of(&chunks, 0, file.len() as u64, 0, 1 << 20, false);
        assert!(all.text.contains("\u{FFFD}\u{FFFD}bad\r\n") && all.text.contains('😀'));
    }

    #[test]
    fn a_log_that_starts_later_starts_the_page_there() {
        let chunks = [chunk(100, b"kept\n")];
        let page = page_of(&chunks, 100, 105, 100, 50, false);
        assert_eq!((page.offset, page.text.as_str()), (100, "kept\n"));
    }

    #[test]
    fn a_lossy_copy_of_an_older_hub_never_reads_past_what_it_holds() {
        // 4 bytes `a \xFF b \n` stored as 6 bytes of text, and one stored shorter than its range.
        let long = LogChunkRow {
            from: 0,
            to: 4,
            bytes: "a\u{FFFD}b\n".as_bytes().to_vec(),
        };
        let page = page_of(&[long], 0, 4, 0, 100, false);
        assert_eq!((page.offset, page.next), (0, 4));
        let short = LogChunkRow {
            from: 0,
            to: 10,
            bytes: b"abc".to_vec(),
        };
        let page = page_of(&[short], 0, 10, 0, 100, false);
        assert_eq!((page.next, page.text.as_str()), (3, "abc"));
        let stuck = page_of(&[], 0, 10, 3, 100, false);
        assert!(stuck.eof && stuck.text.is_empty(), "no endless empty pages");
    }
}
