//! `GET /api/runs/{run}/system`: a run's system telemetry (CPU, memory, I/O and per-GPU use,
//! the `sys/` keys) as the agent recorded it in the run's `system.jsonl` (docs/run-format.md),
//! one series per key against time since the run started, each downsampled to a bound that
//! keeps spikes.
//!
//! The hub stores no telemetry: the route reads the run's `system.jsonl` from the file cache,
//! fetching it from its remote when the hub can. A running run's file grows, so a cached copy
//! is only current for the manifest's size and mtime; when the current one cannot be had (the
//! remote offline, or a dashboard that fetches nothing) the last copy this process read is
//! used, and the answer says it may be behind.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use axum::extract::State;
use axum::Json;
use runicorn_store::RunKey;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::ApiError;
use crate::routes::{resolve_run, ApiPath};
use crate::state::AppState;

/// The run file the agent writes its samples to.
pub const SYSTEM_FILE: &str = "system.jsonl";
/// Most points one key's series holds in an answer (downsampled beyond, min and max kept).
pub const MAX_POINTS_PER_KEY: usize = 2_000;
/// Most bytes of `system.jsonl` read for one answer (about 250,000 samples, a month at one
/// sample every 10 s); `truncated` says when the file is longer.
pub const MAX_SYSTEM_READ: u64 = 64 * 1024 * 1024;
/// Largest `system.jsonl` fetched from a remote for the System tab.
pub const MAX_SYSTEM_FETCH: u64 = 256 * 1024 * 1024;

/// Where the answer's samples come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum SystemSource {
    /// The run's `system.jsonl`.
    File,
    /// Nothing: the run has no `system.jsonl`, or it could not be had (`note` says which).
    None,
}

/// One `sys/` key's samples, by time.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct SystemSeries {
    pub key: String,
    /// Seconds since `start_ts`.
    pub times: Vec<f64>,
    pub values: Vec<f64>,
    /// True when the series was thinned to [`MAX_POINTS_PER_KEY`] (each bucket's min and max).
    pub downsampled: bool,
}

/// `GET /api/runs/{run}/system`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS), ts(rename = "SystemAnswer"))]
pub struct SystemDto {
    pub run: i64,
    pub source: SystemSource,
    /// True when the run's manifest lists a `system.jsonl` (`source` may still be `none`: the
    /// file could not be had, and `note` says why).
    pub listed: bool,
    /// Why there is nothing, or that the samples may be behind the run's current file; else null.
    pub note: Option<String>,
    /// True when the samples come from an older copy of the file than the run's manifest lists.
    pub behind: bool,
    /// Unix seconds of the first sample.
    pub first_ts: Option<f64>,
    /// Unix seconds the series' times count from: the run's creation, or its first sample when
    /// that is earlier or the creation is unknown.
    pub start_ts: Option<f64>,
    /// Sorted by key.
    pub keys: Vec<SystemSeries>,
    /// The GPU indices (`sys/gpu.N/…`) seen, ascending.
    pub gpus: Vec<u32>,
    /// Samples read.
    pub samples: u64,
    /// Complete lines passed over: not JSON, not an object, or not of type `system`.
    pub skipped: u64,
    /// True when only the first [`MAX_SYSTEM_READ`] bytes of the file were read.
    pub truncated: bool,
}

/// The last copy of each run's `system.jsonl` this process read, by store folder and run: what
/// is shown, marked as behind, when the current copy cannot be fetched.
fn last_read() -> &'static Mutex<HashMap<(PathBuf, i64), String>> {
    static LAST: OnceLock<Mutex<HashMap<(PathBuf, i64), String>>> = OnceLock::new();
    LAST.get_or_init(Default::default)
}

