//! Answering `points`: the metric points of runs' `events.jsonl` from the hub's byte offsets,
//! in columns (`RunPoints`: steps, times, one series per key).
//!
//! Runs are read in the order asked, each from its offset with `EventTail` (complete lines
//! only, a torn tail is never consumed), until the byte budget is used; the first run always
//! progresses, and runs left when the budget is spent are not in the answer (the hub asks
//! again). The budget is also kept under the frame limit, halved if an answer still does not
//! fit.

use std::collections::HashMap;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

use runicorn_protocol::run_format::events::{scan_events, MAX_EVENT_LINE_BYTES};
use runicorn_protocol::run_format::safe_read::open_regular;
use runicorn_protocol::run_format::{Event, EventTail, MetricsEvent};
use runicorn_protocol::wire::{
    encode_frame, Body, Envelope, FrameError, PointBatch, PointsRequest, PointsWanted, RunPoints,
    Series, WireCorruptLine,
};

use super::request_error::RequestError;
use super::shared::Shared;
use super::targets::{read_within_budget, resolve_all, Target};

/// Smallest budget tried before giving up on fitting a frame.
const MIN_BUDGET: u64 = 4096;

/// Builds the encoded answer frame for a `points` request.
pub fn answer(shared: &Shared, id: u64, req: &PointsRequest) -> Result<Vec<u8>, RequestError> {
    let targets = resolve_all(shared, req.runs.iter().map(|r| r.dir.as_str()))?;
    let limit = shared.out.limit();
    let mut budget = req.max_bytes.clamp(1, u64::from(limit / 2));
    loop {
        let runs = read_runs(&req.runs, &targets, &shared.root, budget);
        let envelope = Envelope {
            id,
            body: Body::PointBatch(PointBatch { runs }),
        };
        match encode_frame(&envelope, limit) {
            Ok(frame) => return Ok(frame),
            Err(FrameError::Oversized { .. }) if budget > MIN_BUDGET => budget /= 2,
            Err(FrameError::Oversized { .. }) => {
                // One line whose points alone do not fit: skip it as corrupt so reading goes on.
                let mut first = read_runs(&req.runs[..1], &targets[..1], &shared.root, 1);
                for r in &mut first {
                    skip_as_too_large(r);
                }
                return encode_frame(
                    &Envelope {
                        id,
                        body: Body::PointBatch(PointBatch { runs: first }),
                    },
                    limit,
                )
                .map_err(|e| RequestError::TooLarge {
                    limit,
                    what: e.to_string(),
                });
            }
            Err(e) => {
                return Err(RequestError::TooLarge {
                    limit,
                    what: e.to_string(),
                })
            }
        }
    }
}

fn skip_as_too_large(r: &mut RunPoints) {
    r.steps.clear();
    r.times.clear();
    r.series.clear();
    r.corrupt = vec![WireCorruptLine {
        line: r.next_line.saturating_sub(1),
        offset: r.from,
        reason: "the metrics of this line do not fit in one frame; skipped".into(),
    }];
}

/// Reads the runs in order until `budget` bytes of event lines were read.
fn read_runs(
    wanted: &[PointsWanted],
    targets: &[Target],
    root: &Path,
    budget: u64,
) -> Vec<RunPoints> {
    read_within_budget(
        wanted,
        targets,
        budget,
        |w, target, left| match target {
            Target::Missing => missing(w),
            Target::Present(dir) => read_run(w, &dir.join("events.jsonl"), root, left),
        },
        |points| points.to.saturating_sub(points.from),
    )
}

fn missing(w: &PointsWanted) -> RunPoints {
    RunPoints {
        dir: w.dir.clone(),
        from: w.offset,
        to: w.offset,
        next_line: w.next_line.max(1),
        eof: true,
        missing: true,
        ..Default::default()
    }
}

