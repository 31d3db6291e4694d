//! The Rust writer of the run format, used by `runicorn-agent run` and by Rust training code.
//!
//! It writes exactly what the Python SDK writes (same files, same field order and spelling), so
//! a reader cannot tell the writers apart except by `meta.writer`. Whole-file records are replaced
//! atomically; `events.jsonl` and `logs.txt` are appended in whole lines through a buffer that is
//! flushed at least every second while the writer is used (and on `flush`, `finish` and drop),
//! and each write also beats the heartbeat when one is due. It never writes outside its run.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

mod extras;

use super::alerts::{AlertConfig, META_ALERTS_KEY};
use super::json_file::{read_json_if_exists, write_json_atomic};
use super::liveness::unix_now;
use super::names::{check_run_id, generate_run_id, normalize_run_path_for_write, NameError};
use super::process;
use super::records::{Meta, RunStatus, StatusRecord};
use super::stall::{StallConfig, META_STALL_KEY};
use super::RunFiles;
pub use extras::MetricGoal;
use extras::PrimaryMetric;

/// Why a run could not be created or written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(transparent)]
    Name(#[from] NameError),
    #[error("run directory {0} already exists; pass another run id")]
    AlreadyExists(PathBuf),
    #[error("{path}: {cause}")]
    Io { path: PathBuf, cause: io::Error },
}

pub(super) fn io_at(path: &Path) -> impl FnOnce(io::Error) -> WriteError + '_ {
    move |cause| WriteError::Io {
        path: path.to_owned(),
        cause,
    }
}

/// What a new run should be.
#[derive(Debug, Clone)]
pub struct RunSpec {
    pub root: PathBuf,
    /// Run path as the user gave it (`None` → `default`).
    pub path: Option<String>,
    pub run_id: Option<String>,
    pub alias: Option<String>,
    /// Program name and version, recorded as `meta.writer`.
    pub writer: String,
    pub heartbeat_interval: f64,
    /// The process whose life is the run's life (its pid is recorded for liveness checks).
    pub owner_pid: u32,
    /// Extra `meta.json` fields (e.g. `python`, `workspace_root`).
    pub extra_meta: Map<String, Value>,
    /// Seconds added to the wall clock for every time the writer records (0 for real runs;
    /// negative to write a run that happened in the past, as the demo's sample runs do).
    pub clock_offset: f64,
    /// When the run counts as stalled (`meta.json`'s `stall`; unset settings are the
    /// readers' defaults).
    pub stall: StallConfig,
    /// What raises alerts (`meta.json`'s `alerts`: watched metrics, GPU idle time; unset
    /// settings are the readers' defaults).
    pub alerts: AlertConfig,
}

