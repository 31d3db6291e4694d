//! The point tile pyramid that downsampled series are read from (`series.rs`), and its upkeep
//! during ingest.
//!
//! Tile `t` of level `l` summarises a series' points whose `step >> shift(l)` is `t`: their
//! count, first and last point, and the points of smallest and largest value (NaN values take
//! no part; ties go to the smaller step). Level 0 tiles span 32 steps and each level is 8 times
//! the one below. A level is kept for a series only once the series spans at least two of its
//! tiles and 4,096 steps in all (`active_levels`, a function of the series' first and last
//! step, which only grow apart until a truncation drops everything): short runs cost no tiles
//! at all, and a query can tell from `run_keys` alone which levels exist.
//!
//! Ingest keeps the tiles exact: points appended after everything stored (the usual case) are
//! folded into the tiles in memory, reading at most one stored tile per level; anything else
//! (replaced steps, steps before the end) recomputes the touched tiles from the points below,
//! and a level that becomes active is built from the level below. Tiles are buffered per batch
//! and written with multi-row statements, like the points.

use std::collections::{BTreeMap, BTreeSet};

use rusqlite::{params, Connection, Statement};

/// Steps per level-0 tile, as a shift (32).
const BASE_SHIFT: u32 = 5;
/// A series spanning fewer steps keeps no tiles: it holds at most this many points, which
/// read whole in well under a millisecond, and short runs (most of a sync) cost no tile
/// upkeep at all.
const MIN_TILED_SPAN: i128 = 4096;
/// Each level's tiles hold this many of the level below (as a shift: 8).
const FANOUT_SHIFT: u32 = 3;
/// Levels at most (the top one spans 2^29 steps).
pub(crate) const MAX_LEVELS: usize = 9;
/// Rows per multi-row tile upsert (16 parameters each).
const TILE_CHUNK: usize = 200;

/// `step >> shift(level)` is a step's tile at `level`.
pub(crate) fn shift(level: usize) -> u32 {
    BASE_SHIFT + FANOUT_SHIFT * level as u32
}

/// Steps per tile at `level`.
pub(crate) fn tile_steps(level: usize) -> i128 {
    1i128 << shift(level)
}

pub(crate) fn tile_of(step: i64, level: usize) -> i64 {
    step >> shift(level)
}

/// First and last step a tile covers.
pub(crate) fn tile_bounds(level: usize, tile: i64) -> (i64, i64) {
    let start = tile << shift(level);
    (start, start | ((1i64 << shift(level)) - 1))
}

/// How many levels (from 0) a series stored from `first` to `last` step keeps.
pub(crate) fn active_levels(first: i64, last: i64) -> usize {
    let span = i128::from(last) - i128::from(first) + 1;
    if span < MIN_TILED_SPAN {
        return 0;
    }
    (0..MAX_LEVELS)
        .take_while(|&l| span >= 2 * tile_steps(l))
        .count()
}

/// A point that is a tile's (or a bucket's) smallest or largest value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Extreme {
    pub value: f64,
    pub step: i64,
    /// NaN: the point has no time.
    pub time: f64,
}

/// What a tile (or any run of consecutive points) holds, in brief.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Tile {
    pub count: i64,
    /// Points without a time.
    pub untimed: i64,
    pub first_step: i64,
    pub first_time: f64,
    pub last_step: i64,
    pub last_time: f64,
    /// `None` when every value is NaN.
    pub min: Option<Extreme>,
    pub max: Option<Extreme>,
}

fn lower(a: Option<Extreme>, b: Option<Extreme>) -> Option<Extreme> {
    match (a, b) {
        (Some(x), Some(y)) => Some(
            if y.value < x.value || (y.value == x.value && y.step < x.step) {
                y
            } else {
                x
            },
        ),
        (x, None) => x,
        (None, y) => y,
    }
}

fn higher(a: Option<Extreme>, b: Option<Extreme>) -> Option<Extreme> {
    match (a, b) {
        (Some(x), Some(y)) => Some(
            if y.value > x.value || (y.value == x.value && y.step < x.step) {
                y
            } else {
                x
            },
        ),
        (x, None) => x,
        (None, y) => y,
    }
}

