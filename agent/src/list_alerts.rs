//! The alerts `runicorn-agent ls` shows: each run's raised alerts as the root's index caches
//! them (`run_cache.alerts`, raised by the feed scans of `serve --stdio` and the resident agent;
//! the agent keeps no acknowledgements, so every raised alert is shown). Read-only: `ls` never
//! raises alerts itself, and a root without an index (or one it may not read) has none to show.

use std::collections::HashMap;
use std::path::Path;

use runicorn_protocol::wire::RunAlert;
use rusqlite::{Connection, OpenFlags};

use crate::run_index::{AGENT_DIR, INDEX_FILE};

/// The part of `run_cache.alerts` shown: the raised alerts, oldest first.
#[derive(serde::Deserialize)]
struct CachedAlerts {
    #[serde(default)]
    raised: Vec<RunAlert>,
}

/// Why the cached alerts could not be read.
#[derive(Debug, thiserror::Error)]
#[error("reading the alerts cached in {path}: {cause}")]
pub struct AlertsError {
    path: String,
    cause: rusqlite::Error,
}

/// The raised alerts of each run that has some, by run directory relative to `root`.
pub fn raised_alerts(root: &Path) -> Result<HashMap<String, Vec<RunAlert>>, AlertsError> {
    let path = root.join(AGENT_DIR).join(INDEX_FILE);
    if !path.is_file() {
        return Ok(HashMap::new());
    }
    let err = |cause| AlertsError {
        path: path.display().to_string(),
        cause,
    };
    let conn = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(err)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(err)?;
    let mut stmt = conn
        .prepare("SELECT dir, alerts FROM run_cache WHERE alerts IS NOT NULL")
        .map_err(err)?;
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
        .map_err(err)?;
    let mut out = HashMap::new();
    for row in rows {
        let (dir, json) = row.map_err(err)?;
        // A value an older or newer agent wrote differently shows no alerts, never fails `ls`.
        let Ok(cached) = serde_json::from_str::<CachedAlerts>(&json) else {
            continue;
        };
        if !cached.raised.is_empty() {
            out.insert(dir, cached.raised);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_root_without_an_index_has_no_alerts() {
        let root = tempfile::tempdir().expect("temp dir");
        assert!(raised_alerts(root.path()).expect("no error").is_empty());
    }
}
