//! The alerts agents raised about runs (schema 8): stored insert-if-new while change batches
//! are applied, in the batch's transaction, keyed by run and the agent's alert id, so an alert
//! that arrives again (every later state of its run carries it) is never a second alert. The
//! first insert is the only one that reports the alert as new ([`ChangeOutcome::new_alerts`],
//! what the hub notifies about). Listing them (unacknowledged, or all) and acknowledging them.
//!
//! [`ChangeOutcome::new_alerts`]: crate::ChangeOutcome::new_alerts

use rusqlite::{params, Connection};
use serde::Serialize;

use runicorn_protocol::wire::{bounded_message, RunAlert, MAX_ALERTS_PER_RUN};

use crate::error::{SqliteContext, StoreError};
use crate::ids::RemoteId;
use crate::sql::unix_now;
use crate::store::Store;

/// Longest alert id or kind stored, in bytes (longer ones are cut).
const MAX_ALERT_NAME_BYTES: usize = 300;
/// An alert raised longer ago than this (on its agent's clock) when it first arrives is stored
/// but not reported as new: the first sync of a server with a history of failed runs lists
/// them, and notifies about none.
pub const NOTIFY_WITHIN_SECS: f64 = 24.0 * 3600.0;

/// One stored alert with what names its run (as `runicorn-hub alerts --json`, the API and the
/// `--on-alert` command show it).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertRow {
    /// The hub's number of the alert (`ack ID`).
    pub id: i64,
    /// The agent's id of the occurrence (`stalled@120`, `nonfinite:loss`, ...).
    pub alert_id: String,
    pub kind: String,
    pub message: String,
    pub key: Option<String>,
    pub step: Option<i64>,
    pub value: Option<String>,
    /// On the agent's clock, epoch seconds.
    pub raised_at: f64,
    /// When this hub first stored it.
    pub received_at: f64,
    pub acked_at: Option<f64>,
    pub remote: String,
    /// The run's host (`meta.json`'s hostname), else the remote's agent host.
    pub host: Option<String>,
    /// The run's key in this store (the dashboard's `#/runs/<key>`).
    pub run: i64,
    /// `REMOTE/RUN_ID`, a reference every command takes.
    pub run_ref: String,
    pub run_id: String,
    pub path: String,
    pub alias: Option<String>,
}

/// Which alerts a listing shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertView {
    /// Not acknowledged yet.
    Unacked,
    All,
}