impl Tile {
    /// One point; NaN `value` takes no part in min and max, NaN `time` means none.
    pub fn point(step: i64, time: f64, value: f64) -> Tile {
        let ext = (!value.is_nan()).then_some(Extreme { value, step, time });
        Tile {
            count: 1,
            untimed: i64::from(time.is_nan()),
            first_step: step,
            first_time: time,
            last_step: step,
            last_time: time,
            min: ext,
            max: ext,
        }
    }

    /// Adds the points of `other` (disjoint steps).
    pub fn merge(&mut self, other: &Tile) {
        self.count += other.count;
        self.untimed += other.untimed;
        if other.first_step < self.first_step {
            self.first_step = other.first_step;
            self.first_time = other.first_time;
        }
        if other.last_step > self.last_step {
            self.last_step = other.last_step;
            self.last_time = other.last_time;
        }
        self.min = lower(self.min, other.min);
        self.max = higher(self.max, other.max);
    }
}

/// Merges `tile` into `slot`.
pub(crate) fn fold(slot: &mut Option<Tile>, tile: &Tile) {
    match slot {
        Some(t) => t.merge(tile),
        None => *slot = Some(*tile),
    }
}

fn nan_if_null(v: Option<f64>) -> f64 {
    v.unwrap_or(f64::NAN)
}

const TILE_COLUMNS: &str = "tile, count, untimed, first_step, first_time, last_step, last_time,
    min_value, min_step, min_time, max_value, max_step, max_time";

fn tile_row(r: &rusqlite::Row) -> rusqlite::Result<(i64, Tile)> {
    let extreme = |v: usize| -> rusqlite::Result<Option<Extreme>> {
        let value: Option<f64> = r.get(v)?;
        let step: Option<i64> = r.get(v + 1)?;
        let time = nan_if_null(r.get(v + 2)?);
        Ok(value
            .zip(step)
            .map(|(value, step)| Extreme { value, step, time }))
    };
    Ok((
        r.get(0)?,
        Tile {
            count: r.get(1)?,
            untimed: r.get(2)?,
            first_step: r.get(3)?,
            first_time: nan_if_null(r.get(4)?),
            last_step: r.get(5)?,
            last_time: nan_if_null(r.get(6)?),
            min: extreme(7)?,
            max: extreme(10)?,
        },
    ))
}

/// Stored tiles of one series and level with `lo <= tile <= hi`, in tile order.
pub(crate) fn read_tiles(
    conn: &Connection,
    run: i64,
    key: i64,
    level: usize,
    lo: i64,
    hi: i64,
) -> rusqlite::Result<Vec<(i64, Tile)>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {TILE_COLUMNS} FROM point_tiles
         WHERE run = ?1 AND key = ?2 AND level = ?3 AND tile BETWEEN ?4 AND ?5 ORDER BY tile"
    ))?;
    let rows = stmt.query_map(params![run, key, level as i64, lo, hi], tile_row)?;
    rows.collect()
}

/// Points of one series with `lo <= step <= hi` as (step, time, value), NaN for NULL.
pub(crate) fn read_points(
    conn: &Connection,
    run: i64,
    key: i64,
    lo: i64,
    hi: i64,
) -> rusqlite::Result<Vec<(i64, f64, f64)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT step, time, value FROM points
         WHERE run = ?1 AND key = ?2 AND step BETWEEN ?3 AND ?4 ORDER BY step",
    )?;
    let rows = stmt.query_map(params![run, key, lo, hi], |r| {
        Ok((r.get(0)?, nan_if_null(r.get(1)?), nan_if_null(r.get(2)?)))
    })?;
    rows.collect()
}

/// (run, key, level, tile).
type TileId = (i64, i64, usize, i64);

/// Tiles changed by one ingest transaction, written at its end. `None`: delete the tile.
#[derive(Default)]
pub(crate) struct TileBuffer {
    tiles: BTreeMap<TileId, Option<Tile>>,
}

/// A series' first and last stored step.
pub(crate) type Extent = (i64, i64);

