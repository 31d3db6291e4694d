//! A [`RunQuery`] as one SQL condition over `runs r`, with its parameters in order. Every
//! condition is 0 or 1, never NULL, so `NOT` is the plain negation and a run without a key
//! fails every comparison on it.
//!
//! Config and summary comparisons are `r.id IN (…)` over `run_values`, answered from a range
//! of the `run_values_sorted` index (source, key, num, text): SQLite collects the matching runs
//! once and looks those runs up by id (or checks each run against the set). Numbers compare with `num`, text with `text`, never
//! across (a bound text against a REAL column would compare by storage class). Metric
//! aggregates are read per candidate run: `last` at the series' last step (one primary-key
//! seek), `min`/`max` from the top level of the point tiles, or from the points of a series
//! too short to keep tiles (at most 4,096 steps).

use rusqlite::types::Value as SqlValue;

use super::{Agg, FilterKey, Literal, Op, RunQuery};
use crate::run_values::{SOURCE_CONFIG, SOURCE_SUMMARY};

/// The effective tags of `r` as a JSON array.
const TAGS: &str = "coalesce(r.user_tags, r.tags, '[]')";

/// The condition of `query`; its parameters are appended to `args`.
pub(crate) fn condition(query: &RunQuery, args: &mut Vec<SqlValue>) -> String {
    match query {
        RunQuery::And(items) | RunQuery::Or(items) => {
            let word = if matches!(query, RunQuery::And(_)) {
                " AND "
            } else {
                " OR "
            };
            let parts: Vec<String> = items.iter().map(|q| condition(q, args)).collect();
            format!("({})", parts.join(word))
        }
        RunQuery::Not(inner) => format!("(NOT {})", condition(inner, args)),
        RunQuery::Text(text) => text_condition(text, args),
        RunQuery::Has(key) => has(key, args),
        RunQuery::Compare { key, op, value } => compare(key, *op, value, args),
    }
}

/// Free text: a case-insensitive substring of the path, alias, run id, host, remote name,
/// notes or one of the tags.
pub(crate) fn text_condition(text: &str, args: &mut Vec<SqlValue>) -> String {
    let fields = [
        "r.path",
        "coalesce(r.user_alias, r.alias, '')",
        "r.run_id",
        "coalesce(r.hostname, '')",
        "coalesce((SELECT name FROM remotes WHERE id = r.remote), '')",
        "coalesce(r.notes, '')",
    ];
    let mut any: Vec<String> = fields
        .iter()
        .map(|f| format!("instr(lower({f}), lower(?)) > 0"))
        .collect();
    // Text without JSON punctuation is found in a tag exactly when it is found in the tags'
    // JSON text (tags are separated by quotes and commas; serde_json escapes only quotes,
    // backslashes and control characters): no JSON parsed per run.
    if text.contains(['"', '\\', ',', '[', ']']) || text.chars().any(char::is_control) {
        any.push(format!(
            "EXISTS (SELECT 1 FROM json_each({TAGS}) WHERE instr(lower(json_each.value), lower(?)) > 0)"
        ));
    } else {
        any.push(format!("instr(lower({TAGS}), lower(?)) > 0"));
    }
    for _ in 0..any.len() {
        args.push(text.to_owned().into());
    }
    format!("coalesce(({}), 0)", any.join(" OR "))
}

/// The SQL of a plain text field.
fn column(key: &FilterKey) -> Option<&'static str> {
    Some(match key {
        FilterKey::Path => "r.path",
        FilterKey::Alias => "coalesce(r.user_alias, r.alias)",
        FilterKey::Host => "r.hostname",
        FilterKey::Remote => "(SELECT name FROM remotes WHERE id = r.remote)",
        FilterKey::Status => "r.status",
        FilterKey::RunId => "r.run_id",
        _ => return None,
    })
}

/// `x OP ?` for a text or number operand (`~`: contains, ASCII case folded).
fn test(x: &str, op: Op) -> String {
    match op {
        Op::Contains => format!("instr(lower({x}), lower(?)) > 0"),
        op => format!("{x} {} ?", op.as_str()),
    }
}

fn source_of(key: &FilterKey) -> Option<(i64, &str)> {
    match key {
        FilterKey::Config(k) => Some((SOURCE_CONFIG, k)),
        FilterKey::Summary(k) => Some((SOURCE_SUMMARY, k)),
        _ => None,
    }
}