impl RunSpec {
    pub fn new(root: impl Into<PathBuf>, writer: impl Into<String>) -> Self {
        RunSpec {
            root: root.into(),
            path: None,
            run_id: None,
            alias: None,
            writer: writer.into(),
            heartbeat_interval: super::DEFAULT_HEARTBEAT_INTERVAL,
            owner_pid: std::process::id(),
            extra_meta: Map::new(),
            clock_offset: 0.0,
            stall: StallConfig::default(),
            alerts: AlertConfig::default(),
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub struct RunOutcome {
    pub status: RunStatus,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub reason: Option<String>,
}

impl RunOutcome {
    pub fn finished() -> Self {
        RunOutcome {
            status: RunStatus::Finished,
            exit_code: None,
            signal: None,
            reason: None,
        }
    }
}

/// An open run that this process writes.
#[derive(Debug)]
pub struct RunWriter {
    files: RunFiles,
    meta: Meta,
    status: StatusRecord,
    events: BufWriter<File>,
    logs: Option<BufWriter<File>>,
    global_step: i64,
    line: Vec<u8>,
    ended: bool,
    last_flush: Instant,
    last_heartbeat: Instant,
    primary: Option<PrimaryMetric>,
    /// See [`RunSpec::clock_offset`]; [`RunWriter::advance_clock`] moves it.
    clock_offset: f64,
}

/// Buffered lines reach the files at least this often while the writer is used.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(1);

impl RunWriter {
    /// Creates the run directory with `meta.json` and a running `status.json`.
    pub fn create(spec: &RunSpec) -> Result<RunWriter, WriteError> {
        let run_path = normalize_run_path_for_write(spec.path.as_deref())?;
        let run_id = match &spec.run_id {
            Some(id) => {
                check_run_id(id)?;
                id.clone()
            }
            None => generate_run_id(),
        };
        let mut parent = spec.root.join("runs");
        if !run_path.is_empty() {
            parent = parent.join(&run_path);
        }
        fs::create_dir_all(&parent).map_err(io_at(&parent))?;
        let dir = parent.join(&run_id);
        match fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(WriteError::AlreadyExists(dir))
            }
            Err(e) => {
                return Err(WriteError::Io {
                    path: dir,
                    cause: e,
                })
            }
        }
        let files = RunFiles::new(&dir);
        let now = unix_now() + spec.clock_offset;
        let host = process::local_hostname();
        let mut meta = Meta {
            id: Some(run_id),
            path: Some(run_path),
            alias: spec.alias.clone(),
            created_at: Some(now),
            python: None,
            platform: Some(platform_string()),
            hostname: Some(host.clone()),
            pid: Some(i64::from(spec.owner_pid)),
            storage_dir: Some(spec.root.to_string_lossy().into_owned()),
            writer: Some(spec.writer.clone()),
            extra: spec.extra_meta.clone(),
            ..Meta::default()
        };
        if let Some(stall) = spec.stall.to_meta_value() {
            meta.extra.insert(META_STALL_KEY.to_owned(), stall);
        }
        if let Some(alerts) = spec.alerts.to_meta_value() {
            meta.extra.insert(META_ALERTS_KEY.to_owned(), alerts);
        }
        write_json_atomic(&files.meta(), &meta).map_err(io_at(&files.meta()))?;
        let status = StatusRecord {
            status: RunStatus::Running.as_str().to_owned(),
            started_at: Some(now),
            pid: Some(i64::from(spec.owner_pid)),
            host: Some(host),
            proc_start_ticks: process::proc_start_ticks(spec.owner_pid),
            heartbeat_at: Some(now),
            heartbeat_interval: Some(spec.heartbeat_interval),
            ..StatusRecord::default()
        };
        write_json_atomic(&files.status(), &status).map_err(io_at(&files.status()))?;
        let events = open_append(&files.events())?;
        Ok(RunWriter {
            files,
            meta,
            status,
            events: BufWriter::with_capacity(64 * 1024, events),
            logs: None,
            global_step: 0,
            line: Vec::with_capacity(256),
            ended: false,
            last_flush: Instant::now(),
            last_heartbeat: Instant::now(),
            primary: None,
            clock_offset: spec.clock_offset,
        })
    }

    pub fn dir(&self) -> &Path {
        self.files.dir()
    }
    pub fn files(&self) -> &RunFiles {
        &self.files
    }
    pub fn id(&self) -> &str {
        self.meta.id.as_deref().unwrap_or_default()
    }
    pub fn run_path(&self) -> &str {
        self.meta.path.as_deref().unwrap_or_default()
    }
    pub fn status(&self) -> &StatusRecord {
        &self.status
    }

    /// The time the writer records now: the wall clock plus the clock offset.
    pub(crate) fn now(&self) -> f64 {
        unix_now() + self.clock_offset
    }

    /// [`now`](Self::now) as local time, for log line stamps.
    fn local_now(&self) -> chrono::DateTime<chrono::Local> {
        let offset = chrono::Duration::milliseconds((self.clock_offset * 1000.0) as i64);
        chrono::Local::now() + offset
    }

    /// Moves the recorded clock forward by `seconds` without waiting: a replay or a sample run
    /// spreads its steps over the hours they would have taken.
    pub fn advance_clock(&mut self, seconds: f64) {
        if seconds.is_finite() {
            self.clock_offset += seconds;
        }
    }

    /// Appends one `metrics` event. `step` sets the step counter; without it the counter goes up
    /// by one. Returns the step used. The line reaches the file at the next [`flush`](Self::flush).
    pub fn log_metrics(
        &mut self,
        values: &[(&str, f64)],
        step: Option<i64>,
        stage: Option<&str>,
    ) -> Result<i64, WriteError> {
        self.global_step = step.unwrap_or(self.global_step + 1);
        let t = self.now();
        let line = &mut self.line;
        line.clear();
        line.extend_from_slice(b"{\"ts\": ");
        write_f64(line, t);
        line.extend_from_slice(b", \"type\": \"metrics\", \"data\": {");
        for (key, value) in values
            .iter()
            .filter(|(k, _)| *k != "global_step" && *k != "step")
        {
            write_json_str(line, key);
            line.extend_from_slice(b": ");
            write_f64(line, *value);
            line.extend_from_slice(b", ");
        }
        line.extend_from_slice(b"\"global_step\": ");
        line.extend_from_slice(self.global_step.to_string().as_bytes());
        line.extend_from_slice(b", \"time\": ");
        write_f64(line, t);
        if let Some(stage) = stage {
            line.extend_from_slice(b", \"stage\": ");
            write_json_str(line, stage);
        }
        line.extend_from_slice(b"}}\n");
        if let Some(primary) = self.primary.as_mut() {
            primary.observe(values, self.global_step);
        }
        self.append_event_line()?;
        Ok(self.global_step)
    }

    /// Appends the line in `self.line` to the events buffer.
    fn append_event_line(&mut self) -> Result<(), WriteError> {
        let path = self.files.events();
        self.events.write_all(&self.line).map_err(io_at(&path))?;
        self.keep_up()
    }

    /// Appends a `HH:MM:SS | text` line to `logs.txt` (as `run.log_text` does).
    pub fn log_text(&mut self, text: &str) -> Result<(), WriteError> {
        let stamp = self.local_now().format("%H:%M:%S");
        let mut out = String::with_capacity(text.len() + 12);
        for line in text.split('\n') {
            out.push_str(&format!("{stamp} | {line}\n"));
        }
        self.append_log_bytes(out.as_bytes())
    }

    /// Appends raw bytes to `logs.txt` (console capture writes its own line shapes).
    pub fn append_log_bytes(&mut self, bytes: &[u8]) -> Result<(), WriteError> {
        let path = self.files.logs();
        if self.logs.is_none() {
            self.logs = Some(BufWriter::new(open_append(&path)?));
        }
        if let Some(logs) = self.logs.as_mut() {
            logs.write_all(bytes).map_err(io_at(&path))?;
        }
        self.keep_up()
    }

    /// Merges `update` into `summary.json`, key by key.
    pub fn update_summary(&mut self, update: Map<String, Value>) -> Result<(), WriteError> {
        let path = self.files.summary();
        let mut summary: Map<String, Value> = read_json_if_exists(&path)
            .ok()
            .flatten()
            .unwrap_or_default();
        summary.extend(update);
        write_json_atomic(&path, &summary).map_err(io_at(&path))
    }

    /// Writes `environment.json`.
    pub fn write_environment(&self, environment: &Value) -> Result<(), WriteError> {
        let path = self.files.environment();
        write_json_atomic(&path, environment).map_err(io_at(&path))
    }

    /// Flushes when the last flush is a second old, and beats the heart when one is due, so a
    /// writer that is only ever logged to still shows up live and alive.
    fn keep_up(&mut self) -> Result<(), WriteError> {
        if self.last_flush.elapsed() >= FLUSH_INTERVAL {
            self.flush()?;
        }
        let interval = self
            .status
            .heartbeat_interval
            .unwrap_or(super::DEFAULT_HEARTBEAT_INTERVAL);
        if self.last_heartbeat.elapsed().as_secs_f64() >= interval {
            self.heartbeat()?;
        }
        Ok(())
    }

    /// Pushes buffered events and log lines to the files.
    pub fn flush(&mut self) -> Result<(), WriteError> {
        self.last_flush = Instant::now();
        let events = self.files.events();
        self.events.flush().map_err(io_at(&events))?;
        if let Some(logs) = self.logs.as_mut() {
            let path = self.files.logs();
            logs.flush().map_err(io_at(&path))?;
        }
        Ok(())
    }

    /// Records that the owner is alive (rewrites `status.json` with a fresh `heartbeat_at`).
    pub fn heartbeat(&mut self) -> Result<(), WriteError> {
        if self.ended {
            return Ok(());
        }
        self.status.heartbeat_at = Some(self.now());
        self.last_heartbeat = Instant::now();
        self.write_status()
    }

    /// Ends the run: flushes everything and writes the final status. A second call does nothing.
    pub fn finish(&mut self, outcome: RunOutcome) -> Result<(), WriteError> {
        if self.ended {
            return Ok(());
        }
        let best = self
            .primary
            .as_ref()
            .and_then(PrimaryMetric::summary_update);
        let summarized = best.map_or(Ok(()), |update| self.update_summary(update));
        let flushed = self.flush().and(summarized);
        let now = self.now();
        self.status.status = outcome.status.as_str().to_owned();
        self.status.ended_at = Some(now);
        self.status.heartbeat_at = Some(now);
        self.status.exit_code = outcome.exit_code;
        self.status.signal = outcome.signal;
        self.status.exit_reason = outcome.reason;
        self.write_status()?;
        self.ended = true;
        flushed
    }

    fn write_status(&self) -> Result<(), WriteError> {
        let path = self.files.status();
        write_json_atomic(&path, &self.status).map_err(io_at(&path))
    }
}

impl Drop for RunWriter {
    fn drop(&mut self) {
        // Best effort: a dropped writer must not lose buffered lines. Errors have nowhere to go.
        let _ = self.flush();
    }
}

fn open_append(path: &Path) -> Result<File, WriteError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(io_at(path))
}