impl TileBuffer {
    /// Forgets the buffered tiles of a run whose points were dropped.
    pub fn forget_run(&mut self, run: i64) {
        let lo = (run, i64::MIN, 0, i64::MIN);
        let hi = (run, i64::MAX, usize::MAX, i64::MAX);
        let ids: Vec<TileId> = self.tiles.range(lo..=hi).map(|(k, _)| *k).collect();
        for id in ids {
            self.tiles.remove(&id);
        }
    }

    /// One tile as this transaction sees it.
    fn get(&self, conn: &Connection, id: TileId) -> rusqlite::Result<Option<Tile>> {
        if let Some(t) = self.tiles.get(&id) {
            return Ok(*t);
        }
        let (run, key, level, tile) = id;
        Ok(read_tiles(conn, run, key, level, tile, tile)?
            .pop()
            .map(|(_, t)| t))
    }

    /// Tiles `lo..=hi` of a level as this transaction sees them.
    fn range(
        &self,
        conn: &Connection,
        run: i64,
        key: i64,
        level: usize,
        lo: i64,
        hi: i64,
    ) -> rusqlite::Result<BTreeMap<i64, Tile>> {
        let mut out: BTreeMap<i64, Tile> = read_tiles(conn, run, key, level, lo, hi)?
            .into_iter()
            .collect();
        for (&(_, _, _, t), tile) in self
            .tiles
            .range((run, key, level, lo)..=(run, key, level, hi))
        {
            match tile {
                Some(tile) => out.insert(t, *tile),
                None => out.remove(&t),
            };
        }
        Ok(out)
    }

    /// Whether folding points into a series needs every stored point readable in `points`
    /// (the caller flushes its buffered rows first): when level 0 becomes active for a series
    /// that already holds points.
    pub fn needs_points(appends: bool, before: Option<Extent>, after: Extent) -> bool {
        let was = before.map_or(0, |(f, l)| active_levels(f, l));
        !appends || (before.is_some() && was == 0 && active_levels(after.0, after.1) > 0)
    }

    /// Points appended after everything stored of the series (`points` in increasing step
    /// order, all beyond `before`'s last step).
    pub fn append(
        &mut self,
        conn: &Connection,
        (run, key): (i64, i64),
        before: Option<Extent>,
        after: Extent,
        points: impl Iterator<Item = (i64, f64, f64)>,
    ) -> rusqlite::Result<()> {
        let active = active_levels(after.0, after.1);
        if active == 0 {
            return Ok(());
        }
        let was = before.map_or(0, |(f, l)| active_levels(f, l));
        // The new points' own tiles, level by level.
        let mut local: Vec<Vec<(i64, Tile)>> = Vec::with_capacity(active);
        let mut level0: Vec<(i64, Tile)> = Vec::new();
        for (step, time, value) in points {
            let t = tile_of(step, 0);
            let p = Tile::point(step, time, value);
            match level0.last_mut() {
                Some((lt, tile)) if *lt == t => tile.merge(&p),
                _ => level0.push((t, p)),
            }
        }
        local.push(level0);
        for level in 1..active {
            let mut up: Vec<(i64, Tile)> = Vec::new();
            for (t, tile) in &local[level - 1] {
                let parent = t >> FANOUT_SHIFT;
                match up.last_mut() {
                    Some((pt, acc)) if *pt == parent => acc.merge(tile),
                    _ => up.push((parent, *tile)),
                }
            }
            local.push(up);
        }
        for (level, tiles) in local.into_iter().enumerate() {
            match before {
                Some(_) if level >= was => self.rebuild_level(conn, (run, key), level, after)?,
                _ => {
                    for (t, tile) in tiles {
                        let id = (run, key, level, t);
                        let mut slot = match before {
                            Some((_, last)) if tile_bounds(level, t).0 <= last => {
                                self.get(conn, id)?
                            }
                            _ => None,
                        };
                        fold(&mut slot, &tile);
                        self.tiles.insert(id, slot);
                    }
                }
            }
        }
        Ok(())
    }

