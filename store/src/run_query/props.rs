//! (test-only) Property test: over random runs and random expressions, the SQL of every
//! expression keeps exactly the runs the brute-force evaluator (`brute`) keeps, and every
//! expression written back (`Display`) parses to the same tree.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use runicorn_protocol::wire::{PointBatch, RunPoints, Series};
use serde_json::{json, Value};

use super::brute::{matches, Facts};
use super::{Agg, FilterKey, Literal, Op, RunQuery};
use crate::testkit::*;
use crate::{RunFilter, TrashView};

const NUMBERS: [&str; 6] = ["0", "0.5", "-1", "1.5", "3", "2e0"];
const TEXTS: [&str; 9] = [
    "sgd", "Adam", "gpu1", "cv", "best", "finished", "", "a", "R2",
];

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        (-2i32..=6).prop_map(|i| json!(f64::from(i) * 0.5)),
        prop::sample::select(vec!["sgd", "Adam", "adamw", "3", "true"]).prop_map(|s| json!(s)),
        any::<bool>().prop_map(|b| json!(b)),
        Just(Value::Null),
        Just(json!([1, "a"])),
    ]
}

fn maybe_value() -> impl Strategy<Value = Option<Value>> {
    prop::option::weighted(0.75, value())
}

/// One run: fields from small vocabularies, so that expressions hit.
fn facts() -> impl Strategy<Value = Facts> {
    let metric = prop::collection::vec(
        prop_oneof![
            4 => (-4i32..=4).prop_map(|i| f64::from(i) * 0.5),
            1 => Just(f64::NAN),
            1 => Just(f64::INFINITY),
        ],
        1..6,
    );
    (
        prop::sample::select(vec!["cv/a", "cv/b", "nlp", "Cv"]),
        prop::option::of(prop::sample::select(vec!["Res", "res2", "x", "best"])),
        prop::option::of(prop::sample::select(vec!["gpu1", "GPU2", ""])),
        prop::sample::select(vec!["gpu1", "r2"]),
        prop::sample::select(vec!["finished", "running", "crashed"]),
        prop::sample::subsequence(vec!["best", "b", "lr=0.1", "Adam"], 0..=3),
        (maybe_value(), maybe_value(), maybe_value()),
        (maybe_value(), maybe_value(), maybe_value()),
        prop::option::of(metric.clone()),
        prop::option::of(metric),
    )
        .prop_map(
            |(path, alias, host, remote, status, tags, s, c, loss, acc)| {
                let mut summary = serde_json::Map::new();
                for (k, v) in [("acc", s.0), ("loss", s.1), ("name", s.2)] {
                    if let Some(v) = v {
                        summary.insert(k.into(), v);
                    }
                }
                let mut optim = serde_json::Map::new();
                for (k, v) in [("lr", c.0), ("name", c.1)] {
                    if let Some(v) = v {
                        optim.insert(k.into(), v);
                    }
                }
                let mut config = json!({"optim": optim});
                if let Some(seed) = c.2 {
                    config["seed"] = seed;
                }
                let mut metrics = BTreeMap::new();
                for (name, values) in [("loss", loss), ("acc", acc)] {
                    if let Some(values) = values {
                        let points = values
                            .into_iter()
                            .enumerate()
                            .map(|(i, v)| (i as i64 * 3, v))
                            .collect();
                        metrics.insert(name.to_owned(), points);
                    }
                }
                Facts {
                    path: path.into(),
                    alias: alias.map(str::to_owned),
                    host: host.map(str::to_owned),
                    remote: remote.into(),
                    status: status.into(),
                    run_id: String::new(),
                    tags: tags.into_iter().map(str::to_owned).collect(),
                    notes: None,
                    summary: Some(Value::Object(summary)),
                    config: Some(config),
                    metrics,
                }
            },
        )
}

fn key() -> impl Strategy<Value = FilterKey> {
    let aggs = prop::sample::select(vec![Agg::Last, Agg::Min, Agg::Max]);
    prop_oneof![
        prop::sample::select(vec![
            FilterKey::Path,
            FilterKey::Alias,
            FilterKey::Tags,
            FilterKey::Host,
            FilterKey::Remote,
            FilterKey::Status,
            FilterKey::RunId,
            FilterKey::Unknown("lr".into()),
        ]),
        prop::sample::select(vec!["optim.lr", "optim.name", "seed", "optim", "x"])
            .prop_map(|k| FilterKey::Config(k.into())),
        prop::sample::select(vec!["acc", "loss", "name", "x"])
            .prop_map(|k| FilterKey::Summary(k.into())),
        (prop::sample::select(vec!["loss", "acc", "x"]), aggs)
            .prop_map(|(k, a)| FilterKey::Metric(k.into(), Some(a))),
    ]
}

fn literal() -> impl Strategy<Value = Literal> {
    prop_oneof![
        prop::sample::select(NUMBERS.to_vec())
            .prop_map(|w| Literal::Number(w.parse().unwrap_or(0.0), w.to_owned())),
        prop::sample::select(TEXTS.to_vec()).prop_map(|t| Literal::Text(t.to_owned())),
        any::<bool>().prop_map(Literal::Bool),
    ]
}

