//! Run listings: filters, sorts and paging done in SQL, so a page of a 100,000-run table costs
//! about the page, not the table (`bench/src/bin/dashboard_queries.rs`); counts, the per-path
//! counts of the path tree, and the summary, config and metric keys for column choosers. An
//! expression of the filter language (`RunFilter::query`, see `run_query`) is one more `WHERE`
//! term, so every strategy below applies to it unchanged.
//!
//! A page is found in two steps: the ordered ids of the page, then those runs' rows. Sorting by
//! `summary.<key>` or `config.<key>` reads the `run_values` side table, one of two ways chosen
//! by how many runs the filter keeps (counted up to [`FEW_RUNS`] through the covering index
//! `runs_listing`):
//! - few: every matching run is looked up in `run_values` by key and the few are sorted;
//! - many: `run_values_sorted` is walked in the sort's order and runs are checked against the
//!   filter until the page is full (numbers, then text, then runs without the key).
//!
//! The newest-first default sort walks `runs_by_created` the same way when many runs match.

use std::collections::HashMap;

use rusqlite::params_from_iter;
use rusqlite::types::Value as SqlValue;

use crate::error::{SqliteContext, StoreError};
use crate::ids::RunKey;
use crate::run_query::{aggregate, condition, text_condition, Agg};
use crate::run_values::{SOURCE_CONFIG, SOURCE_SUMMARY};
use crate::runs::{
    run_row, ColumnKeys, RunFilter, RunOrder, RunRow, TrashView, RUN_COLUMNS, RUN_FROM,
};
use crate::sql::from_sql_int;
use crate::store::Store;

/// A filter keeping fewer runs than this is sorted directly; more are walked in sort order.
const FEW_RUNS: i64 = 5000;

/// The `WHERE` terms of a filter over `runs r` (joined with nothing) and their parameters, in
/// order. `with_path`: whether the path prefix takes part.
fn filter_terms(f: &RunFilter, with_path: bool) -> (Vec<String>, Vec<SqlValue>) {
    let mut terms: Vec<String> = Vec::new();
    let mut args: Vec<SqlValue> = Vec::new();
    if let Some(remote) = &f.remote {
        terms.push("r.remote IN (SELECT id FROM remotes WHERE name = ?)".into());
        args.push(remote.clone().into());
    }
    if let Some(prefix) = f.path_prefix.as_deref().map(|p| p.trim_matches('/')) {
        if with_path && !prefix.is_empty() {
            // `p/` ≤ path < `p0` ('0' follows '/'): the paths under p, as an index range.
            terms.push("(r.path = ? OR (r.path >= ? AND r.path < ?))".into());
            args.push(prefix.to_owned().into());
            args.push(format!("{prefix}/").into());
            args.push(format!("{prefix}0").into());
        }
    }
    if let Some(statuses) = &f.status {
        if statuses.is_empty() {
            terms.push("0".into());
        } else {
            let marks = vec!["?"; statuses.len()].join(", ");
            terms.push(format!("r.status IN ({marks})"));
            args.extend(statuses.iter().map(|s| SqlValue::from(s.clone())));
        }
    }
    if let Some(tag) = &f.tag {
        terms.push(
            "EXISTS (SELECT 1 FROM json_each(coalesce(r.user_tags, r.tags))
                     WHERE json_each.value = ?)"
                .into(),
        );
        args.push(tag.clone().into());
    }
    if let Some(text) = f.text.as_deref().filter(|t| !t.is_empty()) {
        terms.push(text_condition(text, &mut args));
    }
    if let Some(query) = &f.query {
        terms.push(condition(query, &mut args));
    }
    if !f.include_removed {
        terms.push("r.removed = 0".into());
    }
    if !f.include_deleted {
        terms.push("r.deleted = 0".into());
    }
    match f.trash {
        TrashView::Hide => terms.push("r.trashed_at IS NULL".into()),
        TrashView::Only => terms.push("r.trashed_at IS NOT NULL".into()),
        TrashView::Include => {}
    }
    (terms, args)
}

