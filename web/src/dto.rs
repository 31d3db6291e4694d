//! The JSON shapes of `docs/api.md`, built from the store's rows (which are not serde types):
//! what the dashboard promises its page, field for field.

use runicorn_protocol::run_format::RunStatus;
use runicorn_store::{
    FileRow, MetricKey, RemoteRow, RemoteState, RunRow, SeriesPoints, SkippedFiles, SkippedItem,
};
use serde::Serialize;
use serde_json::Value;

/// A run as listed (`Run` in docs/api.md).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS), ts(rename = "Run"))]
pub struct RunDto {
    /// The hub's key of the run (what `/api/runs/{run}` takes, beside the other references).
    pub key: i64,
    pub run_id: String,
    pub remote: String,
    pub host: Option<String>,
    pub dir: String,
    pub path: String,
    pub alias: Option<String>,
    pub tags: Vec<String>,
    pub notes: Option<String>,
    #[cfg_attr(test, ts(type = "RunStatus"))]
    pub status: RunStatus,
    pub reason: Option<String>,
    pub created_at: Option<f64>,
    pub ended_at: Option<f64>,
    pub last_step: Option<i64>,
    pub points: u64,
    /// The first [`runicorn_store::ROW_KEYS`] metric keys by name.
    pub keys: Vec<String>,
    /// How many metric keys the run has.
    pub key_count: u64,
    #[cfg_attr(test, ts(type = "unknown"))]
    pub summary: Value,
    #[cfg_attr(test, ts(type = "unknown"))]
    pub config: Value,
    pub log_bytes: u64,
    pub deleted: bool,
    pub removed: bool,
    pub trashed_at: Option<f64>,
    /// Whether the hub follows the run's remote right now (see `remote_heard_at`).
    pub remote_state: RemoteStateDto,
    /// The last time the hub heard from the run's remote (Unix seconds).
    pub remote_heard_at: Option<f64>,
    /// The last heartbeat the run's `status.json` recorded: when a run that ended without an
    /// `ended_at` (crashed, killed) was last alive, so it has a duration too.
    pub heartbeat_at: Option<f64>,
}

/// A remote's state as the API writes it (`RemoteState` in docs/api.md): `live` (followed,
/// connected), `offline` (followed, connection lost: retrying), `paused`, `not_followed` (no hub
/// process follows it), `imported` (known only from imported bundles: nothing to follow) or
/// `removed` (removed by the user; its runs kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(test, derive(ts_rs::TS), ts(rename = "RemoteState"))]
pub enum RemoteStateDto {
    Live,
    Offline,
    Paused,
    NotFollowed,
    Imported,
    Removed,
}

impl From<RemoteState> for RemoteStateDto {
    fn from(s: RemoteState) -> RemoteStateDto {
        match s {
            RemoteState::Live => RemoteStateDto::Live,
            RemoteState::Offline => RemoteStateDto::Offline,
            RemoteState::Paused => RemoteStateDto::Paused,
            RemoteState::NotFollowed => RemoteStateDto::NotFollowed,
            RemoteState::Imported => RemoteStateDto::Imported,
            RemoteState::Removed => RemoteStateDto::Removed,
        }
    }
}

impl From<&RunRow> for RunDto {
    fn from(r: &RunRow) -> RunDto {
        RunDto {
            remote_state: r.remote_state(now()).into(),
            remote_heard_at: r.remote_heard_at,
            heartbeat_at: r.heartbeat_at,
            key: r.key.0,
            run_id: r.id.clone(),
            remote: r.remote.clone(),
            host: r.hostname.clone(),
            dir: r.dir.clone(),
            path: r.path.clone(),
            alias: r.alias.clone(),
            tags: r.tags.clone(),
            notes: r.notes.clone(),
            status: RunStatus::parse(&r.status),
            reason: r.reason.clone(),
            created_at: r.created_at,
            ended_at: r.ended_at,
            last_step: r.last_step,
            points: r.points,
            keys: r.keys.clone(),
            key_count: r.key_count,
            summary: r.summary.clone().unwrap_or(Value::Null),
            config: r.config.clone().unwrap_or(Value::Null),
            log_bytes: r.log_bytes,
            deleted: r.deleted,
            removed: r.removed,
            trashed_at: r.trashed_at,
        }
    }
}

/// `{"runs": [...], "total": N}`.
#[derive(Debug, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS), ts(rename = "RunsPage"))]
pub struct RunPage {
    pub runs: Vec<RunDto>,
    pub total: u64,
}

/// One metric key of a run's detail.
#[derive(Debug, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS), ts(rename = "MetricInfo"))]
pub struct MetricDto {
    pub name: String,
    pub points: u64,
    pub first_step: i64,
    pub last_step: i64,
}

impl From<&MetricKey> for MetricDto {
    fn from(k: &MetricKey) -> MetricDto {
        MetricDto {
            name: k.name.clone(),
            points: k.points,
            first_step: k.first_step,
            last_step: k.last_step,
        }
    }
}

/// One file of a run's manifest.
#[derive(Debug, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS), ts(rename = "RunFile"))]
pub struct FileDto {
    pub path: String,
    pub size: u64,
    pub mtime: f64,
    /// As the agent reported it (lowercase hex); `null` when it gave none.
    pub sha256: Option<String>,
    pub cached: bool,
    pub url: String,
}

impl FileDto {
    pub fn new(run: i64, f: &FileRow) -> FileDto {
        FileDto {
            path: f.path.clone(),
            size: f.size,
            mtime: f.mtime,
            sha256: f.sha256.clone(),
            cached: f.cached_sha256.is_some(),
            url: file_url(run, &f.path),
        }
    }
}