/// Writes a float as JSON, or as Python's bare token for a non-finite value.
pub(super) fn write_f64(out: &mut Vec<u8>, v: f64) {
    if v.is_nan() {
        out.extend_from_slice(b"NaN");
    } else if v.is_infinite() {
        out.extend_from_slice(if v > 0.0 { b"Infinity" } else { b"-Infinity" });
    } else {
        // serde_json writes the shortest representation that reads back exactly (ryu).
        let _ = serde_json::to_writer(&mut *out, &v);
    }
}

pub(super) fn write_json_str(out: &mut Vec<u8>, s: &str) {
    // Writing to a Vec cannot fail, and a &str always serialises.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// `Linux 6.1.0 (x86_64)`, the shape upstream's `platform` field has.
pub fn platform_string() -> String {
    let release = fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    let os = match std::env::consts::OS {
        "linux" => "Linux",
        "macos" => "Darwin",
        "windows" => "Windows",
        other => other,
    };
    if release.is_empty() {
        format!("{os} ({})", std::env::consts::ARCH)
    } else {
        format!("{os} {release} ({})", std::env::consts::ARCH)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run_format::discovery::discover_runs;
    use crate::run_format::liveness::LivenessContext;
    use crate::run_format::overview::read_run_overview;

    #[test]
    fn stall_settings_reach_meta_json() {
        let t = tempfile::tempdir().unwrap();
        let mut spec = RunSpec::new(t.path(), "test/1");
        spec.stall = StallConfig::new(Some(3.0), Some(90.0));
        let w = RunWriter::create(&spec).unwrap();
        let meta: Value =
            serde_json::from_str(&fs::read_to_string(w.files().meta()).unwrap()).unwrap();
        assert_eq!(
            meta["stall"],
            serde_json::json!({"factor": 3.0, "after_s": 90.0})
        );
        let read: Meta = serde_json::from_value(meta).unwrap();
        assert_eq!(StallConfig::from_meta(Some(&read)), spec.stall);
        // Without settings, meta.json has no `stall` at all.
        spec.stall = StallConfig::default();
        spec.run_id = Some("plain".into());
        let w = RunWriter::create(&spec).unwrap();
        let meta: Value =
            serde_json::from_str(&fs::read_to_string(w.files().meta()).unwrap()).unwrap();
        assert!(meta.get("stall").is_none(), "{meta}");
        assert!(meta.get("alerts").is_none(), "{meta}");
    }

    #[test]
    fn alert_settings_reach_meta_json() {
        let t = tempfile::tempdir().unwrap();
        let mut spec = RunSpec::new(t.path(), "test/1");
        spec.alerts = AlertConfig {
            watch: Some(vec!["acc".into()]),
            gpu_idle_after_s: Some(30.0),
        };
        let w = RunWriter::create(&spec).unwrap();
        let meta: Value =
            serde_json::from_str(&fs::read_to_string(w.files().meta()).unwrap()).unwrap();
        assert_eq!(
            meta["alerts"],
            serde_json::json!({"watch": ["acc"], "gpu_idle_after_s": 30.0})
        );
        let read: Meta = serde_json::from_value(meta).unwrap();
        assert_eq!(AlertConfig::from_meta(Some(&read)), spec.alerts);
    }

    #[test]
    fn written_run_reads_back() {
        let t = tempfile::tempdir().unwrap();
        let mut spec = RunSpec::new(t.path(), "test/1");
        spec.path = Some("cv/res".into());
        spec.alias = Some("first".into());
        let mut w = RunWriter::create(&spec).unwrap();
        for i in 0..5 {
            w.log_metrics(
                &[
                    ("loss", 1.0 / (i as f64 + 1.0)),
                    ("acc", i as f64),
                    ("step", 99.0),
                ],
                None,
                Some("train"),
            )
            .unwrap();
        }
        w.log_metrics(&[("loss", f64::NAN)], Some(10), None)
            .unwrap();
        w.log_text("hello\nworld").unwrap();
        w.update_summary(serde_json::json!({"best": 1}).as_object().unwrap().clone())
            .unwrap();
        w.finish(RunOutcome::finished()).unwrap();
        w.finish(RunOutcome {
            status: RunStatus::Failed,
            exit_code: Some(1),
            signal: None,
            reason: None,
        })
        .unwrap();

        let found = discover_runs(t.path());
        assert_eq!(found.runs.len(), 1);
        let ov = read_run_overview(&found.runs[0], &LivenessContext::here_and_now());
        assert_eq!(ov.path, "cv/res");
        assert_eq!(
            ov.status,
            RunStatus::Finished,
            "the second finish is a no-op"
        );
        assert_eq!(
            (ov.points, ov.last_step, ov.corrupt_lines),
            (11, Some(10), 0)
        );
        assert_eq!(ov.keys, vec!["acc", "loss"]);
        let events = fs::read_to_string(w.files().events()).unwrap();
        assert!(
            events
                .lines()
                .next()
                .unwrap()
                .contains("\"global_step\": 1, \"time\": "),
            "{events}"
        );
        assert!(events.contains("\"loss\": NaN"));
        let logs = fs::read_to_string(w.files().logs()).unwrap();
        assert_eq!(logs.lines().count(), 2);
        assert!(logs.lines().all(|l| l.len() > 11 && &l[8..11] == " | "));
    }

    #[test]
    fn a_clock_offset_places_the_run_in_the_past_and_advances_with_it() {
        let t = tempfile::tempdir().unwrap();
        let mut spec = RunSpec::new(t.path(), "test/1");
        spec.clock_offset = -7200.0;
        let before = unix_now();
        let mut w = RunWriter::create(&spec).unwrap();
        w.log_metrics(&[("loss", 1.0)], Some(1), None).unwrap();
        w.advance_clock(1800.0);
        w.log_metrics(&[("loss", 0.5)], Some(2), None).unwrap();
        w.finish(RunOutcome::finished()).unwrap();

        let found = discover_runs(t.path());
        let ov = read_run_overview(&found.runs[0], &LivenessContext::here_and_now());
        let created = ov.created_at.unwrap();
        let ended = ov.ended_at.unwrap();
        assert!(
            (created - (before - 7200.0)).abs() < 60.0,
            "{created} vs {before}"
        );
        assert!(
            (ended - created - 1800.0).abs() < 60.0,
            "{ended} - {created}"
        );
        let events = fs::read_to_string(w.files().events()).unwrap();
        let times: Vec<f64> = events
            .lines()
            .map(|l| {
                serde_json::from_str::<Value>(l).unwrap()["ts"]
                    .as_f64()
                    .unwrap()
            })
            .collect();
        assert!((times[1] - times[0] - 1800.0).abs() < 60.0, "{times:?}");
    }

    #[test]
    fn lines_reach_the_file_within_a_second_and_heartbeats_follow_logging() {
        let t = tempfile::tempdir().unwrap();
        let mut spec = RunSpec::new(t.path(), "test/1");
        spec.heartbeat_interval = 0.2;
        let mut w = RunWriter::create(&spec).unwrap();
        let first_beat = w.status().heartbeat_at.unwrap();
        w.log_metrics(&[("a", 1.0)], None, None).unwrap();
        assert_eq!(
            fs::read_to_string(w.files().events()).unwrap(),
            "",
            "buffered"
        );
        std::thread::sleep(FLUSH_INTERVAL);
        w.log_metrics(&[("a", 2.0)], None, None).unwrap();
        assert_eq!(
            fs::read_to_string(w.files().events())
                .unwrap()
                .lines()
                .count(),
            2
        );
        let on_disk: StatusRecord =
            crate::run_format::json_file::read_json(&w.files().status()).unwrap();
        assert!(on_disk.heartbeat_at.unwrap() > first_beat);
    }

    #[test]
    fn images_config_and_primary_metric_match_the_python_sdk() {
        let t = tempfile::tempdir().unwrap();
        let mut w = RunWriter::create(&RunSpec::new(t.path(), "test/1")).unwrap();
        w.set_primary_metric("loss", MetricGoal::Min);
        for (i, loss) in [0.9, 0.3, f64::NAN, 0.5].into_iter().enumerate() {
            w.log_metrics(&[("loss", loss)], Some(i as i64 + 1), None)
                .unwrap();
        }
        let rel = w
            .log_image(
                "val/pred img",
                b"\x89PNG fake",
                "png",
                Some(3),
                Some("epoch 3"),
            )
            .unwrap();
        assert!(
            rel.starts_with("media/") && rel.ends_with("_val_pred_img.png"),
            "{rel}"
        );
        assert_eq!(fs::read(w.dir().join(&rel)).unwrap(), b"\x89PNG fake");
        w.log_image("x", b"y", "jpg", None, None).unwrap();
        w.log_config(
            serde_json::json!({"lr": 0.1}),
            serde_json::json!({}),
            &["cfg.yaml".into()],
        )
        .unwrap();
        w.finish(RunOutcome::finished()).unwrap();

        let events = fs::read_to_string(w.files().events()).unwrap();
        let image: Value = serde_json::from_str(events.lines().nth(4).unwrap()).unwrap();
        assert_eq!(image["type"], "image");
        assert_eq!(
            image["data"],
            serde_json::json!({"key": "val/pred img", "path": rel, "step": 3, "caption": "epoch 3"})
        );
        let unstepped: Value = serde_json::from_str(events.lines().nth(5).unwrap()).unwrap();
        assert!(unstepped["data"]["step"].is_null() && unstepped["data"]["caption"].is_null());
        let summary: Value = read_json_if_exists(&w.files().summary()).unwrap().unwrap();
        assert_eq!(summary["best_metric_value"], 0.3);
        assert_eq!(summary["best_metric_step"], 2);
        assert_eq!(summary["best_metric_mode"], "min");
        let assets: Value = read_json_if_exists(&w.files().assets()).unwrap().unwrap();
        assert_eq!(assets["config"]["args"]["lr"], 0.1);
        assert_eq!(assets["config"]["config_files"][0], "cfg.yaml");
        assert_eq!(assets["outputs"], serde_json::json!([]));
    }

    #[test]
    fn refuses_bad_names_and_existing_runs() {
        let t = tempfile::tempdir().unwrap();
        let mut spec = RunSpec::new(t.path(), "test/1");
        spec.path = Some("../escape".into());
        assert!(matches!(RunWriter::create(&spec), Err(WriteError::Name(_))));
        spec.path = None;
        spec.run_id = Some("fixed".into());
        RunWriter::create(&spec).unwrap();
        assert!(matches!(
            RunWriter::create(&spec),
            Err(WriteError::AlreadyExists(_))
        ));
        assert!(t.path().join("runs/default/fixed/meta.json").exists());
    }
}
