//! Answering `log`: bytes of runs' `logs.txt` as text (invalid UTF-8 replaced).
//!
//! From an offset, whole lines up to the run's share of the budget (one line longer than the
//! budget is cut at a character boundary). Without an offset, the tail: the last whole lines
//! within min(64 KiB, budget). A last line without its newline is left for later while the
//! writer may still be writing it, and sent once the file has not changed for 10 seconds (a
//! writer that died mid-line). A missing file reads as empty; one shorter than the offset is
//! `truncated` and read from 0.

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
                runs: read_logs(&req.runs, &targets, budget),
            }),
        };
        match encode_frame(&envelope, limit) {
            Ok(frame) => return Ok(frame),
            // Escaped control characters (ANSI colours) make JSON text up to 6 times longer.
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

fn read_logs(wanted: &[LogWanted], targets: &[Target], budget: u64) -> Vec<LogChunk> {
    read_within_budget(
        wanted,
        targets,
        budget,
        |w, target, left| match target {
            Target::Missing => empty(w),
            Target::Present(dir) => read_chunk(w, &dir.join("logs.txt"), left),
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
        text: String::new(),
        truncated: w.offset.is_some_and(|o| o > 0),
        eof: true,
    }
}

/// Reads one run's chunk of `logs.txt`.
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
        text: String::new(),
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
            let bytes = read_at(&mut file, start, want)?;
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
            chunk.text = String::from_utf8_lossy(&bytes[..end]).into_owned();
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
            chunk.text = String::from_utf8_lossy(&bytes[begin..end]).into_owned();
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

/// Where to cut `bytes` so that no UTF-8 character is split (all of it when nothing is split,
/// or when cutting would leave nothing).
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
        assert_eq!(
            (c.text.as_str(), c.from, c.to, c.eof),
            ("one\ntwo\n", 0, 8, true)
        );
        let c = read_chunk(&want(Some(0)), &p, 6);
        assert_eq!((c.text.as_str(), c.to, c.eof), ("one\n", 4, false));
        let c = read_chunk(&want(Some(4)), &p, 1 << 20);
        assert_eq!(c.text, "two\n");
        let c = read_chunk(&want(Some(100)), &p, 1 << 20);
        assert!(c.truncated);
        assert_eq!((c.from, c.text.as_str()), (0, "one\ntwo\n"));
        let none = read_chunk(&want(Some(5)), &t.path().join("nope"), 10);
        assert!(none.truncated && none.eof && none.text.is_empty());
    }

    #[test]
    fn a_long_line_is_cut_at_a_character_boundary() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("logs.txt");
        fs::write(&p, "ééééé\n").unwrap();
        let c = read_chunk(&want(Some(0)), &p, 5);
        assert_eq!((c.text.as_str(), c.to), ("éé", 4));
        let c = read_chunk(&want(Some(c.to)), &p, 100);
        assert_eq!(c.text, "ééé\n");
        assert_eq!(char_boundary(b"ab"), 2);
        assert_eq!(char_boundary(&[0xE2, 0x82]), 2, "nothing would be left");
    }

    #[test]
    fn the_tail_is_the_last_whole_lines_in_the_window() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("logs.txt");
        let text: String = (0..10_000).map(|i| format!("line {i}\n")).collect();
        fs::write(&p, format!("{text}partial")).unwrap();
        let c = read_chunk(&want(None), &p, 1 << 20);
        assert!(c.text.starts_with("line ") && c.text.ends_with("line 9999\n"));
        assert!(c.text.len() as u64 <= TAIL_BYTES);
        assert_eq!(c.to, text.len() as u64);
        assert_eq!(&text[c.from as usize..c.to as usize], c.text);
        let small = read_chunk(&want(None), &p, 30);
        assert_eq!(small.text, "line 9998\nline 9999\n");
        fs::write(&p, "a\nb\n").unwrap();
        let whole = read_chunk(&want(None), &p, 1 << 20);
        assert_eq!((whole.from, whole.text.as_str()), (0, "a\nb\n"));
    }
}
