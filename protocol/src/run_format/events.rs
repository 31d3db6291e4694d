//! The tolerant reader of `events.jsonl`.
//!
//! It reads complete lines from a byte offset, hands each parsed event to a callback without
//! copying strings that need no unescaping, and tells the caller how far it got. It owns the
//! reading rules of the format:
//! - a last line without its `\n` is a torn (or still being written) line: it is not consumed,
//!   and the caller re-reads it from the returned offset later; it is never an error;
//! - a complete line that does not parse is reported (line number, byte offset, reason),
//!   skipped and counted; reading goes on;
//! - `NaN`, `Infinity` and `-Infinity` written by Python are read as numbers.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::fmt;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::nonfinite;
use super::safe_read::{open_regular, ReadError};

/// Data keys that are bookkeeping, not metrics.
pub const RESERVED_DATA_KEYS: [&str; 4] = ["global_step", "time", "stage", "step"];

/// How many corrupt lines a scan remembers in detail (all are counted).
pub const MAX_REPORTED_CORRUPT_LINES: usize = 100;

/// One parsed line of `events.jsonl`.
#[derive(Debug, Clone, PartialEq)]
pub enum Event<'a> {
    Metrics(MetricsEvent<'a>),
    /// Any other event type (`image`, …), with its data left unparsed.
    Other {
        kind: Cow<'a, str>,
        ts: Option<f64>,
    },
}

/// A `metrics` event: the step, its time, the optional stage and the numeric values.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MetricsEvent<'a> {
    pub ts: Option<f64>,
    pub step: Option<i64>,
    pub time: Option<f64>,
    pub stage: Option<Cow<'a, str>>,
    /// Metric points in the order written. Non-numeric values are not here.
    pub values: Vec<(Cow<'a, str>, f64)>,
}

/// A complete line that could not be read as an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorruptLine {
    /// 1-based line number in the file.
    pub line: u64,
    /// Byte offset of the line's first byte.
    pub offset: u64,
    pub reason: String,
}

/// What a scan of a buffer found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanOutcome {
    /// Bytes of complete lines consumed; the rest is a torn tail to read again later.
    pub consumed: usize,
    /// Complete lines seen (including blank and corrupt ones).
    pub lines: u64,
    /// The first corrupt lines, at most [`MAX_REPORTED_CORRUPT_LINES`].
    pub corrupt: Vec<CorruptLine>,
    /// All corrupt lines.
    pub corrupt_count: u64,
}

/// Scans `buf`, which starts at byte `base_offset` of the file where line `first_line` begins,
/// calling `on_event` for every parsed event.
pub fn scan_events(
    buf: &[u8],
    base_offset: u64,
    first_line: u64,
    mut on_event: impl FnMut(Event<'_>),
) -> ScanOutcome {
    let mut outcome = ScanOutcome::default();
    let mut start = 0usize;
    let mut line_no = first_line;
    while let Some(rel_end) = memchr_newline(&buf[start..]) {
        let end = start + rel_end;
        let line = trim_line(&buf[start..end]);
        if !line.is_empty() {
            match parse_line(line) {
                Ok(event) => on_event(event),
                Err(reason) => {
                    // Markers stand in for Python's non-finite tokens; only retry when present.
                    match nonfinite::mark_nonfinite_tokens(line) {
                        Some(fixed) => match parse_line(&fixed) {
                            Ok(event) => on_event(event),
                            Err(reason) => {
                                outcome.note_corrupt(line_no, base_offset + start as u64, reason)
                            }
                        },
                        None => outcome.note_corrupt(line_no, base_offset + start as u64, reason),
                    }
                }
            }
        }
        outcome.lines += 1;
        line_no += 1;
        start = end + 1;
    }
    outcome.consumed = start;
    outcome
}

impl ScanOutcome {
    pub(crate) fn note_corrupt(&mut self, line: u64, offset: u64, reason: String) {
        self.corrupt_count += 1;
        if self.corrupt.len() < MAX_REPORTED_CORRUPT_LINES {
            self.corrupt.push(CorruptLine {
                line,
                offset,
                reason,
            });
        }
    }
}

fn memchr_newline(buf: &[u8]) -> Option<usize> {
    buf.iter().position(|&b| b == b'\n')
}

fn trim_line(line: &[u8]) -> &[u8] {
    let mut l = line;
    while let [rest @ .., last] = l {
        if last.is_ascii_whitespace() {
            l = rest;
        } else {
            break;
        }
    }
    while let [first, rest @ ..] = l {
        if first.is_ascii_whitespace() {
            l = rest;
        } else {
            break;
        }
    }
    l
}

fn parse_line(line: &[u8]) -> Result<Event<'_>, String> {
    let mut de = serde_json::Deserializer::from_slice(line);
    let raw = de.deserialize_map(LineVisitor).map_err(|e| e.to_string())?;
    de.end().map_err(|e| e.to_string())?;
    Ok(raw.into_event())
}