/// Reads one run's points from its offset, at most `budget` bytes (whole lines; one line more
/// when the first is longer).
/// Links are followed only inside `root`; a file that is not a regular file reads as empty
/// (the feed lists its run as `unreadable`).
pub fn read_run(w: &PointsWanted, events: &Path, root: &Path, budget: u64) -> RunPoints {
    let first_line = w.next_line.max(1);
    let mut result = RunPoints {
        dir: w.dir.clone(),
        from: w.offset,
        to: w.offset,
        next_line: first_line,
        ..Default::default()
    };
    match std::fs::symlink_metadata(events) {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return as_empty(result, w),
        Err(e) => {
            eprintln!(
                "runicorn-agent serve: cannot read {}: {e}",
                events.display()
            );
            result.eof = true;
            return result;
        }
    }
    let mut tail = EventTail::resume(events, w.offset, first_line).within_root(root);
    let mut columns = Columns::default();
    let read = match tail.read_available(budget, |e| columns.push(e)) {
        Ok(r) => r,
        // Not a regular file, a link out of the root, or absent after all: nothing to read.
        Err(e) if e.is_refused() || e.is_not_found() => return as_empty(result, w),
        Err(e) => {
            eprintln!(
                "runicorn-agent serve: cannot read {}: {e}",
                events.display()
            );
            result.eof = true;
            return result;
        }
    };
    if read.truncated {
        result.truncated = true;
        result.from = 0;
    }
    let from_line = if result.truncated { 1 } else { first_line };
    result.to = tail.offset();
    result.next_line = tail.next_line();
    // Everything up to the end was within the budget, or nothing complete followed `from`
    // (what is left is a torn line).
    result.eof = read.pending_tail_bytes == 0
        || read.scan.consumed == 0
        || (result.to - result.from) + read.pending_tail_bytes <= budget.max(1);
    result.corrupt = read
        .scan
        .corrupt
        .into_iter()
        .map(|c| WireCorruptLine {
            line: c.line,
            offset: c.offset,
            reason: c.reason,
        })
        .collect();
    let lines = if columns.steps.contains(&None) {
        metric_line_numbers(events, root, result.from, result.to, from_line).unwrap_or_default()
    } else {
        Vec::new()
    };
    columns.finish_into(&mut result, &lines);
    result
}

/// The answer for an events file that is not there: nothing to read, and a copy the hub holds
/// of a longer file is void.
fn as_empty(mut result: RunPoints, w: &PointsWanted) -> RunPoints {
    result.truncated = w.offset > 0;
    result.from = 0;
    result.to = 0;
    result.next_line = 1;
    result.eof = true;
    result
}

/// Rows of points being collected.
#[derive(Default)]
struct Columns {
    steps: Vec<Option<i64>>,
    times: Vec<f64>,
    series: Vec<(String, Vec<u32>, Vec<f64>)>,
    by_key: HashMap<String, usize>,
}

impl Columns {
    fn push(&mut self, event: Event<'_>) {
        let Event::Metrics(MetricsEvent {
            ts,
            step,
            time,
            values,
            ..
        }) = event
        else {
            return;
        };
        let row = self.steps.len() as u32;
        self.steps.push(step);
        self.times.push(time.or(ts).unwrap_or(f64::NAN));
        for (key, value) in values {
            let i = match self.by_key.get(key.as_ref()) {
                Some(&i) => i,
                None => {
                    self.series.push((key.to_string(), Vec::new(), Vec::new()));
                    self.by_key.insert(key.into_owned(), self.series.len() - 1);
                    self.series.len() - 1
                }
            };
            let (_, rows, vals) = &mut self.series[i];
            if rows.last() == Some(&row) {
                // A key twice in one line: the last value wins, as in JSON.
                if let Some(v) = vals.last_mut() {
                    *v = value;
                }
            } else {
                rows.push(row);
                vals.push(value);
            }
        }
    }

    /// Moves the columns into `out`; steps missing from events take their line number (from
    /// `lines`, the line number of each metrics event in order).
    fn finish_into(self, out: &mut RunPoints, lines: &[u64]) {
        let n = self.steps.len();
        out.steps = self
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| {
                s.unwrap_or_else(|| {
                    lines
                        .get(i)
                        .map_or(0, |&l| i64::try_from(l).unwrap_or(i64::MAX))
                })
            })
            .collect();
        out.times = self.times;
        out.series = self
            .series
            .into_iter()
            .map(|(key, rows, values)| Series {
                key,
                rows: (rows.len() != n).then_some(rows),
                values,
            })
            .collect();
    }
}

