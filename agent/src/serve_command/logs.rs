//! Answering `log`: the exact bytes of runs' `logs.txt`, by byte offset (to a hub that did not
//! ask for `exact` bytes, lossy text as older agents sent it).
//!
//! From an offset, whole lines up to the run's share of the budget (one line longer than the
//! budget is cut where it does not split a valid UTF-8 character; bytes that are not UTF-8 are
//! cut anywhere). Without an offset, the tail: the last whole lines
//! within min(64 KiB, budget). A last line without its newline is left for later while the
//! writer may still be writing it, and sent once the file has not changed for 10 seconds (a
//! writer that died mid-line). A missing file reads as empty; one shorter than the offset is
//! `truncated` and read from 0.

use std::borrow::Cow;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;
use std::time::{Duration, SystemTime};

use runicorn_protocol::wire::{
    encode_frame, Body, Envelope, FrameError, LogBatch, LogChunk, LogRequest, LogWanted,
};

use super::request_error::RequestError;
use super::shared::Shared;
use super::targets::{open_run_file, read_within_budget, resolve_all, Target};

/// Most bytes of a tail.
pub const TAIL_BYTES: u64 = 64 * 1024;
/// A last line without a newline is sent once the file is this old.
pub const STALE_TAIL: Duration = Duration::from_secs(10);
/// Smallest budget tried before giving up on fitting a frame.
const MIN_BUDGET: u64 = 4096;

/// Builds the encoded answer frame for a `log` request.
pub fn answer(shared: &Shared, id: u64, req: &LogRequest) -> Result<Vec<u8>, RequestError> {
    let targets = resolve_all(shared, req.runs.iter().map(|r| r.dir.as_str()))?;
    let limit = shared.out.limit();
    let mut budget = req.max_bytes.clamp(1, u64::from(limit / 2));
    loop {
        let envelope = Envelope {
            id,
            body: Body::LogBatch(LogBatch {
                runs: read_logs(&req.runs, &targets, budget, req.exact),
            }),
        };
        match encode_frame(&envelope, limit) {
            Ok(frame) => return Ok(frame),
            // Escaped control characters (ANSI colours) make JSON text up to 6 times longer
            // (base64 of bytes that are not UTF-8: 4/3).
            Err(FrameError::Oversized { .. }) if budget > MIN_BUDGET => budget /= 2,
            Err(e) => {
                return Err(RequestError::TooLarge {
                    limit,
                    what: e.to_string(),
                })
            }
        }
    }
}

fn read_logs(wanted: &[LogWanted], targets: &[Target], budget: u64, exact: bool) -> Vec<LogChunk> {
    read_within_budget(
        wanted,
        targets,
        budget,
        |w, target, left| {
            let mut chunk = match target {
                Target::Missing => empty(w),
                Target::Present(dir) => read_chunk(w, &dir.join("logs.txt"), left),
            };
            if !exact {
                // An older hub reads `text` only.
                if let Cow::Owned(text) = String::from_utf8_lossy(&chunk.bytes) {
                    chunk.bytes = text.into_bytes();
                }
            }
            chunk
        },
        |chunk| chunk.to.saturating_sub(chunk.from),
    )
}

/// The chunk of a file that is not there.
fn empty(w: &LogWanted) -> LogChunk {
    LogChunk {
        dir: w.dir.clone(),
        from: 0,
        to: 0,
        bytes: Vec::new(),
        truncated: w.offset.is_some_and(|o| o > 0),
        eof: true,
    }
}

/// Reads one run's chunk of `logs.txt`: exactly its bytes `from..to`.
pub fn read_chunk(w: &LogWanted, path: &Path, budget: u64) -> LogChunk {
    match try_read_chunk(w, path, budget) {
        Ok(Some(chunk)) => chunk,
        Ok(None) => empty(w),
        Err(e) => {
            eprintln!("runicorn-agent serve: cannot read {}: {e}", path.display());
            LogChunk {
                from: w.offset.unwrap_or(0),
                to: w.offset.unwrap_or(0),
                truncated: false,
                ..empty(w)
            }
        }
    }
}

