//! Metric series for charts: downsampled, raw, and live tails.
//!
//! Downsampling: the x range `[from, to]` (steps, or the points' times) is narrowed to the
//! first and last point inside it and split into `max_points / 2` equal buckets; each bucket
//! gives its point of smallest value and its point of largest value, in step order (one point
//! when they are the same; NaN values take no part; ties go to the smaller step; a bucket
//! whose every value is NaN gives its first point, a gap in the chart). A range holding at most
//! `max_points` points is returned whole.
//!
//! The answer is exact and costs about the number of buckets, not the number of points: whole
//! tiles of the pyramid (`tiles.rs`) that fall inside one bucket are taken as they are, and
//! tiles crossing a bucket boundary (or the range's ends) are opened, level by level, down to
//! the points of one level-0 tile, but only when something in them could still be a bucket's
//! smallest or largest value (in noisy curves it rarely can; in monotone ones the boundary
//! tiles always are).
//!
//! On the time axis, times are assumed non-decreasing in step (true of runs: a run's times are
//! its wall clock). They are used only to find the step range and the buckets; points without
//! a time are left out. A run whose clock went backwards gets buckets that are approximately
//! right.

use rusqlite::{params, Connection, OptionalExtension};

use crate::error::{SqliteContext, StoreError};
use crate::ids::RunKey;
use crate::store::Store;
use crate::tiles::{
    active_levels, fold, read_points, read_tiles, tile_bounds, tile_of, tile_steps, Extreme, Tile,
};

/// What a series' x axis is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SeriesAxis {
    #[default]
    Step,
    Time,
}

/// Which part of a series to read, and how.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesQuery {
    pub axis: SeriesAxis,
    /// Start of the x range (inclusive); `None`: the first point.
    pub from: Option<f64>,
    /// End of the x range (inclusive); `None`: the last point.
    pub to: Option<f64>,
    /// At most this many points (2 per bucket) unless `raw`.
    pub max_points: u32,
    /// Every point of the range, no downsampling.
    pub raw: bool,
    /// With `raw`, a range holding more points than this is refused
    /// ([`StoreError::RawTooLarge`]).
    pub raw_limit: u64,
}

impl Default for SeriesQuery {
    /// The whole series by step, 2,000 points.
    fn default() -> Self {
        SeriesQuery {
            axis: SeriesAxis::Step,
            from: None,
            to: None,
            max_points: 2000,
            raw: false,
            raw_limit: 1_000_000,
        }
    }
}

/// Points of one series, in step order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SeriesPoints {
    pub key: String,
    /// Points stored in the range.
    pub total: u64,
    /// Whether these are bucket extremes rather than every point.
    pub downsampled: bool,
    pub steps: Vec<i64>,
    /// `None`: the point has no time.
    pub times: Vec<Option<f64>>,
    /// NaN kept as NaN.
    pub values: Vec<f64>,
}

impl SeriesPoints {
    fn push(&mut self, step: i64, time: f64, value: f64) {
        self.steps.push(step);
        self.times.push((!time.is_nan()).then_some(time));
        self.values.push(value);
    }
}

/// The bucket of time `t` among `n` equal buckets of `[xf, xt]`.
pub(crate) fn time_bucket(t: f64, xf: f64, xt: f64, n: usize) -> usize {
    if xt <= xf {
        return 0;
    }
    let b = ((t - xf) / (xt - xf) * n as f64).floor();
    if b <= 0.0 {
        0
    } else {
        (b as usize).min(n - 1)
    }
}

/// The bucket of step `s` among `n` equal buckets of the steps `a..=b`.
pub(crate) fn step_bucket(s: i64, a: i64, b: i64, n: usize) -> usize {
    let width = i128::from(b) - i128::from(a) + 1;
    let i = (i128::from(s) - i128::from(a)) * n as i128 / width;
    i.clamp(0, n as i128 - 1) as usize
}