fn cut(text: &str) -> &str {
    if text.len() <= MAX_ALERT_NAME_BYTES {
        return text;
    }
    let mut end = MAX_ALERT_NAME_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Stores the alerts of one run that the store does not have yet; returns the ids of the new
/// rows to notify about (raised within [`NOTIFY_WITHIN_SECS`] of `now`). At most
/// `MAX_ALERTS_PER_RUN` per batch entry are looked at.
pub(crate) fn insert_new(
    tx: &Connection,
    remote: RemoteId,
    run: i64,
    alerts: &[RunAlert],
    now: f64,
) -> rusqlite::Result<Vec<i64>> {
    let mut out = Vec::new();
    if alerts.is_empty() {
        return Ok(out);
    }
    let mut insert = tx.prepare_cached(
        "INSERT OR IGNORE INTO alerts(remote, run, alert_id, kind, message, key, step, value,
            raised_at, received_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?;
    for a in alerts.iter().take(MAX_ALERTS_PER_RUN) {
        let raised_at = if a.raised_at.is_finite() {
            a.raised_at
        } else {
            now
        };
        let changed = insert.execute(params![
            remote.0,
            run,
            cut(&a.id),
            cut(&a.kind),
            bounded_message(&a.message),
            a.key.as_deref().map(cut),
            a.step,
            a.value.as_deref().map(cut),
            raised_at,
            now,
        ])?;
        if changed == 1 && raised_at >= now - NOTIFY_WITHIN_SECS {
            out.push(tx.last_insert_rowid());
        }
    }
    Ok(out)
}

const SELECT_ALERTS: &str = "SELECT a.id, a.alert_id, a.kind, a.message, a.key, a.step, a.value,
        a.raised_at, a.received_at, a.acked_at, m.name, coalesce(r.hostname, m.agent_host),
        r.id, r.run_id, r.path, coalesce(r.user_alias, r.alias)
     FROM alerts a JOIN runs r ON r.id = a.run JOIN remotes m ON m.id = a.remote";

fn alert_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AlertRow> {
    let remote: String = r.get(10)?;
    let run_id: String = r.get(13)?;
    Ok(AlertRow {
        id: r.get(0)?,
        alert_id: r.get(1)?,
        kind: r.get(2)?,
        message: r.get(3)?,
        key: r.get(4)?,
        step: r.get(5)?,
        value: r.get(6)?,
        raised_at: r.get(7)?,
        received_at: r.get(8)?,
        acked_at: r.get(9)?,
        run_ref: format!("{remote}/{run_id}"),
        remote,
        host: r.get(11)?,
        run: r.get(12)?,
        run_id,
        path: r.get(14)?,
        alias: r.get(15)?,
    })
}

impl Store {
    /// Alerts, newest first: the unacknowledged ones or all, optionally of one run only, at
    /// most `limit`.
    pub fn alerts(
        &self,
        view: AlertView,
        run: Option<i64>,
        limit: usize,
    ) -> Result<Vec<AlertRow>, StoreError> {
        let sql = format!(
            "{SELECT_ALERTS} WHERE (?1 OR a.acked_at IS NULL) AND (?2 IS NULL OR a.run = ?2)
             ORDER BY a.id DESC LIMIT ?3"
        );
        let p = &self.db_path;
        let mut stmt = self.conn.prepare_cached(&sql).at(p)?;
        let rows = stmt
            .query_map(
                params![
                    view == AlertView::All,
                    run,
                    i64::try_from(limit).unwrap_or(i64::MAX)
                ],
                alert_from_row,
            )
            .at(p)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .at(p)?;
        Ok(rows)
    }

    /// The alerts stored after the one with id `after`, oldest first, at most `limit` (what a
    /// live reader has not seen yet).
    pub fn alerts_after(&self, after: i64, limit: usize) -> Result<Vec<AlertRow>, StoreError> {
        let p = &self.db_path;
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "{SELECT_ALERTS} WHERE a.id > ?1 ORDER BY a.id LIMIT ?2"
            ))
            .at(p)?;
        let rows = stmt
            .query_map(
                params![after, i64::try_from(limit).unwrap_or(i64::MAX)],
                alert_from_row,
            )
            .at(p)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .at(p)?;
        Ok(rows)
    }

    /// The alerts with these ids (those that exist), in id order.
    pub fn alerts_by_id(&self, ids: &[i64]) -> Result<Vec<AlertRow>, StoreError> {
        let p = &self.db_path;
        let mut stmt = self
            .conn
            .prepare_cached(&format!("{SELECT_ALERTS} WHERE a.id = ?1"))
            .at(p)?;
        let mut out = Vec::new();
        for id in ids {
            let row = stmt.query_map([id], alert_from_row).at(p)?.next();
            if let Some(row) = row {
                out.push(row.at(p)?);
            }
        }
        Ok(out)
    }

    /// How many alerts are not acknowledged, and the largest alert id (0 without alerts): what
    /// a live reader watches to learn of new alerts.
    pub fn alert_counts(&self) -> Result<(u64, i64), StoreError> {
        self.conn
            .query_row(
                "SELECT count(*) FILTER (WHERE acked_at IS NULL), coalesce(max(id), 0) FROM alerts",
                [],
                |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)),
            )
            .map(|(n, max)| (u64::try_from(n).unwrap_or(0), max))
            .at(&self.db_path)
    }

    /// Acknowledges one alert; `false` when there is no alert with that id. An alert already
    /// acknowledged keeps its time.
    pub fn ack_alert(&mut self, id: i64) -> Result<bool, StoreError> {
        let now = unix_now();
        let p = self.db_path.clone();
        let tx = self.write_tx().at(&p)?;
        let exists = tx
            .execute(
                "UPDATE alerts SET acked_at = coalesce(acked_at, ?2) WHERE id = ?1",
                params![id, now],
            )
            .at(&p)?
            > 0;
        tx.commit().at(&p)?;
        Ok(exists)
    }

    /// Acknowledges every alert not acknowledged yet; returns how many.
    pub fn ack_all_alerts(&mut self) -> Result<u64, StoreError> {
        let now = unix_now();
        let p = self.db_path.clone();
        let tx = self.write_tx().at(&p)?;
        let n = tx
            .execute(
                "UPDATE alerts SET acked_at = ?1 WHERE acked_at IS NULL",
                [now],
            )
            .at(&p)?;
        tx.commit().at(&p)?;
        Ok(n as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::NOTIFY_WITHIN_SECS;
    use crate::testkit::*;
    use crate::*;
    use runicorn_protocol::wire::RunAlert;

    fn alert(id: &str, kind: &str) -> RunAlert {
        RunAlert {
            id: id.into(),
            kind: kind.into(),
            raised_at: crate::sql::unix_now() - 60.0,
            message: format!("{kind} happened"),
            key: None,
            step: Some(7),
            value: None,
        }
    }

    #[test]
    fn an_alert_is_new_once_across_batches_and_acks_stick() {
        let (_tmp, mut store) = fresh_store();
        let r = add_remote(&mut store, "gpu");
        let mut run = run_change("runs/a/1", 1, 0);
        run.alerts = vec![alert("stalled@7", "stalled")];
        let out = store
            .apply_change_batch(r, &change_batch(true, vec![run.clone()], "e", 1, false))
            .unwrap();
        assert_eq!(out.new_alerts.len(), 1);
        // The same alert with every later state, and a batch applied twice: nothing new.
        run.seq = 2;
        for _ in 0..2 {
            let out = store
                .apply_change_batch(r, &change_batch(false, vec![run.clone()], "e", 2, false))
                .unwrap();
            assert_eq!(out.new_alerts, Vec::<i64>::new());
        }
        // A second occurrence is a second alert.
        run.seq = 3;
        run.alerts.push(alert("crashed", "crashed"));
        let out = store
            .apply_change_batch(r, &change_batch(false, vec![run.clone()], "e", 3, false))
            .unwrap();
        assert_eq!(out.new_alerts.len(), 1);
        let listed = store.alerts(AlertView::Unacked, None, 100).unwrap();
        assert_eq!(
            listed
                .iter()
                .map(|a| (a.alert_id.as_str(), a.run_ref.as_str()))
                .collect::<Vec<_>>(),
            [("crashed", "gpu/1"), ("stalled@7", "gpu/1")],
            "newest first"
        );
        assert_eq!(listed[1].message, "stalled happened");
        assert_eq!(listed[1].step, Some(7));
        assert_eq!(store.alert_counts().unwrap(), (2, out.new_alerts[0]));
        assert_eq!(
            store.alerts_by_id(&out.new_alerts).unwrap()[0].kind,
            "crashed"
        );

        assert!(store.ack_alert(listed[1].id).unwrap());
        assert!(!store.ack_alert(9999).unwrap());
        let left = store.alerts(AlertView::Unacked, None, 100).unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(store.alerts(AlertView::All, None, 100).unwrap().len(), 2);
        // An acknowledged alert that arrives again stays acknowledged, and is not new.
        run.seq = 4;
        let out = store
            .apply_change_batch(r, &change_batch(false, vec![run.clone()], "e", 4, false))
            .unwrap();
        assert!(out.new_alerts.is_empty());
        assert_eq!(store.ack_all_alerts().unwrap(), 1);
        assert_eq!(store.alert_counts().unwrap().0, 0);
        assert_eq!(store.ack_all_alerts().unwrap(), 0);
        let run_key = listed[0].run;
        assert_eq!(
            store
                .alerts(AlertView::All, Some(run_key), 1)
                .unwrap()
                .len(),
            1
        );
        assert!(store
            .alerts(AlertView::All, Some(run_key + 1), 10)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn an_old_alert_is_stored_but_not_new() {
        let (_tmp, mut store) = fresh_store();
        let r = add_remote(&mut store, "gpu");
        let mut run = run_change("runs/a/1", 1, 0);
        let mut old = alert("failed", "failed");
        old.raised_at -= 2.0 * NOTIFY_WITHIN_SECS;
        run.alerts = vec![old, alert("nonfinite:loss", "nonfinite")];
        let out = store
            .apply_change_batch(r, &change_batch(true, vec![run], "e", 1, false))
            .unwrap();
        assert_eq!(out.new_alerts.len(), 1);
        assert_eq!(
            store.alerts_by_id(&out.new_alerts).unwrap()[0].kind,
            "nonfinite"
        );
        assert_eq!(store.alert_counts().unwrap().0, 2, "both are listed");
    }

    #[test]
    fn a_forgotten_run_takes_its_alerts_with_it() {
        let (_tmp, mut store) = fresh_store();
        let r = add_remote(&mut store, "gpu");
        let mut run = run_change("runs/a/1", 1, 0);
        run.alerts = vec![alert("failed", "failed")];
        store
            .apply_change_batch(r, &change_batch(true, vec![run], "e", 1, false))
            .unwrap();
        let key = store.run(r, "runs/a/1").unwrap().unwrap().key;
        assert!(store.forget_run(key).unwrap());
        assert_eq!(store.alert_counts().unwrap().0, 0);
    }
}
