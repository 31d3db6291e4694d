//! The small JSON records of a run directory: `meta.json`, `status.json`, `.deleted`, and the
//! status vocabulary.
//!
//! Every field a reader may not find is optional, and unknown fields are kept (`extra`), so a
//! record read and written back by us loses nothing that upstream or a newer writer put there.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `meta.json`: who created the run, where and when.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Current layout: the hierarchical run path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Legacy layout (upstream ≤ 0.5): project and name instead of path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default)]
    pub alias: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<f64>,
    #[serde(default)]
    pub python: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_dir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace_root: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    /// Ours: the program that created the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub writer: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `status.json`: the run's state, plus our liveness fields.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StatusRecord {
    #[serde(default = "default_status_text")]
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proc_start_ticks: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_at: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_interval: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn default_status_text() -> String {
    RunStatus::Running.as_str().to_owned()
}

/// `.deleted`: the soft-delete marker.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeletedMarker {
    #[serde(default)]
    pub deleted_at: Option<f64>,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub original_status: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A run's status as readers report it: the written values plus the derived ones. This is the
/// one source of the status vocabulary ([`RunStatus::ALL`]); every status a reader reports,
/// the agent sends or the hub stores is one of these.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RunStatus {
    Running,
    /// Derived: the file says running and the writer is alive, but no new step arrived for
    /// longer than the run's stall limit (`stall.rs`; the reason says by how much).
    Stalled,
    Finished,
    Failed,
    Interrupted,
    Killed,
    /// Derived: the file says running, but the writer is gone.
    Crashed,
    /// Derived: the run's files cannot be read (the reason says which and why).
    Unreadable,
    /// Nothing says what the run's state is: no `status.json`, or a value outside this
    /// vocabulary (the reason quotes it).
    Unknown,
}

impl RunStatus {
    /// Every status, in the order documented in `docs/run-format.md`.
    pub const ALL: [RunStatus; 9] = [
        RunStatus::Running,
        RunStatus::Stalled,
        RunStatus::Finished,
        RunStatus::Failed,
        RunStatus::Interrupted,
        RunStatus::Killed,
        RunStatus::Crashed,
        RunStatus::Unreadable,
        RunStatus::Unknown,
    ];

    /// The status a written value names (case-insensitive), or `None` when it is outside the
    /// vocabulary.
    pub fn from_name(text: &str) -> Option<RunStatus> {
        RunStatus::ALL
            .into_iter()
            .find(|s| s.as_str().eq_ignore_ascii_case(text))
    }

    /// Parses a written status value: [`RunStatus::Unknown`] when it is outside the vocabulary.
    pub fn parse(text: &str) -> RunStatus {
        RunStatus::from_name(text).unwrap_or(RunStatus::Unknown)
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Stalled => "stalled",
            RunStatus::Finished => "finished",
            RunStatus::Failed => "failed",
            RunStatus::Interrupted => "interrupted",
            RunStatus::Killed => "killed",
            RunStatus::Crashed => "crashed",
            RunStatus::Unreadable => "unreadable",
            RunStatus::Unknown => "unknown",
        }
    }

    /// True once the run can no longer change state by itself.
    pub fn is_terminal(&self) -> bool {
        !self.is_live()
    }

    /// True while the run's writer is (as far as anyone knows) at work: `running`, and
    /// `stalled` (alive, but making no steps).
    pub fn is_live(&self) -> bool {
        matches!(self, RunStatus::Running | RunStatus::Stalled)
    }
}

/// Written as its name (`"running"`): how the dashboard's API sends a run's status.
impl Serialize for RunStatus {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_meta_round_trips_without_loss() {
        let text = r#"{"id":"x","path":"cv","alias":null,"created_at":1.5,"python":"3.11",
            "platform":"Linux","hostname":"h","pid":3,"storage_dir":"/s","workspace_root":"/w","future":{"a":1}}"#;
        let meta: Meta = serde_json::from_str(text).unwrap();
        assert_eq!(meta.path.as_deref(), Some("cv"));
        assert_eq!(meta.extra.get("future"), Some(&serde_json::json!({"a": 1})));
        let back: Value = serde_json::to_value(&meta).unwrap();
        let orig: Value = serde_json::from_str(text).unwrap();
        assert_eq!(back, orig);
    }

    #[test]
    fn status_vocabulary() {
        for s in [
            "running",
            "stalled",
            "finished",
            "failed",
            "interrupted",
            "killed",
            "crashed",
            "unreadable",
            "unknown",
        ] {
            assert_eq!(RunStatus::parse(s).as_str(), s);
            assert!(RunStatus::ALL.iter().any(|a| a.as_str() == s));
        }
        assert_eq!(RunStatus::ALL.len(), 9);
        assert!(RunStatus::Stalled.is_live() && !RunStatus::Stalled.is_terminal());
        assert_eq!(RunStatus::parse("RUNNING"), RunStatus::Running);
        assert_eq!(RunStatus::parse("paused"), RunStatus::Unknown);
        assert_eq!(RunStatus::from_name("paused"), None);
        assert_eq!(RunStatus::from_name(""), None);
        assert_eq!(
            serde_json::to_value(RunStatus::Unreadable).unwrap(),
            serde_json::json!("unreadable")
        );
        let st: StatusRecord = serde_json::from_str("{}").unwrap();
        assert_eq!(st.status, "running");
    }
}
