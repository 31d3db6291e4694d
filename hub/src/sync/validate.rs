//! Checks every answer of an agent before anything of it reaches the store: paths stay inside
//! the run, columns have matching lengths, offsets move forward. An agent that breaks a rule is
//! treated as broken, not trusted a little.

use runicorn_protocol::wire::{check_wire_path, ChangeBatch, LogBatch, PointBatch};

/// Checks a change batch.
pub fn change_batch(batch: &ChangeBatch) -> Result<(), String> {
    for run in &batch.runs {
        check_wire_path(&run.dir).map_err(|e| format!("run directory: {e}"))?;
        for file in &run.files {
            check_wire_path(&file.path).map_err(|e| format!("file of run {:?}: {e}", run.dir))?;
        }
    }
    for dir in &batch.removed {
        check_wire_path(dir).map_err(|e| format!("removed run directory: {e}"))?;
    }
    Ok(())
}

/// Checks a point batch.
pub fn point_batch(batch: &PointBatch) -> Result<(), String> {
    for run in &batch.runs {
        check_wire_path(&run.dir).map_err(|e| format!("points of a run: {e}"))?;
        let rows = run.steps.len();
        if run.times.len() != rows {
            return Err(format!(
                "points of {:?}: {} steps but {} times",
                run.dir,
                rows,
                run.times.len()
            ));
        }
        if run.to < run.from {
            return Err(format!(
                "points of {:?}: range ends ({}) before it starts ({})",
                run.dir, run.to, run.from
            ));
        }
        for series in &run.series {
            match &series.rows {
                None if series.values.len() != rows => {
                    return Err(format!(
                        "points of {:?}, key {:?}: {} values for {} rows",
                        run.dir,
                        series.key,
                        series.values.len(),
                        rows
                    ))
                }
                Some(idx) if idx.len() != series.values.len() => {
                    return Err(format!(
                        "points of {:?}, key {:?}: {} row indexes for {} values",
                        run.dir,
                        series.key,
                        idx.len(),
                        series.values.len()
                    ))
                }
                Some(idx) if idx.iter().any(|&i| i as usize >= rows) => {
                    return Err(format!(
                        "points of {:?}, key {:?}: a row index beyond the {} rows",
                        run.dir, series.key, rows
                    ))
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// Checks a log batch. From an agent that sends exact bytes (`exact`), each chunk must hold
/// exactly `to - from` bytes; an older agent's lossy text is let through here and sorted out by
/// the engine.
pub fn log_batch(batch: &LogBatch, exact: bool) -> Result<(), String> {
    for chunk in &batch.runs {
        check_wire_path(&chunk.dir).map_err(|e| format!("log of a run: {e}"))?;
        if chunk.to < chunk.from {
            return Err(format!(
                "log of {:?}: range ends ({}) before it starts ({})",
                chunk.dir, chunk.to, chunk.from
            ));
        }
        let len = chunk.bytes.len() as u64;
        if exact && chunk.to - chunk.from != len {
            return Err(format!(
                "log of {:?}: range {}..{} covers {} bytes but the chunk holds {len}",
                chunk.dir,
                chunk.from,
                chunk.to,
                chunk.to - chunk.from
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use runicorn_protocol::wire::{Cursor, LogChunk, RunPoints, Series};

    #[test]
    fn climbing_paths_and_ragged_columns_are_refused() {
        let batch = ChangeBatch {
            reset: true,
            runs: vec![],
            removed: vec!["runs/../../etc".into()],
            cursor: Cursor {
                epoch: "e".into(),
                seq: 1,
            },
            more: false,
            skipped: vec![],
        };
        assert!(change_batch(&batch).unwrap_err().contains(".."));
        let points = PointBatch {
            runs: vec![RunPoints {
                dir: "runs/a/1".into(),
                steps: vec![1, 2],
                times: vec![0.0, 1.0],
                series: vec![Series {
                    key: "loss".into(),
                    rows: Some(vec![0, 5]),
                    values: vec![1.0, 2.0],
                }],
                ..Default::default()
            }],
        };
        assert!(point_batch(&points).unwrap_err().contains("beyond"));
    }

    #[test]
    fn a_log_chunk_must_hold_exactly_its_range() {
        let chunk = |from: u64, to: u64, bytes: &[u8]| LogBatch {
            runs: vec![LogChunk {
                dir: "runs/a/1".into(),
                from,
                to,
                bytes: bytes.to_vec(),
                truncated: false,
                eof: true,
            }],
        };
        assert!(log_batch(&chunk(10, 14, b"a\xFF\xFE\n"), true).is_ok());
        let lossy = chunk(10, 14, "a\u{FFFD}\u{FFFD}\n".as_bytes());
        let err = log_batch(&lossy, true).unwrap_err();
        assert!(err.contains("10..14") && err.contains("holds 8"), "{err}");
        assert!(log_batch(&lossy, false).is_ok(), "an older agent's text");
        assert!(log_batch(&chunk(10, 9, b""), false).is_err());
    }
}
