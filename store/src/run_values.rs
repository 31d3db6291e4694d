//! The `run_values` side table: every run's summary keys (top level) and flattened config keys
//! (dotted for nested objects), one row each, with numbers in `num` and everything else as text,
//! so listings sort by `summary.<key>` or `config.<key>` through an index instead of parsing
//! JSON per row. Kept in step with `runs.summary` / `runs.config` by `apply_change_batch` and
//! filled for existing runs by the migration that created it.

use std::collections::{BTreeMap, BTreeSet};

use rusqlite::{params, Connection};
use serde_json::Value;

/// `run_values.source` of a summary key.
pub(crate) const SOURCE_SUMMARY: i64 = 0;
/// `run_values.source` of a flattened config key.
pub(crate) const SOURCE_CONFIG: i64 = 1;

/// A config flattened into dotted keys, sorted by key: nested objects are walked (`{"optim":
/// {"lr": 0.1}}` gives `optim.lr`), every other value (arrays, an empty object, null) is a leaf.
/// A config that is not an object is one leaf under the empty key.
pub fn flatten_config(value: &Value) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    match value {
        Value::Object(map) if !map.is_empty() => flatten_into(&mut out, "", value),
        other => out.push((String::new(), other.clone())),
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    // A top-level `"a.b"` and a nested `a: {b}` name the same key: the first in order wins.
    out.dedup_by(|later, earlier| later.0 == earlier.0);
    out
}

fn flatten_into(out: &mut Vec<(String, Value)>, prefix: &str, value: &Value) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten_into(out, &key, v);
            }
        }
        leaf => out.push((prefix.to_owned(), leaf.clone())),
    }
}

/// The sortable form of a value: a number, or text (strings as they are, other values as
/// JSON). `None` for null, which sorts as a missing key.
fn sortable(value: &Value) -> Option<(Option<f64>, Option<String>)> {
    match value {
        Value::Null => None,
        Value::Number(n) => Some((n.as_f64(), None)),
        Value::String(s) => Some((None, Some(s.clone()))),
        other => Some((None, Some(other.to_string()))),
    }
}

/// The rows one source of a run contributes.
fn rows_of(source: i64, value: Option<&Value>) -> Vec<(String, Value)> {
    match (source, value) {
        (_, None) => Vec::new(),
        (SOURCE_SUMMARY, Some(Value::Object(map))) => {
            map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
        }
        (SOURCE_SUMMARY, Some(_)) => Vec::new(),
        (_, Some(v)) => flatten_config(v),
    }
}

/// `run_values` rows to write in one go: the rows of every run and source a change batch
/// replaced, inserted with one statement (a batch lists up to thousands of runs, each with a
/// dozen keys).
#[derive(Default)]
pub(crate) struct RunValueRows {
    /// (run, source) whose stored rows go first.
    clear: BTreeSet<(i64, i64)>,
    /// The new rows of each (run, source), `[run, source, key, num, text]` each (a run listed
    /// twice in one batch keeps its last state).
    rows: BTreeMap<(i64, i64), Vec<Value>>,
}

impl RunValueRows {
    /// The rows of one source of `run` become those of `value`; `stored`: whether the run may
    /// already hold rows of it.
    pub fn replace(&mut self, run: i64, source: i64, value: Option<&Value>, stored: bool) {
        if stored {
            self.clear.insert((run, source));
        }
        let rows = rows_of(source, value)
            .into_iter()
            .filter_map(|(key, v)| {
                let (num, text) = sortable(&v)?;
                Some(Value::Array(vec![
                    run.into(),
                    source.into(),
                    key.into(),
                    num.into(),
                    text.into(),
                ]))
            })
            .collect();
        self.rows.insert((run, source), rows);
    }

    /// Writes everything gathered.
    pub fn write(self, conn: &Connection) -> rusqlite::Result<()> {
        let mut delete =
            conn.prepare_cached("DELETE FROM run_values WHERE run = ?1 AND source = ?2")?;
        for (run, source) in &self.clear {
            delete.execute(params![run, source])?;
        }
        let rows: Vec<Value> = self.rows.into_values().flatten().collect();
        if rows.is_empty() {
            return Ok(());
        }
        conn.prepare_cached(
            "INSERT OR REPLACE INTO run_values(run, source, key, num, text)
             SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4
             FROM json_each(?1)",
        )?
        .execute([Value::Array(rows).to_string()])?;
        Ok(())
    }
}

/// Rebuilds `run_values` for every run from scratch (see `schema::rebuild_derived`).
pub(crate) fn rebuild_all(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute("DELETE FROM run_values", [])?;
    let runs: Vec<(i64, Option<String>, Option<String>)> = conn
        .prepare("SELECT id, summary, config FROM runs")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    for chunk in runs.chunks(1000) {
        let mut rows = RunValueRows::default();
        for (run, summary, config) in chunk {
            for (source, text) in [(SOURCE_SUMMARY, summary), (SOURCE_CONFIG, config)] {
                let value = text
                    .as_deref()
                    .and_then(|t| serde_json::from_str::<Value>(t).ok());
                rows.replace(*run, source, value.as_ref(), false);
            }
        }
        rows.write(conn)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn configs_flatten_to_dotted_keys_with_arrays_as_leaves() {
        let cfg = json!({"optim": {"lr": 0.1, "betas": [0.9, 0.99], "sched": {"name": "cos"}},
                         "seed": 1, "empty": {}, "none": null});
        let flat = flatten_config(&cfg);
        let keys: Vec<&str> = flat.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "empty",
                "none",
                "optim.betas",
                "optim.lr",
                "optim.sched.name",
                "seed"
            ]
        );
        assert_eq!(flat[2].1, json!([0.9, 0.99]));
        assert_eq!(flat[1].1, Value::Null);
        assert_eq!(flatten_config(&json!(3)), [(String::new(), json!(3))]);
    }

    #[test]
    fn values_sort_as_numbers_or_text() {
        assert_eq!(sortable(&json!(2)), Some((Some(2.0), None)));
        assert_eq!(sortable(&json!("a")), Some((None, Some("a".into()))));
        assert_eq!(sortable(&json!(true)), Some((None, Some("true".into()))));
        assert_eq!(sortable(&json!([1])), Some((None, Some("[1]".into()))));
        assert_eq!(sortable(&Value::Null), None);
    }
}