/// `WHERE …` of a filter (empty when it keeps everything), and its parameters.
fn where_clause(f: &RunFilter, with_path: bool) -> (String, Vec<SqlValue>) {
    let (terms, args) = filter_terms(f, with_path);
    if terms.is_empty() {
        (String::new(), args)
    } else {
        (format!("WHERE {}", terms.join(" AND ")), args)
    }
}

/// `AND …` of a filter, to follow other terms.
fn and_clause(f: &RunFilter) -> (String, Vec<SqlValue>) {
    let (terms, args) = filter_terms(f, true);
    let sql = terms
        .iter()
        .map(|t| format!(" AND {t}"))
        .collect::<String>();
    (sql, args)
}

/// The expression a plain (non side-table) sort orders by.
fn column_of(by: &RunOrder) -> Option<&'static str> {
    Some(match by {
        RunOrder::CreatedAt => "r.created_at",
        RunOrder::EndedAt => "r.ended_at",
        RunOrder::Path => "r.path",
        RunOrder::Alias => "coalesce(r.user_alias, r.alias)",
        RunOrder::Status => "r.status",
        RunOrder::Remote => "(SELECT name FROM remotes WHERE id = r.remote)",
        RunOrder::Host => "r.hostname",
        RunOrder::RunId => "r.run_id",
        RunOrder::LastStep => "r.stored_last_step",
        RunOrder::Points => "r.stored_points",
        RunOrder::Summary(_) | RunOrder::Config(_) => return None,
    })
}

fn limit_args(f: &RunFilter) -> [SqlValue; 2] {
    [
        f.limit.map_or(-1, i64::from).into(),
        i64::from(f.offset).into(),
    ]
}

impl Store {
    /// Runs matching `filter`, sorted and paged in SQL.
    pub fn list_runs(&self, filter: &RunFilter) -> Result<Vec<RunRow>, StoreError> {
        let ids = self.page_ids(filter)?;
        self.rows_of(&ids)
    }

    /// How many runs match `filter` (its limit, offset and sort ignored): for paging.
    pub fn count_runs(&self, filter: &RunFilter) -> Result<u64, StoreError> {
        let (wh, args) = where_clause(filter, true);
        let n: i64 = self
            .conn
            .prepare_cached(&format!("SELECT count(*) FROM runs r {wh}"))
            .and_then(|mut s| s.query_row(params_from_iter(args), |r| r.get(0)))
            .at(&self.db_path)?;
        Ok(from_sql_int(n))
    }

