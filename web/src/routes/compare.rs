//! `GET /api/compare`: several runs' series of the same keys on one x axis, each series' whole
//! statistics (count, last, min, max: the summary table), and the table of their flattened
//! configs with the differing keys first.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use runicorn_store::{flatten_config, RunKey, RunRef, SeriesStats, Store};
use serde::Serialize;
use serde_json::Value;

use crate::dto::{RunDto, SeriesDto};
use crate::error::ApiError;
use crate::query::Params;
use crate::routes::metrics::series_query;
use crate::state::AppState;

/// Most runs and keys one comparison may hold.
pub const MAX_COMPARE: usize = 50;
/// Most points one comparison may return: `points` × runs × keys.
pub const MAX_COMPARE_POINTS: u64 = 2_500_000;
/// Most rows of `config_diff` (the differing keys first); `config_keys` counts them all.
pub const MAX_CONFIG_DIFF: usize = 1_000;

#[derive(Debug, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS), ts(rename = "CompareAnswer"))]
pub struct CompareDto {
    pub runs: Vec<RunDto>,
    pub keys: Vec<String>,
    /// Each series names its run.
    #[cfg_attr(test, ts(type = "Array<Series & { run: number }>"))]
    pub series: Vec<SeriesDto>,
    /// Each series' statistics over all its points, whatever `from`/`to` asked.
    pub stats: Vec<SeriesStatsDto>,
    pub config_diff: Vec<ConfigDiffRow>,
    /// Flattened config keys across the runs (`config_diff` holds at most [`MAX_CONFIG_DIFF`]).
    pub config_keys: u64,
}

/// One run's series `key` over all its points: how many, the last one, the smallest and
/// largest value (NaN left out; `last` is `null` when the last value is NaN).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct SeriesStatsDto {
    pub run: i64,
    pub key: String,
    pub count: i64,
    pub last_step: i64,
    pub last: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
}

impl SeriesStatsDto {
    fn new(run: RunKey, key: &str, s: SeriesStats) -> SeriesStatsDto {
        SeriesStatsDto {
            run: run.0,
            key: key.to_owned(),
            count: s.count,
            last_step: s.last_step,
            last: s.last,
            min: s.min,
            max: s.max,
        }
    }
}

/// One flattened config key across the compared runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct ConfigDiffRow {
    pub key: String,
    #[cfg_attr(test, ts(type = "Array<unknown>"))]
    pub values: Vec<Value>,
    pub differs: bool,
}

/// Every key of the flattened configs (first seen first), values in run order (`null` where
/// a run lacks the key), the differing keys before the equal ones; at most `limit` rows, and
/// how many keys there are. Linear in the configs' sizes (one map per config).
pub fn config_diff(configs: &[Vec<(String, Value)>], limit: usize) -> (Vec<ConfigDiffRow>, u64) {
    let mut keys: Vec<&str> = Vec::new();
    let mut seen = HashSet::new();
    for config in configs {
        for (key, _) in config {
            if seen.insert(key.as_str()) {
                keys.push(key);
            }
        }
    }
    let maps: Vec<HashMap<&str, &Value>> = configs
        .iter()
        .map(|c| c.iter().map(|(k, v)| (k.as_str(), v)).collect())
        .collect();
    let value_of =
        |m: &HashMap<&str, &Value>, key: &str| m.get(key).map_or(Value::Null, |v| (*v).clone());
    fn value_in<'v>(m: &HashMap<&str, &'v Value>, key: &str) -> &'v Value {
        static NULL: Value = Value::Null;
        m.get(key).copied().unwrap_or(&NULL)
    }
    let differs = |key: &str| {
        let first = maps.first().map(|m| value_in(m, key));
        maps.iter().any(|m| Some(value_in(m, key)) != first)
    };
    let total = keys.len() as u64;
    // Differing keys first (in first-seen order), then the equal ones, up to the limit; values
    // are cloned only for the rows kept.
    let (diff, same): (Vec<&str>, Vec<&str>) = keys.into_iter().partition(|k| differs(k));
    let rows = diff
        .into_iter()
        .map(|k| (k, true))
        .chain(same.into_iter().map(|k| (k, false)))
        .take(limit)
        .map(|(key, differs)| ConfigDiffRow {
            key: key.to_owned(),
            values: maps.iter().map(|m| value_of(m, key)).collect(),
            differs,
        })
        .collect();
    (rows, total)
}

/// The run references of `runs=` (keys, run ids or `REMOTE/RUN_ID`), each once.
fn run_refs(params: &Params) -> Result<Vec<RunRef>, ApiError> {
    let texts = params.bounded_list("runs", MAX_COMPARE)?.ok_or_else(|| {
        ApiError::bad_request("parameter runs is required: runs=42,20261202_150537_a4f9e9")
    })?;
    let mut refs = Vec::with_capacity(texts.len());
    for text in texts {
        let reference = RunRef::parse(&text)
            .map_err(|e| ApiError::bad_request(format!("parameter runs: {e}")))?;
        if !refs.contains(&reference) {
            refs.push(reference);
        }
    }
    Ok(refs)
}