/// Reads `events.jsonl` incrementally from a byte offset, remembering where it stopped.
#[derive(Debug, Clone)]
pub struct EventTail {
    path: PathBuf,
    /// Links are followed only inside this folder (the storage root); `None`: the file's own
    /// folder.
    root: Option<PathBuf>,
    offset: u64,
    next_line: u64,
}

/// What one [`EventTail::read_available`] call found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TailRead {
    pub scan: ScanOutcome,
    /// Bytes left after the consumed lines (a torn or unfinished last line).
    pub pending_tail_bytes: u64,
    /// True when the file was shorter than the offset: it was replaced or truncated.
    pub truncated: bool,
}

impl EventTail {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        EventTail {
            path: path.into(),
            root: None,
            offset: 0,
            next_line: 1,
        }
    }

    /// Resumes at a byte offset known to begin line `next_line`.
    pub fn resume(path: impl Into<PathBuf>, offset: u64, next_line: u64) -> Self {
        EventTail {
            path: path.into(),
            root: None,
            offset,
            next_line,
        }
    }

    /// Follows a link only when it resolves inside `root` (the storage root).
    pub fn within_root(mut self, root: impl Into<PathBuf>) -> Self {
        self.root = Some(root.into());
        self
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn offset(&self) -> u64 {
        self.offset
    }
    pub fn next_line(&self) -> u64 {
        self.next_line
    }

    /// Reads what was appended since the last call, up to `max_bytes` (whole lines only; a single
    /// line longer than `max_bytes` is read whole, up to [`MAX_EVENT_LINE_BYTES`]). A missing
    /// file reads as empty; a file that is not a regular file (a FIFO, a device, a link out of
    /// the root) is refused without blocking (see `safe_read`).
    pub fn read_available(
        &mut self,
        max_bytes: u64,
        on_event: impl FnMut(Event<'_>),
    ) -> Result<TailRead, ReadError> {
        let root = match &self.root {
            Some(r) => r.clone(),
            None => self
                .path
                .parent()
                .map_or_else(|| PathBuf::from("/"), Path::to_owned),
        };
        let file = match open_regular(&self.path, &root) {
            Ok(f) => f,
            Err(e) if e.is_not_found() => return Ok(TailRead::default()),
            Err(e) => return Err(e),
        };
        let path = self.path.clone();
        self.read_open(file, max_bytes, on_event)
            .map_err(|cause| ReadError::Io { path, cause })
    }

    fn read_open(
        &mut self,
        mut file: File,
        max_bytes: u64,
        on_event: impl FnMut(Event<'_>),
    ) -> io::Result<TailRead> {
        // The size says how much to read now; reading itself is bounded by `take` below.
        let len = file.metadata()?.len();
        let mut result = TailRead::default();
        if len < self.offset {
            // The file was replaced by a shorter one: start over rather than read garbage.
            result.truncated = true;
            self.offset = 0;
            self.next_line = 1;
        }
        let available = len - self.offset;
        let want = available.min(max_bytes.max(1));
        file.seek(SeekFrom::Start(self.offset))?;
        let mut buf = Vec::with_capacity(usize::try_from(want).unwrap_or(0));
        (&mut file).take(want).read_to_end(&mut buf)?;
        if want < available && !buf.contains(&b'\n') {
            // One line longer than the budget: read on to its end so the tail always progresses,
            // but never hold more than MAX_EVENT_LINE_BYTES of it.
            match read_rest_of_line(&mut file, &mut buf)? {
                LineEnd::Found => {}
                LineEnd::NotYet => {}
                LineEnd::Oversized { line_len } => {
                    let reason = format!(
                        "line longer than {MAX_EVENT_LINE_BYTES} bytes ({line_len} bytes); skipped"
                    );
                    result
                        .scan
                        .note_corrupt(self.next_line, self.offset, reason);
                    result.scan.lines = 1;
                    result.scan.consumed = line_len as usize;
                    self.offset += line_len;
                    self.next_line += 1;
                    result.pending_tail_bytes = len.saturating_sub(self.offset);
                    return Ok(result);
                }
            }
        }
        let scan = scan_events(&buf, self.offset, self.next_line, on_event);
        self.offset += scan.consumed as u64;
        self.next_line += scan.lines;
        result.pending_tail_bytes = len.saturating_sub(self.offset);
        result.scan = scan;
        Ok(result)
    }
}

/// Longest event line a reader holds in memory; a longer one is skipped as corrupt.
pub const MAX_EVENT_LINE_BYTES: u64 = 16 * 1024 * 1024;

enum LineEnd {
    /// The line's newline is now in the buffer.
    Found,
    /// The file ends before the newline: a torn or unfinished line.
    NotYet,
    /// The line, newline included, is this long and too long to hold.
    Oversized { line_len: u64 },
}

/// Reads on from the file's position until a newline, appending to `buf` while it stays under
/// [`MAX_EVENT_LINE_BYTES`]; past that it only counts.
fn read_rest_of_line(file: &mut File, buf: &mut Vec<u8>) -> io::Result<LineEnd> {
    let mut chunk = [0u8; 64 * 1024];
    let mut len = buf.len() as u64;
    let mut oversized = false;
    loop {
        let n = file.read(&mut chunk)?;
        if n == 0 {
            if oversized {
                // Unfinished and already too long: keep it pending, but drop what was buffered.
                buf.clear();
            }
            return Ok(LineEnd::NotYet);
        }
        let part = &chunk[..n];
        let newline = part.iter().position(|&b| b == b'\n');
        let take = newline.map_or(n, |p| p + 1);
        len += take as u64;
        if !oversized && len > MAX_EVENT_LINE_BYTES {
            oversized = true;
            buf.clear();
        }
        if !oversized {
            buf.extend_from_slice(&part[..take]);
        }
        if newline.is_some() {
            return Ok(if oversized {
                LineEnd::Oversized { line_len: len }
            } else {
                LineEnd::Found
            });
        }
    }
}

/// Totals of a run's metrics, as listings show them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricTotals {
    /// Metric points (numeric values) in all `metrics` events.
    pub points: u64,
    /// Metric names.
    pub keys: BTreeSet<String>,
    /// Largest `global_step` seen.
    pub last_step: Option<i64>,
    /// Events of any type.
    pub events: u64,
    /// Time of the last event.
    pub last_event_at: Option<f64>,
}

impl MetricTotals {
    pub fn add(&mut self, event: &Event<'_>) {
        self.events += 1;
        match event {
            Event::Metrics(m) => {
                self.points += m.values.len() as u64;
                for (k, _) in &m.values {
                    if !self.keys.contains(k.as_ref()) {
                        self.keys.insert(k.to_string());
                    }
                }
                if let Some(step) = m.step {
                    self.last_step = Some(self.last_step.map_or(step, |s| s.max(step)));
                }
                if let Some(t) = m.ts.or(m.time) {
                    self.last_event_at = Some(t);
                }
            }
            Event::Other { ts, .. } => {
                if let Some(t) = ts {
                    self.last_event_at = Some(*t);
                }
            }
        }
    }
}

// ---- serde plumbing: a zero-copy visitor for one line ------------------------------------------

#[derive(Default)]
struct RawLine<'a> {
    ts: Option<f64>,
    kind: Option<Cow<'a, str>>,
    data: Option<MetricsEvent<'a>>,
}