    /// Runs per exact path for the filter (its path prefix, limit, offset and sort ignored), in
    /// path order.
    pub fn path_counts(&self, filter: &RunFilter) -> Result<Vec<(String, u64)>, StoreError> {
        let p = &self.db_path;
        let (wh, args) = where_clause(filter, false);
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT r.path, count(*) FROM runs r {wh} GROUP BY r.path ORDER BY r.path"
            ))
            .at(p)?;
        let rows = stmt
            .query_map(params_from_iter(args), |r| {
                Ok((r.get(0)?, from_sql_int(r.get(1)?)))
            })
            .at(p)?;
        rows.collect::<Result<Vec<_>, _>>().at(p)
    }

    /// Distinct summary keys and flattened config keys across runs (each list sorted, at most
    /// `limit` each). Each distinct key costs one index seek, whatever the number of runs.
    pub fn column_keys(&self, limit: usize) -> Result<ColumnKeys, StoreError> {
        let p = &self.db_path;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let keys = |source: i64| -> Result<Vec<String>, StoreError> {
            let mut stmt = self
                .conn
                .prepare_cached(
                    "WITH RECURSIVE k(key) AS (
                        SELECT (SELECT min(key) FROM run_values WHERE source = ?1)
                        UNION ALL
                        SELECT (SELECT min(key) FROM run_values WHERE source = ?1 AND key > k.key)
                        FROM k WHERE k.key IS NOT NULL
                     )
                     SELECT key FROM k WHERE key IS NOT NULL LIMIT ?2",
                )
                .at(p)?;
            let rows = stmt
                .query_map(rusqlite::params![source, limit], |r| r.get(0))
                .at(p)?;
            rows.collect::<Result<Vec<_>, _>>().at(p)
        };
        // Names in order through their unique index; a name no run holds any more (its runs
        // forgotten) may stay listed, and matches nothing.
        let metrics = self
            .conn
            .prepare_cached("SELECT name FROM metric_keys ORDER BY name LIMIT ?1")
            .and_then(|mut s| {
                s.query_map([limit], |r| r.get(0))?
                    .collect::<Result<Vec<String>, _>>()
            })
            .at(p)?;
        Ok(ColumnKeys {
            summary: keys(SOURCE_SUMMARY)?,
            config: keys(SOURCE_CONFIG)?,
            metrics,
        })
    }

    /// The `agg` (last value, min or max) of metric `name` of each of `runs` that has a
    /// finite one, read as the filter language reads `metric.<name>.<agg>`.
    pub fn metric_aggregates(
        &self,
        runs: &[RunKey],
        name: &str,
        agg: Agg,
    ) -> Result<HashMap<RunKey, f64>, StoreError> {
        let p = &self.db_path;
        let json =
            serde_json::Value::from(runs.iter().map(|k| k.0).collect::<Vec<_>>()).to_string();
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT rk.run, {} FROM run_keys rk
                 WHERE rk.run IN (SELECT value FROM json_each(?1))
                   AND rk.key = (SELECT id FROM metric_keys WHERE name = ?2)",
                aggregate(agg)
            ))
            .at(p)?;
        let rows = stmt
            .query_map(rusqlite::params![json, name], |r| {
                Ok((RunKey(r.get(0)?), r.get::<_, Option<f64>>(1)?))
            })
            .at(p)?;
        let mut out = HashMap::new();
        for row in rows {
            if let (key, Some(x)) = row.at(p)? {
                out.insert(key, x);
            }
        }
        Ok(out)
    }

    /// SQLite's `PRAGMA data_version`: changes when another connection commits (readers poll
    /// it to notice the sync's writes).
    pub fn data_version(&self) -> Result<i64, StoreError> {
        self.conn
            .query_row("PRAGMA data_version", [], |r| r.get(0))
            .at(&self.db_path)
    }

    /// The rows of `ids`, in that order (ids no longer in the store are left out).
    pub(crate) fn rows_of(&self, ids: &[i64]) -> Result<Vec<RunRow>, StoreError> {
        let p = &self.db_path;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let json = serde_json::Value::from(ids.to_vec()).to_string();
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT {RUN_COLUMNS} {RUN_FROM}
                 WHERE r.id IN (SELECT value FROM json_each(?1))"
            ))
            .at(p)?;
        let mut by_id: HashMap<i64, RunRow> = stmt
            .query_map([json], run_row)
            .at(p)?
            .map(|r| r.map(|row| (row.key.0, row)))
            .collect::<Result<_, _>>()
            .at(p)?;
        Ok(ids.iter().filter_map(|id| by_id.remove(id)).collect())
    }

    /// Whether `filter` keeps at least [`FEW_RUNS`] runs (counted no further).
    fn keeps_many(&self, filter: &RunFilter) -> Result<bool, StoreError> {
        let (wh, mut args) = where_clause(filter, true);
        args.push(FEW_RUNS.into());
        let n: i64 = self
            .conn
            .prepare_cached(&format!(
                "SELECT count(*) FROM (SELECT 1 FROM runs r {wh} LIMIT ?)"
            ))
            .and_then(|mut s| s.query_row(params_from_iter(args), |r| r.get(0)))
            .at(&self.db_path)?;
        Ok(n >= FEW_RUNS)
    }

    /// The ids of the page `filter` asks for, in order.
    fn page_ids(&self, filter: &RunFilter) -> Result<Vec<i64>, StoreError> {
        self.page_ids_with(filter, None)
    }

    /// [`Store::list_runs`] and [`Store::count_runs`] together: the count also chooses the
    /// page's strategy, so the filter is evaluated once less (what the runs table asks for).
    pub fn list_and_count_runs(
        &self,
        filter: &RunFilter,
    ) -> Result<(Vec<RunRow>, u64), StoreError> {
        let total = self.count_runs(filter)?;
        let many = total >= FEW_RUNS as u64;
        let ids = self.page_ids_with(filter, Some(many))?;
        Ok((self.rows_of(&ids)?, total))
    }

    /// The page's ids; `many`: whether the filter keeps at least [`FEW_RUNS`] runs, when known.
    fn page_ids_with(
        &self,
        filter: &RunFilter,
        many: Option<bool>,
    ) -> Result<Vec<i64>, StoreError> {
        let keeps_many = || match many {
            Some(m) => Ok(m),
            None => self.keeps_many(filter),
        };
        let sort = &filter.sort;
        let dir = if sort.descending { "DESC" } else { "ASC" };
        let (sql, args) = match &sort.by {
            RunOrder::Summary(key) | RunOrder::Config(key) => {
                let source = if matches!(sort.by, RunOrder::Summary(_)) {
                    SOURCE_SUMMARY
                } else {
                    SOURCE_CONFIG
                };
                if keeps_many()? {
                    walk_values(filter, source, key, dir)
                } else {
                    sort_values(filter, source, key, dir)
                }
            }
            RunOrder::CreatedAt if keeps_many()? => walk_created(filter, dir),
            by => {
                // Checked just above: every other order is a column.
                let expr = column_of(by).unwrap_or("r.id");
                let (wh, mut args) = where_clause(filter, true);
                args.extend(limit_args(filter));
                (
                    format!(
                        "SELECT r.id FROM runs r {wh}
                         ORDER BY {expr} IS NULL, {expr} {dir}, r.id {dir} LIMIT ? OFFSET ?"
                    ),
                    args,
                )
            }
        };
        let p = &self.db_path;
        let mut stmt = self.conn.prepare_cached(&sql).at(p)?;
        let rows = stmt.query_map(params_from_iter(args), |r| r.get(0)).at(p)?;
        rows.collect::<Result<Vec<i64>, _>>().at(p)
    }
}