/// Assigns points and whole tiles to buckets.
enum Buckets {
    /// Steps `a..=b`.
    Step { a: i64, b: i64, n: usize },
    /// Times `xf..=xt`.
    Time { xf: f64, xt: f64, n: usize },
}

impl Buckets {
    fn point(&self, step: i64, time: f64) -> Option<usize> {
        match *self {
            Buckets::Step { a, b, n } => {
                (a..=b).contains(&step).then(|| step_bucket(step, a, b, n))
            }
            Buckets::Time { xf, xt, n } => {
                (time >= xf && time <= xt).then(|| time_bucket(time, xf, xt, n))
            }
        }
    }

    /// The one bucket holding every point of `tile`, if there is one.
    fn whole(&self, tile: &Tile) -> Option<usize> {
        match *self {
            Buckets::Step { .. } => {
                let first = self.point(tile.first_step, f64::NAN)?;
                let last = self.point(tile.last_step, f64::NAN)?;
                (first == last).then_some(first)
            }
            Buckets::Time { .. } => {
                if tile.untimed > 0 {
                    return None;
                }
                let first = self.point(tile.first_step, tile.first_time)?;
                let last = self.point(tile.last_step, tile.last_time)?;
                (first == last).then_some(first)
            }
        }
    }
}

/// One series in a store: its ids and stored extent.
struct SeriesRef<'c> {
    conn: &'c Connection,
    run: i64,
    key: i64,
    first: i64,
    last: i64,
}

impl SeriesRef<'_> {
    fn points(&self, lo: i64, hi: i64) -> rusqlite::Result<Vec<(i64, f64, f64)>> {
        read_points(self.conn, self.run, self.key, lo, hi)
    }

    /// The first (or last) stored step at or after (at or before) `s`.
    fn step_near(&self, s: i64, after: bool) -> rusqlite::Result<Option<i64>> {
        let sql = if after {
            "SELECT min(step) FROM points WHERE run = ?1 AND key = ?2 AND step >= ?3"
        } else {
            "SELECT max(step) FROM points WHERE run = ?1 AND key = ?2 AND step <= ?3"
        };
        self.conn
            .prepare_cached(sql)?
            .query_row(params![self.run, self.key, s], |r| r.get(0))
    }

    /// The first point with a time at or after step `s` (or the last at or before it).
    fn timed_near(&self, s: i64, after: bool) -> rusqlite::Result<Option<(i64, f64)>> {
        let sql = if after {
            "SELECT step, time FROM points WHERE run = ?1 AND key = ?2 AND step >= ?3
             AND time IS NOT NULL ORDER BY step LIMIT 1"
        } else {
            "SELECT step, time FROM points WHERE run = ?1 AND key = ?2 AND step <= ?3
             AND time IS NOT NULL ORDER BY step DESC LIMIT 1"
        };
        self.conn
            .prepare_cached(sql)?
            .query_row(params![self.run, self.key, s], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()
    }

    /// The first timed point whose time is at least `t` (`after`), or the last whose time is
    /// at most `t`, by binary search over steps (times non-decreasing in step).
    fn timed_bound(&self, t: Option<f64>, after: bool) -> rusqlite::Result<Option<(i64, f64)>> {
        let Some(t) = t else {
            let s = if after { self.first } else { self.last };
            return self.timed_near(s, after);
        };
        // The answer's step lies in first..=last; search the step s where the nearest timed
        // point (after or before s) first satisfies the bound.
        let ok = |p: Option<(i64, f64)>| match p {
            None => true,
            Some((_, time)) => {
                if after {
                    time >= t
                } else {
                    time <= t
                }
            }
        };
        let (mut lo, mut hi) = (i128::from(self.first), i128::from(self.last));
        if after {
            // Smallest s with ok(timed_near(s, after)); s = last + 1 always satisfies it.
            hi += 1;
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                if ok(self.near_i128(mid, true)?) {
                    hi = mid;
                } else {
                    lo = mid + 1;
                }
            }
            self.near_i128(lo, true)
        } else {
            // Largest s with ok(timed_near(s, before)); s = first - 1 always satisfies it.
            lo -= 1;
            while lo < hi {
                let mid = lo + (hi - lo + 1) / 2;
                if ok(self.near_i128(mid, false)?) {
                    lo = mid;
                } else {
                    hi = mid - 1;
                }
            }
            self.near_i128(lo, false)
        }
        .map(|p| p.filter(|_| ok(p)))
    }

    fn near_i128(&self, s: i128, after: bool) -> rusqlite::Result<Option<(i64, f64)>> {
        if s > i128::from(self.last) || s < i128::from(self.first) {
            // Past the ends: nothing after the last step, nothing before the first.
            return if (s > i128::from(self.last)) == after {
                Ok(None)
            } else {
                self.timed_near(if after { self.first } else { self.last }, after)
            };
        }
        self.timed_near(s as i64, after)
    }
}

