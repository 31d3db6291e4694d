//! `GET /api/runs/{id}/logs`: a page of the run's `logs.txt` as the store holds it, by byte
//! offset into the remote file, cut at line (or at least character) boundaries.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use runicorn_store::LogChunkRow;
use serde::Serialize;

use crate::error::ApiError;
use crate::query::Params;
use crate::routes::{run_key, ApiPath};
use crate::state::AppState;

/// Largest page.
pub const MAX_PAGE_BYTES: u64 = 1024 * 1024;
/// Page size when not asked.
pub const DEFAULT_PAGE_BYTES: u64 = 64 * 1024;

/// One page of a log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogPage {
    pub start: u64,
    pub offset: u64,
    pub next: u64,
    pub end: u64,
    pub text: String,
    pub eof: bool,
}

/// `GET /api/runs/{id}/logs`.
pub async fn get(
    State(state): State<Arc<AppState>>,
    ApiPath(id): ApiPath<String>,
    params: Params,
) -> Result<Json<LogPage>, ApiError> {
    let key = run_key(&id)?;
    let limit = params
        .number("limit", DEFAULT_PAGE_BYTES, MAX_PAGE_BYTES)?
        .max(4);
    let offset = params.integer("offset")?;
    if offset.is_some_and(|o| o < 0) {
        return Err(ApiError::bad_request(
            "parameter offset must not be negative",
        ));
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
            let tail = offset.is_none();
            let from = match offset {
                Some(o) => (o as u64).clamp(start, end),
                None => end.saturating_sub(limit).max(start),
            };
            let chunks = store.log_chunks_since(key, from)?;
            Ok(page_of(
                &chunks,
                start,
                end,
                from,
                limit,
                tail && from > start,
            ))
        })
        .await?;
    Ok(Json(page))
}

/// Cuts the page `from..from+limit` out of the chunks (which end after `from`). A tail page
/// (`skip_partial_line`) starts after its first newline so it begins with a whole line.
pub fn page_of(
    chunks: &[LogChunkRow],
    start: u64,
    end: u64,
    from: u64,
    limit: u64,
    skip_partial_line: bool,
) -> LogPage {
    let (mut offset, mut text) = read_from(chunks, from, limit as usize);
    if skip_partial_line {
        if let Some(nl) = text.find('\n').filter(|&nl| nl + 1 < text.len()) {
            text.drain(..=nl);
            offset += nl as u64 + 1;
        }
    }
    if text.len() as u64 > limit {
        let cut = limit as usize;
        let at = match text[..floor_char(&text, cut)].rfind('\n') {
            Some(nl) => nl + 1,
            None => floor_char(&text, cut).max(first_char_len(&text)),
        };
        text.truncate(at);
    }
    let next = offset + text.len() as u64;
    LogPage {
        start,
        offset,
        next,
        end,
        eof: next >= end,
        text,
    }
}

/// The text from byte `from` on, at least `limit` bytes when there are so many (stopping at a
/// gap in the chunks); returns where it really starts (a character boundary, or the first
/// chunk's start when `from` is before it).
fn read_from(chunks: &[LogChunkRow], from: u64, limit: usize) -> (u64, String) {
    let mut text = String::new();
    let mut pos = from;
    let mut offset = from;
    for chunk in chunks {
        if chunk.to <= pos {
            continue;
        }
        if chunk.from > pos {
            if !text.is_empty() {
                break; // a gap: this page ends before it
            }
            pos = chunk.from;
            offset = pos;
        }
        let skip = ceil_char(&chunk.text, (pos - chunk.from) as usize);
        if text.is_empty() {
            offset = chunk.from + skip as u64;
        }
        text.push_str(&chunk.text[skip..]);
        pos = chunk.to;
        if text.len() > limit {
            break;
        }
    }
    (offset, text)
}

fn floor_char(s: &str, mut at: usize) -> usize {
    at = at.min(s.len());
    while !s.is_char_boundary(at) {
        at -= 1;
    }
    at
}

fn ceil_char(s: &str, mut at: usize) -> usize {
    at = at.min(s.len());
    while !s.is_char_boundary(at) {
        at += 1;
    }
    at
}

fn first_char_len(s: &str) -> usize {
    s.chars().next().map_or(0, char::len_utf8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(from: u64, text: &str) -> LogChunkRow {
        LogChunkRow {
            from,
            to: from + text.len() as u64,
            text: text.to_owned(),
        }
    }

    #[test]
    fn pages_end_at_a_line_boundary() {
        let chunks = [chunk(0, "one\ntwo\n"), chunk(8, "three\nfour\n")];
        let page = page_of(&chunks, 0, 19, 0, 10, false);
        assert_eq!(page.text, "one\ntwo\n");
        assert_eq!((page.offset, page.next, page.eof), (0, 8, false));
        let page = page_of(&chunks, 0, 19, page.next, 100, false);
        assert_eq!(page.text, "three\nfour\n");
        assert!(page.eof);
    }

    #[test]
    fn a_tail_page_starts_with_a_whole_line() {
        let chunks = [chunk(0, "one\ntwo\nthree\n")];
        let page = page_of(&chunks, 0, 14, 14 - 8, 8, true);
        assert_eq!(page.text, "three\n");
        assert_eq!((page.offset, page.next, page.eof), (8, 14, true));
    }

    #[test]
    fn a_line_longer_than_the_page_is_cut_at_a_character() {
        let chunks = [chunk(0, "ééééé\n")];
        let page = page_of(&chunks, 0, 11, 0, 5, false);
        assert_eq!(page.text, "éé");
        assert_eq!(page.next, 4);
        let page = page_of(&chunks, 0, 11, 1, 5, false);
        assert_eq!(
            page.offset, 2,
            "a start inside a character moves to the next one"
        );
    }

    #[test]
    fn a_log_that_starts_later_starts_the_page_there() {
        let chunks = [chunk(100, "kept\n")];
        let page = page_of(&chunks, 100, 105, 100, 50, false);
        assert_eq!((page.offset, page.text.as_str()), (100, "kept\n"));
    }
}
