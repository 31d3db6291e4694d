//! Downsampled series against a brute-force downsampler over the stored points.

use proptest::prelude::*;

use runicorn_protocol::wire::{PointBatch, RunPoints, Series};

use crate::testkit::*;
use crate::*;

/// (step, time, value); NaN time: none.
type Point = (i64, f64, f64);
/// Points fed in one batch; `true`: the batch overlaps the bytes before it.
type Chunk = (bool, Vec<Point>);
/// The bucket of a point.
type BucketOf = Box<dyn Fn(&Point) -> usize>;

/// One run `runs/a/1` whose events file is `bytes` long.
fn one_run(store: &mut Store, bytes: u64) -> (RemoteId, RunKey) {
    let r = add_remote(store, "gpu");
    store
        .apply_change_batch(
            r,
            &change_batch(true, vec![run_change("runs/a/1", 1, bytes)], "e", 1, false),
        )
        .unwrap();
    (r, store.run(r, "runs/a/1").unwrap().unwrap().key)
}

/// Bytes `from..to` of the run's events holding `points` of key "m".
fn batch(from: u64, to: u64, points: &[(i64, f64, f64)], truncated: bool) -> PointBatch {
    PointBatch {
        runs: vec![RunPoints {
            dir: "runs/a/1".into(),
            from,
            to,
            next_line: to / 10 + 1,
            eof: true,
            steps: points.iter().map(|p| p.0).collect(),
            times: points.iter().map(|p| p.1).collect(),
            series: vec![Series {
                key: "m".into(),
                rows: None,
                values: points.iter().map(|p| p.2).collect(),
            }],
            truncated,
            ..RunPoints::default()
        }],
    }
}

/// Feeds `chunks` in order; a chunk marked `true` overlaps the bytes before it, so its steps
/// are upserted wherever they fall (replaced steps, steps before the end).
fn ingest(store: &mut Store, r: RemoteId, chunks: &[Chunk]) {
    let mut offset = 0u64;
    for (overlap, pts) in chunks {
        let from = if *overlap && offset > 0 {
            offset - 1
        } else {
            offset
        };
        let to = offset + 10 * pts.len() as u64 + 1;
        store
            .ingest_points(r, &batch(from, to, pts, false))
            .unwrap();
        offset = to;
    }
}

/// The definition, computed the slow way from every stored point.
fn brute(all: &[(i64, f64, f64)], q: &SeriesQuery) -> SeriesPoints {
    let n = (q.max_points / 2).max(1) as usize;
    let mut out = SeriesPoints {
        key: "m".into(),
        ..SeriesPoints::default()
    };
    let (inside, bucket): (Vec<Point>, BucketOf) = match q.axis {
        SeriesAxis::Step => {
            let lo = q.from.map_or(i64::MIN, |f| f.ceil() as i64);
            let hi = q.to.map_or(i64::MAX, |t| t.floor() as i64);
            let inside: Vec<_> = all
                .iter()
                .filter(|p| p.0 >= lo && p.0 <= hi)
                .copied()
                .collect();
            let (a, b) = match (inside.first(), inside.last()) {
                (Some(f), Some(l)) => (f.0, l.0),
                _ => (0, 0),
            };
            let width = i128::from(b) - i128::from(a) + 1;
            (
                inside,
                Box::new(move |p| ((i128::from(p.0 - a)) * n as i128 / width) as usize),
            )
        }
        SeriesAxis::Time => {
            let lo = q.from.unwrap_or(f64::NEG_INFINITY);
            let hi = q.to.unwrap_or(f64::INFINITY);
            let inside: Vec<_> = all
                .iter()
                .filter(|p| !p.1.is_nan() && p.1 >= lo && p.1 <= hi)
                .copied()
                .collect();
            let (xf, xt) = match (inside.first(), inside.last()) {
                (Some(f), Some(l)) => (f.1, l.1),
                _ => (0.0, 0.0),
            };
            (
                inside,
                Box::new(move |p| super::time_bucket(p.1, xf, xt, n)),
            )
        }
    };
    out.total = inside.len() as u64;
    let everything = q.raw || inside.len() <= q.max_points as usize;
    if everything {
        for p in &inside {
            out.push(p.0, p.1, p.2);
        }
        return out;
    }
    out.downsampled = true;
    let mut buckets: Vec<Vec<(i64, f64, f64)>> = vec![Vec::new(); n];
    for p in &inside {
        buckets[bucket(p)].push(*p);
    }
    for pts in buckets.iter().filter(|b| !b.is_empty()) {
        let finite: Vec<&(i64, f64, f64)> = pts.iter().filter(|p| !p.2.is_nan()).collect();
        if finite.is_empty() {
            out.push(pts[0].0, pts[0].1, f64::NAN);
            continue;
        }
        let mut lo = finite[0];
        let mut hi = finite[0];
        for p in &finite {
            if p.2 < lo.2 {
                lo = p;
            }
            if p.2 > hi.2 {
                hi = p;
            }
        }
        let (x, y) = if lo.0 <= hi.0 { (lo, hi) } else { (hi, lo) };
        out.push(x.0, x.1, x.2);
        if y.0 != x.0 {
            out.push(y.0, y.1, y.2);
        }
    }
    out
}

