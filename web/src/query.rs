//! Query-string parameters, read by hand so that every mistake is answered with the JSON error
//! of `docs/api.md` naming the parameter (axum's own extractor answers in plain text), and the
//! run-listing parameters turned into the store's [`RunFilter`] (`q` parsed by the filter
//! language, [`RunQuery`]).

use std::collections::HashMap;

use axum::extract::{FromRequestParts, RawQuery};
use axum::http::request::Parts;
use runicorn_protocol::run_format::RunStatus;
use runicorn_store::{RunFilter, RunOrder, RunQuery, RunSort, TrashView};

use crate::error::ApiError;

/// Most runs a page may hold.
pub const MAX_RUN_LIMIT: u32 = 1_000;

/// Longest text parameter (`remote`, `path`, `tag`, `q`, one metric key), in bytes.
pub const MAX_TEXT_BYTES: usize = 1024;

/// A request's query parameters (the last value of a repeated one wins).
#[derive(Debug, Clone, Default)]
pub struct Params(HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Params, ApiError> {
        let RawQuery(raw) = RawQuery::from_request_parts(parts, state)
            .await
            .unwrap_or(RawQuery(None));
        Params::parse(raw.as_deref().unwrap_or(""))
    }
}

impl Params {
    pub fn parse(raw: &str) -> Result<Params, ApiError> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw)
            .map_err(|e| ApiError::bad_request(format!("unreadable query string: {e}")))?;
        Ok(Params(pairs.into_iter().collect()))
    }

    /// A non-empty value.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// A non-empty value of at most [`MAX_TEXT_BYTES`].
    pub fn short_text(&self, name: &str) -> Result<Option<&str>, ApiError> {
        match self.text(name) {
            Some(v) if v.len() > MAX_TEXT_BYTES => Err(ApiError::bad_request(format!(
                "parameter {name} is {} bytes long; at most {MAX_TEXT_BYTES}",
                v.len()
            ))),
            v => Ok(v),
        }
    }

    /// A comma-separated list (empty items dropped); `None` when absent or empty.
    pub fn list(&self, name: &str) -> Option<Vec<String>> {
        let items: Vec<String> = self
            .text(name)?
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        (!items.is_empty()).then_some(items)
    }

    /// Like [`Params::list`], refusing more than `max` items or an item longer than
    /// [`MAX_TEXT_BYTES`].
    pub fn bounded_list(&self, name: &str, max: usize) -> Result<Option<Vec<String>>, ApiError> {
        let Some(items) = self.list(name) else {
            return Ok(None);
        };
        if items.len() > max {
            return Err(ApiError::bad_request(format!(
                "parameter {name} has {} items; at most {max}",
                items.len()
            )));
        }
        if let Some(long) = items.iter().find(|i| i.len() > MAX_TEXT_BYTES) {
            return Err(ApiError::bad_request(format!(
                "parameter {name}: an item of {} bytes; at most {MAX_TEXT_BYTES} each",
                long.len()
            )));
        }
        Ok(Some(items))
    }

    /// A whole number in `min..=max`, or `default` when absent.
    pub fn number_in(&self, name: &str, default: u64, min: u64, max: u64) -> Result<u64, ApiError> {
        let n = self.number(name, default, max)?;
        if n < min {
            return Err(ApiError::bad_request(format!(
                "parameter {name}={n} is too small (at least {min})"
            )));
        }
        Ok(n)
    }

    /// A whole number in `0..=max`, or `default` when absent.
    pub fn number(&self, name: &str, default: u64, max: u64) -> Result<u64, ApiError> {
        match self.text(name) {
            None => Ok(default),
            Some(v) => match v.parse::<u64>() {
                Ok(n) if n <= max => Ok(n),
                Ok(_) => Err(ApiError::bad_request(format!(
                    "parameter {name}={v} is too large (at most {max})"
                ))),
                Err(_) => Err(ApiError::bad_request(format!(
                    "parameter {name}={v:?} is not a whole number"
                ))),
            },
        }
    }

    /// A signed whole number, if present.
    pub fn integer(&self, name: &str) -> Result<Option<i64>, ApiError> {
        self.text(name)
            .map(|v| {
                v.parse::<i64>().map_err(|_| {
                    ApiError::bad_request(format!("parameter {name}={v:?} is not a whole number"))
                })
            })
            .transpose()
    }

    /// A finite number, if present.
    pub fn float(&self, name: &str) -> Result<Option<f64>, ApiError> {
        self.text(name)
            .map(|v| match v.parse::<f64>() {
                Ok(x) if x.is_finite() => Ok(x),
                _ => Err(ApiError::bad_request(format!(
                    "parameter {name}={v:?} is not a number"
                ))),
            })
            .transpose()
    }

    /// `1`/`true` or `0`/`false`, else `default` when absent.
    pub fn flag(&self, name: &str, default: bool) -> Result<bool, ApiError> {
        match self.text(name) {
            None => Ok(default),
            Some("1" | "true" | "yes") => Ok(true),
            Some("0" | "false" | "no") => Ok(false),
            Some(v) => Err(ApiError::bad_request(format!(
                "parameter {name}={v:?} must be 1 or 0"
            ))),
        }
    }

    /// One of `allowed`, else `default` when absent.
    pub fn choice<'a>(
        &'a self,
        name: &str,
        allowed: &[&'a str],
        default: &'a str,
    ) -> Result<&'a str, ApiError> {
        match self.text(name) {
            None => Ok(default),
            Some(v) if allowed.contains(&v) => Ok(v),
            Some(v) => Err(ApiError::bad_request(format!(
                "parameter {name}={v:?} must be one of {}",
                allowed.join(", ")
            ))),
        }
    }
}

