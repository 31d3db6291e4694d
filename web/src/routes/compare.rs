//! `GET /api/compare`: several runs' series of the same keys on one x axis, and the table of
//! their flattened configs with the differing keys first.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use runicorn_store::{flatten_config, RunKey};
use serde::Serialize;
use serde_json::Value;

use crate::dto::{RunDto, SeriesDto};
use crate::error::ApiError;
use crate::query::Params;
use crate::routes::metrics::series_query;
use crate::state::AppState;

/// Most runs and keys one comparison may hold.
pub const MAX_COMPARE: usize = 50;

#[derive(Debug, Serialize)]
pub struct CompareDto {
    pub runs: Vec<RunDto>,
    pub keys: Vec<String>,
    pub series: Vec<SeriesDto>,
    pub config_diff: Vec<ConfigDiffRow>,
}

/// One flattened config key across the compared runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConfigDiffRow {
    pub key: String,
    pub values: Vec<Value>,
    pub differs: bool,
}

/// Every key of the flattened configs (first seen first), values in run order (`null` where
/// a run lacks the key), the differing keys before the equal ones.
pub fn config_diff(configs: &[Vec<(String, Value)>]) -> Vec<ConfigDiffRow> {
    let mut keys: Vec<&str> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for config in configs {
        for (key, _) in config {
            if seen.insert(key.as_str()) {
                keys.push(key);
            }
        }
    }
    let mut rows: Vec<ConfigDiffRow> = keys
        .into_iter()
        .map(|key| {
            let values: Vec<Value> = configs
                .iter()
                .map(|c| {
                    c.iter()
                        .find(|(k, _)| k == key)
                        .map_or(Value::Null, |(_, v)| v.clone())
                })
                .collect();
            let differs = values.iter().any(|v| v != &values[0]);
            ConfigDiffRow {
                key: key.to_owned(),
                values,
                differs,
            }
        })
        .collect();
    rows.sort_by_key(|r| !r.differs);
    rows
}

/// The run ids of `runs=`.
fn run_keys(params: &Params) -> Result<Vec<RunKey>, ApiError> {
    let ids = params
        .list("runs")
        .ok_or_else(|| ApiError::bad_request("parameter runs is required: runs=1,2"))?;
    if ids.len() > MAX_COMPARE {
        return Err(ApiError::bad_request(format!(
            "{} runs given; compare takes at most {MAX_COMPARE}",
            ids.len()
        )));
    }
    let mut keys = Vec::with_capacity(ids.len());
    for id in ids {
        let key = crate::routes::run_key(&id)?;
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
    let run_keys = run_keys(&params)?;
    let asked = params.list("keys");
    if asked.as_ref().is_some_and(|k| k.len() > MAX_COMPARE) {
        return Err(ApiError::bad_request(format!(
            "too many keys; compare takes at most {MAX_COMPARE}"
        )));
    }
    let query = series_query(&params, 1_000)?;
    let (rows, keys) = state
        .pool
        .read(move |store| {
            let mut rows = Vec::with_capacity(run_keys.len());
            for key in &run_keys {
                rows.push(store.run_by_key(*key)?.ok_or(ApiError::no_run(key.0))?);
            }
            let keys = asked.unwrap_or_else(|| {
                let mut shared: Vec<String> = rows[0].keys.clone();
                shared.retain(|k| rows.iter().all(|r| r.keys.contains(k)));
                shared.truncate(MAX_COMPARE);
                shared
            });
            Ok((rows, keys))
        })
        .await?;
    // One read per run, side by side on the pool's connections: the series are independent.
    let reads = rows.iter().map(|row| {
        let (run, names, query) = (row.key, keys.clone(), query.clone());
        state.pool.read(move |store| {
            let mut series = Vec::with_capacity(names.len());
            for name in &names {
                if let Some(points) = store.series(run, name, &query)? {
                    series.push(SeriesDto::new(Some(run.0), points));
                }
            }
            Ok(series)
        })
    });
    let series = futures::future::try_join_all(reads)
        .await?
        .into_iter()
        .flatten()
        .collect();
    let configs: Vec<Vec<(String, Value)>> = rows
        .iter()
        .map(|r| r.config.as_ref().map(flatten_config).unwrap_or_default())
        .collect();
    let answer = CompareDto {
        runs: rows.iter().map(RunDto::from).collect(),
        keys,
        series,
        config_diff: config_diff(&configs),
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
        let diff = config_diff(&[
            flat(&[("batch", json!(32)), ("lr", json!(0.1))]),
            flat(&[
                ("batch", json!(32)),
                ("lr", json!(0.03)),
                ("optim.name", json!("sgd")),
            ]),
        ]);
        let keys: Vec<&str> = diff.iter().map(|r| r.key.as_str()).collect();
        assert_eq!(keys, ["lr", "optim.name", "batch"]);
        assert_eq!(diff[0].values, vec![json!(0.1), json!(0.03)]);
        assert_eq!(diff[1].values, vec![Value::Null, json!("sgd")]);
        assert!(diff[1].differs);
        assert!(!diff[2].differs);
    }

    #[test]
    fn run_ids_are_checked() {
        let p = Params::parse("runs=1,x").unwrap();
        assert!(run_keys(&p).unwrap_err().message.contains("\"x\""));
        assert!(run_keys(&Params::parse("").unwrap()).is_err());
        let p = Params::parse("runs=3,3,4").unwrap();
        assert_eq!(run_keys(&p).unwrap(), vec![RunKey(3), RunKey(4)]);
    }
}
