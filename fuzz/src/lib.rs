//! What the fuzz targets share: a reader that hands out a byte slice in small, uneven pieces (as
//! a pipe or an SSH channel does), a scratch directory for targets that need real files, owned
//! copies of parsed events so two readings can be compared, and a tiny deterministic generator
//! that turns one input byte into split points.
//!
//! Comparisons go through `Debug` text on purpose: a NaN metric is not equal to itself, but its
//! `Debug` text is.

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use runicorn_protocol::run_format::Event;

/// A reader over a slice that returns at most a few bytes per call, and now and then an
/// `Interrupted` error (which every blocking reader must retry).
pub struct ChunkedReader<'a> {
    data: &'a [u8],
    pos: usize,
    max_piece: usize,
    calls: usize,
}

impl<'a> ChunkedReader<'a> {
    /// `max_piece` 0 means "as much as asked for".
    pub fn new(data: &'a [u8], max_piece: usize) -> Self {
        ChunkedReader {
            data,
            pos: 0,
            max_piece,
            calls: 0,
        }
    }

    /// Bytes handed out so far.
    pub fn consumed(&self) -> usize {
        self.pos
    }
}

impl Read for ChunkedReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.calls += 1;
        if self.max_piece != 0 && self.calls % 7 == 3 {
            return Err(io::ErrorKind::Interrupted.into());
        }
        let rest = &self.data[self.pos..];
        let mut n = rest.len().min(buf.len());
        if self.max_piece != 0 {
            // Uneven pieces: 1..=max_piece bytes, varying with the call number.
            n = n.min(1 + self.calls % self.max_piece);
        }
        buf[..n].copy_from_slice(&rest[..n]);
        self.pos += n;
        Ok(n)
    }
}

/// A directory of this process for the targets that read real files (removed by
/// `scripts/fuzz.sh` after the run).
pub fn scratch_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("runicorn-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("the temp directory is writable");
        dir
    })
}

/// An event with its strings owned, for comparing two readings.
#[derive(Debug, Clone)]
pub enum OwnedEvent {
    Metrics {
        ts: Option<f64>,
        step: Option<i64>,
        time: Option<f64>,
        stage: Option<String>,
        values: Vec<(String, f64)>,
    },
    Other {
        kind: String,
        ts: Option<f64>,
    },
}

impl From<Event<'_>> for OwnedEvent {
    fn from(e: Event<'_>) -> Self {
        match e {
            Event::Metrics(m) => OwnedEvent::Metrics {
                ts: m.ts,
                step: m.step,
                time: m.time,
                stage: m.stage.map(|s| s.into_owned()),
                values: m
                    .values
                    .into_iter()
                    .map(|(k, v)| (k.into_owned(), v))
                    .collect(),
            },
            Event::Other { kind, ts } => OwnedEvent::Other {
                kind: kind.into_owned(),
                ts,
            },
        }
    }
}

/// `Debug` text, the NaN-tolerant way to compare two values.
pub fn debug_text<T: std::fmt::Debug>(value: &T) -> String {
    format!("{value:?}")
}

/// Up to `count` sorted cut points in `0..=len` drawn from `seed` (a small linear congruential
/// generator: the same input always cuts the same way, so crashes reproduce).
pub fn cut_points(seed: u8, count: usize, len: usize) -> Vec<usize> {
    let mut state = u32::from(seed).wrapping_mul(2_654_435_761).wrapping_add(1);
    let mut cuts: Vec<usize> = (0..count)
        .map(|_| {
            state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            (state >> 8) as usize % (len + 1)
        })
        .collect();
    cuts.sort_unstable();
    cuts
}