/// Equal, NaN equal to NaN.
fn same(a: &SeriesPoints, b: &SeriesPoints) -> Result<(), String> {
    let show = |s: &SeriesPoints| {
        format!(
            "total {} down {} steps {:?} times {:?} values {:?}",
            s.total,
            s.downsampled,
            s.steps,
            s.times,
            s.values.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        )
    };
    // 0.0 and -0.0 read back alike from SQLite; compare values through their bits after +0.0.
    let norm = |s: &SeriesPoints| {
        let mut s = s.clone();
        for v in &mut s.values {
            if v.is_nan() {
                *v = f64::NAN;
            } else {
                *v += 0.0;
            }
        }
        show(&s)
    };
    if norm(a) == norm(b) {
        Ok(())
    } else {
        Err(format!("\n got  {}\n want {}", show(a), show(b)))
    }
}

fn check(store: &Store, key: RunKey, q: &SeriesQuery) -> Result<(), String> {
    let all = store.points(key, "m").unwrap();
    let got = store.series(key, "m", q).unwrap().unwrap();
    same(&got, &brute(&all, q)).map_err(|e| format!("{q:?}{e}"))
}

/// A series of `n` points: steps rising by 1..=gap, values a noisy curve with spikes, a few
/// NaN values, times rising with the step (some missing).
fn make_series(n: usize, gap: i64, seed: u64) -> Vec<(i64, f64, f64)> {
    let mut rng = fastrand_like(seed);
    let mut step = (rng() % 50) as i64 - 25;
    (0..n)
        .map(|i| {
            step += 1 + (rng() % gap as u64) as i64;
            let r = rng();
            let value = match r % 50 {
                0 => f64::NAN,
                1 => 1e6,
                2 => -1e6,
                3 => 0.5, // equal values: ties go to the smaller step
                _ => (i as f64 / 100.0).sin() + (r % 1000) as f64 / 1000.0,
            };
            let time = if r.is_multiple_of(97) {
                f64::NAN
            } else {
                1e9 + step as f64 * 0.25
            };
            (step, time, value)
        })
        .collect()
}

/// A small deterministic generator (xorshift), to keep proptest cases cheap to shrink.
fn fastrand_like(seed: u64) -> impl FnMut() -> u64 {
    let mut x = seed | 1;
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }
}

fn split(points: &[Point], cuts: &[usize]) -> Vec<Chunk> {
    let mut bounds: Vec<usize> = cuts.iter().map(|c| c % (points.len() + 1)).collect();
    bounds.extend([0, points.len()]);
    bounds.sort_unstable();
    bounds.dedup();
    bounds
        .windows(2)
        .map(|w| (false, points[w[0]..w[1]].to_vec()))
        .collect()
}