/// `GET /api/runs/{run}/system`.
pub async fn get(
    State(state): State<Arc<AppState>>,
    ApiPath(reference): ApiPath<String>,
) -> Result<Json<SystemDto>, ApiError> {
    let key = resolve_run(&state, &reference).await?;
    let memo_key = (state.store_dir.clone(), key.0);
    let remembered = last_read()
        .lock()
        .ok()
        .and_then(|m| m.get(&memo_key).cloned());
    let (run, file, current, stale) = state
        .pool
        .read(move |store| {
            let run = store.run_by_key(key)?.ok_or(ApiError::no_run(key.0))?;
            let file = store.file(key, SYSTEM_FILE)?;
            let current = file
                .as_ref()
                .and_then(|f| f.cached_sha256.clone())
                .and_then(|sha| store.file_path(&sha).map(|p| (sha, p)));
            let stale = remembered.and_then(|sha| store.file_path(&sha).map(|p| (sha, p)));
            Ok((run, file, current, stale))
        })
        .await?;
    let start = run.created_at.filter(|t| t.is_finite());
    let Some(file) = file else {
        let note = format!(
            "No system telemetry for run {}: its manifest lists no {SYSTEM_FILE}",
            key.0
        );
        return Ok(Json(nothing(key, note, false)));
    };
    let got: Result<(String, PathBuf), String> = match (current, state.files.clone()) {
        (Some(current), _) => Ok(current),
        (None, _) if file.size > MAX_SYSTEM_FETCH => Err(format!(
            "{SYSTEM_FILE} of run {} is {} MiB, more than the {} MiB fetched for the System tab; \
             `runicorn-hub fetch {} --files {SYSTEM_FILE}` brings it",
            key.0,
            file.size >> 20,
            MAX_SYSTEM_FETCH >> 20,
            key.0
        )),
        (None, None) => Err(format!(
            "the current {SYSTEM_FILE} of run {} is not in the hub's cache, and this dashboard \
             fetches no files",
            key.0
        )),
        (None, Some(fetcher)) => fetcher
            .fetch(run, SYSTEM_FILE.to_owned(), None, None)
            .await
            .map(|f| (f.sha256, f.path))
            .map_err(|failure| failure.message),
    };
    let (sha, path, behind_note) = match (got, stale) {
        (Ok((sha, path)), _) => (sha, path, None),
        (Err(why), Some((sha, path))) => {
            let note = format!(
                "these samples may be behind the run: {why}; showing the copy of {SYSTEM_FILE} \
                 read earlier"
            );
            (sha, path, Some(note))
        }
        (Err(why), None) => return Ok(Json(nothing(key, why, true))),
    };
    let read = tokio::task::spawn_blocking(move || read_samples(&path, MAX_SYSTEM_READ))
        .await
        .map_err(|e| ApiError::internal(format!("reading {SYSTEM_FILE} of run {}: {e}", key.0)))?;
    let samples = match read {
        Ok(samples) => samples,
        Err(e) => {
            let note = format!(
                "could not read the cached {SYSTEM_FILE} of run {}: {e}",
                key.0
            );
            return Ok(Json(nothing(key, note, true)));
        }
    };
    if let Ok(mut memo) = last_read().lock() {
        memo.insert(memo_key, sha);
    }
    Ok(Json(answer(key, samples, start, behind_note)))
}

fn nothing(key: RunKey, note: String, listed: bool) -> SystemDto {
    SystemDto {
        run: key.0,
        source: SystemSource::None,
        listed,
        note: Some(note),
        behind: false,
        first_ts: None,
        start_ts: None,
        keys: Vec::new(),
        gpus: Vec::new(),
        samples: 0,
        skipped: 0,
        truncated: false,
    }
}

/// The samples of a `system.jsonl`, key by key, as read.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Samples {
    /// Each key's (unix seconds, value), in file order.
    pub keys: BTreeMap<String, Vec<(f64, f64)>>,
    pub first_ts: Option<f64>,
    pub samples: u64,
    pub skipped: u64,
    /// The file goes on past the bytes read.
    pub truncated: bool,
}

#[derive(Deserialize)]
struct Line {
    ts: f64,
    #[serde(rename = "type")]
    kind: String,
    data: BTreeMap<String, Value>,
}

