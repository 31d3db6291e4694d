//! The `events.jsonl` reader: the scanner over arbitrary bytes, and `EventTail` following a real
//! file that grows in arbitrary pieces (a training script appending, a writer killed mid-line).
//!
//! Input: a budget byte (the tail's `max_bytes`), a seed byte (where the file is cut into
//! appended pieces), then the file's content.
//!
//! Checked, for the scanner: it consumes whole lines only (ending at a newline, never past the
//! buffer); every complete line is an event, a corrupt line or a blank line, nothing lost or
//! counted twice; corrupt lines are reported at line starts with their true line number, in
//! order, at most 100 kept; reserved keys never become metrics; scanning in two parts split at a
//! line boundary finds the same as one scan.
//! For the tail: the offset only moves forward, never past the file, always to just after a
//! newline; `next_line` counts the newlines before it; the tail bytes are what is left; a
//! complete line waiting is always read (progress at any budget); once the whole file is
//! written, the tail has read exactly what one scan of the file reads.

#![no_main]

use std::fs::{File, OpenOptions};
use std::io::Write;

use libfuzzer_sys::fuzz_target;
use runicorn_fuzz::{cut_points, debug_text, scratch_dir, OwnedEvent};
use runicorn_protocol::run_format::events::{
    CorruptLine, ScanOutcome, MAX_REPORTED_CORRUPT_LINES, RESERVED_DATA_KEYS,
};
use runicorn_protocol::run_format::{scan_events, EventTail};

fn scan_owned(buf: &[u8], base: u64, first_line: u64) -> (Vec<OwnedEvent>, ScanOutcome) {
    let mut events = Vec::new();
    let outcome = scan_events(buf, base, first_line, |e| events.push(OwnedEvent::from(e)));
    (events, outcome)
}

fn newlines(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&b| b == b'\n').count()
}

fn blank_lines(bytes: &[u8]) -> usize {
    bytes
        .split(|&b| b == b'\n')
        .take(newlines(bytes))
        .filter(|line| line.iter().all(u8::is_ascii_whitespace))
        .count()
}

fn check_scan(content: &[u8]) -> (Vec<OwnedEvent>, ScanOutcome) {
    let (events, outcome) = scan_owned(content, 0, 1);
    let consumed = outcome.consumed;
    assert!(consumed <= content.len());
    assert!(consumed == 0 || content[consumed - 1] == b'\n');
    assert!(
        !content[consumed..].contains(&b'\n'),
        "a complete line left unread"
    );
    assert_eq!(outcome.lines as usize, newlines(&content[..consumed]));
    assert_eq!(
        events.len() + outcome.corrupt_count as usize + blank_lines(&content[..consumed]),
        outcome.lines as usize,
        "every line is an event, a corrupt line or blank"
    );
    assert_eq!(
        outcome.corrupt.len(),
        (outcome.corrupt_count as usize).min(MAX_REPORTED_CORRUPT_LINES)
    );
    let mut last_offset = None;
    for CorruptLine { line, offset, .. } in &outcome.corrupt {
        let at = *offset as usize;
        assert!(at < consumed);
        assert!(
            at == 0 || content[at - 1] == b'\n',
            "corrupt line not at a line start"
        );
        assert_eq!(*line as usize, newlines(&content[..at]) + 1);
        assert!(last_offset < Some(at));
        last_offset = Some(at);
    }
    for event in &events {
        if let OwnedEvent::Metrics { values, .. } = event {
            for (key, _) in values {
                assert!(
                    !RESERVED_DATA_KEYS.contains(&key.as_str()),
                    "{key} is a metric"
                );
            }
        }
    }
    (events, outcome)
}

fn check_split_scan(content: &[u8], cut: usize, whole: &(Vec<OwnedEvent>, ScanOutcome)) {
    // Round the cut down to a line boundary.
    let cut = content[..cut]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |p| p + 1);
    let (mut events, first) = scan_owned(&content[..cut], 0, 1);
    assert_eq!(first.consumed, cut);
    let (rest, second) = scan_owned(&content[cut..], cut as u64, 1 + first.lines);
    events.extend(rest);
    assert_eq!(debug_text(&events), debug_text(&whole.0));
    assert_eq!(first.lines + second.lines, whole.1.lines);
    assert_eq!(cut + second.consumed, whole.1.consumed);
    assert_eq!(
        first.corrupt_count + second.corrupt_count,
        whole.1.corrupt_count
    );
    if whole.1.corrupt_count as usize <= MAX_REPORTED_CORRUPT_LINES {
        let mut corrupt = first.corrupt;
        corrupt.extend(second.corrupt);
        assert_eq!(corrupt, whole.1.corrupt);
    }
}

fuzz_target!(|data: &[u8]| {
    let [budget, seed, content @ ..] = data else {
        return;
    };
    let whole = check_scan(content);
    let cuts = cut_points(*seed, 1 + usize::from(seed % 5), content.len());
    check_split_scan(content, cuts[0], &whole);

    // The tail, following a file written in pieces.
    let max_bytes = match budget % 4 {
        0 => 0,
        1 => 1 + u64::from(*budget / 4),
        2 => 4096,
        _ => 1 << 20,
    };
    let path = scratch_dir().join("events.jsonl");
    File::create(&path).expect("create the events file");
    let mut file = OpenOptions::new()
        .append(true)
        .open(&path)
        .expect("open for appending");
    let mut tail = EventTail::new(&path);
    let mut events = Vec::new();
    let mut corrupt = Vec::new();
    let mut corrupt_count = 0;
    let mut written = 0;
    for end in cuts.into_iter().chain([content.len()]) {
        file.write_all(&content[written..end]).expect("append");
        written = end;
        let on_disk = &content[..written];
        loop {
            let before = tail.offset() as usize;
            let read = tail
                .read_available(max_bytes, |e| events.push(OwnedEvent::from(e)))
                .expect("read the events file");
            let after = tail.offset() as usize;
            assert!(!read.truncated, "the file only grew");
            assert!(after >= before, "offset moved back: {before} -> {after}");
            assert!(
                after <= written,
                "offset {after} past the file ({written} bytes)"
            );
            assert!(
                after == 0 || on_disk[after - 1] == b'\n',
                "offset not after a newline"
            );
            assert_eq!(read.scan.consumed, after - before);
            assert_eq!(read.pending_tail_bytes as usize, written - after);
            assert_eq!(tail.next_line() as usize, 1 + newlines(&on_disk[..after]));
            corrupt_count += read.scan.corrupt_count;
            corrupt.extend(read.scan.corrupt);
            if after == before {
                assert!(
                    !on_disk[after..].contains(&b'\n'),
                    "a complete line is waiting but the tail did not move"
                );
                break;
            }
        }
    }
    assert_eq!(tail.offset() as usize, whole.1.consumed);
    assert_eq!(debug_text(&events), debug_text(&whole.0));
    assert_eq!(corrupt_count, whole.1.corrupt_count);
    if corrupt_count as usize <= MAX_REPORTED_CORRUPT_LINES {
        assert_eq!(corrupt, whole.1.corrupt);
    }
});