/// The value of a metric aggregate of the series `rk` (a `run_keys` row); NULL for NaN.
pub(crate) fn aggregate(agg: Agg) -> String {
    let last = "(SELECT p.value FROM points p
                 WHERE p.run = rk.run AND p.key = rk.key AND p.step = rk.last_step)";
    let (f, col) = match agg {
        Agg::Last => return last.to_owned(),
        Agg::Min => ("min", "min_value"),
        Agg::Max => ("max", "max_value"),
    };
    format!(
        "coalesce(
            (SELECT {f}(t.{col}) FROM point_tiles t
             WHERE t.run = rk.run AND t.key = rk.key AND t.level =
                (SELECT max(t2.level) FROM point_tiles t2 WHERE t2.run = rk.run AND t2.key = rk.key)),
            (SELECT {f}(p.value) FROM points p WHERE p.run = rk.run AND p.key = rk.key))"
    )
}

/// A run's series of metric `name` satisfying `cond` (over `rk`).
fn metric_exists(name: &str, cond: &str, args: &mut Vec<SqlValue>) -> String {
    args.push(name.to_owned().into());
    format!(
        "EXISTS (SELECT 1 FROM run_keys rk WHERE rk.run = r.id
                 AND rk.key = (SELECT id FROM metric_keys WHERE name = ?){cond})"
    )
}

fn has(key: &FilterKey, args: &mut Vec<SqlValue>) -> String {
    if let Some((source, k)) = source_of(key) {
        args.push(source.into());
        args.push(k.to_owned().into());
        return "r.id IN (SELECT run FROM run_values WHERE source = ? AND key = ?)".into();
    }
    match key {
        FilterKey::Tags => format!("EXISTS (SELECT 1 FROM json_each({TAGS}))"),
        FilterKey::Metric(name, None) => metric_exists(name, "", args),
        FilterKey::Metric(name, Some(agg)) => {
            metric_exists(name, &format!(" AND {} IS NOT NULL", aggregate(*agg)), args)
        }
        FilterKey::Unknown(_) => "0".into(),
        other => match column(other) {
            Some(col) => format!("({col} IS NOT NULL)"),
            None => "0".into(),
        },
    }
}

fn compare(key: &FilterKey, op: Op, value: &Literal, args: &mut Vec<SqlValue>) -> String {
    if let Some(col) = column(key) {
        args.push(value.as_text().into());
        return format!("coalesce({}, 0)", test(col, op));
    }
    match key {
        FilterKey::Tags => {
            let each = format!("SELECT 1 FROM json_each({TAGS})");
            args.push(value.as_text().into());
            if op == Op::Ne {
                format!("(EXISTS ({each}) AND NOT EXISTS ({each} WHERE json_each.value = ?))")
            } else {
                format!("EXISTS ({each} WHERE {})", test("json_each.value", op))
            }
        }
        FilterKey::Config(_) | FilterKey::Summary(_) => {
            let Some((source, k)) = source_of(key) else {
                return "0".into();
            };
            // `~` reads text values only, whatever the literal; otherwise by the literal's kind.
            let (col, bound): (&str, SqlValue) = match (op, value) {
                (Op::Contains, v) => ("text", v.as_text().into()),
                (_, Literal::Number(x, _)) => ("num", (*x).into()),
                (_, v) => ("text", v.as_text().into()),
            };
            args.push(source.into());
            args.push(k.to_owned().into());
            args.push(bound);
            let cond = match (op, col) {
                (Op::Ne, _) => format!("({col} IS NULL OR {col} != ?)"),
                // Text rows have no number: saying so lets the index reach `text` (it follows
                // `num`), so `= "sgd"` is a range of the index, not every row of the key.
                (_, "text") => format!("num IS NULL AND {}", test(col, op)),
                _ => test(col, op),
            };
            format!("r.id IN (SELECT run FROM run_values WHERE source = ? AND key = ? AND {cond})")
        }
        FilterKey::Metric(name, Some(agg)) => {
            let agg_sql = aggregate(*agg);
            match (op, value) {
                (Op::Contains, _) => "0".into(),
                (op, Literal::Number(x, _)) => {
                    let sql = metric_exists(name, &format!(" AND {}", test(&agg_sql, op)), args);
                    args.push((*x).into());
                    sql
                }
                // A metric is a number: it equals no text, and differs from all.
                (Op::Ne, _) => metric_exists(name, &format!(" AND {agg_sql} IS NOT NULL"), args),
                _ => "0".into(),
            }
        }
        _ => "0".into(),
    }
}