/// Few runs: each matching run's value is looked up and the lot sorted.
fn sort_values(f: &RunFilter, source: i64, key: &str, dir: &str) -> (String, Vec<SqlValue>) {
    let (wh, filter_args) = where_clause(f, true);
    let mut args: Vec<SqlValue> = vec![source.into(), key.to_owned().into()];
    args.extend(filter_args);
    args.extend(limit_args(f));
    (
        format!(
            "SELECT r.id FROM runs r
             LEFT JOIN run_values v ON v.run = r.id AND v.source = ? AND v.key = ?
             {wh}
             ORDER BY v.num IS NULL AND v.text IS NULL, v.num IS NULL, v.num {dir}, v.text {dir},
                r.id {dir}
             LIMIT ? OFFSET ?"
        ),
        args,
    )
}

/// Many runs: `run_values_sorted` walked in order (numbers, then text), then the runs without
/// the key, each part stopping once the page is full.
fn walk_values(f: &RunFilter, source: i64, key: &str, dir: &str) -> (String, Vec<SqlValue>) {
    let (and, filter_args) = and_clause(f);
    let window = f
        .limit
        .map_or(-1, |l| i64::from(l).saturating_add(i64::from(f.offset)));
    let mut args: Vec<SqlValue> = Vec::new();
    let arm = |args: &mut Vec<SqlValue>| {
        args.push(source.into());
        args.push(key.to_owned().into());
        args.extend(filter_args.iter().cloned());
        args.push(window.into());
    };
    arm(&mut args);
    arm(&mut args);
    arm(&mut args);
    args.extend(limit_args(f));
    (
        format!(
            "SELECT id FROM (
                SELECT v.run AS id FROM run_values v INDEXED BY run_values_sorted
                CROSS JOIN runs r ON r.id = v.run
                WHERE v.source = ? AND v.key = ? AND v.num IS NOT NULL {and}
                ORDER BY v.num {dir}, v.text {dir}, v.run {dir} LIMIT ?)
             UNION ALL
             SELECT id FROM (
                SELECT v.run AS id FROM run_values v INDEXED BY run_values_sorted
                CROSS JOIN runs r ON r.id = v.run
                WHERE v.source = ? AND v.key = ? AND v.num IS NULL AND v.text IS NOT NULL {and}
                ORDER BY v.text {dir}, v.run {dir} LIMIT ?)
             UNION ALL
             SELECT id FROM (
                SELECT r.id AS id FROM runs r
                WHERE NOT EXISTS (SELECT 1 FROM run_values v
                    WHERE v.run = r.id AND v.source = ? AND v.key = ?) {and}
                ORDER BY r.id {dir} LIMIT ?)
             LIMIT ? OFFSET ?"
        ),
        args,
    )
}