fn try_read_chunk(w: &LogWanted, path: &Path, budget: u64) -> io::Result<Option<LogChunk>> {
    let Some(mut file) = open_run_file(path)? else {
        return Ok(None);
    };
    let meta = file.metadata()?;
    let len = meta.len();
    let stale = meta
        .modified()
        .ok()
        .and_then(|m| SystemTime::now().duration_since(m).ok())
        .is_some_and(|age| age >= STALE_TAIL);
    let mut chunk = LogChunk {
        dir: w.dir.clone(),
        from: 0,
        to: 0,
        bytes: Vec::new(),
        truncated: false,
        eof: true,
    };
    match w.offset {
        Some(offset) => {
            let start = if offset > len {
                chunk.truncated = true;
                0
            } else {
                offset
            };
            let want = (len - start).min(budget.max(1));
            let mut bytes = read_at(&mut file, start, want)?;
            let reached_end = start + bytes.len() as u64 >= len;
            let end = match bytes.iter().rposition(|&b| b == b'\n') {
                _ if reached_end && stale => bytes.len(),
                Some(p) => p + 1,
                None if reached_end => 0,
                None => char_boundary(&bytes),
            };
            chunk.from = start;
            chunk.to = start + end as u64;
            chunk.eof = reached_end;
            bytes.truncate(end);
            chunk.bytes = bytes;
        }
        None => {
            let window = TAIL_BYTES.min(budget.max(1));
            let start = len.saturating_sub(window);
            // One byte more in front tells whether `start` begins a line.
            let before = start.saturating_sub(1);
            let bytes = read_at(&mut file, before, len - before)?;
            let (at_line_start, bytes) = if start == 0 {
                (true, &bytes[..])
            } else {
                (bytes.first() == Some(&b'\n'), bytes.get(1..).unwrap_or(&[]))
            };
            let end = match bytes.iter().rposition(|&b| b == b'\n') {
                _ if stale => bytes.len(),
                Some(p) => p + 1,
                None => 0,
            };
            let begin = if at_line_start {
                0
            } else {
                bytes[..end]
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(end, |p| p + 1)
            };
            chunk.from = start + begin as u64;
            chunk.to = start + end as u64;
            chunk.bytes = bytes[begin..end].to_vec();
        }
    }
    Ok(Some(chunk))
}

fn read_at(file: &mut File, start: u64, len: u64) -> io::Result<Vec<u8>> {
    file.seek(SeekFrom::Start(start))?;
    let mut buf = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    file.take(len).read_to_end(&mut buf)?;
    Ok(buf)
}