/// The sort keys of `GET /api/runs` besides `summary.<key>` and `config.<key>`.
const SORT_COLUMNS: [&str; 10] = [
    "created_at",
    "ended_at",
    "path",
    "alias",
    "status",
    "remote",
    "host",
    "run_id",
    "last_step",
    "points",
];

/// `sort` as the store's order.
pub fn parse_sort(sort: &str) -> Result<RunOrder, ApiError> {
    let order = match sort {
        "created_at" => RunOrder::CreatedAt,
        "ended_at" => RunOrder::EndedAt,
        "path" => RunOrder::Path,
        "alias" => RunOrder::Alias,
        "status" => RunOrder::Status,
        "remote" => RunOrder::Remote,
        "host" => RunOrder::Host,
        "run_id" => RunOrder::RunId,
        "last_step" => RunOrder::LastStep,
        "points" => RunOrder::Points,
        other => {
            if let Some(key) = other.strip_prefix("summary.").filter(|k| !k.is_empty()) {
                RunOrder::Summary(key.to_owned())
            } else if let Some(key) = other.strip_prefix("config.").filter(|k| !k.is_empty()) {
                RunOrder::Config(key.to_owned())
            } else {
                return Err(ApiError::bad_request(format!(
                    "cannot sort by {other:?}: use one of {}, summary.<key> or config.<key>",
                    SORT_COLUMNS.join(", ")
                )));
            }
        }
    };
    Ok(order)
}

/// The filter part shared by `/api/runs` and `/api/paths` (no paging, no sort).
pub fn run_filter(params: &Params) -> Result<RunFilter, ApiError> {
    let view = params.choice("view", &["active", "trash", "all"], "active")?;
    // The vocabulary is `RunStatus::ALL` (protocol/src/run_format/records.rs), exactly as written.
    let status = params.bounded_list("status", RunStatus::ALL.len())?;
    if let Some(bad) = status.iter().flatten().find(|s| {
        !RunStatus::ALL
            .iter()
            .any(|known| known.as_str() == s.as_str())
    }) {
        let known: Vec<&str> = RunStatus::ALL.iter().map(RunStatus::as_str).collect();
        return Err(ApiError::bad_request(format!(
            "parameter status: {bad:?} is not a status; use one or more of {}",
            known.join(", ")
        )));
    }
    Ok(RunFilter {
        remote: params.short_text("remote")?.map(str::to_owned),
        path_prefix: params
            .short_text("path")?
            .map(|p| p.trim_matches('/').to_owned())
            .filter(|p| !p.is_empty()),
        status,
        tag: params.short_text("tag")?.map(str::to_owned),
        query: match params.short_text("q")? {
            Some(q) => RunQuery::parse(q).map_err(|e| ApiError::bad_filter("q", &e))?,
            None => None,
        },
        include_removed: params.flag("removed", true)?,
        include_deleted: view == "all",
        trash: match view {
            "trash" => TrashView::Only,
            "all" => TrashView::Include,
            _ => TrashView::Hide,
        },
        ..RunFilter::default()
    })
}