/// Many runs, newest (or oldest) first: `runs_by_created` walked in order, then the runs
/// without a creation time.
fn walk_created(f: &RunFilter, dir: &str) -> (String, Vec<SqlValue>) {
    let (and, filter_args) = and_clause(f);
    let window = f
        .limit
        .map_or(-1, |l| i64::from(l).saturating_add(i64::from(f.offset)));
    let mut args: Vec<SqlValue> = Vec::new();
    for _ in 0..2 {
        args.extend(filter_args.iter().cloned());
        args.push(window.into());
    }
    args.extend(limit_args(f));
    (
        format!(
            "SELECT id FROM (
                SELECT r.id AS id FROM runs r INDEXED BY runs_by_created
                WHERE r.created_at IS NOT NULL {and}
                ORDER BY r.created_at {dir}, r.id {dir} LIMIT ?)
             UNION ALL
             SELECT id FROM (
                SELECT r.id AS id FROM runs r WHERE r.created_at IS NULL {and}
                ORDER BY r.id {dir} LIMIT ?)
             LIMIT ? OFFSET ?"
        ),
        args,
    )
}

#[cfg(test)]
mod tests {
    use rusqlite::params_from_iter;

    use super::{sort_values, walk_created, walk_values};
    use crate::run_values::{SOURCE_CONFIG, SOURCE_SUMMARY};
    use crate::testkit::*;
    use crate::*;

    /// Page ids through one strategy: `walk` (many runs) or the direct sort (few).
    fn ids_by(store: &Store, f: &RunFilter, walk: bool) -> Vec<i64> {
        let dir = if f.sort.descending { "DESC" } else { "ASC" };
        let (sql, args) = match (&f.sort.by, walk) {
            (RunOrder::Summary(k), true) => walk_values(f, SOURCE_SUMMARY, k, dir),
            (RunOrder::Summary(k), false) => sort_values(f, SOURCE_SUMMARY, k, dir),
            (RunOrder::Config(k), true) => walk_values(f, SOURCE_CONFIG, k, dir),
            (RunOrder::Config(k), false) => sort_values(f, SOURCE_CONFIG, k, dir),
            (_, true) => walk_created(f, dir),
            (_, false) => return store.page_ids(f).unwrap(),
        };
        let mut stmt = store.conn.prepare(&sql).unwrap();
        let rows = stmt
            .query_map(params_from_iter(args), |r| r.get(0))
            .unwrap();
        rows.map(Result::unwrap).collect()
    }

    fn plan(store: &Store, f: &RunFilter) -> String {
        let dir = if f.sort.descending { "DESC" } else { "ASC" };
        let (sql, args) = match &f.sort.by {
            RunOrder::Summary(key) => walk_values(f, SOURCE_SUMMARY, key, dir),
            _ => walk_created(f, dir),
        };
        let mut stmt = store
            .conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap();
        let rows = stmt
            .query_map(params_from_iter(args), |r| r.get::<_, String>(3))
            .unwrap();
        rows.map(Result::unwrap).collect::<Vec<_>>().join("\n")
    }

