//! `GET /api/runs` (the table), `GET /api/runs/{run}` (a run's page), `PATCH` (the hub's
//! alias, tags and notes), `DELETE` and `POST …/restore` (the hub's recycle bin).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::Json;
use runicorn_store::{RunAnnotation, RunKey};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::dto::{now, FileDto, MetricDto, RunDetailDto, RunDto, RunPage};
use crate::error::{ApiError, ErrorCode};
use crate::query::{run_listing, Params};
use crate::routes::{resolve_run, ApiPath};
use crate::state::AppState;

pub const MAX_ALIAS_CHARS: usize = 200;
pub const MAX_TAGS: usize = 64;
pub const MAX_TAG_CHARS: usize = 100;
pub const MAX_NOTES_BYTES: usize = 64 * 1024;
/// Most metric keys a run's detail lists (`key_count` says how many there are).
pub const MAX_DETAIL_METRICS: u64 = 1_000;

/// `GET /api/runs`.
pub async fn list(
    State(state): State<Arc<AppState>>,
    params: Params,
) -> Result<Json<RunPage>, ApiError> {
    let filter = run_listing(&params)?;
    let page = state
        .pool
        .read(move |store| {
            let (rows, total) = store.list_and_count_runs(&filter)?;
            Ok(RunPage {
                runs: rows.iter().map(RunDto::from).collect(),
                total,
            })
        })
        .await?;
    Ok(Json(page))
}

/// `GET /api/runs/{run}`.
pub async fn detail(
    State(state): State<Arc<AppState>>,
    ApiPath(reference): ApiPath<String>,
) -> Result<Json<RunDetailDto>, ApiError> {
    let key = resolve_run(&state, &reference).await?;
    let detail = state
        .pool
        .read(move |store| {
            let run = store.run_by_key(key)?.ok_or(ApiError::no_run(key.0))?;
            let records = store.run_records(key)?.unwrap_or_default();
            let metrics = store.metric_keys_page(key, 0, Some(MAX_DETAIL_METRICS))?;
            let files = store.files(key)?;
            let corrupt = store.corrupt_lines(key)?;
            let skipped_files = store.skipped_files(key)?;
            Ok(RunDetailDto {
                run: RunDto::from(&run),
                meta: records.meta.unwrap_or(Value::Null),
                status_record: records.status_record.unwrap_or(Value::Null),
                environment: records.environment.unwrap_or(Value::Null),
                metrics: metrics.iter().map(MetricDto::from).collect(),
                files: files.iter().map(|f| FileDto::new(key.0, f)).collect(),
                corrupt_lines: corrupt.len() as u64,
                remote_alias: run.remote_alias.clone(),
                remote_tags: run.remote_tags.clone(),
                skipped_files,
            })
        })
        .await?;
    Ok(Json(detail))
}

/// The body of `PATCH /api/runs/{run}`: an absent field is left alone, `null` clears it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnnotationBody {
    #[serde(default, deserialize_with = "present")]
    pub alias: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub tags: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "present")]
    pub notes: Option<Option<String>>,
}

/// A field that is present (possibly `null`) becomes `Some(..)`.
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

impl AnnotationBody {
    /// Parses and checks a request body; an empty alias or notes clears it.
    pub fn parse(body: &[u8]) -> Result<RunAnnotation, ApiError> {
        let body: AnnotationBody = serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!(
                "the body must be JSON like {{\"alias\": \"name\", \"tags\": [\"a\"], \"notes\": null}}: {e}"
            ))
        })?;
        let alias = body
            .alias
            .map(|a| a.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()));
        if let Some(Some(a)) = &alias {
            if a.chars().count() > MAX_ALIAS_CHARS {
                return Err(ApiError::bad_request(format!(
                    "alias is longer than {MAX_ALIAS_CHARS} characters"
                )));
            }
        }
        let tags = match body.tags {
            Some(Some(tags)) => {
                let mut clean: Vec<String> = Vec::new();
                for tag in tags {
                    let tag = tag.trim().to_owned();
                    if tag.is_empty() || clean.contains(&tag) {
                        continue;
                    }
                    if tag.chars().count() > MAX_TAG_CHARS {
                        return Err(ApiError::bad_request(format!(
                            "tag {:?}… is longer than {MAX_TAG_CHARS} characters",
                            tag.chars().take(20).collect::<String>()
                        )));
                    }
                    clean.push(tag);
                }
                if clean.len() > MAX_TAGS {
                    return Err(ApiError::bad_request(format!(
                        "{} tags given; at most {MAX_TAGS}",
                        clean.len()
                    )));
                }
                Some(Some(clean))
            }
            other => other,
        };
        let notes = body.notes.map(|n| n.filter(|s| !s.trim().is_empty()));
        if let Some(Some(n)) = &notes {
            if n.len() > MAX_NOTES_BYTES {
                return Err(ApiError::bad_request(format!(
                    "notes are longer than {} KiB",
                    MAX_NOTES_BYTES / 1024
                )));
            }
        }
        Ok(RunAnnotation { alias, tags, notes })
    }
}

