//! The run format: how a training run is laid out on disk (see `docs/run-format.md`).
//!
//! This module owns the format's rules: where runs live, which names are allowed, how each file
//! is read tolerantly and written atomically, and how liveness (and a stall) is judged. It reads and writes
//! only inside the storage root it is given. Every file of a run is read through `safe_read`:
//! regular files only, links only within the root, never blocking, bounded while reading.

pub mod alerts;
pub mod artifacts;
pub mod discovery;
pub mod events;
pub mod json_file;
pub mod liveness;
pub mod names;
pub mod nonfinite;
pub mod overview;
pub mod process;
pub mod record_depth;
pub mod records;
pub mod safe_read;
pub mod stall;
pub mod writer;

use std::path::{Path, PathBuf};

pub use alerts::{AlertConfig, GpuIdle, NonFiniteSeen};
pub use discovery::{discover_runs, Discovery, Layout, RunLocation};
pub use events::{scan_events, Event, EventTail, MetricTotals, MetricsEvent};
pub use liveness::{effective_status, judge_liveness, unix_now, Liveness, LivenessContext};
pub use overview::{
    build_overview, continue_event_totals, read_run_overview, read_run_records, EventProgress,
    RunOverview, RunRecords,
};
pub use records::{DeletedMarker, Meta, RunStatus, StatusRecord};
pub use stall::{StallConfig, StepTiming};
pub use writer::{MetricGoal, RunOutcome, RunSpec, RunWriter, WriteError};

/// Environment variable naming the storage root.
pub const ENV_STORAGE_ROOT: &str = "RUNICORN_DIR";
/// Environment variable naming the run a wrapped command should join.
pub const ENV_RUN_DIR: &str = "RUNICORN_RUN_DIR";
/// Environment variable overriding the heartbeat interval (seconds).
pub const ENV_HEARTBEAT_INTERVAL: &str = "RUNICORN_HEARTBEAT_INTERVAL";
/// Default seconds between heartbeats.
pub const DEFAULT_HEARTBEAT_INTERVAL: f64 = 10.0;

/// Picks the storage root: an explicit one, else `$RUNICORN_DIR`, else `~/.runicorn`.
pub fn resolve_storage_root(explicit: Option<&Path>) -> PathBuf {
    if let Some(p) = explicit {
        return p.to_owned();
    }
    if let Some(dir) = std::env::var_os(ENV_STORAGE_ROOT).filter(|v| !v.is_empty()) {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".runicorn")
}

/// The heartbeat interval from `$RUNICORN_HEARTBEAT_INTERVAL`, else the default.
pub fn heartbeat_interval_from_env() -> f64 {
    std::env::var(ENV_HEARTBEAT_INTERVAL)
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|v| v.is_finite() && *v > 0.0)
        .unwrap_or(DEFAULT_HEARTBEAT_INTERVAL)
}

/// The file names of one run directory.
#[derive(Debug, Clone)]
pub struct RunFiles {
    dir: PathBuf,
}

impl RunFiles {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        RunFiles { dir: dir.into() }
    }
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    pub fn meta(&self) -> PathBuf {
        self.dir.join("meta.json")
    }
    pub fn status(&self) -> PathBuf {
        self.dir.join("status.json")
    }
    pub fn summary(&self) -> PathBuf {
        self.dir.join("summary.json")
    }
    pub fn events(&self) -> PathBuf {
        self.dir.join("events.jsonl")
    }
    pub fn logs(&self) -> PathBuf {
        self.dir.join("logs.txt")
    }
    pub fn environment(&self) -> PathBuf {
        self.dir.join("environment.json")
    }
    pub fn assets(&self) -> PathBuf {
        self.dir.join("assets.json")
    }
    pub fn media_dir(&self) -> PathBuf {
        self.dir.join("media")
    }
    pub fn deleted_marker(&self) -> PathBuf {
        self.dir.join(".deleted")
    }
}