    /// 60 runs over a few paths and hosts, with summaries and nested configs of mixed kinds.
    fn many() -> (tempfile::TempDir, Store) {
        let (tmp, mut store) = fresh_store();
        let r = add_remote(&mut store, "gpu");
        let runs = (0..60u64)
            .map(|i| {
                let path = ["cv/a", "cv/b", "nlp", "cv"][i as usize % 4];
                let mut run = run_change(&format!("runs/{path}/{i:03}"), i + 1, 0);
                run.hostname = Some(format!("node{}", i % 7));
                run.created_at = (i % 9 != 0).then_some(1000.0 + (i % 13) as f64);
                run.alias = (i % 3 == 0).then(|| format!("alias{}", i % 11));
                let acc = match i % 6 {
                    0 => serde_json::json!(null),
                    1 => serde_json::json!("text"),
                    _ => serde_json::json!((i % 10) as f64 / 10.0),
                };
                run.summary = Some(if i % 10 == 9 {
                    serde_json::json!({"loss": 1})
                } else {
                    serde_json::json!({"acc": acc, "loss": i})
                });
                run.config = Some(serde_json::json!({"optim": {"lr": (i % 5) as f64 * 0.1,
                    "name": if i % 2 == 0 { "sgd" } else { "adam" }}, "seed": i}));
                run
            })
            .collect();
        store
            .apply_change_batch(r, &change_batch(true, runs, "e", 60, false))
            .unwrap();
        (tmp, store)
    }

    #[test]
    fn both_strategies_give_the_same_pages_for_every_filter_and_direction() {
        let (_tmp, store) = many();
        let orders = [
            RunOrder::Summary("acc".into()),
            RunOrder::Summary("loss".into()),
            RunOrder::Summary("absent".into()),
            RunOrder::Config("optim.lr".into()),
            RunOrder::Config("optim.name".into()),
            RunOrder::CreatedAt,
        ];
        for by in orders {
            for descending in [true, false] {
                for prefix in [None, Some("cv"), Some("cv/a"), Some("nope")] {
                    for (limit, offset) in [(Some(7), 0), (Some(7), 21), (None, 0), (Some(100), 55)]
                    {
                        let f = RunFilter {
                            path_prefix: prefix.map(str::to_owned),
                            sort: RunSort {
                                by: by.clone(),
                                descending,
                            },
                            limit,
                            offset,
                            ..RunFilter::default()
                        };
                        let few = ids_by(&store, &f, false);
                        let walked = ids_by(&store, &f, true);
                        assert_eq!(few, walked, "{f:?}");
                        let listed: Vec<i64> = store
                            .list_runs(&f)
                            .unwrap()
                            .iter()
                            .map(|r| r.key.0)
                            .collect();
                        assert_eq!(listed, few);
                        let (rows, total) = store.list_and_count_runs(&f).unwrap();
                        let keys: Vec<i64> = rows.iter().map(|r| r.key.0).collect();
                        assert_eq!(keys, few);
                        assert_eq!(total, store.count_runs(&f).unwrap());
                    }
                }
            }
        }
    }

    #[test]
    fn value_sorts_put_numbers_then_text_then_runs_without_the_key() {
        let (_tmp, store) = many();
        for descending in [true, false] {
            let f = RunFilter {
                sort: RunSort {
                    by: RunOrder::Summary("acc".into()),
                    descending,
                },
                ..RunFilter::default()
            };
            let rows = store.list_runs(&f).unwrap();
            let kinds: Vec<u8> = rows
                .iter()
                .map(|r| match r.summary.as_ref().and_then(|s| s.get("acc")) {
                    Some(v) if v.is_number() => 0,
                    Some(v) if v.is_string() => 1,
                    _ => 2,
                })
                .collect();
            assert!(kinds.windows(2).all(|w| w[0] <= w[1]), "{kinds:?}");
            let nums: Vec<f64> = rows
                .iter()
                .filter_map(|r| r.summary.as_ref()?.get("acc")?.as_f64())
                .collect();
            let mut sorted = nums.clone();
            sorted.sort_by(|a, b| a.partial_cmp(b).unwrap());
            if descending {
                sorted.reverse();
            }
            assert_eq!(nums, sorted);
        }
        // A nested config key.
        let f = RunFilter {
            sort: RunSort {
                by: RunOrder::Config("optim.lr".into()),
                descending: true,
            },
            limit: Some(12),
            ..RunFilter::default()
        };
        let lrs: Vec<f64> = store
            .list_runs(&f)
            .unwrap()
            .iter()
            .map(|r| r.config.as_ref().unwrap()["optim"]["lr"].as_f64().unwrap())
            .collect();
        assert_eq!(lrs, [0.4; 12]);
    }