fn query() -> impl Strategy<Value = RunQuery> {
    let op = prop::sample::select(vec![
        Op::Eq,
        Op::Ne,
        Op::Lt,
        Op::Le,
        Op::Gt,
        Op::Ge,
        Op::Contains,
    ]);
    let leaf = prop_oneof![
        3 => (key(), op, literal()).prop_map(|(key, op, value)| RunQuery::Compare { key, op, value }),
        1 => prop_oneof![
            key(),
            prop::sample::select(vec!["loss", "x"]).prop_map(|k| FilterKey::Metric(k.into(), None)),
        ]
        .prop_map(RunQuery::Has),
        1 => prop::sample::select(vec!["gpu", "CV", "res", "best", "r2", "lr=0", "00"])
            .prop_map(|t| RunQuery::Text(t.into())),
    ];
    leaf.prop_recursive(3, 16, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 2..4).prop_map(RunQuery::And),
            prop::collection::vec(inner.clone(), 2..4).prop_map(RunQuery::Or),
            inner.prop_map(|q| RunQuery::Not(Box::new(q))),
        ]
    })
}

/// A store holding `runs` (two remotes, points included); their run ids are filled in.
fn store_of(runs: &mut [Facts]) -> (tempfile::TempDir, crate::Store) {
    let (tmp, mut store) = fresh_store();
    for remote in ["gpu1", "r2"] {
        let id = add_remote(&mut store, remote);
        let mut changes = Vec::new();
        let mut points = Vec::new();
        for (i, f) in runs
            .iter_mut()
            .enumerate()
            .filter(|(_, f)| f.remote == remote)
        {
            f.run_id = format!("run{i:02}");
            let dir = format!("runs/{}/{}", f.path, f.run_id);
            let mut c = run_change(&dir, i as u64 + 1, 100);
            c.alias = f.alias.clone();
            c.hostname = f.host.clone();
            c.status = f.status.clone();
            c.tags = f.tags.clone();
            c.summary = f.summary.clone();
            c.config = f.config.clone();
            changes.push(c);
            let steps: Vec<i64> = (0..6).map(|s| s * 3).collect();
            let series = f
                .metrics
                .iter()
                .map(|(key, pts)| Series {
                    key: key.clone(),
                    rows: Some((0..pts.len() as u32).collect()),
                    values: pts.iter().map(|p| p.1).collect(),
                })
                .collect();
            points.push(RunPoints {
                dir,
                from: 0,
                to: 100,
                next_line: 11,
                eof: true,
                times: steps.iter().map(|&s| 1e9 + s as f64).collect(),
                steps,
                series,
                truncated: false,
                missing: false,
                corrupt: vec![],
            });
        }
        let n = changes.len() as u64;
        store
            .apply_change_batch(id, &change_batch(true, changes, "e", n, false))
            .unwrap();
        store
            .ingest_points(id, &PointBatch { runs: points })
            .unwrap();
    }
    (tmp, store)
}

fn every_run(query: RunQuery) -> RunFilter {
    RunFilter {
        query: Some(query),
        include_removed: true,
        include_deleted: true,
        trash: TrashView::Include,
        ..RunFilter::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn sql_answers_equal_the_brute_force_evaluation(
        mut runs in prop::collection::vec(facts(), 1..10),
        queries in prop::collection::vec(query(), 1..12),
    ) {
        let (_tmp, store) = store_of(&mut runs);
        for q in queries {
            let written = q.to_string();
            let reparsed = RunQuery::parse(&written).unwrap().unwrap();
            prop_assert_eq!(&reparsed, &q, "{}", written);
            let filter = every_run(q.clone());
            let sql: BTreeSet<String> =
                store.list_runs(&filter).unwrap().into_iter().map(|r| r.id).collect();
            let brute: BTreeSet<String> = runs
                .iter()
                .filter(|f| matches(&q, f))
                .map(|f| f.run_id.clone())
                .collect();
            prop_assert_eq!(&sql, &brute, "{}", written);
            prop_assert_eq!(store.count_runs(&filter).unwrap(), brute.len() as u64);
        }
    }
}

#[test]
fn min_and_max_of_a_long_series_come_from_its_tiles_exactly() {
    let (_tmp, mut store) = fresh_store();
    let r = add_remote(&mut store, "gpu");
    store
        .apply_change_batch(
            r,
            &change_batch(
                true,
                vec![run_change("runs/p/1", 1, 200_000)],
                "e",
                1,
                false,
            ),
        )
        .unwrap();
    // k0 = step, k1 = step + 0.5 over 20,000 steps: tiled on three levels.
    store
        .ingest_points(r, &point_batch("runs/p/1", 0, 200_000, 5..20_005))
        .unwrap();
    let tiles: i64 = store
        .conn
        .query_row("SELECT count(*) FROM point_tiles", [], |r| r.get(0))
        .unwrap();
    assert!(tiles > 0);
    assert_eq!(store.column_keys(10).unwrap().metrics, ["k0", "k1"]);
    let count = |q: &str| {
        store
            .count_runs(&every_run(RunQuery::parse(q).unwrap().unwrap()))
            .unwrap()
    };
    assert_eq!(count("metric.k0.min = 5"), 1);
    assert_eq!(count("metric.k0.max = 20004"), 1);
    assert_eq!(count("metric.k1.max = 20004.5"), 1);
    assert_eq!(count("metric.k1.last = 20004.5"), 1);
    assert_eq!(count("metric.k0.min < 5 or metric.k0.max > 20004"), 0);
    assert_eq!(count("has:metric.k0 and not has:metric.k2"), 1);
    let key = crate::RunKey(1);
    let agg = |name: &str, agg| store.metric_aggregates(&[key], name, agg).unwrap();
    assert_eq!(agg("k0", Agg::Min).get(&key), Some(&5.0));
    assert_eq!(agg("k1", Agg::Max).get(&key), Some(&20004.5));
    assert_eq!(agg("k1", Agg::Last).get(&key), Some(&20004.5));
    assert!(agg("k2", Agg::Last).is_empty());
}