/// The keys of the runs `refs` name, in their order, each run once.
fn resolve_all(store: &Store, refs: &[RunRef]) -> Result<Vec<RunKey>, ApiError> {
    let mut keys = Vec::with_capacity(refs.len());
    for reference in refs {
        let key = store.resolve_run(reference)?;
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    Ok(keys)
}

/// `GET /api/compare`.
pub async fn get(
    State(state): State<Arc<AppState>>,
    params: Params,
) -> Result<Json<CompareDto>, ApiError> {
    let run_refs = run_refs(&params)?;
    let asked = params.bounded_list("keys", MAX_COMPARE)?;
    if params.flag("raw", false)? {
        return Err(ApiError::bad_request(
            "parameter raw is not taken by /api/compare (it downsamples); \
             read raw series from /api/runs/{run}/metrics?raw=1",
        ));
    }
    let query = series_query(&params, 1_000)?;
    let (rows, keys) = state
        .pool
        .read(move |store| {
            let run_keys = resolve_all(store, &run_refs)?;
            let mut rows = Vec::with_capacity(run_keys.len());
            for key in &run_keys {
                rows.push(store.run_by_key(*key)?.ok_or(ApiError::no_run(key.0))?);
            }
            let keys = match asked {
                Some(keys) => keys,
                None => store.shared_metric_keys(&run_keys, MAX_COMPARE)?,
            };
            Ok((rows, keys))
        })
        .await?;
    let wanted = u64::from(query.max_points) * rows.len() as u64 * keys.len() as u64;
    if wanted > MAX_COMPARE_POINTS {
        return Err(ApiError::bad_request(format!(
            "parameter points={} for {} runs × {} keys asks for {wanted} points; at most \
             {MAX_COMPARE_POINTS}: lower points or compare fewer runs or keys",
            query.max_points,
            rows.len(),
            keys.len()
        )));
    }
    // One read per run, side by side on the pool's connections: the series are independent.
    let reads = rows.iter().map(|row| {
        let (run, names, query) = (row.key, keys.clone(), query.clone());
        state.pool.read(move |store| {
            let mut series = Vec::with_capacity(names.len());
            let mut stats = Vec::with_capacity(names.len());
            for name in &names {
                if let Some(points) = store.series(run, name, &query)? {
                    series.push(SeriesDto::new(Some(run.0), points));
                }
                if let Some(s) = store.series_stats(run, name)? {
                    stats.push(SeriesStatsDto::new(run, name, s));
                }
            }
            Ok((series, stats))
        })
    });
    let (series, stats): (Vec<Vec<SeriesDto>>, Vec<Vec<SeriesStatsDto>>) =
        futures::future::try_join_all(reads)
            .await?
            .into_iter()
            .unzip();
    let series = series.into_iter().flatten().collect();
    let stats = stats.into_iter().flatten().collect();
    let configs: Vec<Vec<(String, Value)>> = rows
        .iter()
        .map(|r| r.config.as_ref().map(flatten_config).unwrap_or_default())
        .collect();
    let (config_diff, config_keys) = config_diff(&configs, MAX_CONFIG_DIFF);
    let answer = CompareDto {
        runs: rows.iter().map(RunDto::from).collect(),
        keys,
        series,
        stats,
        config_diff,
        config_keys,
    };
    Ok(Json(answer))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn flat(pairs: &[(&str, Value)]) -> Vec<(String, Value)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn differing_keys_come_first_and_missing_values_are_null() {
        let (diff, total) = config_diff(
            &[
                flat(&[("batch", json!(32)), ("lr", json!(0.1))]),
                flat(&[
                    ("batch", json!(32)),
                    ("lr", json!(0.03)),
                    ("optim.name", json!("sgd")),
                ]),
            ],
            10,
        );
        assert_eq!(total, 3);
        let keys: Vec<&str> = diff.iter().map(|r| r.key.as_str()).collect();
        assert_eq!(keys, ["lr", "optim.name", "batch"]);
        assert_eq!(diff[0].values, vec![json!(0.1), json!(0.03)]);
        assert_eq!(diff[1].values, vec![Value::Null, json!("sgd")]);
        assert!(diff[1].differs);
        assert!(!diff[2].differs);
    }

    #[test]
    fn a_large_config_diff_is_linear_and_capped() {
        let n = 200_000;
        let a: Vec<(String, Value)> = (0..n).map(|i| (format!("k{i}"), json!(i))).collect();
        let mut b = a.clone();
        b[n - 1].1 = json!("changed");
        let start = std::time::Instant::now();
        let (rows, total) = config_diff(&[a, b], 100);
        assert!(start.elapsed() < std::time::Duration::from_secs(5));
        assert_eq!(total, n as u64);
        assert_eq!(rows.len(), 100);
        assert_eq!(rows[0].key, format!("k{}", n - 1));
        assert!(rows[0].differs && !rows[1].differs);
    }

    #[test]
    fn run_references_are_checked() {
        let p = Params::parse("runs=1,gpu1/").unwrap();
        let e = run_refs(&p).unwrap_err();
        assert!(e.message.contains("parameter runs"), "{}", e.message);
        assert!(e.message.contains("\"gpu1/\""), "{}", e.message);
        assert!(run_refs(&Params::parse("").unwrap()).is_err());
        let p = Params::parse("runs=3,3,x,gpu1/x").unwrap();
        let texts: Vec<String> = run_refs(&p)
            .unwrap()
            .iter()
            .map(|r| r.to_string())
            .collect();
        assert_eq!(texts, ["3", "x", "gpu1/x"]);
    }
}