/// Reads the first `limit` bytes of a `system.jsonl`: complete lines only (a torn last line is
/// not read yet); a line that is not a `system` object is skipped and counted; non-numeric and
/// non-finite values are passed over.
pub fn read_samples(path: &Path, limit: u64) -> std::io::Result<Samples> {
    let file = std::fs::File::open(path)?;
    let size = file.metadata()?.len();
    let mut reader = BufReader::with_capacity(1 << 20, file.take(limit));
    let mut out = Samples {
        truncated: size > limit,
        ..Samples::default()
    };
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 || line.last() != Some(&b'\n') {
            break;
        }
        let parsed = serde_json::from_slice::<Line>(&line)
            .ok()
            .filter(|l| l.kind == "system" && l.ts.is_finite());
        let Some(sample) = parsed else {
            if line.iter().any(|b| !b.is_ascii_whitespace()) {
                out.skipped += 1;
            }
            continue;
        };
        out.samples += 1;
        out.first_ts = Some(out.first_ts.map_or(sample.ts, |f| f.min(sample.ts)));
        for (k, v) in sample.data {
            if let Some(v) = v.as_f64().filter(|v| v.is_finite()) {
                out.keys.entry(k).or_default().push((sample.ts, v));
            }
        }
    }
    Ok(out)
}

/// The answer for samples read: each key sorted by time, against `start` (else the first
/// sample), thinned to [`MAX_POINTS_PER_KEY`].
fn answer(key: RunKey, samples: Samples, start: Option<f64>, behind: Option<String>) -> SystemDto {
    // The run's creation, unless the samples start before it (another host's clock).
    let start_ts = match (start, samples.first_ts) {
        (Some(created), Some(first)) => Some(created.min(first)),
        (created, first) => created.or(first),
    };
    let origin = start_ts.unwrap_or(0.0);
    let mut gpus = BTreeSet::new();
    let keys = samples
        .keys
        .into_iter()
        .map(|(k, mut points)| {
            if let Some(gpu) = gpu_of(&k) {
                gpus.insert(gpu);
            }
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            let downsampled = points.len() > MAX_POINTS_PER_KEY;
            let points = min_max_buckets(&points, MAX_POINTS_PER_KEY);
            SystemSeries {
                key: k,
                times: points.iter().map(|p| p.0 - origin).collect(),
                values: points.iter().map(|p| p.1).collect(),
                downsampled,
            }
        })
        .collect();
    let note = if samples.samples == 0 && behind.is_none() {
        Some(format!(
            "{SYSTEM_FILE} of run {} holds no samples yet",
            key.0
        ))
    } else {
        behind.clone()
    };
    SystemDto {
        run: key.0,
        source: SystemSource::File,
        listed: true,
        note,
        behind: behind.is_some(),
        first_ts: samples.first_ts,
        start_ts,
        keys,
        gpus: gpus.into_iter().collect(),
        samples: samples.samples,
        skipped: samples.skipped,
        truncated: samples.truncated,
    }
}

/// `N` of a `sys/gpu.N/…` key.
pub fn gpu_of(key: &str) -> Option<u32> {
    key.strip_prefix("sys/gpu.")?
        .split('/')
        .next()?
        .parse()
        .ok()
}