/// Turns a body the extractor refused (too large, unreadable) into the JSON error.
fn body_of(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|e| {
        if e.status() == ErrorCode::PayloadTooLarge.status() {
            ApiError::too_large(format!(
                "request body larger than {} KiB",
                crate::routes::MAX_BODY_BYTES / 1024
            ))
        } else {
            ApiError::bad_request(format!("unreadable request body: {e}"))
        }
    })
}

/// `PATCH /api/runs/{run}`.
pub async fn annotate(
    State(state): State<Arc<AppState>>,
    ApiPath(reference): ApiPath<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<RunDto>, ApiError> {
    let key = resolve_run(&state, &reference).await?;
    let annotation = AnnotationBody::parse(&body_of(body)?)?;
    write_run(&state, key, move |store| {
        store.annotate_run(key, &annotation)
    })
    .await
}

/// `DELETE /api/runs/{run}`: into the recycle bin.
pub async fn trash(
    State(state): State<Arc<AppState>>,
    ApiPath(reference): ApiPath<String>,
) -> Result<Json<RunDto>, ApiError> {
    let key = resolve_run(&state, &reference).await?;
    let at = now();
    write_run(&state, key, move |store| store.trash_run(key, at)).await
}

/// `POST /api/runs/{run}/restore`: out of the recycle bin.
pub async fn restore(
    State(state): State<Arc<AppState>>,
    ApiPath(reference): ApiPath<String>,
) -> Result<Json<RunDto>, ApiError> {
    let key = resolve_run(&state, &reference).await?;
    write_run(&state, key, move |store| store.restore_run(key)).await
}

async fn write_run<F>(state: &AppState, key: RunKey, f: F) -> Result<Json<RunDto>, ApiError>
where
    F: FnOnce(
            &mut runicorn_store::Store,
        ) -> Result<Option<runicorn_store::RunRow>, runicorn_store::StoreError>
        + Send
        + 'static,
{
    let row = state
        .pool
        .write(move |store| f(store).map_err(ApiError::from))
        .await?
        .ok_or(ApiError::no_run(key.0))?;
    Ok(Json(RunDto::from(&row)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_null_and_set_fields_differ() {
        let a =
            AnnotationBody::parse(br#"{"alias": null, "tags": [" a ", "b", "a", ""]}"#).unwrap();
        assert_eq!(a.alias, Some(None));
        assert_eq!(a.tags, Some(Some(vec!["a".to_owned(), "b".to_owned()])));
        assert_eq!(a.notes, None);
        let a = AnnotationBody::parse(br#"{"notes": "hello", "alias": "  "}"#).unwrap();
        assert_eq!(a.notes, Some(Some("hello".to_owned())));
        assert_eq!(a.alias, Some(None));
    }

    #[test]
    fn bad_bodies_say_what_is_wrong() {
        let e = AnnotationBody::parse(br#"{"color": "red"}"#).unwrap_err();
        assert!(e.message.contains("color"), "{}", e.message);
        let long = format!(r#"{{"alias": "{}"}}"#, "x".repeat(201));
        let e = AnnotationBody::parse(long.as_bytes()).unwrap_err();
        assert!(e.message.contains("alias"), "{}", e.message);
        let many: Vec<String> = (0..65).map(|i| format!("t{i}")).collect();
        let body = serde_json::json!({ "tags": many }).to_string();
        let e = AnnotationBody::parse(body.as_bytes()).unwrap_err();
        assert!(e.message.contains("tags"), "{}", e.message);
        assert!(AnnotationBody::parse(b"not json").is_err());
    }
}