/// The whole `GET /api/runs` query: filter, sort and page.
pub fn run_listing(params: &Params) -> Result<RunFilter, ApiError> {
    let mut filter = run_filter(params)?;
    let by = parse_sort(params.short_text("sort")?.unwrap_or("created_at"))?;
    let descending = params.choice("order", &["desc", "asc"], "desc")? == "desc";
    filter.sort = RunSort { by, descending };
    filter.limit = Some(params.number_in("limit", 50, 1, u64::from(MAX_RUN_LIMIT))? as u32);
    filter.offset = params.number("offset", 0, u64::from(u32::MAX))? as u32;
    Ok(filter)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(q: &str) -> Params {
        Params::parse(q).unwrap()
    }

    #[test]
    fn a_listing_query_becomes_a_filter() {
        let f = run_listing(&p(
            "remote=gpu1&path=/cv/&status=running,crashed&q=res%20net&sort=summary.loss&order=asc&limit=10&offset=20&view=trash&removed=0",
        ))
        .unwrap();
        assert_eq!(f.remote.as_deref(), Some("gpu1"));
        assert_eq!(f.path_prefix.as_deref(), Some("cv"));
        assert_eq!(
            f.status,
            Some(vec!["running".to_owned(), "crashed".to_owned()])
        );
        assert_eq!(f.query, Some(RunQuery::Text("res net".into())));
        assert_eq!(f.sort.by, RunOrder::Summary("loss".into()));
        assert!(!f.sort.descending);
        assert_eq!((f.limit, f.offset), (Some(10), 20));
        assert_eq!(f.trash, TrashView::Only);
        assert!(!f.include_removed);
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let f = run_listing(&p("")).unwrap();
        assert_eq!(f.sort.by, RunOrder::CreatedAt);
        assert!(f.sort.descending);
        assert_eq!((f.limit, f.offset), (Some(50), 0));
        assert_eq!(f.trash, TrashView::Hide);
        assert!(f.include_removed);
    }

    #[test]
    fn config_sorts_take_dotted_keys() {
        assert_eq!(
            parse_sort("config.optim.lr").unwrap(),
            RunOrder::Config("optim.lr".into())
        );
        assert_eq!(parse_sort("host").unwrap(), RunOrder::Host);
        assert_eq!(parse_sort("run_id").unwrap(), RunOrder::RunId);
    }

    #[test]
    fn mistakes_name_the_parameter() {
        let e = run_listing(&p("limit=5000")).unwrap_err();
        assert!(e.message.contains("limit"), "{}", e.message);
        let e = run_listing(&p("sort=bogus")).unwrap_err();
        assert!(e.message.contains("bogus"), "{}", e.message);
        let e = run_listing(&p("sort=summary.")).unwrap_err();
        assert!(e.message.contains("summary."), "{}", e.message);
        let e = run_listing(&p("view=bin")).unwrap_err();
        assert!(e.message.contains("view"), "{}", e.message);
        let e = p("from=abc").float("from").unwrap_err();
        assert!(e.message.contains("from"), "{}", e.message);
        let e = run_listing(&p("limit=0")).unwrap_err();
        assert!(e.message.contains("limit"), "{}", e.message);
        let e = run_listing(&p("offset=-1")).unwrap_err();
        assert!(e.message.contains("offset"), "{}", e.message);
        let e = run_listing(&p(&format!("q={}", "x".repeat(2000)))).unwrap_err();
        assert!(e.message.contains("parameter q"), "{}", e.message);
    }

    #[test]
    fn a_malformed_filter_is_a_bad_filter_with_its_place() {
        let e = run_listing(&p("q=summary.acc%20%3E")).unwrap_err();
        assert_eq!(e.code, crate::error::ErrorCode::BadFilter);
        assert_eq!(e.filter_span, Some((13, 0)));
        assert!(
            e.message
                .starts_with("parameter q: expected a value after \">\" at position 13"),
            "{}",
            e.message
        );
    }

    #[test]
    fn statuses_outside_the_vocabulary_are_refused() {
        let e = run_filter(&p("status=running,evil")).unwrap_err();
        assert!(e.message.contains("parameter status"), "{}", e.message);
        assert!(e.message.contains("evil"), "{}", e.message);
        assert!(run_filter(&p("status=RUNNING")).is_err());
        let all: Vec<&str> = RunStatus::ALL.iter().map(RunStatus::as_str).collect();
        let f = run_filter(&p(&format!("status={}", all.join(",")))).unwrap();
        assert_eq!(f.status.unwrap().len(), RunStatus::ALL.len());
    }
}