fn query(axis: SeriesAxis, from: Option<f64>, to: Option<f64>, max_points: u32) -> SeriesQuery {
    SeriesQuery {
        axis,
        from,
        to,
        max_points,
        raw: false,
        raw_limit: u64::MAX,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Any series, fed in any split with some steps replaced afterwards, and any range, axis
    /// and size: the answer equals the brute-force one.
    #[test]
    fn downsampling_equals_brute_force(
        n in 1usize..4000,
        gap in 1i64..12,
        seed in any::<u64>(),
        cuts in proptest::collection::vec(0usize..4000, 0..6),
        replace in proptest::collection::vec((0usize..4000, 1usize..300, any::<u64>()), 0..3),
        queries in proptest::collection::vec(
            (any::<bool>(), proptest::option::of(0.0f64..1.0), proptest::option::of(0.0f64..1.0), 0u32..300),
            1..6),
    ) {
        let points = make_series(n, gap, seed);
        let mut chunks = split(&points, &cuts);
        for (at, len, s) in replace {
            // Re-send a stretch of existing steps with new values.
            let at = at % points.len();
            let mut again: Vec<(i64, f64, f64)> = points[at..(at + len).min(points.len())].to_vec();
            let mut rng = fastrand_like(s);
            for p in &mut again {
                p.2 = (rng() % 2000) as f64 / 1000.0 - 1.0;
            }
            chunks.push((true, again));
        }
        let (_tmp, mut store) = fresh_store();
        let (r, key) = one_run(&mut store, 1 << 40);
        ingest(&mut store, r, &chunks);
        let (s0, s1) = (points[0].0 as f64, points[points.len() - 1].0 as f64);
        let (t0, t1) = (1e9 + s0 * 0.25, 1e9 + s1 * 0.25);
        for (by_time, from, to, max_points) in queries {
            let (lo, hi) = if by_time { (t0, t1) } else { (s0, s1) };
            let at = |f: f64| lo + (hi - lo) * f;
            let (from, to) = match (from.map(at), to.map(at)) {
                (Some(a), Some(b)) if a > b => (Some(b), Some(a)),
                other => other,
            };
            let axis = if by_time { SeriesAxis::Time } else { SeriesAxis::Step };
            let q = query(axis, from, to, max_points);
            prop_assert!(check(&store, key, &q).is_ok(), "{}", check(&store, key, &q).unwrap_err());
        }
    }
}

#[test]
fn a_long_series_is_downsampled_exactly_at_every_zoom() {
    let (_tmp, mut store) = fresh_store();
    let (r, key) = one_run(&mut store, 1 << 40);
    let points = make_series(60_000, 3, 7);
    let chunks: Vec<_> = points.chunks(7_000).map(|c| (false, c.to_vec())).collect();
    ingest(&mut store, r, &chunks);
    let last = points[points.len() - 1].0 as f64;
    for (from, to, max_points) in [
        (None, None, 2000),
        (None, None, 10),
        (Some(last * 0.3), Some(last * 0.4), 500),
        (Some(12_345.5), Some(12_999.0), 100),
        (Some(-1e30), Some(1e30), 3),
    ] {
        for axis in [SeriesAxis::Step, SeriesAxis::Time] {
            let (from, to) = match axis {
                SeriesAxis::Step => (from, to),
                SeriesAxis::Time => (from.map(|f| 1e9 + f * 0.25), to.map(|t| 1e9 + t * 0.25)),
            };
            check(&store, key, &query(axis, from, to, max_points)).unwrap();
        }
    }
    let full = store
        .series(key, "m", &query(SeriesAxis::Step, None, None, 2000))
        .unwrap()
        .unwrap();
    assert!(full.downsampled && full.steps.len() <= 2000 && full.steps.len() > 1000);
    assert_eq!(full.total, 60_000);
    // The spikes survive.
    assert!(full.values.contains(&1e6) && full.values.contains(&-1e6));
}

#[test]
fn nan_only_buckets_give_a_gap_and_nan_never_wins() {
    let (_tmp, mut store) = fresh_store();
    let (r, key) = one_run(&mut store, 1 << 40);
    let points: Vec<_> = (0..10_000i64)
        .map(|s| {
            let v = if s < 5000 { f64::NAN } else { s as f64 };
            (s, s as f64, v)
        })
        .collect();
    ingest(&mut store, r, &[(false, points)]);
    let got = store
        .series(key, "m", &query(SeriesAxis::Step, None, None, 4))
        .unwrap()
        .unwrap();
    assert_eq!(got.steps, [0, 5000, 9999]);
    assert!(got.values[0].is_nan());
    assert_eq!(&got.values[1..], [5000.0, 9999.0]);
    assert_eq!(got.times[0], Some(0.0));
}

#[test]
fn raw_reads_refuse_more_than_the_limit_and_missing_keys_are_none() {
    let (_tmp, mut store) = fresh_store();
    let (r, key) = one_run(&mut store, 1 << 40);
    ingest(&mut store, r, &[(false, make_series(5000, 2, 3))]);
    let mut q = query(SeriesAxis::Step, None, None, 100);
    q.raw = true;
    q.raw_limit = 4999;
    let err = store.series(key, "m", &q).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::RawTooLarge {
                total: 5000,
                limit: 4999,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("\"m\""), "{err}");
    q.raw_limit = 5000;
    let all = store.series(key, "m", &q).unwrap().unwrap();
    assert_eq!(
        (all.total, all.steps.len(), all.downsampled),
        (5000, 5000, false)
    );
    check(&store, key, &q).unwrap();
    assert!(store.series(key, "nope", &q).unwrap().is_none());
    assert!(store.series(RunKey(99), "m", &q).unwrap().is_none());
    // An empty range.
    let empty = store
        .series(key, "m", &query(SeriesAxis::Step, Some(1e12), None, 100))
        .unwrap()
        .unwrap();
    assert_eq!((empty.total, empty.steps.len()), (0, 0));
}

#[test]
fn a_truncated_file_resets_the_tiles() {
    let (_tmp, mut store) = fresh_store();
    let (r, key) = one_run(&mut store, 1 << 40);
    ingest(&mut store, r, &[(false, make_series(5000, 2, 11))]);
    let fresh: Vec<_> = (0..6000i64).map(|s| (s, s as f64, -(s as f64))).collect();
    store
        .ingest_points(r, &batch(0, 100, &fresh, true))
        .unwrap();
    let got = store
        .series(key, "m", &query(SeriesAxis::Step, None, None, 10))
        .unwrap()
        .unwrap();
    assert_eq!(got.total, 6000);
    assert_eq!(got.values[0], 0.0);
    check(&store, key, &query(SeriesAxis::Step, None, None, 10)).unwrap();
    check(
        &store,
        key,
        &query(SeriesAxis::Time, Some(10.0), Some(2000.0), 20),
    )
    .unwrap();
    // Forgetting the run drops its tiles too.
    assert!(store.forget_run(key).unwrap());
    let tiles: i64 = store
        .conn
        .query_row("SELECT count(*) FROM point_tiles", [], |r| r.get(0))
        .unwrap();
    assert_eq!(tiles, 0);
}

#[test]
fn series_after_returns_the_next_points_in_step_order() {
    let (_tmp, mut store) = fresh_store();
    let (r, key) = one_run(&mut store, 1 << 40);
    let pts: Vec<_> = (0..100i64)
        .map(|s| (s * 2, if s == 5 { f64::NAN } else { s as f64 }, s as f64))
        .collect();
    ingest(&mut store, r, &[(false, pts)]);
    let next = store.series_after(key, "m", 7, 3).unwrap();
    assert_eq!(next.steps, [8, 10, 12]);
    assert_eq!(next.times, [Some(4.0), None, Some(6.0)]);
    assert_eq!(next.values, [4.0, 5.0, 6.0]);
    assert!(!next.downsampled);
    assert!(store
        .series_after(key, "m", 198, 10)
        .unwrap()
        .steps
        .is_empty());
    assert!(store
        .series_after(key, "nope", 0, 10)
        .unwrap()
        .steps
        .is_empty());
}

#[test]
fn rebuilding_the_derived_tables_gives_back_the_same_tiles_and_values() {
    let (_tmp, mut store) = fresh_store();
    let (r, key) = one_run(&mut store, 1 << 40);
    ingest(&mut store, r, &[(false, make_series(20_000, 2, 5))]);
    let tiles = |s: &Store| -> i64 {
        s.conn
            .query_row("SELECT count(*) FROM point_tiles", [], |r| r.get(0))
            .unwrap()
    };
    let built = tiles(&store);
    assert!(built > 0);
    store.conn.execute("DELETE FROM point_tiles", []).unwrap();
    store.conn.execute("DELETE FROM run_values", []).unwrap();
    crate::schema::rebuild_derived(&store.conn).unwrap();
    assert_eq!(tiles(&store), built);
    check(&store, key, &query(SeriesAxis::Step, None, None, 300)).unwrap();
    assert_eq!(store.column_keys(10).unwrap().summary, ["acc"]);
}
