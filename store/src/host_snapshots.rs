//! The latest host sample of each remote (schema 7): the agent's `host_status` answer as it
//! came (its GPUs, who uses each, the host's load), replaced by each newer one and kept when
//! the remote goes offline, so the fleet view shows what was last heard. And the runs those
//! samples name, found by remote and run directory.

use std::collections::HashMap;

use rusqlite::{params, OptionalExtension};

use runicorn_protocol::wire::HostStatus;

use crate::error::{SqliteContext, StoreError};
use crate::ids::{RemoteId, RunKey};
use crate::store::Store;

/// A remote's latest host sample.
#[derive(Debug, Clone, PartialEq)]
pub struct HostSnapshot {
    pub remote: RemoteId,
    /// When the hub received it (the hub's clock, Unix seconds).
    pub received_at: f64,
    pub status: HostStatus,
}

/// A run a host sample names, as the store knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct HostRunRow {
    pub key: RunKey,
    pub run_id: String,
    pub path: String,
    /// The hub's alias when it set one, else the run's own.
    pub alias: Option<String>,
}

impl Store {
    /// Stores `status` as `remote`'s latest host sample, received at `received_at` (Unix
    /// seconds, the hub's clock).
    pub fn put_host_snapshot(
        &mut self,
        remote: RemoteId,
        received_at: f64,
        status: &HostStatus,
    ) -> Result<(), StoreError> {
        // Plain fields and string-keyed structs only: writing them as JSON cannot fail (a
        // non-finite number becomes null).
        let text = serde_json::to_string(status).unwrap_or_else(|_| "{}".to_owned());
        let path = self.db_path.clone();
        let tx = self.write_tx().at(&path)?;
        tx.prepare_cached(
            "INSERT INTO host_snapshots(remote, received_at, status) VALUES (?1, ?2, ?3)
             ON CONFLICT(remote) DO UPDATE SET received_at = excluded.received_at,
                status = excluded.status",
        )
        .and_then(|mut s| s.execute(params![remote.0, received_at, text]))
        .at(&path)?;
        tx.commit().at(&path)
    }

    /// `remote`'s latest host sample, if one came.
    pub fn host_snapshot(&self, remote: RemoteId) -> Result<Option<HostSnapshot>, StoreError> {
        let row: Option<(f64, String)> = self
            .conn
            .query_row(
                "SELECT received_at, status FROM host_snapshots WHERE remote = ?1",
                [remote.0],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .at(&self.db_path)?;
        Ok(row.and_then(|(received_at, text)| snapshot(remote, received_at, &text)))
    }

    /// Every remote's latest host sample.
    pub fn host_snapshots(&self) -> Result<Vec<HostSnapshot>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT remote, received_at, status FROM host_snapshots")
            .at(&self.db_path)?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    RemoteId(r.get(0)?),
                    r.get::<_, f64>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })
            .at(&self.db_path)?
            .collect::<Result<Vec<_>, _>>()
            .at(&self.db_path)?;
        Ok(rows
            .into_iter()
            .filter_map(|(remote, at, text)| snapshot(remote, at, &text))
            .collect())
    }

    /// The runs of `remote` at `dirs` (run directories), by directory; a directory the store
    /// holds no run at is left out.
    pub fn runs_at_dirs(
        &self,
        remote: RemoteId,
        dirs: &[&str],
    ) -> Result<HashMap<String, HostRunRow>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, run_id, path, coalesce(user_alias, alias) FROM runs
                  WHERE remote = ?1 AND dir = ?2",
            )
            .at(&self.db_path)?;
        let mut found = HashMap::new();
        for dir in dirs {
            let row = stmt
                .query_row(params![remote.0, dir], |r| {
                    Ok(HostRunRow {
                        key: RunKey(r.get(0)?),
                        run_id: r.get(1)?,
                        path: r.get(2)?,
                        alias: r.get(3)?,
                    })
                })
                .optional()
                .at(&self.db_path)?;
            if let Some(row) = row {
                found.insert((*dir).to_owned(), row);
            }
        }
        Ok(found)
    }
}

/// A stored row read back; one that no longer reads (written by a newer hub in a shape this
/// one cannot read) is skipped: the next sample replaces it.
fn snapshot(remote: RemoteId, received_at: f64, text: &str) -> Option<HostSnapshot> {
    let status = serde_json::from_str(text).ok()?;
    Some(HostSnapshot {
        remote,
        received_at,
        status,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{add_remote, change_batch, fresh_store, run_change};
    use runicorn_protocol::wire::{GpuProcess, HostGpuStatus, HostRun};

    fn status(util: f64) -> HostStatus {
        HostStatus {
            hostname: "gpu-01".into(),
            sampled_at: 1_000.0,
            gpus: vec![HostGpuStatus {
                index: 0,
                uuid: "GPU-1".into(),
                name: "A100".into(),
                util_percent: Some(util),
                processes: vec![GpuProcess {
                    pid: 7,
                    used_mib: Some(100.0),
                    run: Some(HostRun {
                        dir: "runs/a/r1".into(),
                        path: "a".into(),
                        run_id: "r1".into(),
                    }),
                }],
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn the_latest_sample_replaces_the_last_and_names_stored_runs() {
        let (_tmp, mut store) = fresh_store();
        let gpu = add_remote(&mut store, "gpu");
        let other = add_remote(&mut store, "other");
        assert_eq!(store.host_snapshot(gpu).unwrap(), None);
        store.put_host_snapshot(gpu, 5.0, &status(10.0)).unwrap();
        store.put_host_snapshot(gpu, 6.0, &status(90.0)).unwrap();
        let all = store.host_snapshots().unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].remote, gpu);
        assert_eq!(all[0].status, status(90.0));
        assert_eq!(all[0].received_at, 6.0);

        store
            .apply_change_batch(
                gpu,
                &change_batch(true, vec![run_change("runs/a/r1", 1, 0)], "e", 1, false),
            )
            .unwrap();
        let runs = store
            .runs_at_dirs(gpu, &["runs/a/r1", "runs/a/nope"])
            .unwrap();
        assert_eq!(runs.len(), 1);
        assert_eq!(runs["runs/a/r1"].run_id, "r1");
        assert_eq!(runs["runs/a/r1"].path, "a");
        assert!(store
            .runs_at_dirs(other, &["runs/a/r1"])
            .unwrap()
            .is_empty());
    }
}