/// Per-bucket summaries of the points of steps `a..=b`, and how many there are.
struct Walk<'s, 'c> {
    series: &'s SeriesRef<'c>,
    a: i64,
    b: i64,
    buckets: Buckets,
    acc: Vec<Option<Tile>>,
    total: u64,
}

impl Walk<'_, '_> {
    fn add_points(&mut self, lo: i64, hi: i64) -> rusqlite::Result<()> {
        for (s, time, v) in self.series.points(lo.max(self.a), hi.min(self.b))? {
            if let Some(i) = self.buckets.point(s, time) {
                fold(&mut self.acc[i], &Tile::point(s, time, v));
                self.total += 1;
            }
        }
        Ok(())
    }

    /// Tiles `lo..=hi` of `level`: whole ones into their bucket first, then the others
    /// opened, unless nothing in them can change their buckets' answers.
    fn visit(&mut self, level: usize, lo: i64, hi: i64) -> rusqlite::Result<()> {
        let lo = lo.max(tile_of(self.a, level));
        let hi = hi.min(tile_of(self.b, level));
        if lo > hi {
            return Ok(());
        }
        let s = self.series;
        let mut crossing: Vec<(i64, Tile)> = Vec::new();
        for (t, tile) in read_tiles(s.conn, s.run, s.key, level, lo, hi)? {
            if tile.last_step < self.a || tile.first_step > self.b {
                continue;
            }
            let inside = tile.first_step >= self.a && tile.last_step <= self.b;
            match inside.then(|| self.buckets.whole(&tile)).flatten() {
                Some(i) => {
                    fold(&mut self.acc[i], &tile);
                    self.total += tile.count as u64;
                }
                None => crossing.push((t, tile)),
            }
        }
        for (t, tile) in crossing {
            if !self.may_matter(&tile) {
                self.total += tile.count as u64;
            } else if level == 0 {
                let (from, to) = tile_bounds(0, t);
                self.add_points(from, to)?;
            } else {
                let first = t << 3;
                self.visit(level - 1, first, first | 7)?;
            }
        }
        Ok(())
    }

    /// Whether a tile crossing bucket boundaries must be opened: it reaches outside the range,
    /// holds points without a time (time axis), or one of the buckets it touches is empty or
    /// NaN-only so far, or could get its smallest or largest value from it (ties go to the
    /// smaller step, and the tile's extremes are its earliest ones). Otherwise its points are
    /// counted and nothing else about them matters.
    fn may_matter(&self, tile: &Tile) -> bool {
        if tile.first_step < self.a || tile.last_step > self.b {
            return true;
        }
        if matches!(self.buckets, Buckets::Time { .. }) && tile.untimed > 0 {
            return true;
        }
        let (Some(first), Some(last)) = (
            self.buckets.point(tile.first_step, tile.first_time),
            self.buckets.point(tile.last_step, tile.last_time),
        ) else {
            return true;
        };
        self.acc[first..=last].iter().any(|acc| {
            let Some(acc) = acc else { return true };
            let (Some(lo), Some(hi)) = (acc.min, acc.max) else {
                return true;
            };
            let beats_min = tile
                .min
                .is_some_and(|m| m.value < lo.value || (m.value == lo.value && m.step < lo.step));
            let beats_max = tile
                .max
                .is_some_and(|m| m.value > hi.value || (m.value == hi.value && m.step < hi.step));
            beats_min || beats_max
        })
    }
}