/// At most `bound` of `points` (sorted by time): all of them when they fit, else the points cut
/// into `bound / 2` buckets of consecutive points, each giving its smallest and largest value in
/// time order, so a spike survives the thinning.
pub fn min_max_buckets(points: &[(f64, f64)], bound: usize) -> Vec<(f64, f64)> {
    if points.len() <= bound || bound < 2 {
        return points.iter().copied().take(bound).collect();
    }
    let buckets = bound / 2;
    let mut out = Vec::with_capacity(bound);
    for b in 0..buckets {
        let from = b * points.len() / buckets;
        let to = (b + 1) * points.len() / buckets;
        let bucket = &points[from..to];
        let (mut lo, mut hi) = (0, 0);
        for (i, p) in bucket.iter().enumerate() {
            if p.1 < bucket[lo].1 {
                lo = i;
            }
            if p.1 > bucket[hi].1 {
                hi = i;
            }
        }
        out.push(bucket[lo.min(hi)]);
        if lo != hi {
            out.push(bucket[lo.max(hi)]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_read_corrupt_lines_counted_and_a_torn_line_left() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SYSTEM_FILE);
        std::fs::write(
            &path,
            concat!(
                "{\"ts\": 100.0, \"type\": \"system\", \"data\": {\"sys/cpu_percent\": 150.5, \"sys/gpu.2/util_percent\": 97, \"sys/extra\": \"text\"}}\n",
                "not json at all\n",
                "{\"ts\": 105.0, \"type\": \"metrics\", \"data\": {\"loss\": 1}}\n",
                "\n",
                "{\"ts\": 110.0, \"type\": \"system\", \"data\": {\"sys/cpu_percent\": 20, \"sys/gpu.0/temp_c\": 60}, \"later\": true}\n",
                "{\"ts\": 120.0, \"type\": \"system\", \"data\": {\"sys/cpu_percent\": 5"
            ),
        )
        .unwrap();
        let s = read_samples(&path, MAX_SYSTEM_READ).unwrap();
        assert_eq!(s.samples, 2);
        assert_eq!(s.skipped, 2, "the non-JSON line and the metrics line");
        assert!(!s.truncated);
        assert_eq!(s.first_ts, Some(100.0));
        assert_eq!(s.keys["sys/cpu_percent"], [(100.0, 150.5), (110.0, 20.0)]);
        assert!(!s.keys.contains_key("sys/extra"), "numbers only");
        let early = answer(RunKey(3), s.clone(), Some(105.0), None);
        assert_eq!(early.start_ts, Some(100.0), "never after the first sample");
        let dto = answer(RunKey(3), s, Some(95.0), None);
        assert_eq!(dto.gpus, [0, 2]);
        assert_eq!(dto.start_ts, Some(95.0));
        let cpu = dto
            .keys
            .iter()
            .find(|k| k.key == "sys/cpu_percent")
            .unwrap();
        assert_eq!(cpu.times, [5.0, 15.0]);
        assert_eq!(dto.note, None);
        assert_eq!(dto.source, SystemSource::File);
    }

    #[test]
    fn a_read_stops_at_its_limit_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SYSTEM_FILE);
        let line = "{\"ts\": 1.0, \"type\": \"system\", \"data\": {\"sys/procs\": 1}}\n";
        std::fs::write(&path, line.repeat(10)).unwrap();
        let s = read_samples(&path, (line.len() * 3 + 5) as u64).unwrap();
        assert_eq!(s.samples, 3, "the cut line is torn, not read");
        assert_eq!(s.skipped, 0);
        assert!(s.truncated);
    }

    #[test]
    fn thinning_keeps_the_bound_and_each_buckets_extremes() {
        let points: Vec<(f64, f64)> = (0..10_000)
            .map(|i| {
                let v = match i {
                    4321 => 1000.0,
                    7777 => -50.0,
                    _ => (i % 7) as f64,
                };
                (i as f64, v)
            })
            .collect();
        let thin = min_max_buckets(&points, MAX_POINTS_PER_KEY);
        assert!(thin.len() <= MAX_POINTS_PER_KEY, "{}", thin.len());
        assert!(thin.len() > MAX_POINTS_PER_KEY / 2);
        assert!(thin.contains(&(4321.0, 1000.0)));
        assert!(thin.contains(&(7777.0, -50.0)));
        assert!(thin.windows(2).all(|w| w[0].0 < w[1].0), "in time order");
        assert_eq!(min_max_buckets(&points[..5], 2000), &points[..5]);
        assert_eq!(gpu_of("sys/gpu.12/temp_c"), Some(12));
        assert_eq!(gpu_of("sys/cpu_percent"), None);
    }
}
