//! The extra columns of `runicorn-hub ls --columns` (`summary.KEY`, `config.KEY`,
//! `metric.KEY.last|min|max`: the keys of the filter language), their values per run, and the
//! CSV output of `ls --csv` (RFC 4180: CRLF line ends, fields with a comma, quote or line end
//! quoted, quotes doubled; numbers at full precision, as the API's JSON writes them).

use std::collections::HashMap;
use std::io::Write;

use runicorn_cli::{csv, safe};
use runicorn_store::{flatten_config, Agg, FilterKey, RunKey, RunQuery, RunRow, Store};
use serde_json::Value;

/// One `--columns` item.
#[derive(Debug, Clone, PartialEq)]
pub struct ExtraColumn {
    /// As written (the header).
    pub name: String,
    pub key: ColumnKey,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ColumnKey {
    Summary(String),
    Config(String),
    Metric(String, Agg),
}

impl ExtraColumn {
    /// A column named as the filter language names a key (backticks allowed).
    pub fn parse(text: &str) -> Result<ExtraColumn, String> {
        let bad = || {
            format!(
                "{text:?} is not a column: use summary.KEY, config.KEY or metric.KEY.last|min|max"
            )
        };
        let query = RunQuery::parse(&format!("has:{text}"))
            .map_err(|_| bad())?
            .ok_or_else(bad)?;
        let key = match query {
            RunQuery::Has(FilterKey::Summary(k)) => ColumnKey::Summary(k),
            RunQuery::Has(FilterKey::Config(k)) => ColumnKey::Config(k),
            RunQuery::Has(FilterKey::Metric(k, Some(agg))) => ColumnKey::Metric(k, agg),
            _ => return Err(bad()),
        };
        Ok(ExtraColumn {
            name: text.to_owned(),
            key,
        })
    }
}

/// The values of the extra columns of a listing.
#[derive(Debug, Default)]
pub struct ColumnValues {
    pub columns: Vec<ExtraColumn>,
    /// Per run, one value per column (`null` where the run has none).
    values: HashMap<RunKey, Vec<Value>>,
}

impl ColumnValues {
    fn of(&self, run: RunKey) -> Vec<Value> {
        self.values
            .get(&run)
            .cloned()
            .unwrap_or_else(|| vec![Value::Null; self.columns.len()])
    }

    /// `{"summary.acc": 0.9, …}` for `--json`.
    pub fn json_of(&self, run: RunKey) -> Value {
        let values = self.of(run);
        Value::Object(
            self.columns
                .iter()
                .zip(values)
                .map(|(c, v)| (c.name.clone(), v))
                .collect(),
        )
    }

    /// The cells' texts: strings as they are, numbers at full precision, other values as JSON,
    /// nothing for null.
    pub fn texts_of(&self, run: RunKey) -> Vec<String> {
        self.of(run).iter().map(text_of).collect()
    }
}

fn text_of(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Reads the values of `columns` for `runs` (one query per metric column).
pub fn column_values(
    store: &Store,
    runs: &[RunRow],
    columns: &[ExtraColumn],
) -> Result<ColumnValues, runicorn_store::StoreError> {
    let keys: Vec<RunKey> = runs.iter().map(|r| r.key).collect();
    let mut metrics: Vec<Option<HashMap<RunKey, f64>>> = Vec::new();
    for c in columns {
        metrics.push(match &c.key {
            ColumnKey::Metric(name, agg) if !runs.is_empty() => {
                Some(store.metric_aggregates(&keys, name, *agg)?)
            }
            _ => None,
        });
    }
    let mut values = HashMap::new();
    for r in runs {
        let flat = columns
            .iter()
            .any(|c| matches!(c.key, ColumnKey::Config(_)))
            .then(|| r.config.as_ref().map(flatten_config).unwrap_or_default());
        let row = columns
            .iter()
            .zip(&metrics)
            .map(|(c, m)| match &c.key {
                ColumnKey::Summary(k) => r
                    .summary
                    .as_ref()
                    .and_then(|s| s.get(k))
                    .cloned()
                    .unwrap_or(Value::Null),
                ColumnKey::Config(k) => flat
                    .iter()
                    .flatten()
                    .find(|(key, _)| key == k)
                    .map(|(_, v)| v.clone())
                    .unwrap_or(Value::Null),
                ColumnKey::Metric(..) => m
                    .as_ref()
                    .and_then(|m| m.get(&r.key))
                    .map_or(Value::Null, |&x| Value::from(x)),
            })
            .collect();
        values.insert(r.key, row);
    }
    Ok(ColumnValues {
        columns: columns.to_vec(),
        values,
    })
}

/// The listing as CSV: the table's columns, then the extra ones. On a terminal every cell is
/// made safe to show (`runicorn_cli::safe`); into a pipe or file the values are exact.
pub fn write_csv(
    out: &mut impl Write,
    runs: &[RunRow],
    extra: &ColumnValues,
    terminal: bool,
) -> std::io::Result<()> {
    let show = |t: &str| -> String {
        if terminal {
            csv::field(&safe(t)).into_owned()
        } else {
            csv::field(t).into_owned()
        }
    };
    let mut head: Vec<String> = [
        "key",
        "remote",
        "path",
        "run_id",
        "alias",
        "status",
        "points",
        "last_step",
    ]
    .iter()
    .map(|h| (*h).to_owned())
    .collect();
    head.extend(extra.columns.iter().map(|c| show(&c.name)));
    write!(out, "{}{}", head.join(","), csv::LINE_END)?;
    for r in runs {
        let mut cells = vec![
            r.key.0.to_string(),
            show(&r.remote),
            show(&r.path),
            show(&r.id),
            show(r.alias.as_deref().unwrap_or("")),
            show(&r.status),
            r.points.to_string(),
            r.last_step.map(|s| s.to_string()).unwrap_or_default(),
        ];
        cells.extend(extra.texts_of(r.key).iter().map(|t| show(t)));
        write!(out, "{}{}", cells.join(","), csv::LINE_END)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_named_like_filter_keys() {
        let c = ExtraColumn::parse("metric.`train/loss`.min").unwrap();
        assert_eq!(c.key, ColumnKey::Metric("train/loss".into(), Agg::Min));
        assert_eq!(c.name, "metric.`train/loss`.min");
        assert_eq!(
            ExtraColumn::parse("config.optim.lr").unwrap().key,
            ColumnKey::Config("optim.lr".into())
        );
        for bad in ["path", "metric.loss", "summary.", "x y", "tags"] {
            let e = ExtraColumn::parse(bad).unwrap_err();
            assert!(e.contains("summary.KEY"), "{bad}: {e}");
        }
    }

    #[test]
    fn cells_are_exact_text() {
        assert_eq!(text_of(&serde_json::json!(0.1)), "0.1");
        assert_eq!(text_of(&serde_json::json!(true)), "true");
        assert_eq!(text_of(&Value::Null), "");
    }
}