impl Store {
    /// One series of a run, downsampled or raw (see the module doc). `None` when the run has
    /// no such key.
    pub fn series(
        &self,
        run: RunKey,
        key: &str,
        q: &SeriesQuery,
    ) -> Result<Option<SeriesPoints>, StoreError> {
        let p = &self.db_path;
        let found: Option<(i64, i64, i64)> = self
            .conn
            .prepare_cached(
                "SELECT rk.key, rk.first_step, rk.last_step FROM run_keys rk
                 JOIN metric_keys k ON k.id = rk.key WHERE rk.run = ?1 AND k.name = ?2",
            )
            .and_then(|mut s| {
                s.query_row(params![run.0, key], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .optional()
            })
            .at(p)?;
        let Some((key_id, first, last)) = found else {
            return Ok(None);
        };
        let series = SeriesRef {
            conn: &self.conn,
            run: run.0,
            key: key_id,
            first,
            last,
        };
        let mut out = SeriesPoints {
            key: key.to_owned(),
            ..SeriesPoints::default()
        };
        let from = q.from.filter(|f| !f.is_nan());
        let to = q.to.filter(|t| !t.is_nan());
        let n = (q.max_points / 2).max(1) as usize;
        // The steps a..=b of the first and last point in range, and the buckets over them.
        let range = match q.axis {
            SeriesAxis::Step => {
                // `as` saturates: ±huge bounds become the ends of i64.
                let lo = from.map_or(first, |f| (f.ceil() as i64).max(first));
                let hi = to.map_or(last, |t| (t.floor() as i64).min(last));
                let a = series.step_near(lo, true).at(p)?;
                let b = series.step_near(hi, false).at(p)?;
                a.zip(b)
                    .filter(|(a, b)| a <= b)
                    .map(|(a, b)| (a, b, Buckets::Step { a, b, n }))
            }
            SeriesAxis::Time => {
                let a = series.timed_bound(from, true).at(p)?;
                let b = series.timed_bound(to, false).at(p)?;
                a.zip(b).filter(|(a, b)| a.0 <= b.0).map(|(a, b)| {
                    (
                        a.0,
                        b.0,
                        Buckets::Time {
                            xf: a.1,
                            xt: b.1,
                            n,
                        },
                    )
                })
            }
        };
        let Some((a, b, buckets)) = range else {
            return Ok(Some(out));
        };
        let span = i128::from(b) - i128::from(a) + 1;
        let fits = span <= i128::from(q.max_points);
        if !q.raw && fits {
            self.raw_into(&series, a, b, &buckets, &mut out)?;
            return Ok(Some(out));
        }
        let mut walk = Walk {
            series: &series,
            a,
            b,
            buckets: if q.raw { one_bucket(&buckets) } else { buckets },
            acc: vec![None; if q.raw { 1 } else { n }],
            total: 0,
        };
        // The coarsest kept level whose tiles fit in a bucket; below it, points.
        let width = span / walk.acc.len() as i128;
        let top = (0..active_levels(first, last))
            .rev()
            .find(|&l| tile_steps(l) <= width);
        match top {
            Some(level) => walk.visit(level, i64::MIN, i64::MAX),
            None => walk.add_points(a, b),
        }
        .at(p)?;
        let total = walk.total;
        if q.raw {
            if total > q.raw_limit {
                return Err(StoreError::RawTooLarge {
                    key: key.to_owned(),
                    total,
                    limit: q.raw_limit,
                });
            }
            let buckets = walk.buckets;
            self.raw_into(&series, a, b, &buckets, &mut out)?;
            return Ok(Some(out));
        }
        if total <= u64::from(q.max_points) {
            let buckets = walk.buckets;
            self.raw_into(&series, a, b, &buckets, &mut out)?;
            return Ok(Some(out));
        }
        out.total = total;
        out.downsampled = true;
        for tile in walk.acc.into_iter().flatten() {
            match (tile.min, tile.max) {
                (Some(lo), Some(hi)) => {
                    let (x, y) = if lo.step <= hi.step {
                        (lo, hi)
                    } else {
                        (hi, lo)
                    };
                    push_extreme(&mut out, x);
                    if y.step != x.step {
                        push_extreme(&mut out, y);
                    }
                }
                _ => out.push(tile.first_step, tile.first_time, f64::NAN),
            }
        }
        Ok(Some(out))
    }

    /// Every point of steps `a..=b` that `buckets` places, into `out` (not downsampled).
    fn raw_into(
        &self,
        series: &SeriesRef,
        a: i64,
        b: i64,
        buckets: &Buckets,
        out: &mut SeriesPoints,
    ) -> Result<(), StoreError> {
        for (s, time, v) in series.points(a, b).at(&self.db_path)? {
            if buckets.point(s, time).is_some() {
                out.push(s, time, v);
            }
        }
        out.total = out.steps.len() as u64;
        out.downsampled = false;
        Ok(())
    }

    /// Live updates: points of `key` with a step above `after_step`, in step order, at most
    /// `limit` (empty when the run has no such key).
    pub fn series_after(
        &self,
        run: RunKey,
        key: &str,
        after_step: i64,
        limit: usize,
    ) -> Result<SeriesPoints, StoreError> {
        let p = &self.db_path;
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT step, time, value FROM points
                 WHERE run = ?1 AND key = (SELECT id FROM metric_keys WHERE name = ?2)
                   AND step > ?3
                 ORDER BY step LIMIT ?4",
            )
            .at(p)?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = stmt
            .query_map(params![run.0, key, after_step, limit], |r| {
                let time: Option<f64> = r.get(1)?;
                let value: Option<f64> = r.get(2)?;
                Ok((r.get(0)?, time, value.unwrap_or(f64::NAN)))
            })
            .at(p)?;
        let mut out = SeriesPoints {
            key: key.to_owned(),
            ..SeriesPoints::default()
        };
        for row in rows {
            let (step, time, value) = row.at(p)?;
            out.steps.push(step);
            out.times.push(time);
            out.values.push(value);
        }
        out.total = out.steps.len() as u64;
        Ok(out)
    }
}