/// The line number of every metrics event between `from` and `to` (complete lines), for events
/// without a step. Lines longer than the reader's limit are skipped, as the reader skips them.
fn metric_line_numbers(
    path: &Path,
    root: &Path,
    from: u64,
    to: u64,
    first_line: u64,
) -> io::Result<Vec<u64>> {
    let mut file = open_regular(path, root).map_err(io::Error::other)?;
    file.seek(SeekFrom::Start(from))?;
    let mut reader = io::BufReader::with_capacity(256 * 1024, file.take(to.saturating_sub(from)));
    let mut out = Vec::new();
    let mut line = Vec::new();
    let mut too_long = false;
    let mut line_no = first_line;
    let mut chunk = [0u8; 64 * 1024];
    loop {
        let n = reader.read(&mut chunk)?;
        if n == 0 {
            return Ok(out);
        }
        let mut rest = &chunk[..n];
        while !rest.is_empty() {
            let end = rest.iter().position(|&b| b == b'\n');
            let take = end.map_or(rest.len(), |p| p + 1);
            if !too_long {
                line.extend_from_slice(&rest[..take]);
                if line.len() as u64 > MAX_EVENT_LINE_BYTES {
                    too_long = true;
                    line.clear();
                }
            }
            rest = &rest[take..];
            if end.is_some() {
                if !too_long {
                    scan_events(&line, 0, line_no, |e| {
                        if matches!(e, Event::Metrics(_)) {
                            out.push(line_no);
                        }
                    });
                }
                line.clear();
                too_long = false;
                line_no += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn wanted(offset: u64, next_line: u64) -> PointsWanted {
        PointsWanted {
            dir: "runs/p/a".into(),
            offset,
            next_line,
        }
    }

    const FILE: &str = concat!(
        "{\"ts\": 1.5, \"type\": \"metrics\", \"data\": {\"loss\": 1.0, \"acc\": NaN, \"global_step\": 1, \"time\": 1.5}}\n",
        "not json\n",
        "{\"ts\": 2.5, \"type\": \"metrics\", \"data\": {\"loss\": Infinity, \"global_step\": 2}}\n",
        "{\"ts\": 3.5, \"type\": \"image\", \"data\": {\"key\": \"img\", \"path\": \"media/x.png\", \"step\": 3}}\n",
        "{\"type\": \"metrics\", \"data\": {\"loss\": -Infinity, \"lr\": 0.1}}\n",
        "{\"ts\": 9, \"type\": \"metr"
    );

    #[test]
    fn columns_hold_every_point_with_sparse_keys_nan_and_line_steps() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("events.jsonl");
        fs::write(&path, FILE).unwrap();
        let p = read_run(&wanted(0, 1), &path, t.path(), 1 << 20);
        assert_eq!(
            p.steps,
            vec![1, 2, 5],
            "a metrics line without a step takes its line number"
        );
        assert_eq!(p.times[..2], [1.5, 2.5]);
        assert!(p.times[2].is_nan());
        assert_eq!(p.series.len(), 3);
        let loss = &p.series[0];
        assert_eq!((loss.key.as_str(), loss.rows.as_ref()), ("loss", None));
        assert_eq!(loss.values, vec![1.0, f64::INFINITY, f64::NEG_INFINITY]);
        let acc = &p.series[1];
        assert_eq!(acc.rows, Some(vec![0]));
        assert!(acc.values[0].is_nan());
        assert_eq!(p.series[2].rows, Some(vec![2]));
        assert_eq!(p.corrupt.len(), 1);
        assert_eq!(p.corrupt[0].line, 2);
        let complete = FILE.rfind('\n').unwrap() as u64 + 1;
        assert_eq!((p.from, p.to, p.next_line, p.eof), (0, complete, 6, true));
        assert!(!p.truncated && !p.missing);
        // The columns survive the wire (NaN and infinities included).
        let text = serde_json::to_string(&p).unwrap();
        let back: RunPoints = serde_json::from_str(&text).unwrap();
        assert_eq!(back.series[0].values, loss.values);
    }

    #[test]
    fn budgets_offsets_and_truncation() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("events.jsonl");
        fs::write(&path, FILE).unwrap();
        let first = read_run(&wanted(0, 1), &path, t.path(), 10);
        assert_eq!(first.steps, vec![1], "always at least one line");
        assert!(!first.eof);
        let rest = read_run(&wanted(first.to, first.next_line), &path, t.path(), 1 << 20);
        assert_eq!(rest.steps, vec![2, 5]);
        assert!(rest.eof);
        let gone = read_run(&wanted(1 << 30, 99), &path, t.path(), 1 << 20);
        assert!(gone.truncated);
        assert_eq!((gone.from, gone.steps.len()), (0, 3));
        let absent = read_run(&wanted(0, 1), &t.path().join("nope.jsonl"), t.path(), 100);
        assert_eq!((absent.to, absent.eof, absent.truncated), (0, true, false));
        let absent_after = read_run(&wanted(50, 2), &t.path().join("nope.jsonl"), t.path(), 100);
        assert!(absent_after.truncated);
    }

    #[test]
    fn budget_across_runs_stops_after_progress() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("events.jsonl");
        fs::write(&path, FILE).unwrap();
        let targets = vec![Target::Present(t.path().to_owned()); 3];
        let wants = vec![wanted(0, 1), wanted(0, 1), wanted(0, 1)];
        let runs = read_runs(&wants, &targets, t.path(), 5);
        assert_eq!(runs.len(), 1, "the budget was spent on the first run");
        let runs = read_runs(&wants, &targets, t.path(), 1 << 20);
        assert_eq!(runs.len(), 3);
        let missing = read_runs(&wants[..1], &[Target::Missing], t.path(), 100);
        assert!(missing[0].missing && missing[0].eof);
    }
}
