//! The runs the feed last saw running (or stalled), with what their records say of their
//! writer process: for the host-wide view, which matches GPU processes to runs.

use runicorn_protocol::run_format::RunStatus;

use super::super::{IndexError, RunIndex};

/// A run the feed lists as running, and its writer as `status.json` (else `meta.json`) names it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunningRun {
    pub dir: String,
    pub path: String,
    pub run_id: String,
    /// The host the writer runs on (`status.json`'s `host`, else `meta.json`'s `hostname`).
    pub host: Option<String>,
    pub pid: Option<i64>,
    /// The writer's start time, when `status.json` records it with the pid.
    pub start_ticks: Option<u64>,
    /// The program that created the run (`meta.json`'s `writer`, e.g. `runicorn-agent/0.1.0`).
    pub writer: Option<String>,
}

const RUNNING_SQL: &str = "
    SELECT dir,
           json_extract(head, '$.path'),
           json_extract(head, '$.id'),
           coalesce(json_extract(records, '$.status.host'), json_extract(records, '$.meta.hostname')),
           json_extract(records, '$.status.pid'),
           json_extract(records, '$.meta.pid'),
           json_extract(records, '$.status.proc_start_ticks'),
           json_extract(records, '$.meta.writer')
      FROM feed_run
     WHERE removed = 0 AND json_extract(head, '$.status') IN (?1, ?2)";

impl RunIndex {
    /// The live rows whose announced status is `running` or `stalled`.
    pub fn running_runs(&self) -> Result<Vec<RunningRun>, IndexError> {
        let mut statement = self
            .conn
            .prepare_cached(RUNNING_SQL)
            .map_err(|cause| self.sqlite_err(cause))?;
        let rows = statement
            .query_map(
                [RunStatus::Running.as_str(), RunStatus::Stalled.as_str()],
                |row| {
                    // A value of another type than the records should hold is no value.
                    let text = |i| row.get::<_, Option<String>>(i).ok().flatten();
                    let int = |i| row.get::<_, Option<i64>>(i).ok().flatten();
                    let status_pid = int(4);
                    Ok(RunningRun {
                        dir: row.get(0)?,
                        path: text(1).unwrap_or_default(),
                        run_id: text(2).unwrap_or_default(),
                        host: text(3),
                        pid: status_pid.or(int(5)),
                        start_ticks: status_pid.and(int(6)).and_then(|t| u64::try_from(t).ok()),
                        writer: text(7),
                    })
                },
            )
            .map_err(|cause| self.sqlite_err(cause))?;
        rows.collect::<Result<_, _>>()
            .map_err(|cause| self.sqlite_err(cause))
    }
}