/// One metric key of a run as live readers see it: its id, stored point count and last step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyExtent {
    pub key: i64,
    pub points: u64,
    pub last_step: i64,
}

impl Store {
    /// Every metric key of a run with its stored totals, in key-id order: one index range,
    /// no join (names are read only for the keys whose points are then read).
    pub fn key_extents(&self, run: RunKey) -> Result<Vec<KeyExtent>, StoreError> {
        let p = &self.db_path;
        let mut stmt = self
            .conn
            .prepare_cached("SELECT key, points, last_step FROM run_keys WHERE run = ?1")
            .at(p)?;
        let rows = stmt
            .query_map([run.0], |r| {
                Ok(KeyExtent {
                    key: r.get(0)?,
                    points: crate::sql::from_sql_int(r.get(1)?),
                    last_step: r.get(2)?,
                })
            })
            .at(p)?;
        rows.collect::<Result<Vec<_>, _>>().at(p)
    }

    /// The keys of a run whose last step is past `step`, in key-id order: one statement whose
    /// filter runs in SQLite, so a run of many keys costs little when few grew.
    pub fn key_extents_after(&self, run: RunKey, step: i64) -> Result<Vec<KeyExtent>, StoreError> {
        let p = &self.db_path;
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT key, points, last_step FROM run_keys WHERE run = ?1 AND last_step > ?2",
            )
            .at(p)?;
        let rows = stmt
            .query_map(params![run.0, step], |r| {
                Ok(KeyExtent {
                    key: r.get(0)?,
                    points: crate::sql::from_sql_int(r.get(1)?),
                    last_step: r.get(2)?,
                })
            })
            .at(p)?;
        rows.collect::<Result<Vec<_>, _>>().at(p)
    }

    /// Live updates of several keys in one statement: for each `(key id, after)`, every point
    /// of that key with a step above `after`, in step order. No limit: the caller bounds the
    /// answer by the keys it asks for (see [`KeyExtent::points`]). Keys without new points are
    /// left out.
    pub fn points_after_keys(
        &self,
        run: RunKey,
        cursors: &[(i64, i64)],
    ) -> Result<Vec<(i64, SeriesPoints)>, StoreError> {
        let p = &self.db_path;
        if cursors.is_empty() {
            return Ok(Vec::new());
        }
        let json = serde_json::Value::from(
            cursors
                .iter()
                .map(|&(k, a)| serde_json::json!([k, a]))
                .collect::<Vec<_>>(),
        )
        .to_string();
        let mut stmt = self
            .conn
            .prepare_cached(
                "WITH c(key, after) AS (SELECT value ->> 0, value ->> 1 FROM json_each(?2))
                 SELECT c.key, k.name, p.step, p.time, p.value FROM c
                 JOIN metric_keys k ON k.id = c.key
                 JOIN points p ON p.run = ?1 AND p.key = c.key AND p.step > c.after",
            )
            .at(p)?;
        let rows = stmt
            .query_map(params![run.0, json], |r| {
                let time: Option<f64> = r.get(3)?;
                let value: Option<f64> = r.get(4)?;
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    time,
                    value.unwrap_or(f64::NAN),
                ))
            })
            .at(p)?;
        let mut by_key: std::collections::HashMap<i64, Vec<(i64, Option<f64>, f64)>> =
            std::collections::HashMap::new();
        let mut names: std::collections::HashMap<i64, String> = std::collections::HashMap::new();
        for row in rows {
            let (key, name, step, time, value) = row.at(p)?;
            names.entry(key).or_insert(name);
            by_key.entry(key).or_default().push((step, time, value));
        }
        let mut out: Vec<(i64, SeriesPoints)> = by_key
            .into_iter()
            .map(|(key, mut points)| {
                points.sort_unstable_by_key(|p| p.0);
                let mut s = SeriesPoints {
                    key: names.remove(&key).unwrap_or_default(),
                    ..SeriesPoints::default()
                };
                for (step, time, value) in points {
                    s.steps.push(step);
                    s.times.push(time);
                    s.values.push(value);
                }
                s.total = s.steps.len() as u64;
                (key, s)
            })
            .collect();
        out.sort_unstable_by_key(|(k, _)| *k);
        Ok(out)
    }

    /// Live updates of one key by id: points with a step above `after`, in step order, at
    /// most `limit`.
    pub fn key_points_after(
        &self,
        run: RunKey,
        key: i64,
        after: i64,
        limit: usize,
    ) -> Result<SeriesPoints, StoreError> {
        let p = &self.db_path;
        let name: Option<String> = self
            .conn
            .prepare_cached("SELECT name FROM metric_keys WHERE id = ?1")
            .and_then(|mut s| s.query_row([key], |r| r.get(0)).optional())
            .at(p)?;
        let Some(name) = name else {
            return Ok(SeriesPoints::default());
        };
        self.series_after(run, &name, after, limit)
    }
}

fn push_extreme(out: &mut SeriesPoints, e: Extreme) {
    out.push(e.step, e.time, e.value);
}

/// The same range as one bucket (for counting).
fn one_bucket(b: &Buckets) -> Buckets {
    match *b {
        Buckets::Step { a, b, .. } => Buckets::Step { a, b, n: 1 },
        Buckets::Time { xf, xt, .. } => Buckets::Time { xf, xt, n: 1 },
    }
}

#[cfg(test)]
mod tests;