    #[test]
    fn every_column_sort_orders_by_its_column() {
        let (_tmp, mut store) = many();
        let r2 = add_remote(&mut store, "another");
        store
            .apply_change_batch(
                r2,
                &change_batch(true, vec![run_change("runs/z/1", 1, 0)], "e", 1, false),
            )
            .unwrap();
        let key = |row: &RunRow, by: &RunOrder| -> String {
            match by {
                RunOrder::Host => format!("{:?}", row.hostname),
                RunOrder::RunId => row.id.clone(),
                RunOrder::Alias => format!("{:?}", row.alias),
                RunOrder::Path => row.path.clone(),
                RunOrder::Remote => row.remote.clone(),
                RunOrder::Status => row.status.clone(),
                _ => unreachable!(),
            }
        };
        for by in [
            RunOrder::Host,
            RunOrder::RunId,
            RunOrder::Alias,
            RunOrder::Path,
            RunOrder::Remote,
            RunOrder::Status,
        ] {
            let f = RunFilter {
                sort: RunSort {
                    by: by.clone(),
                    descending: false,
                },
                ..RunFilter::default()
            };
            let rows = store.list_runs(&f).unwrap();
            assert_eq!(rows.len(), 61);
            // None sorts last, as "Some" follows "None" in Debug text only by luck: check it.
            let present: Vec<String> = rows
                .iter()
                .filter(|r| !(by == RunOrder::Alias && r.alias.is_none()))
                .map(|r| key(r, &by))
                .collect();
            let mut sorted = present.clone();
            sorted.sort();
            assert_eq!(present, sorted, "{by:?}");
            if by == RunOrder::Alias {
                assert!(rows.last().unwrap().alias.is_none());
                assert!(rows.first().unwrap().alias.is_some());
            }
        }
        // The hub's alias sorts as the run's alias.
        let last = store
            .list_runs(&RunFilter {
                sort: RunSort {
                    by: RunOrder::Alias,
                    descending: false,
                },
                ..RunFilter::default()
            })
            .unwrap()
            .pop()
            .unwrap();
        store
            .annotate_run(
                last.key,
                &RunAnnotation {
                    alias: Some(Some("AAA first".into())),
                    ..RunAnnotation::default()
                },
            )
            .unwrap();
        let first = store
            .list_runs(&RunFilter {
                sort: RunSort {
                    by: RunOrder::Alias,
                    descending: false,
                },
                limit: Some(1),
                ..RunFilter::default()
            })
            .unwrap();
        assert_eq!(first[0].key, last.key);
    }

    #[test]
    fn path_counts_and_column_keys() {
        let (_tmp, mut store) = many();
        let f = RunFilter {
            path_prefix: Some("ignored".into()),
            ..RunFilter::default()
        };
        assert_eq!(
            store.path_counts(&f).unwrap(),
            [
                ("cv".to_owned(), 15),
                ("cv/a".to_owned(), 15),
                ("cv/b".to_owned(), 15),
                ("nlp".to_owned(), 15)
            ]
        );
        let node1 = RunFilter {
            text: Some("NODE1".into()),
            ..RunFilter::default()
        };
        let total: u64 = store.path_counts(&node1).unwrap().iter().map(|p| p.1).sum();
        assert_eq!(total, store.count_runs(&node1).unwrap());
        let keys = store.column_keys(100).unwrap();
        assert_eq!(keys.summary, ["acc", "loss"]);
        assert_eq!(keys.config, ["optim.lr", "optim.name", "seed"]);
        assert_eq!(store.column_keys(1).unwrap().config, ["optim.lr"]);
        // A changed config replaces the run's keys.
        let r = store.remote("gpu").unwrap().unwrap().id;
        let mut run = run_change("runs/cv/000", 100, 0);
        run.config = Some(serde_json::json!({"only": {"this": [1, 2]}}));
        run.summary = None;
        store
            .apply_change_batch(r, &change_batch(false, vec![run], "e", 100, false))
            .unwrap();
        let keys = store.column_keys(100).unwrap();
        assert_eq!(keys.config, ["only.this", "optim.lr", "optim.name", "seed"]);
        let f = RunFilter {
            sort: RunSort {
                by: RunOrder::Config("only.this".into()),
                descending: true,
            },
            limit: Some(1),
            ..RunFilter::default()
        };
        assert_eq!(store.list_runs(&f).unwrap()[0].dir, "runs/cv/000");
    }

