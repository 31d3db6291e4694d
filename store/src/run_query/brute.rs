//! (test-only) The filter language evaluated directly over what a run holds, by its
//! definition in `docs/api.md`: the answer the SQL of `compile` must give.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{Agg, FilterKey, Literal, Op, RunQuery};
use crate::run_values::flatten_config;

/// Everything a filter can read of one run.
#[derive(Debug, Clone, Default)]
pub(crate) struct Facts {
    pub path: String,
    pub alias: Option<String>,
    pub host: Option<String>,
    pub remote: String,
    pub status: String,
    pub run_id: String,
    pub tags: Vec<String>,
    pub notes: Option<String>,
    pub summary: Option<Value>,
    pub config: Option<Value>,
    /// Metric name → (step, value) points, NaN included.
    pub metrics: BTreeMap<String, Vec<(i64, f64)>>,
}

enum Val {
    Num(f64),
    Text(String),
}

fn val(v: &Value) -> Option<Val> {
    match v {
        Value::Null => None,
        Value::Number(n) => n.as_f64().map(Val::Num),
        Value::String(s) => Some(Val::Text(s.clone())),
        other => Some(Val::Text(other.to_string())),
    }
}

fn lookup(key: &FilterKey, f: &Facts) -> Option<Val> {
    match key {
        FilterKey::Summary(k) => f.summary.as_ref()?.as_object()?.get(k).and_then(val),
        FilterKey::Config(k) => flatten_config(f.config.as_ref()?)
            .into_iter()
            .find(|(key, _)| key == k)
            .and_then(|(_, v)| val(&v)),
        _ => None,
    }
}

fn aggregate(points: &[(i64, f64)], agg: Agg) -> Option<f64> {
    let finite = points.iter().map(|p| p.1).filter(|v| !v.is_nan());
    let x = match agg {
        Agg::Last => points.iter().max_by_key(|p| p.0).map(|p| p.1)?,
        Agg::Min => finite.reduce(f64::min)?,
        Agg::Max => finite.reduce(f64::max)?,
    };
    (!x.is_nan()).then_some(x)
}

fn contains(hay: &str, needle: &str) -> bool {
    hay.to_ascii_lowercase()
        .contains(&needle.to_ascii_lowercase())
}

fn text_test(x: &str, op: Op, lit: &str) -> bool {
    match op {
        Op::Eq => x == lit,
        Op::Ne => x != lit,
        Op::Lt => x < lit,
        Op::Le => x <= lit,
        Op::Gt => x > lit,
        Op::Ge => x >= lit,
        Op::Contains => contains(x, lit),
    }
}

fn num_test(x: f64, op: Op, lit: f64) -> bool {
    match op {
        Op::Eq => x == lit,
        Op::Ne => x != lit,
        Op::Lt => x < lit,
        Op::Le => x <= lit,
        Op::Gt => x > lit,
        Op::Ge => x >= lit,
        Op::Contains => false,
    }
}

fn plain(key: &FilterKey, f: &Facts) -> Option<Option<String>> {
    Some(match key {
        FilterKey::Path => Some(f.path.clone()),
        FilterKey::Alias => f.alias.clone(),
        FilterKey::Host => f.host.clone(),
        FilterKey::Remote => Some(f.remote.clone()),
        FilterKey::Status => Some(f.status.clone()),
        FilterKey::RunId => Some(f.run_id.clone()),
        _ => return None,
    })
}

fn has(key: &FilterKey, f: &Facts) -> bool {
    if let Some(v) = plain(key, f) {
        return v.is_some();
    }
    match key {
        FilterKey::Tags => !f.tags.is_empty(),
        FilterKey::Config(_) | FilterKey::Summary(_) => lookup(key, f).is_some(),
        FilterKey::Metric(name, agg) => match (f.metrics.get(name), agg) {
            (Some(points), None) => !points.is_empty(),
            (Some(points), Some(agg)) => aggregate(points, *agg).is_some(),
            (None, _) => false,
        },
        _ => false,
    }
}

/// Whether the run `f` matches `q`.
pub(crate) fn matches(q: &RunQuery, f: &Facts) -> bool {
    match q {
        RunQuery::And(items) => items.iter().all(|q| matches(q, f)),
        RunQuery::Or(items) => items.iter().any(|q| matches(q, f)),
        RunQuery::Not(inner) => !matches(inner, f),
        RunQuery::Text(t) => {
            let fields = [
                Some(&f.path),
                f.alias.as_ref(),
                Some(&f.run_id),
                f.host.as_ref(),
                Some(&f.remote),
                f.notes.as_ref(),
            ];
            fields.into_iter().flatten().any(|x| contains(x, t))
                || f.tags.iter().any(|tag| contains(tag, t))
        }
        RunQuery::Has(key) => has(key, f),
        RunQuery::Compare { key, op, value } => {
            if let Some(v) = plain(key, f) {
                return v.is_some_and(|v| text_test(&v, *op, &value.as_text()));
            }
            match key {
                FilterKey::Tags => {
                    let lit = value.as_text();
                    if *op == Op::Ne {
                        !f.tags.is_empty() && !f.tags.contains(&lit)
                    } else {
                        f.tags.iter().any(|t| text_test(t, *op, &lit))
                    }
                }
                FilterKey::Config(_) | FilterKey::Summary(_) => {
                    let Some(v) = lookup(key, f) else {
                        return false;
                    };
                    let eq_or = |op: Op| match (&v, value) {
                        (Val::Text(s), lit) if op == Op::Contains => contains(s, &lit.as_text()),
                        (_, _) if op == Op::Contains => false,
                        (Val::Num(x), Literal::Number(y, _)) => num_test(*x, op, *y),
                        (Val::Text(s), Literal::Text(_) | Literal::Bool(_)) => {
                            text_test(s, op, &value.as_text())
                        }
                        _ => false,
                    };
                    if *op == Op::Ne {
                        !eq_or(Op::Eq)
                    } else {
                        eq_or(*op)
                    }
                }
                FilterKey::Metric(name, Some(agg)) => {
                    let Some(x) = f.metrics.get(name).and_then(|p| aggregate(p, *agg)) else {
                        return false;
                    };
                    match value {
                        Literal::Number(y, _) => num_test(x, *op, *y),
                        _ => *op == Op::Ne,
                    }
                }
                _ => false,
            }
        }
    }
}