/// `/api/runs/{run}/files/{path}`, each path segment percent-encoded.
pub fn file_url(run: i64, path: &str) -> String {
    let mut url = format!("/api/runs/{run}/files");
    for segment in path.split('/') {
        url.push('/');
        for b in segment.bytes() {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                url.push(b as char);
            } else {
                url.push_str(&format!("%{b:02X}"));
            }
        }
    }
    url
}

/// `GET /api/runs/{run}`: the run and what only its page shows.
#[derive(Debug, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS), ts(rename = "RunDetail"))]
pub struct RunDetailDto {
    #[serde(flatten)]
    pub run: RunDto,
    #[cfg_attr(test, ts(type = "unknown"))]
    pub meta: Value,
    #[cfg_attr(test, ts(type = "unknown"))]
    pub status_record: Value,
    #[cfg_attr(test, ts(type = "unknown"))]
    pub environment: Value,
    /// The first [`crate::routes::runs::MAX_DETAIL_METRICS`] metric keys by name (all of them
    /// are `key_count`; `/metrics` pages through them).
    pub metrics: Vec<MetricDto>,
    pub files: Vec<FileDto>,
    pub corrupt_lines: u64,
    pub remote_alias: Option<String>,
    pub remote_tags: Vec<String>,
    /// Files left out of `files` (the agent could not name or read them, or the hub refused
    /// them), with the first of them and why.
    #[cfg_attr(test, ts(as = "crate::typescript::SkippedFilesShape"))]
    pub skipped_files: SkippedFiles,
}

/// One series of `GET /api/runs/{run}/metrics` and `/api/compare` (`run`, the run's key, only in
/// the latter).
#[derive(Debug, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS), ts(rename = "Series"))]
pub struct SeriesDto {
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, ts(optional))]
    pub run: Option<i64>,
    pub key: String,
    pub total: u64,
    pub downsampled: bool,
    pub steps: Vec<i64>,
    pub times: Vec<Option<f64>>,
    /// Non-finite values are written as `null` by serde_json: a chart gap.
    #[cfg_attr(test, ts(type = "Array<number | null>"))]
    pub values: Vec<f64>,
}

impl SeriesDto {
    pub fn new(run: Option<i64>, s: SeriesPoints) -> SeriesDto {
        SeriesDto {
            run,
            key: s.key,
            total: s.total,
            downsampled: s.downsampled,
            steps: s.steps,
            times: s.times,
            values: s.values,
        }
    }
}

/// New points of one key, as `event: metrics` sends them.
#[derive(Debug, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS), ts(rename = "LivePoints"))]
pub struct LivePointsDto {
    pub key: String,
    pub steps: Vec<i64>,
    pub times: Vec<Option<f64>>,
    /// Non-finite values are `null`, as in [`SeriesDto`].
    #[cfg_attr(test, ts(type = "Array<number | null>"))]
    pub values: Vec<f64>,
}

/// A remote as `GET /api/remotes` lists it; its transport settings are never included.
#[derive(Debug, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS), ts(rename = "Remote"))]
pub struct RemoteDto {
    pub name: String,
    pub address: String,
    pub connected: bool,
    pub last_sync_at: Option<f64>,
    pub lag_seconds: Option<f64>,
    pub last_error: Option<String>,
    pub agent_host: Option<String>,
    pub agent_root: Option<String>,
    pub runs: u64,
    pub points: u64,
    /// Set when the sync left items out (a warning: the rest is stored).
    pub warning: Option<String>,
    pub skipped_items: u64,
    pub skipped_files: u64,
    /// The first skipped items, with reasons.
    #[cfg_attr(test, ts(as = "Vec<crate::typescript::SkippedItemShape>"))]
    pub skipped: Vec<SkippedItem>,
    pub state: RemoteStateDto,
    /// Removed by the user (its runs kept) since; `null`: not removed.
    pub removed_at: Option<f64>,
    pub paused: bool,
    /// The hub process following it (`ui pid 12 on laptop`); `null` when none does.
    pub follower: Option<String>,
    /// The last time the hub heard from it.
    pub heard_at: Option<f64>,
    /// A "sync now" not yet picked up by its follower, asked at this time.
    pub sync_requested_at: Option<f64>,
}

impl RemoteDto {
    pub fn new(r: &RemoteRow, now: f64) -> RemoteDto {
        RemoteDto {
            name: r.name.clone(),
            address: r.address.clone(),
            connected: r.connected,
            last_sync_at: r.last_sync_at,
            lag_seconds: r.last_sync_at.map(|t| (now - t).max(0.0)),
            last_error: r.last_error.clone(),
            agent_host: r.agent_host.clone(),
            agent_root: r.agent_root.clone(),
            runs: r.runs,
            points: r.points,
            warning: r.skipped_warning(),
            skipped_items: r.skipped_items,
            skipped_files: r.skipped_files,
            skipped: r.skipped.clone(),
            state: r.state(now).into(),
            removed_at: r.removed_at,
            paused: r.paused,
            follower: r.live_follower(now).map(str::to_owned),
            heard_at: r.heard_at,
            sync_requested_at: r.sync_requested_at,
        }
    }
}

/// Now, in Unix seconds (the protocol's clock, as the store's times).
pub use runicorn_protocol::run_format::unix_now as now;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_urls_encode_each_segment() {
        assert_eq!(
            file_url(4, "media/a b#1.png"),
            "/api/runs/4/files/media/a%20b%231.png"
        );
    }

    #[test]
    fn non_finite_values_are_null() {
        let s = SeriesDto {
            run: None,
            key: "loss".into(),
            total: 2,
            downsampled: false,
            steps: vec![0, 1],
            times: vec![None, Some(1.5)],
            values: vec![f64::NAN, f64::INFINITY],
        };
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["values"], serde_json::json!([null, null]));
        assert!(v.get("run").is_none());
    }
}