impl<'a> RawLine<'a> {
    fn into_event(self) -> Event<'a> {
        match self.kind.as_deref() {
            Some("metrics") => {
                let mut m = self.data.unwrap_or_default();
                m.ts = self.ts;
                Event::Metrics(m)
            }
            _ => Event::Other {
                kind: self.kind.unwrap_or(Cow::Borrowed("")),
                ts: self.ts,
            },
        }
    }
}

struct LineVisitor;

impl<'de> Visitor<'de> for LineVisitor {
    type Value = RawLine<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an event object {\"ts\", \"type\", \"data\"}")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut raw = RawLine::default();
        while let Some(CowStr(key)) = map.next_key()? {
            match key.as_ref() {
                "ts" => raw.ts = map.next_value::<Scalar>()?.as_f64(),
                "type" => {
                    if let Scalar::Str(s) = map.next_value::<Scalar>()? {
                        raw.kind = Some(s);
                    }
                }
                "data" => raw.data = Some(map.next_value_seed(DataSeed)?),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(raw)
    }
}

struct DataSeed;

impl<'de> DeserializeSeed<'de> for DataSeed {
    type Value = MetricsEvent<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(DataVisitor)
    }
}

struct DataVisitor;

impl<'de> Visitor<'de> for DataVisitor {
    type Value = MetricsEvent<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an event's data object")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(MetricsEvent::default())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut m = MetricsEvent::default();
        let mut plain_step = None;
        while let Some(CowStr(key)) = map.next_key()? {
            let value: Scalar = map.next_value()?;
            match key.as_ref() {
                "global_step" => m.step = value.as_step(),
                "step" => plain_step = value.as_step(),
                "time" => m.time = value.as_f64(),
                "stage" => {
                    if let Scalar::Str(s) = value {
                        m.stage = Some(s);
                    }
                }
                _ => {
                    if let Some(v) = value.as_metric() {
                        m.values.push((key, v));
                    }
                }
            }
        }
        if m.step.is_none() {
            m.step = plain_step;
        }
        Ok(m)
    }
}