    /// Points written anywhere in the series (every stored point readable in `points`): the
    /// tiles holding `steps` are recomputed, and levels that became active are built.
    pub fn recompute(
        &mut self,
        conn: &Connection,
        (run, key): (i64, i64),
        before: Option<Extent>,
        after: Extent,
        steps: &BTreeSet<i64>,
    ) -> rusqlite::Result<()> {
        let was = before.map_or(0, |(f, l)| active_levels(f, l));
        for level in 0..active_levels(after.0, after.1) {
            if level >= was {
                self.rebuild_level(conn, (run, key), level, after)?;
                continue;
            }
            let touched: BTreeSet<i64> = steps.iter().map(|&s| tile_of(s, level)).collect();
            for t in touched {
                let tile = self.compute_tile(conn, (run, key), level, t)?;
                self.tiles.insert((run, key, level, t), tile);
            }
        }
        Ok(())
    }

    /// A tile from what lies below it: points for level 0, tiles of the level below otherwise.
    fn compute_tile(
        &self,
        conn: &Connection,
        (run, key): (i64, i64),
        level: usize,
        t: i64,
    ) -> rusqlite::Result<Option<Tile>> {
        let mut slot = None;
        if level == 0 {
            let (lo, hi) = tile_bounds(0, t);
            for (s, time, v) in read_points(conn, run, key, lo, hi)? {
                fold(&mut slot, &Tile::point(s, time, v));
            }
        } else {
            let lo = t << FANOUT_SHIFT;
            let hi = lo | ((1 << FANOUT_SHIFT) - 1);
            for tile in self.range(conn, run, key, level - 1, lo, hi)?.values() {
                fold(&mut slot, tile);
            }
        }
        Ok(slot)
    }

    /// Builds every tile of one level of a series spanning `extent` from the level below.
    fn rebuild_level(
        &mut self,
        conn: &Connection,
        (run, key): (i64, i64),
        level: usize,
        (first, last): Extent,
    ) -> rusqlite::Result<()> {
        let mut built: BTreeMap<i64, Tile> = BTreeMap::new();
        let mut add = |t: i64, tile: &Tile| {
            built
                .entry(t)
                .and_modify(|acc| acc.merge(tile))
                .or_insert(*tile);
        };
        if level == 0 {
            for (s, time, v) in read_points(conn, run, key, first, last)? {
                add(tile_of(s, 0), &Tile::point(s, time, v));
            }
        } else {
            let below = self.range(
                conn,
                run,
                key,
                level - 1,
                tile_of(first, level - 1),
                tile_of(last, level - 1),
            )?;
            for (t, tile) in &below {
                add(t >> FANOUT_SHIFT, tile);
            }
        }
        for (t, tile) in built {
            self.tiles.insert((run, key, level, t), Some(tile));
        }
        Ok(())
    }

    /// Writes every buffered tile.
    pub fn write(&mut self, conn: &Connection) -> rusqlite::Result<()> {
        let mut upserts: Vec<(TileId, Tile)> = Vec::new();
        let mut delete = conn.prepare_cached(
            "DELETE FROM point_tiles WHERE run = ?1 AND key = ?2 AND level = ?3 AND tile = ?4",
        )?;
        for (&id, tile) in &self.tiles {
            match tile {
                Some(t) => upserts.push((id, *t)),
                None => {
                    delete.execute(params![id.0, id.1, id.2 as i64, id.3])?;
                }
            }
        }
        for chunk in upserts.chunks(TILE_CHUNK) {
            if chunk.len() == TILE_CHUNK {
                upsert_tiles(&mut *conn.prepare_cached(full_upsert_sql())?, chunk)?;
            } else {
                upsert_tiles(&mut conn.prepare(&upsert_sql(chunk.len()))?, chunk)?;
            }
        }
        self.tiles.clear();
        Ok(())
    }
}

fn upsert_sql(rows: usize) -> String {
    crate::sql::multi_row_sql(
        "INSERT OR REPLACE INTO point_tiles(run, key, level, tile, count, untimed, first_step,
            first_time, last_step, last_time, min_value, min_step, min_time, max_value, max_step,
            max_time) VALUES ",
        rows,
        16,
    )
}