    #[test]
    fn a_run_listed_twice_in_one_batch_keeps_the_values_of_its_last_state() {
        let (_tmp, mut store) = fresh_store();
        let r = add_remote(&mut store, "gpu");
        let mut first = run_change("runs/a/1", 1, 0);
        first.config = Some(serde_json::json!({"old": 1, "both": 1}));
        let mut second = run_change("runs/a/1", 2, 0);
        second.config = Some(serde_json::json!({"new": 2, "both": 2}));
        store
            .apply_change_batch(r, &change_batch(true, vec![first, second], "e", 2, false))
            .unwrap();
        assert_eq!(store.column_keys(10).unwrap().config, ["both", "new"]);
        let mut third = run_change("runs/a/1", 3, 0);
        third.config = Some(serde_json::json!({"last": 3}));
        let mut fourth = run_change("runs/a/1", 4, 0);
        fourth.config = Some(serde_json::json!({"final": 4}));
        store
            .apply_change_batch(r, &change_batch(false, vec![third, fourth], "e", 4, false))
            .unwrap();
        assert_eq!(store.column_keys(10).unwrap().config, ["final"]);
    }

    #[test]
    fn text_finds_tags_with_or_without_json_punctuation() {
        let (_tmp, mut store) = fresh_store();
        let r = add_remote(&mut store, "gpu");
        let mut a = run_change("runs/p/1", 1, 0);
        a.tags = vec!["lr=0.1,bs=64".into(), "Ünïcode".into()];
        let mut b = run_change("runs/p/2", 2, 0);
        b.tags = vec!["ab".into(), "cd".into()];
        store
            .apply_change_batch(r, &change_batch(true, vec![a, b], "e", 2, false))
            .unwrap();
        let found = |text: &str| {
            store
                .list_runs(&RunFilter {
                    text: Some(text.into()),
                    ..RunFilter::default()
                })
                .unwrap()
                .into_iter()
                .map(|r| r.id)
                .collect::<Vec<_>>()
        };
        assert_eq!(found("0.1,bs"), ["1"]);
        assert_eq!(found("Ünï"), ["1"]);
        assert_eq!(found("CD"), ["2"]);
        assert!(found("b\",\"c").is_empty(), "text never spans two tags");
        assert!(found("[\"ab").is_empty());
    }

    #[test]
    fn data_version_moves_when_another_connection_commits() {
        let (_tmp, mut store) = fresh_store();
        let reader = Store::open_read_only(store.dir()).unwrap();
        let before = reader.data_version().unwrap();
        assert_eq!(reader.data_version().unwrap(), before);
        add_remote(&mut store, "gpu");
        assert_ne!(reader.data_version().unwrap(), before);
    }

    #[test]
    fn walks_use_the_sorted_indexes() {
        let (_tmp, store) = many();
        let f = RunFilter {
            path_prefix: Some("cv".into()),
            sort: RunSort {
                by: RunOrder::Summary("acc".into()),
                descending: true,
            },
            limit: Some(50),
            ..RunFilter::default()
        };
        let p = plan(&store, &f);
        // The numbers and the text are walked in order; the runs without the key (read only
        // when those run out) may be sorted.
        let arms: Vec<&str> = p.split("UNION ALL").collect();
        for arm in &arms[..2] {
            assert!(arm.contains("run_values_sorted"), "{p}");
            assert!(!arm.contains("TEMP B-TREE"), "{p}");
        }
        let f = RunFilter {
            sort: RunSort::default(),
            ..f
        };
        let p = plan(&store, &f);
        let arms: Vec<&str> = p.split("UNION ALL").collect();
        assert!(arms[0].contains("runs_by_created"), "{p}");
        assert!(!arms[0].contains("TEMP B-TREE"), "{p}");
    }
}
