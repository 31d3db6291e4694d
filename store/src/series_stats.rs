//! Whole-series statistics of one metric of a run: how many points, the last point, and the
//! smallest and largest value, exact and cheap. Compare's summary table reads them.
//!
//! A series long enough to keep tiles (`tiles.rs`) is folded from its top level (a handful of
//! rows); a shorter one (under 4,096 steps) from its points with SQL `MIN`/`MAX`. NaN values are
//! stored as NULL and take no part in min and max; a last point whose value is NaN has `last`
//! `None`.

use rusqlite::{params, OptionalExtension};

use crate::error::{SqliteContext, StoreError};
use crate::ids::RunKey;
use crate::store::Store;
use crate::tiles::{active_levels, fold, read_tiles, tile_of, Tile};

/// Statistics of one whole series.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesStats {
    /// Distinct steps stored.
    pub count: i64,
    pub last_step: i64,
    /// The value at `last_step`; `None` when it is NaN.
    pub last: Option<f64>,
    /// Smallest and largest non-NaN value; `None` when every value is NaN.
    pub min: Option<f64>,
    pub max: Option<f64>,
}

impl Store {
    /// Statistics of `run`'s series `key`; `None` when the run has no such key.
    pub fn series_stats(&self, run: RunKey, key: &str) -> Result<Option<SeriesStats>, StoreError> {
        let p = &self.db_path;
        let found: Option<(i64, i64, i64, i64)> = self
            .conn
            .prepare_cached(
                "SELECT rk.key, rk.points, rk.first_step, rk.last_step FROM run_keys rk
                 JOIN metric_keys k ON k.id = rk.key WHERE rk.run = ?1 AND k.name = ?2",
            )
            .and_then(|mut s| {
                s.query_row(params![run.0, key], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })
                .optional()
            })
            .at(p)?;
        let Some((key_id, count, first, last_step)) = found else {
            return Ok(None);
        };
        let levels = active_levels(first, last_step);
        let (min, max) = if levels > 0 {
            let top = levels - 1;
            let tiles = read_tiles(
                &self.conn,
                run.0,
                key_id,
                top,
                tile_of(first, top),
                tile_of(last_step, top),
            )
            .at(p)?;
            let mut all: Option<Tile> = None;
            for (_, tile) in &tiles {
                fold(&mut all, tile);
            }
            let all = all.as_ref();
            (
                all.and_then(|t| t.min).map(|e| e.value),
                all.and_then(|t| t.max).map(|e| e.value),
            )
        } else {
            self.conn
                .prepare_cached(
                    "SELECT MIN(value), MAX(value) FROM points WHERE run = ?1 AND key = ?2",
                )
                .and_then(|mut s| {
                    s.query_row(params![run.0, key_id], |r| Ok((r.get(0)?, r.get(1)?)))
                })
                .at(p)?
        };
        let last: Option<f64> = self
            .conn
            .prepare_cached("SELECT value FROM points WHERE run = ?1 AND key = ?2 AND step = ?3")
            .and_then(|mut s| {
                s.query_row(params![run.0, key_id, last_step], |r| r.get(0))
                    .optional()
            })
            .at(p)?
            .flatten();
        Ok(Some(SeriesStats {
            count,
            last_step,
            last,
            min,
            max,
        }))
    }
}

#[cfg(test)]
mod tests {
    use runicorn_protocol::wire::{PointBatch, RunPoints, Series};

    use crate::testkit::*;
    use crate::*;

    fn stats_of(values: &[f64]) -> SeriesStats {
        let (_tmp, mut store) = fresh_store();
        let r = add_remote(&mut store, "gpu");
        store
            .apply_change_batch(
                r,
                &change_batch(true, vec![run_change("runs/a/1", 1, 100)], "e", 1, false),
            )
            .unwrap();
        let run = store.run(r, "runs/a/1").unwrap().unwrap().key;
        let steps: Vec<i64> = (0..values.len() as i64).collect();
        let batch = PointBatch {
            runs: vec![RunPoints {
                dir: "runs/a/1".into(),
                from: 0,
                to: 100,
                next_line: 11,
                eof: true,
                times: steps.iter().map(|&s| s as f64).collect(),
                series: vec![Series {
                    key: "m".into(),
                    rows: None,
                    values: values.to_vec(),
                }],
                steps,
                ..RunPoints::default()
            }],
        };
        store.ingest_points(r, &batch).unwrap();
        assert!(store.series_stats(run, "nope").unwrap().is_none());
        store.series_stats(run, "m").unwrap().unwrap()
    }

    fn brute(values: &[f64]) -> (Option<f64>, Option<f64>) {
        let finite = values.iter().copied().filter(|v| !v.is_nan());
        (finite.clone().reduce(f64::min), finite.reduce(f64::max))
    }

    #[test]
    fn short_series_from_points() {
        let values = [3.0, f64::NAN, -2.5, 7.25, 1.0];
        let s = stats_of(&values);
        assert_eq!((s.min, s.max), brute(&values));
        assert_eq!((s.count, s.last_step, s.last), (5, 4, Some(1.0)));
    }

    #[test]
    fn tiled_series_from_the_top_level_equals_a_scan() {
        let values: Vec<f64> = (0..50_000)
            .map(|i| {
                let x = i as f64;
                if i % 977 == 0 {
                    f64::NAN
                } else {
                    (x * 0.013).sin() * 100.0 / (1.0 + x * 1e-3) + (i % 7) as f64
                }
            })
            .chain([f64::NAN])
            .collect();
        let s = stats_of(&values);
        assert_eq!((s.min, s.max), brute(&values));
        assert_eq!(s.count, values.len() as i64);
        assert_eq!(s.last, None, "the last point is NaN");
    }
}