fn full_upsert_sql() -> &'static str {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SQL.get_or_init(|| upsert_sql(TILE_CHUNK))
}

fn upsert_tiles(stmt: &mut Statement<'_>, rows: &[(TileId, Tile)]) -> rusqlite::Result<()> {
    for (j, ((run, key, level, tile), t)) in rows.iter().enumerate() {
        let b = 1 + 16 * j;
        stmt.raw_bind_parameter(b, *run)?;
        stmt.raw_bind_parameter(b + 1, *key)?;
        stmt.raw_bind_parameter(b + 2, *level as i64)?;
        stmt.raw_bind_parameter(b + 3, *tile)?;
        stmt.raw_bind_parameter(b + 4, t.count)?;
        stmt.raw_bind_parameter(b + 5, t.untimed)?;
        stmt.raw_bind_parameter(b + 6, t.first_step)?;
        // NaN binds as NULL.
        stmt.raw_bind_parameter(b + 7, t.first_time)?;
        stmt.raw_bind_parameter(b + 8, t.last_step)?;
        stmt.raw_bind_parameter(b + 9, t.last_time)?;
        for (i, e) in [t.min, t.max].iter().enumerate() {
            let b = b + 10 + 3 * i;
            stmt.raw_bind_parameter(b, e.map(|e| e.value))?;
            stmt.raw_bind_parameter(b + 1, e.map(|e| e.step))?;
            stmt.raw_bind_parameter(b + 2, e.map(|e| e.time))?;
        }
    }
    stmt.raw_execute()?;
    Ok(())
}

/// Drops every tile of a run (its points were dropped).
pub(crate) fn drop_run(conn: &Connection, run: i64) -> rusqlite::Result<()> {
    conn.execute("DELETE FROM point_tiles WHERE run = ?1", [run])?;
    Ok(())
}

/// Rebuilds the tiles of every stored series from scratch (see `schema::rebuild_derived`).
pub(crate) fn rebuild_all(conn: &Connection) -> rusqlite::Result<()> {
    let series: Vec<(i64, i64, i64, i64)> = conn
        .prepare("SELECT run, key, first_step, last_step FROM run_keys")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
        .collect::<Result<_, _>>()?;
    conn.execute("DELETE FROM point_tiles", [])?;
    for (run, key, first, last) in series {
        let mut buf = TileBuffer::default();
        for level in 0..active_levels(first, last) {
            buf.rebuild_level(conn, (run, key), level, (first, last))?;
        }
        buf.write(conn)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_become_active_at_two_tiles_from_4096_steps() {
        assert_eq!(active_levels(0, 4094), 0);
        assert_eq!(active_levels(0, 4095), 3);
        assert_eq!(active_levels(-2048, 2047), 3);
        assert_eq!(active_levels(0, 32_766), 3);
        assert_eq!(active_levels(0, 32_767), 4);
        assert_eq!(active_levels(0, 9_999_999), 6);
        assert_eq!(active_levels(i64::MIN, i64::MAX), MAX_LEVELS);
        assert_eq!(tile_bounds(0, -1), (-32, -1));
        assert_eq!(tile_bounds(1, 2), (512, 767));
        assert_eq!(tile_of(-1, 0), -1);
    }

    #[test]
    fn merging_keeps_the_extremes_and_the_earlier_of_equal_values() {
        let mut t = Tile::point(5, 1.0, 2.0);
        t.merge(&Tile::point(3, f64::NAN, 2.0));
        t.merge(&Tile::point(9, 3.0, f64::NAN));
        t.merge(&Tile::point(7, 4.0, -1.0));
        assert_eq!(t.count, 4);
        assert_eq!(t.untimed, 1);
        assert_eq!((t.first_step, t.last_step), (3, 9));
        assert_eq!(t.min.map(|e| e.step), Some(7));
        assert_eq!(t.max.map(|e| e.step), Some(3));
        let nan = Tile::point(1, 0.0, f64::NAN);
        assert!(nan.min.is_none() && nan.max.is_none());
    }
}