/// A map key that borrows from the input when it can.
struct CowStr<'a>(Cow<'a, str>);

impl<'de> de::Deserialize<'de> for CowStr<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = CowStr<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// One JSON value, reduced to what an event reader cares about.
enum Scalar<'a> {
    Int(i64),
    Float(f64),
    Str(Cow<'a, str>),
    Other,
}

impl Scalar<'_> {
    fn as_f64(&self) -> Option<f64> {
        match self {
            Scalar::Int(i) => Some(*i as f64),
            Scalar::Float(f) => Some(*f),
            _ => None,
        }
    }

    fn as_step(&self) -> Option<i64> {
        match self {
            Scalar::Int(i) => Some(*i),
            Scalar::Float(f) if f.is_finite() && f.fract() == 0.0 => Some(*f as i64),
            _ => None,
        }
    }

    fn as_metric(&self) -> Option<f64> {
        match self {
            Scalar::Int(i) => Some(*i as f64),
            Scalar::Float(f) => Some(*f),
            Scalar::Str(s) => nonfinite::marker_value(s),
            Scalar::Other => None,
        }
    }
}

impl<'de> de::Deserialize<'de> for Scalar<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Scalar<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Scalar::Other)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Scalar::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(i64::try_from(v)
                    .map(Scalar::Int)
                    .unwrap_or(Scalar::Float(v as f64)))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(Scalar::Float(v))
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Scalar::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Scalar::Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Scalar::Str(Cow::Owned(v)))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Scalar::Other)
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Scalar::Other)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other)
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UPSTREAM: &str = concat!(
        r#"{"ts": 1.5, "type": "metrics", "data": {"loss": 1.0, "acc": 0.0, "name": "x", "global_step": 1, "time": 1.5, "stage": "train"}}"#,
        "\n",
        r#"{"ts": 1.6, "type": "metrics", "data": {"loss": 0.1, "global_step": 10, "time": 1.6}}"#,
        "\n",
        r#"{"ts": 1.7, "type": "image", "data": {"key": "img", "path": "media/a.png", "step": 3, "caption": "c"}}"#,
        "\n"
    );

    fn collect(buf: &[u8]) -> (Vec<Event<'static>>, ScanOutcome) {
        let mut events = Vec::new();
        let outcome = scan_events(buf, 0, 1, |e| events.push(into_owned(e)));
        (events, outcome)
    }

    fn into_owned(e: Event<'_>) -> Event<'static> {
        match e {
            Event::Metrics(m) => Event::Metrics(MetricsEvent {
                ts: m.ts,
                step: m.step,
                time: m.time,
                stage: m.stage.map(|s| Cow::Owned(s.into_owned())),
                values: m
                    .values
                    .into_iter()
                    .map(|(k, v)| (Cow::Owned(k.into_owned()), v))
                    .collect(),
            }),
            Event::Other { kind, ts } => Event::Other {
                kind: Cow::Owned(kind.into_owned()),
                ts,
            },
        }
    }

    #[test]
    fn reads_upstream_lines() {
        let (events, outcome) = collect(UPSTREAM.as_bytes());
        assert_eq!(outcome.consumed, UPSTREAM.len());
        assert_eq!(outcome.corrupt_count, 0);
        assert_eq!(events.len(), 3);
        let Event::Metrics(first) = &events[0] else {
            panic!("metrics expected")
        };
        assert_eq!(first.step, Some(1));
        assert_eq!(first.stage.as_deref(), Some("train"));
        assert_eq!(
            first.values,
            vec![(Cow::Borrowed("loss"), 1.0), (Cow::Borrowed("acc"), 0.0)]
        );
        assert!(matches!(&events[2], Event::Other { kind, .. } if kind == "image"));
        let mut totals = MetricTotals::default();
        events.iter().for_each(|e| totals.add(e));
        assert_eq!(totals.points, 3);
        assert_eq!(totals.last_step, Some(10));
        assert_eq!(
            totals.keys.iter().cloned().collect::<Vec<_>>(),
            vec!["acc", "loss"]
        );
    }

    #[test]
    fn corrupt_middle_line_is_reported_and_skipped() {
        let text = "{\"type\":\"metrics\",\"data\":{\"a\":1,\"global_step\":1}}\n{garbage\n[1,2]\n\n{\"type\":\"metrics\",\"data\":{\"a\":2,\"global_step\":2}}\n";
        let (events, outcome) = collect(text.as_bytes());
        assert_eq!(events.len(), 2);
        assert_eq!(outcome.corrupt_count, 2);
        assert_eq!(outcome.corrupt[0].line, 2);
        assert_eq!(outcome.corrupt[1].line, 3);
        assert_eq!(
            outcome.corrupt[0].offset,
            text.find("{garbage").unwrap() as u64
        );
        assert_eq!(outcome.lines, 5);
    }

    #[test]
    fn nonfinite_values_are_points() {
        let text = "{\"type\": \"metrics\", \"data\": {\"loss\": NaN, \"g\": Infinity, \"h\": -Infinity, \"s\": \"NaN\", \"global_step\": 4}}\n";
        let (events, outcome) = collect(text.as_bytes());
        assert_eq!(outcome.corrupt_count, 0);
        let Event::Metrics(m) = &events[0] else {
            panic!()
        };
        assert_eq!(m.values.len(), 3, "the string \"NaN\" is not a point");
        assert!(m.values[0].1.is_nan());
        assert_eq!(m.values[2].1, f64::NEG_INFINITY);
    }

    #[test]
    fn escaped_keys_and_crlf() {
        let text = "{\"type\": \"metrics\", \"data\": {\"l\\u00f6ss\": 2, \"global_step\": 1}}\r\n";
        let (events, _) = collect(text.as_bytes());
        let Event::Metrics(m) = &events[0] else {
            panic!()
        };
        assert_eq!(m.values[0].0, "löss");
    }

    #[test]
    fn tail_resumes_after_torn_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        let line = "{\"type\":\"metrics\",\"data\":{\"a\":1,\"global_step\":1}}\n";
        std::fs::write(&path, format!("{line}{}", &line[..10])).unwrap();
        let mut tail = EventTail::new(&path);
        let mut n = 0;
        let r = tail.read_available(1 << 20, |_| n += 1).unwrap();
        assert_eq!((n, r.scan.corrupt_count, r.pending_tail_bytes), (1, 0, 10));
        std::fs::write(&path, format!("{line}{line}")).unwrap();
        let r = tail.read_available(1 << 20, |_| n += 1).unwrap();
        assert_eq!((n, r.scan.corrupt_count, r.pending_tail_bytes), (2, 0, 0));
        assert_eq!(tail.next_line(), 3);
        // Truncation (a replaced file) starts over instead of reading garbage.
        std::fs::write(&path, line).unwrap();
        let r = tail.read_available(1 << 20, |_| n += 1).unwrap();
        assert!(r.truncated);
        assert_eq!(n, 3);
    }

    #[test]
    fn tail_budget_reads_whole_lines_and_progresses() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        let line = "{\"type\":\"metrics\",\"data\":{\"a\":1,\"global_step\":1}}\n";
        std::fs::write(&path, line.repeat(10)).unwrap();
        let mut tail = EventTail::new(&path);
        let mut n = 0;
        while tail.offset() < (line.len() * 10) as u64 {
            tail.read_available(7, |_| n += 1).unwrap();
        }
        assert_eq!(n, 10);
    }

    #[test]
    fn oversized_line_is_skipped_without_holding_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        let good = "{\"type\":\"metrics\",\"data\":{\"a\":1,\"global_step\":1}}\n";
        let mut text = String::from(good);
        text.push_str(&"x".repeat(MAX_EVENT_LINE_BYTES as usize + 10));
        text.push('\n');
        text.push_str(good);
        std::fs::write(&path, &text).unwrap();
        let mut tail = EventTail::new(&path);
        let (mut events, mut corrupt) = (0, Vec::new());
        while tail.offset() < text.len() as u64 {
            let r = tail.read_available(1 << 20, |_| events += 1).unwrap();
            corrupt.extend(r.scan.corrupt);
        }
        assert_eq!(events, 2);
        assert_eq!(corrupt.len(), 1);
        assert_eq!(corrupt[0].line, 2);
        assert!(corrupt[0].reason.contains("longer than"));
        assert_eq!(tail.next_line(), 4);
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        fn sample_file() -> String {
            let mut s = String::new();
            for i in 0..6 {
                s.push_str(&format!(
                    "{{\"ts\": {i}.5, \"type\": \"metrics\", \"data\": {{\"loss\": {}, \"tag\": \"a\\\"b\", \"global_step\": {i}, \"time\": {i}.5}}}}\n",
                    1.0 / (i as f64 + 1.0)
                ));
            }
            s
        }

        proptest! {
            /// Arbitrary bytes never panic the reader, and it never consumes a line without its
            /// newline.
            #[test]
            fn arbitrary_bytes_are_safe(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
                let outcome = scan_events(&bytes, 0, 1, |_| {});
                prop_assert!(outcome.consumed <= bytes.len());
                prop_assert!(outcome.consumed == 0 || bytes[outcome.consumed - 1] == b'\n');
                prop_assert_eq!(outcome.lines as usize, bytes[..outcome.consumed].iter().filter(|b| **b == b'\n').count());
            }

            /// Cutting the file at any byte (a writer killed mid-write) never yields a corrupt
            /// line, and reading on after the rest arrives yields every event exactly once.
            #[test]
            fn torn_tail_at_every_offset(cut in 0usize..=sample_file().len()) {
                let full = sample_file();
                let dir = tempfile::tempdir().unwrap();
                let path = dir.path().join("events.jsonl");
                std::fs::write(&path, &full.as_bytes()[..cut]).unwrap();
                let mut tail = EventTail::new(&path);
                let mut steps = Vec::new();
                let mut collect_step = |e: Event<'_>| if let Event::Metrics(m) = e { steps.push(m.step.unwrap()) };
                let first = tail.read_available(1 << 20, &mut collect_step).unwrap();
                prop_assert_eq!(first.scan.corrupt_count, 0);
                let complete_lines = full[..cut].matches('\n').count();
                prop_assert_eq!(tail.offset() as usize, full[..cut].rfind('\n').map_or(0, |p| p + 1));
                std::fs::write(&path, &full).unwrap();
                let second = tail.read_available(1 << 20, &mut collect_step).unwrap();
                prop_assert_eq!(second.scan.corrupt_count, 0);
                prop_assert_eq!(steps, (0..6).collect::<Vec<i64>>());
                prop_assert!(complete_lines <= 6);
            }
        }
    }
}