/// Where to cut `bytes` so that no valid UTF-8 character is split: before the last 1–3 bytes
/// when they begin a character that needs more bytes than are left (all of it when nothing is
/// split, or when cutting would leave nothing). Bytes that are not UTF-8 are cut anywhere.
fn char_boundary(bytes: &[u8]) -> usize {
    let mut lead = bytes.len();
    while lead > 0 && bytes.len() - lead < 4 && bytes[lead - 1] & 0xC0 == 0x80 {
        lead -= 1;
    }
    if lead == 0 {
        return bytes.len();
    }
    let first = bytes[lead - 1];
    let width = match first {
        0xF0.. => 4,
        0xE0.. => 3,
        0xC0.. => 2,
        _ => 1,
    };
    let have = bytes.len() - (lead - 1);
    if have < width && lead > 1 {
        lead - 1
    } else {
        bytes.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn text(c: &LogChunk) -> &str {
        std::str::from_utf8(&c.bytes).unwrap()
    }

    fn want(offset: Option<u64>) -> LogWanted {
        LogWanted {
            dir: "runs/p/a".into(),
            offset,
        }
    }

    #[test]
    fn whole_lines_from_an_offset_and_a_torn_tail_waits() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("logs.txt");
        fs::write(&p, "one\ntwo\nthr").unwrap();
        let c = read_chunk(&want(Some(0)), &p, 1 << 20);
        assert_eq!((text(&c), c.from, c.to, c.eof), ("one\ntwo\n", 0, 8, true));
        let c = read_chunk(&want(Some(0)), &p, 6);
        assert_eq!((text(&c), c.to, c.eof), ("one\n", 4, false));
        let c = read_chunk(&want(Some(4)), &p, 1 << 20);
        assert_eq!(text(&c), "two\n");
        let c = read_chunk(&want(Some(100)), &p, 1 << 20);
        assert!(c.truncated);
        assert_eq!((c.from, text(&c)), (0, "one\ntwo\n"));
        let none = read_chunk(&want(Some(5)), &t.path().join("nope"), 10);
        assert!(none.truncated && none.eof && none.bytes.is_empty());
    }

    #[test]
    fn a_long_line_is_cut_at_a_character_boundary() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("logs.txt");
        fs::write(&p, "ééééé\n").unwrap();
        let c = read_chunk(&want(Some(0)), &p, 5);
        assert_eq!((text(&c), c.to), ("éé", 4));
        let c = read_chunk(&want(Some(c.to)), &p, 100);
        assert_eq!(text(&c), "ééé\n");
        assert_eq!(char_boundary(b"ab"), 2);
        assert_eq!(char_boundary(&[0xE2, 0x82]), 2, "nothing would be left");
    }

    #[test]
    fn the_tail_is_the_last_whole_lines_in_the_window() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("logs.txt");
        let lines: String = (0..10_000).map(|i| format!("line {i}\n")).collect();
        fs::write(&p, format!("{lines}partial")).unwrap();
        let c = read_chunk(&want(None), &p, 1 << 20);
        assert!(text(&c).starts_with("line ") && text(&c).ends_with("line 9999\n"));
        assert!(c.bytes.len() as u64 <= TAIL_BYTES);
        assert_eq!(c.to, lines.len() as u64);
        assert_eq!(&lines[c.from as usize..c.to as usize], text(&c));
        let small = read_chunk(&want(None), &p, 30);
        assert_eq!(text(&small), "line 9998\nline 9999\n");
        fs::write(&p, "a\nb\n").unwrap();
        let whole = read_chunk(&want(None), &p, 1 << 20);
        assert_eq!((whole.from, text(&whole)), (0, "a\nb\n"));
    }

    /// Reads the whole file in chunks of `budget` bytes from offset 0, as the hub does.
    fn chunks_of(p: &Path, budget: u64) -> Vec<LogChunk> {
        let mut out: Vec<LogChunk> = Vec::new();
        let mut at = 0;
        loop {
            let c = read_chunk(&want(Some(at)), p, budget);
            assert_eq!(c.from, at);
            assert_eq!(c.to - c.from, c.bytes.len() as u64, "chunk {at}");
            at = c.to;
            let done = c.eof && c.bytes.is_empty();
            out.push(c);
            if done {
                return out;
            }
        }
    }

    #[test]
    fn chunks_are_the_exact_bytes_whatever_they_hold() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("logs.txt");
        let mut file = b"ok\n\xFF\xFEbad\r\nprogress 1\rprogress 2\n\x80\xC3\n".to_vec();
        file.extend("a long line: ".as_bytes());
        file.extend("€".repeat(40).as_bytes());
        file.extend(b"\xE2\x82 torn euro\n");
        fs::write(&p, &file).unwrap();
        for budget in [1, 2, 3, 5, 7, 64, 1 << 20] {
            let chunks = chunks_of(&p, budget);
            let joined: Vec<u8> = chunks.iter().flat_map(|c| c.bytes.clone()).collect();
            assert_eq!(joined, file, "budget {budget}");
            for c in &chunks[..chunks.len() - 1] {
                if c.bytes.last() != Some(&b'\n') {
                    assert!(
                        !splits_a_character(&file, c.from as usize, c.to as usize),
                        "budget {budget} cut at {}",
                        c.to
                    );
                }
            }
        }
    }

    /// Whether `cut` falls inside a valid UTF-8 character that begins after `from`.
    fn splits_a_character(file: &[u8], from: usize, cut: usize) -> bool {
        (cut.saturating_sub(3).max(from + 1)..cut).any(|start| {
            file[start] >= 0xC0
                && (2..=4).any(|w| {
                    start + w > cut
                        && file
                            .get(start..start + w)
                            .is_some_and(|ch| std::str::from_utf8(ch).is_ok())
                })
        })
    }

    #[test]
    fn a_hub_that_did_not_ask_for_exact_bytes_gets_text() {
        let t = tempfile::tempdir().unwrap();
        let run = t.path().join("run");
        fs::create_dir(&run).unwrap();
        fs::write(run.join("logs.txt"), b"a\xFFb\n").unwrap();
        let targets = [Target::Present(run)];
        let exact = read_logs(&[want(Some(0))], &targets, 100, true);
        assert_eq!(exact[0].bytes, b"a\xFFb\n");
        let lossy = read_logs(&[want(Some(0))], &targets, 100, false);
        assert_eq!(text(&lossy[0]), "a\u{FFFD}b\n");
        assert_eq!((lossy[0].from, lossy[0].to), (0, 4));
    }
}
