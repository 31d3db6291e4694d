//! Remotes: the servers the hub syncs from, their connection state, what their agent said about
//! itself, and the change-feed cursor (stored in the same transaction as each batch, see
//! `changes.rs`). Also how they are managed: paused, renamed, retired (removed by the user with
//! its runs kept) or forgotten (everything the hub holds of it deleted).
//!
//! The follow lease: one process at a time follows a remote (keeps a connection and syncs it
//! live). It holds the lease by writing its name, pid and host in `follower*` and renewing
//! `follower_beat` every [`FOLLOW_HEARTBEAT_SECONDS`]. The lease is free when the heartbeat is
//! older than [`FOLLOW_LEASE_SECONDS`], or at once when the holder ran on this host and its
//! process is gone (a crash). Heartbeats are rare on purpose: every commit wakes the
//! dashboard's change stream, so a follower polls (reads) every [`FOLLOW_BEAT_SECONDS`] and
//! writes only when something changes or its heartbeat is due. Only the lease holder writes
//! `connected`, so a one-off sync beside it never misreports it. A "sync now" request is a time
//! in `sync_requested_at` that the holder notices on its next poll and clears.

use rusqlite::{params, OptionalExtension, Row};
use serde_json::Value;

use runicorn_protocol::wire::Cursor;

use crate::error::{SqliteContext, StoreError};
use crate::ids::RemoteId;
use crate::skipped::SkippedItem;
use crate::sql::{from_sql_int, unix_now};
use crate::store::Store;

/// What the user configured for a remote.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteSpec {
    /// Unique name the user knows the remote by.
    pub name: String,
    /// `user@host:port` or an `~/.ssh/config` alias: the hub's business.
    pub address: String,
    /// Transport settings (the hub's business; stored as JSON).
    pub transport: Value,
}

/// A remote with its state and totals.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteRow {
    pub id: RemoteId,
    pub name: String,
    pub address: String,
    pub transport: Value,
    pub connected: bool,
    /// When the last sync succeeded.
    pub last_sync_at: Option<f64>,
    /// When the last sync ended, successful or not.
    pub last_attempt_at: Option<f64>,
    /// Why the last sync failed; `None` after a success.
    pub last_error: Option<String>,
    pub agent_host: Option<String>,
    pub agent_root: Option<String>,
    pub agent_software: Option<String>,
    pub cursor: Option<Cursor>,
    /// A full listing (reset) began and has not ended yet.
    pub reset_in_progress: bool,
    /// Runs present on the remote (not removed).
    pub runs: u64,
    /// Runs gone from the remote whose data the hub keeps.
    pub removed_runs: u64,
    /// Metric points stored for this remote's runs.
    pub points: u64,
    pub created_at: f64,
    /// Things left out of its sync (skipped run directories and refused answer items).
    pub skipped_items: u64,
    /// Files left out of the manifests of its present runs.
    pub skipped_files: u64,
    /// The first [`SKIPPED_SHOWN`] of the skipped items, with reasons.
    pub skipped: Vec<SkippedItem>,
    /// Removed by the user (its runs kept) since; `None`: not removed.
    pub removed_at: Option<f64>,
    /// Paused by the user: nobody follows it until it is resumed.
    pub paused: bool,
    /// The process holding the follow lease (`ui pid 12 on laptop`), alive or not.
    pub follower: Option<String>,
    /// The lease holder's last heartbeat.
    pub follower_beat: Option<f64>,
    /// The lease holder's pid and host.
    pub follower_pid: Option<i64>,
    pub follower_host: Option<String>,
    /// The last time the hub heard from the remote's agent (a connection or a round).
    pub heard_at: Option<f64>,
    /// A "sync now" asked at this time and not yet picked up by the follower.
    pub sync_requested_at: Option<f64>,
    /// Known only from imported bundles (its stored address, see [`is_imported_address`]).
    pub imported: bool,
}

/// How often a follower looks at the store (remotes added, removed, paused; "sync now").
pub const FOLLOW_BEAT_SECONDS: f64 = 2.0;
/// How often a follower renews its lease (a write).
pub const FOLLOW_HEARTBEAT_SECONDS: f64 = 20.0;
/// A lease whose heartbeat is older than this is free: its process is gone or stuck.
pub const FOLLOW_LEASE_SECONDS: f64 = 60.0;

/// What a remote's runs are to the user right now (`remote_state` in docs/api.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoteState {
    /// A live process follows it and holds a connection.
    Live,
    /// A live process follows it but has no connection (it retries).
    Offline,
    /// Paused by the user.
    Paused,
    /// Nobody follows it (no `ui` or `connect` runs for it).
    NotFollowed,
    /// Known only from imported bundles (see [`is_imported_address`]): there is nothing to
    /// follow, and its last-heard time is the newest bundle's creation time.
    Imported,
    /// Removed by the user; the hub kept its runs.
    Removed,
}

impl RemoteState {
    /// Every state, as the API writes them.
    pub const ALL: [RemoteState; 6] = [
        RemoteState::Live,
        RemoteState::Offline,
        RemoteState::Paused,
        RemoteState::NotFollowed,
        RemoteState::Imported,
        RemoteState::Removed,
    ];

    /// Judges a remote from its stored columns (`followed`: see [`Lease::is_alive`];
    /// `imported`: see [`is_imported_address`]).
    pub fn of(
        removed: bool,
        paused: bool,
        connected: bool,
        followed: bool,
        imported: bool,
    ) -> RemoteState {
        if removed {
            RemoteState::Removed
        } else if paused {
            RemoteState::Paused
        } else if imported {
            RemoteState::Imported
        } else if !followed {
            RemoteState::NotFollowed
        } else if connected {
            RemoteState::Live
        } else {
            RemoteState::Offline
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RemoteState::Live => "live",
            RemoteState::Offline => "offline",
            RemoteState::Paused => "paused",
            RemoteState::NotFollowed => "not_followed",
            RemoteState::Imported => "imported",
            RemoteState::Removed => "removed",
        }
    }
}

/// The `kind` of the stored address (the `transport` JSON the hub writes) of a remote known only
/// from imported bundles: the hub's `RemoteAddress::Offline`.
pub const IMPORTED_ADDRESS_KIND: &str = "offline";

/// Whether a remote whose stored address has this `kind` is known only from imported bundles.
/// The one rule: [`RemoteRow::state`] and [`crate::RunRow::remote_state`] both ask it, and
/// `connect` of the same name, which stores an SSH or local address, ends it.
pub fn is_imported_address(kind: Option<&str>) -> bool {
    kind == Some(IMPORTED_ADDRESS_KIND)
}

/// SQL giving the `kind` of the stored address of the remote aliased `$alias` as text, or NULL
/// (a transport that is not a JSON object with a text `kind`): fed to [`is_imported_address`].
macro_rules! address_kind_sql {
    ($alias:literal) => {
        concat!(
            "CASE WHEN json_valid(",
            $alias,
            ".transport) AND json_type(",
            $alias,
            ".transport, '$.kind') = 'text' THEN json_extract(",
            $alias,
            ".transport, '$.kind') END"
        )
    };
}
pub(crate) use address_kind_sql;

/// A follow lease as stored: who holds it and their last heartbeat.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lease<'a> {
    pub beat: Option<f64>,
    pub pid: Option<i64>,
    pub host: Option<&'a str>,
}

impl Lease<'_> {
    /// Whether its holder still follows at `now`: a heartbeat within
    /// [`FOLLOW_LEASE_SECONDS`], and, when the holder ran on this host, its process alive.
    pub fn is_alive(&self, now: f64) -> bool {
        let Some(beat) = self.beat else {
            return false;
        };
        if now - beat >= FOLLOW_LEASE_SECONDS {
            return false;
        }
        match (self.pid, self.host) {
            (Some(pid), Some(host)) if host == this_host() => process_exists(pid),
            _ => true,
        }
    }
}

/// This machine's host name, as leases record it.
pub fn this_host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "this machine".to_owned())
}

/// Whether a process with this pid runs (where `/proc` tells; elsewhere it is assumed, and the
/// heartbeat decides). A zombie (dead, not yet reaped by its parent) does not run.
fn process_exists(pid: i64) -> bool {
    let proc = std::path::Path::new("/proc");
    if !proc.join("self").exists() {
        return true;
    }
    match std::fs::read_to_string(proc.join(pid.to_string()).join("stat")) {
        // "pid (comm) state …"; comm may hold spaces and parentheses.
        Ok(stat) => stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Whether `name` may name a remote: 1-64 ASCII letters, digits, `-`, `_` or `.` (it appears in
/// run references `REMOTE/RUN_ID` and on command lines).
pub fn valid_remote_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// What [`Store::rename_remote`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RenameOutcome {
    Renamed,
    /// No remote has the old name.
    Unknown,
    /// Another remote already has the new name.
    NameTaken,
}

/// Skipped items a [`RemoteRow`] carries (the count covers them all).
pub const SKIPPED_SHOWN: usize = 20;

impl RemoteRow {
    /// A warning for a remote whose sync left something out (it is not an error: the rest is
    /// stored), e.g. `2 runs or answers and 3 files could not be synced`.
    pub fn skipped_warning(&self) -> Option<String> {
        if self.skipped_items == 0 && self.skipped_files == 0 {
            return None;
        }
        let plural =
            |n: u64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        let mut parts = Vec::new();
        if self.skipped_items > 0 {
            parts.push(plural(self.skipped_items, "item", "items"));
        }
        if self.skipped_files > 0 {
            parts.push(plural(self.skipped_files, "file", "files"));
        }
        Some(format!(
            "{} could not be synced (the rest is stored)",
            parts.join(" and ")
        ))
    }

    /// Its state at `now` (see [`RemoteState::of`]).
    pub fn state(&self, now: f64) -> RemoteState {
        RemoteState::of(
            self.removed_at.is_some(),
            self.paused,
            self.connected,
            self.lease().is_alive(now),
            self.imported,
        )
    }

    /// Its follow lease.
    pub fn lease(&self) -> Lease<'_> {
        Lease {
            beat: self.follower_beat,
            pid: self.follower_pid,
            host: self.follower_host.as_deref(),
        }
    }

    /// The process following it at `now`, if it is alive.
    pub fn live_follower(&self, now: f64) -> Option<&str> {
        self.follower
            .as_deref()
            .filter(|_| self.lease().is_alive(now))
    }
}

const REMOTE_COLUMNS: &str = concat!(
    "r.id, r.name, r.address, r.transport, r.connected, r.last_sync_at,
    r.last_attempt_at, r.last_error, r.agent_host, r.agent_root, r.agent_software,
    r.cursor_epoch, r.cursor_seq, r.reset_open, r.created_at,
    (SELECT count(*) FROM runs WHERE remote = r.id AND removed = 0),
    (SELECT count(*) FROM runs WHERE remote = r.id AND removed = 1),
    (SELECT coalesce(sum(stored_points), 0) FROM runs WHERE remote = r.id),
    (SELECT count(*) FROM skipped WHERE remote = r.id),
    (SELECT coalesce(sum(skipped_files), 0) FROM runs
        WHERE remote = r.id AND removed = 0 AND skipped_files > 0),
    r.removed_at, r.paused, r.follower, r.follower_beat, r.heard_at, r.sync_requested_at,
    r.follower_pid, r.follower_host, ",
    address_kind_sql!("r")
);

fn remote_row(row: &Row) -> rusqlite::Result<RemoteRow> {
    let transport: String = row.get(3)?;
    let epoch: Option<String> = row.get(11)?;
    let seq: Option<i64> = row.get(12)?;
    Ok(RemoteRow {
        id: RemoteId(row.get(0)?),
        name: row.get(1)?,
        address: row.get(2)?,
        transport: serde_json::from_str(&transport).unwrap_or(Value::Null),
        connected: row.get(4)?,
        last_sync_at: row.get(5)?,
        last_attempt_at: row.get(6)?,
        last_error: row.get(7)?,
        agent_host: row.get(8)?,
        agent_root: row.get(9)?,
        agent_software: row.get(10)?,
        cursor: epoch.zip(seq).map(|(epoch, seq)| Cursor {
            epoch,
            seq: from_sql_int(seq),
        }),
        reset_in_progress: row.get(13)?,
        created_at: row.get(14)?,
        runs: from_sql_int(row.get(15)?),
        removed_runs: from_sql_int(row.get(16)?),
        points: from_sql_int(row.get(17)?),
        skipped_items: from_sql_int(row.get(18)?),
        skipped_files: from_sql_int(row.get(19)?),
        skipped: Vec::new(),
        removed_at: row.get(20)?,
        paused: row.get(21)?,
        follower: row.get(22)?,
        follower_beat: row.get(23)?,
        heard_at: row.get(24)?,
        sync_requested_at: row.get(25)?,
        follower_pid: row.get(26)?,
        follower_host: row.get(27)?,
        imported: is_imported_address(row.get::<_, Option<String>>(28)?.as_deref()),
    })
}

impl Store {
    /// Adds a remote, or updates the address and transport of the one with this name (which
    /// brings it back when it was removed or paused: adding it again asks to follow it).
    pub fn upsert_remote(&mut self, spec: &RemoteSpec) -> Result<RemoteId, StoreError> {
        let id = self
            .conn
            .query_row(
                "INSERT INTO remotes(name, address, transport, created_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(name) DO UPDATE SET address = excluded.address,
                    transport = excluded.transport, removed_at = NULL, paused = 0
                 RETURNING id",
                params![
                    spec.name,
                    spec.address,
                    spec.transport.to_string(),
                    unix_now()
                ],
                |r| r.get(0),
            )
            .at(&self.db_path)?;
        Ok(RemoteId(id))
    }

    /// The remote with this name.
    pub fn remote(&self, name: &str) -> Result<Option<RemoteRow>, StoreError> {
        let row = self
            .conn
            .query_row(
                &format!("SELECT {REMOTE_COLUMNS} FROM remotes r WHERE r.name = ?1"),
                [name],
                remote_row,
            )
            .optional()
            .at(&self.db_path)?;
        row.map(|r| self.with_skipped(r)).transpose()
    }

    /// The remote with this id.
    pub fn remote_by_id(&self, id: RemoteId) -> Result<Option<RemoteRow>, StoreError> {
        let row = self
            .conn
            .query_row(
                &format!("SELECT {REMOTE_COLUMNS} FROM remotes r WHERE r.id = ?1"),
                [id.0],
                remote_row,
            )
            .optional()
            .at(&self.db_path)?;
        row.map(|r| self.with_skipped(r)).transpose()
    }

    /// Fills in the first skipped items (only remotes that have some cost a query).
    fn with_skipped(&self, mut row: RemoteRow) -> Result<RemoteRow, StoreError> {
        if row.skipped_items > 0 {
            row.skipped = self.skipped(row.id, SKIPPED_SHOWN)?;
        }
        Ok(row)
    }

    /// Every remote, by name.
    pub fn remotes(&self) -> Result<Vec<RemoteRow>, StoreError> {
        let p = &self.db_path;
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT {REMOTE_COLUMNS} FROM remotes r ORDER BY r.name"
            ))
            .at(p)?;
        let rows = stmt.query_map([], remote_row).at(p)?;
        let rows = rows.collect::<Result<Vec<_>, _>>().at(p)?;
        rows.into_iter().map(|r| self.with_skipped(r)).collect()
    }

    fn update_remote(
        &mut self,
        id: RemoteId,
        sql: &str,
        params: &[&dyn rusqlite::ToSql],
    ) -> Result<(), StoreError> {
        let changed = self.conn.execute(sql, params).at(&self.db_path)?;
        if changed == 0 {
            return Err(StoreError::UnknownRemote {
                path: self.db_path.clone(),
                id: id.0,
            });
        }
        Ok(())
    }

    /// Records whether the hub holds a connection to the remote now (a new connection is also
    /// hearing from it). Only the lease holder calls this.
    pub fn set_remote_connected(
        &mut self,
        id: RemoteId,
        connected: bool,
    ) -> Result<(), StoreError> {
        self.update_remote(
            id,
            "UPDATE remotes SET connected = ?2,
                heard_at = CASE WHEN ?2 THEN ?3 ELSE heard_at END
             WHERE id = ?1",
            params![id.0, connected, unix_now()],
        )
    }

    /// Records, for the holder `me` of the remote's follow lease, whether it holds a connection
    /// now (a new connection is also hearing from it). Nothing changes when `me` does not hold
    /// the lease (anymore): the holder's state stands.
    pub fn set_follower_connected(
        &mut self,
        id: RemoteId,
        me: &str,
        connected: bool,
    ) -> Result<(), StoreError> {
        self.conn
            .execute(
                "UPDATE remotes SET connected = ?3,
                    heard_at = CASE WHEN ?3 THEN ?4 ELSE heard_at END
                 WHERE id = ?1 AND follower = ?2",
                params![id.0, me, connected, unix_now()],
            )
            .at(&self.db_path)?;
        Ok(())
    }

    /// Records the end of a sync at `at` (seconds since the epoch): a success when `error` is
    /// `None`, else a failure with its message (the last success time is kept).
    pub fn record_sync(
        &mut self,
        id: RemoteId,
        at: f64,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        self.update_remote(
            id,
            "UPDATE remotes SET last_attempt_at = ?2, last_error = ?3,
                last_sync_at = CASE WHEN ?3 IS NULL THEN ?2 ELSE last_sync_at END,
                heard_at = CASE WHEN ?3 IS NULL THEN ?2 ELSE heard_at END
             WHERE id = ?1",
            params![id.0, at, error],
        )
    }

    /// Records news of a remote that came another way than its link (an imported bundle written
    /// there at `at`): the remote was heard from then, if that is later than what is known; its
    /// agent's host and root are filled in where the store has none.
    pub fn note_heard_from_bundle(
        &mut self,
        id: RemoteId,
        at: Option<f64>,
        host: Option<&str>,
        root: Option<&str>,
    ) -> Result<(), StoreError> {
        self.update_remote(
            id,
            "UPDATE remotes SET
                heard_at = CASE WHEN ?2 IS NOT NULL AND ?2 > coalesce(heard_at, 0) THEN ?2
                    ELSE heard_at END,
                agent_host = coalesce(agent_host, ?3), agent_root = coalesce(agent_root, ?4)
             WHERE id = ?1",
            params![id.0, at, host, root],
        )
    }

    /// Records what the remote's agent said about itself in its `hello`.
    pub fn set_agent_info(
        &mut self,
        id: RemoteId,
        host: Option<&str>,
        root: Option<&str>,
        software: &str,
    ) -> Result<(), StoreError> {
        self.update_remote(
            id,
            "UPDATE remotes SET agent_host = ?2, agent_root = ?3, agent_software = ?4 WHERE id = ?1",
            params![id.0, host, root, software],
        )
    }

    /// Where the remote's change feed resumes; `None`: ask for a full listing.
    pub fn cursor(&self, id: RemoteId) -> Result<Option<Cursor>, StoreError> {
        let row: Option<(Option<String>, Option<i64>)> = self
            .conn
            .query_row(
                "SELECT cursor_epoch, cursor_seq FROM remotes WHERE id = ?1",
                [id.0],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .at(&self.db_path)?;
        let (epoch, seq) = row.ok_or(StoreError::UnknownRemote {
            path: self.db_path.clone(),
            id: id.0,
        })?;
        Ok(epoch.zip(seq).map(|(epoch, seq)| Cursor {
            epoch,
            seq: from_sql_int(seq),
        }))
    }

    /// Forgets the cursor, so the next sync asks for a full listing (which also finds runs
    /// that vanished while nobody watched). Stored data is kept.
    pub fn forget_cursor(&mut self, id: RemoteId) -> Result<(), StoreError> {
        self.update_remote(
            id,
            "UPDATE remotes SET cursor_epoch = NULL, cursor_seq = NULL WHERE id = ?1",
            params![id.0],
        )
    }

    /// Marks a remote removed by the user at `at`, keeping its runs (shown as from a removed
    /// remote); its follower lets it go on its next heartbeat. Returns whether it existed.
    pub fn retire_remote(&mut self, name: &str, at: f64) -> Result<bool, StoreError> {
        let changed = self
            .conn
            .execute(
                "UPDATE remotes SET removed_at = coalesce(removed_at, ?2), sync_requested_at = NULL
                 WHERE name = ?1",
                params![name, at],
            )
            .at(&self.db_path)?;
        Ok(changed > 0)
    }

    /// Pauses (nobody follows it) or resumes a remote that is not removed. Returns whether
    /// such a remote exists.
    pub fn set_remote_paused(&mut self, name: &str, paused: bool) -> Result<bool, StoreError> {
        let changed = self
            .conn
            .execute(
                "UPDATE remotes SET paused = ?2 WHERE name = ?1 AND removed_at IS NULL",
                params![name, paused],
            )
            .at(&self.db_path)?;
        Ok(changed > 0)
    }

    /// Renames a remote (its runs follow: they refer to it by id).
    pub fn rename_remote(&mut self, old: &str, new: &str) -> Result<RenameOutcome, StoreError> {
        let p = self.db_path.clone();
        let tx = self.write_tx().at(&p)?;
        let taken: bool = tx
            .query_row(
                "SELECT EXISTS(SELECT 1 FROM remotes WHERE name = ?1)",
                [new],
                |r| r.get(0),
            )
            .at(&p)?;
        if taken && old != new {
            return Ok(RenameOutcome::NameTaken);
        }
        let changed = tx
            .execute(
                "UPDATE remotes SET name = ?2 WHERE name = ?1",
                params![old, new],
            )
            .at(&p)?;
        tx.commit().at(&p)?;
        Ok(if changed > 0 {
            RenameOutcome::Renamed
        } else {
            RenameOutcome::Unknown
        })
    }

    /// Takes the follow lease of a remote for `me` (this process) at `now` when it is free (no
    /// live holder, see [`Lease::is_alive`]) and the remote is neither removed nor paused.
    /// Returns whether `me` holds it now.
    pub fn claim_follow(&mut self, id: RemoteId, me: &str, now: f64) -> Result<bool, StoreError> {
        let p = self.db_path.clone();
        // Immediate: two processes claiming at once wait for each other instead of failing to
        // upgrade a read transaction. A transaction that writes nothing changes nothing.
        let tx = self.write_tx().at(&p)?;
        type Holder = (Option<String>, Option<f64>, Option<i64>, Option<String>);
        let holder: Option<Holder> = tx
            .query_row(
                "SELECT follower, follower_beat, follower_pid, follower_host FROM remotes
                 WHERE id = ?1 AND removed_at IS NULL AND paused = 0",
                [id.0],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()
            .at(&p)?;
        let Some((follower, beat, pid, host)) = holder else {
            return Ok(false);
        };
        let lease = Lease {
            beat,
            pid,
            host: host.as_deref(),
        };
        let ours = follower.as_deref() == Some(me);
        if follower.is_some() && !ours && lease.is_alive(now) {
            return Ok(false);
        }
        if ours && lease.is_alive(now) {
            return Ok(true);
        }
        // Taken over: the old holder's word on the connection is void.
        tx.execute(
            "UPDATE remotes SET follower = ?2, follower_beat = ?3, follower_pid = ?4,
                follower_host = ?5, connected = CASE WHEN follower IS ?2 THEN connected ELSE 0 END
             WHERE id = ?1",
            params![id.0, me, now, i64::from(std::process::id()), this_host()],
        )
        .at(&p)?;
        tx.commit().at(&p)?;
        Ok(true)
    }

    /// Renews every lease `me` holds at `now` when its heartbeat is due; returns the remotes it
    /// still holds (neither removed nor paused: those it gives up here) and whether each has a
    /// "sync now" request, which is cleared. Writes nothing when nothing is due.
    pub fn beat_follows(
        &mut self,
        me: &str,
        now: f64,
    ) -> Result<Vec<(RemoteId, bool)>, StoreError> {
        let p = self.db_path.clone();
        // Immediate: two processes claiming at once wait for each other instead of failing to
        // upgrade a read transaction. A transaction that writes nothing changes nothing.
        let tx = self.write_tx().at(&p)?;
        tx.execute(
            "UPDATE remotes SET follower = NULL, follower_beat = NULL, follower_pid = NULL,
                follower_host = NULL, connected = 0
             WHERE follower = ?1 AND (removed_at IS NOT NULL OR paused = 1)",
            [me],
        )
        .at(&p)?;
        let held = {
            let mut stmt = tx
                .prepare(
                    "SELECT id, sync_requested_at IS NOT NULL FROM remotes WHERE follower = ?1",
                )
                .at(&p)?;
            let rows = stmt
                .query_map([me], |r| Ok((RemoteId(r.get(0)?), r.get(1)?)))
                .at(&p)?;
            rows.collect::<Result<Vec<_>, _>>().at(&p)?
        };
        // Writes only what is due: a commit wakes every dashboard's change stream.
        if held.iter().any(|(_, requested)| *requested) {
            tx.execute(
                "UPDATE remotes SET sync_requested_at = NULL
                 WHERE follower = ?1 AND sync_requested_at IS NOT NULL",
                [me],
            )
            .at(&p)?;
        }
        tx.execute(
            "UPDATE remotes SET follower_beat = ?2
             WHERE follower = ?1 AND follower_beat <= ?2 - ?3",
            params![me, now, FOLLOW_HEARTBEAT_SECONDS],
        )
        .at(&p)?;
        tx.commit().at(&p)?;
        Ok(held)
    }

    /// Gives up `me`'s lease of a remote (a stopping follower): nobody follows it, and it is
    /// not connected.
    pub fn release_follow(&mut self, id: RemoteId, me: &str) -> Result<(), StoreError> {
        self.conn
            .execute(
                "UPDATE remotes SET follower = NULL, follower_beat = NULL, follower_pid = NULL,
                    follower_host = NULL, connected = 0
                 WHERE id = ?1 AND follower = ?2",
                params![id.0, me],
            )
            .at(&self.db_path)?;
        Ok(())
    }

    /// Asks the follower of a remote to sync it now (or to retry at once when it waits to
    /// reconnect). Returns whether the remote exists and is not removed.
    pub fn request_sync(&mut self, name: &str, at: f64) -> Result<bool, StoreError> {
        let changed = self
            .conn
            .execute(
                "UPDATE remotes SET sync_requested_at = ?2 WHERE name = ?1 AND removed_at IS NULL",
                params![name, at],
            )
            .at(&self.db_path)?;
        Ok(changed > 0)
    }

    /// Removes a remote and everything stored of its runs. Returns whether it existed.
    /// Cached file contents stay in `files/` (they are shared by hash).
    pub fn remove_remote(&mut self, name: &str) -> Result<bool, StoreError> {
        let p = self.db_path.clone();
        let tx = self.write_tx().at(&p)?;
        // `points` has no foreign key (see schema.rs): delete them explicitly.
        tx.execute(
            "DELETE FROM points WHERE run IN
                (SELECT runs.id FROM runs JOIN remotes ON remotes.id = runs.remote
                 WHERE remotes.name = ?1)",
            [name],
        )
        .at(&p)?;
        let removed = tx
            .execute("DELETE FROM remotes WHERE name = ?1", [name])
            .at(&p)?;
        tx.commit().at(&p)?;
        Ok(removed > 0)
    }
}

#[cfg(test)]
mod tests {
    use crate::testkit::*;
    use crate::*;

    #[test]
    fn a_bundle_tells_when_its_remote_was_heard_from_without_going_back_in_time() {
        let (_tmp, mut store) = fresh_store();
        let id = add_remote(&mut store, "gpu");
        store
            .note_heard_from_bundle(id, Some(500.0), Some("gpu.lab"), Some("/data"))
            .unwrap();
        let row = store.remote("gpu").unwrap().unwrap();
        assert_eq!(row.heard_at, Some(500.0));
        assert_eq!(row.agent_host.as_deref(), Some("gpu.lab"));
        // An older bundle moves nothing back; what the agent said itself stays.
        store
            .set_agent_info(id, Some("gpu-1"), Some("/srv"), "agent")
            .unwrap();
        store
            .note_heard_from_bundle(id, Some(100.0), Some("elsewhere"), None)
            .unwrap();
        let row = store.remote("gpu").unwrap().unwrap();
        assert_eq!(row.heard_at, Some(500.0));
        assert_eq!(row.agent_host.as_deref(), Some("gpu-1"));
        assert_eq!(row.agent_root.as_deref(), Some("/srv"));
    }

    #[test]
    fn a_remote_known_only_from_bundles_is_imported_until_connect_takes_its_name() {
        let (_tmp, mut store) = fresh_store();
        let offline = serde_json::json!({"kind": IMPORTED_ADDRESS_KIND, "host": "gpu.lab"});
        let gpu = store
            .upsert_remote(&RemoteSpec {
                name: "gpu".into(),
                address: "imported from gpu.lab".into(),
                transport: offline,
            })
            .unwrap();
        store
            .apply_change_batch(
                gpu,
                &change_batch(true, vec![run_change("runs/x/1", 1, 30)], "e", 1, false),
            )
            .unwrap();
        store
            .note_heard_from_bundle(gpu, Some(500.0), Some("gpu.lab"), None)
            .unwrap();
        let now = 1000.0;
        let row = store.remote("gpu").unwrap().unwrap();
        assert!(row.imported);
        assert_eq!(row.state(now), RemoteState::Imported);
        assert_eq!(row.state(now).as_str(), "imported");
        assert_eq!(row.heard_at, Some(500.0));
        let run = &store.list_runs(&RunFilter::default()).unwrap()[0];
        assert_eq!(run.remote_state(now), RemoteState::Imported);
        // What the user did says more than where the runs came from.
        assert!(store.set_remote_paused("gpu", true).unwrap());
        assert_eq!(
            store.remote("gpu").unwrap().unwrap().state(now),
            RemoteState::Paused
        );
        assert!(store.retire_remote("gpu", now).unwrap());
        assert_eq!(
            store.remote("gpu").unwrap().unwrap().state(now),
            RemoteState::Removed
        );

        // `connect` of the name stores a reachable address: followed as any other remote.
        store
            .upsert_remote(&RemoteSpec {
                name: "gpu".into(),
                address: "me@gpu.lab".into(),
                transport: serde_json::json!({"kind": "ssh", "target": "me@gpu.lab"}),
            })
            .unwrap();
        let row = store.remote("gpu").unwrap().unwrap();
        assert!(!row.imported);
        assert_eq!(row.state(now), RemoteState::NotFollowed);
        assert!(store.claim_follow(gpu, "connect pid 2", now).unwrap());
        assert_eq!(
            store.remote("gpu").unwrap().unwrap().state(now),
            RemoteState::Offline
        );
        store
            .set_follower_connected(gpu, "connect pid 2", true)
            .unwrap();
        assert_eq!(
            store.remote("gpu").unwrap().unwrap().state(now),
            RemoteState::Live
        );
        let run = &store.list_runs(&RunFilter::default()).unwrap()[0];
        assert_eq!(run.remote_state(now), RemoteState::Live);
    }

    #[test]
    fn a_stored_address_that_is_not_json_or_has_no_text_kind_is_not_imported() {
        let (_tmp, mut store) = fresh_store();
        let gpu = add_remote(&mut store, "gpu");
        store
            .apply_change_batch(
                gpu,
                &change_batch(true, vec![run_change("runs/x/1", 1, 30)], "e", 1, false),
            )
            .unwrap();
        for transport in [
            "not json",
            r#"{"kind": 7}"#,
            "[1, 2]",
            r#"{"kind": "local"}"#,
        ] {
            store
                .conn
                .execute("UPDATE remotes SET transport = ?1", [transport])
                .unwrap();
            let row = store.remote("gpu").unwrap().unwrap();
            assert_eq!(row.state(10.0), RemoteState::NotFollowed, "{transport}");
            let runs = store.list_runs(&RunFilter::default()).unwrap();
            assert_eq!(runs[0].remote_state(10.0), RemoteState::NotFollowed);
        }
        assert!(!is_imported_address(None) && !is_imported_address(Some("ssh")));
    }

    #[test]
    fn remotes_are_upserted_by_name_and_record_their_state() {
        let (_tmp, mut store) = fresh_store();
        let spec = RemoteSpec {
            name: "gpu1".into(),
            address: "me@gpu1".into(),
            transport: serde_json::json!({"port": 22}),
        };
        let id = store.upsert_remote(&spec).unwrap();
        let again = store
            .upsert_remote(&RemoteSpec {
                address: "me@gpu1.lab".into(),
                ..spec.clone()
            })
            .unwrap();
        assert_eq!(id, again);
        store.set_remote_connected(id, true).unwrap();
        store
            .set_agent_info(
                id,
                Some("gpu1"),
                Some("/data/runicorn"),
                "runicorn-agent/0.1.0",
            )
            .unwrap();
        store.record_sync(id, 100.0, None).unwrap();
        store
            .record_sync(id, 200.0, Some("connection reset"))
            .unwrap();
        let row = store.remote("gpu1").unwrap().unwrap();
        assert_eq!(row.address, "me@gpu1.lab");
        assert_eq!(row.transport["port"], 22);
        assert!(row.connected);
        assert_eq!(row.last_sync_at, Some(100.0));
        assert_eq!(row.last_attempt_at, Some(200.0));
        assert_eq!(row.last_error.as_deref(), Some("connection reset"));
        assert_eq!(row.agent_root.as_deref(), Some("/data/runicorn"));
        assert_eq!(row.cursor, None);
        assert_eq!(store.remotes().unwrap().len(), 1);
        assert!(matches!(
            store.set_remote_connected(RemoteId(999), true),
            Err(StoreError::UnknownRemote { id: 999, .. })
        ));
    }

    #[test]
    fn one_process_at_a_time_holds_the_follow_lease() {
        let (_tmp, mut store) = fresh_store();
        let gpu = add_remote(&mut store, "gpu1");
        let at = 1000.0;
        assert!(store.claim_follow(gpu, "ui pid 1", at).unwrap());
        // Another process cannot take a live lease; the holder keeps it.
        assert!(!store.claim_follow(gpu, "connect pid 2", at + 1.0).unwrap());
        assert!(store.claim_follow(gpu, "ui pid 1", at + 1.0).unwrap());
        store.set_follower_connected(gpu, "ui pid 1", true).unwrap();
        // Only the holder writes the connection state.
        store
            .set_follower_connected(gpu, "connect pid 2", false)
            .unwrap();
        let row = store.remote("gpu1").unwrap().unwrap();
        assert!(row.connected);
        assert_eq!(row.live_follower(at + 2.0), Some("ui pid 1"));
        assert_eq!(row.state(at + 2.0), RemoteState::Live);
        assert_eq!(row.follower_pid, Some(i64::from(std::process::id())));
        assert!(row.heard_at.is_some());
        // A heartbeat is written only when due, and keeps the lease; a stale one frees it for
        // another process, which starts out disconnected (the old holder's word is void).
        assert_eq!(
            store.beat_follows("ui pid 1", at + 5.0).unwrap(),
            vec![(gpu, false)]
        );
        let beat = |s: &Store| s.remote("gpu1").unwrap().unwrap().follower_beat;
        assert_eq!(beat(&store), Some(at));
        store.beat_follows("ui pid 1", at + 30.0).unwrap();
        assert_eq!(beat(&store), Some(at + 30.0));
        let late = at + 30.0 + FOLLOW_LEASE_SECONDS;
        assert!(!store
            .claim_follow(gpu, "connect pid 2", late - 1.0)
            .unwrap());
        let row = store.remote("gpu1").unwrap().unwrap();
        assert_eq!(row.state(late), RemoteState::NotFollowed);
        assert!(store.claim_follow(gpu, "connect pid 2", late).unwrap());
        let row = store.remote("gpu1").unwrap().unwrap();
        assert!(!row.connected);
        assert_eq!(row.state(late), RemoteState::Offline);
        assert!(store.beat_follows("ui pid 1", late).unwrap().is_empty());
        // Releasing frees it at once.
        store.release_follow(gpu, "connect pid 2").unwrap();
        assert_eq!(store.remote("gpu1").unwrap().unwrap().follower, None);
    }

    #[test]
    fn a_holder_on_this_host_whose_process_is_gone_frees_the_lease_at_once() {
        let (_tmp, mut store) = fresh_store();
        let gpu = add_remote(&mut store, "gpu1");
        assert!(store.claim_follow(gpu, "ui pid 1", 10.0).unwrap());
        // A pid above the kernel's limit never exists.
        store
            .conn
            .execute("UPDATE remotes SET follower_pid = 99999999", [])
            .unwrap();
        let row = store.remote("gpu1").unwrap().unwrap();
        assert_eq!(row.state(11.0), RemoteState::NotFollowed);
        assert!(store.claim_follow(gpu, "connect pid 2", 11.0).unwrap());
        // Another host's holder is judged by its heartbeat alone.
        store
            .conn
            .execute(
                "UPDATE remotes SET follower_pid = 99999999, follower_host = 'elsewhere'",
                [],
            )
            .unwrap();
        let row = store.remote("gpu1").unwrap().unwrap();
        assert_eq!(row.live_follower(12.0), Some("connect pid 2"));
    }

    #[test]
    fn a_poll_with_nothing_due_writes_nothing() {
        let (_tmp, mut store) = fresh_store();
        let gpu = add_remote(&mut store, "gpu1");
        assert!(store.claim_follow(gpu, "ui", 10.0).unwrap());
        let other = Store::open(store.dir()).unwrap();
        let version = other.data_version().unwrap();
        for t in [11.0, 13.0, 15.0] {
            assert_eq!(store.beat_follows("ui", t).unwrap(), vec![(gpu, false)]);
            assert!(store.claim_follow(gpu, "ui", t).unwrap());
            assert!(!store.claim_follow(gpu, "other", t).unwrap());
        }
        assert_eq!(other.data_version().unwrap(), version);
        store.request_sync("gpu1", 16.0).unwrap();
        assert_ne!(other.data_version().unwrap(), version);
    }

    #[test]
    fn sync_requests_reach_the_holder_once() {
        let (_tmp, mut store) = fresh_store();
        let gpu = add_remote(&mut store, "gpu1");
        assert!(store.claim_follow(gpu, "ui", 10.0).unwrap());
        assert!(store.request_sync("gpu1", 11.0).unwrap());
        assert!(!store.request_sync("nope", 11.0).unwrap());
        assert_eq!(
            store.remote("gpu1").unwrap().unwrap().sync_requested_at,
            Some(11.0)
        );
        assert_eq!(store.beat_follows("ui", 12.0).unwrap(), vec![(gpu, true)]);
        assert_eq!(store.beat_follows("ui", 13.0).unwrap(), vec![(gpu, false)]);
    }

    #[test]
    fn paused_and_removed_remotes_are_let_go_and_cannot_be_claimed() {
        let (_tmp, mut store) = fresh_store();
        let gpu = add_remote(&mut store, "gpu1");
        assert!(store.claim_follow(gpu, "ui", 10.0).unwrap());
        assert!(store.set_remote_paused("gpu1", true).unwrap());
        assert!(store.beat_follows("ui", 11.0).unwrap().is_empty());
        assert!(!store.claim_follow(gpu, "ui", 11.0).unwrap());
        let row = store.remote("gpu1").unwrap().unwrap();
        assert_eq!((row.state(11.0), row.follower), (RemoteState::Paused, None));
        assert!(store.set_remote_paused("gpu1", false).unwrap());
        assert!(store.claim_follow(gpu, "ui", 12.0).unwrap());

        // Removed: runs kept, marked; not claimable; pausing it is refused; connecting it
        // again (an upsert) brings it back.
        store
            .apply_change_batch(
                gpu,
                &change_batch(true, vec![run_change("runs/x/1", 1, 30)], "e", 1, false),
            )
            .unwrap();
        assert!(store.retire_remote("gpu1", 13.0).unwrap());
        assert!(!store.retire_remote("nope", 13.0).unwrap());
        assert!(store.beat_follows("ui", 14.0).unwrap().is_empty());
        assert!(!store.claim_follow(gpu, "ui", 14.0).unwrap());
        assert!(!store.set_remote_paused("gpu1", true).unwrap());
        let runs = store.list_runs(&RunFilter::default()).unwrap();
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].remote_state(14.0), RemoteState::Removed);
        let row = store.remote("gpu1").unwrap().unwrap();
        assert_eq!(row.removed_at, Some(13.0));
        store
            .upsert_remote(&RemoteSpec {
                name: "gpu1".into(),
                address: "me@gpu1".into(),
                transport: serde_json::json!({}),
            })
            .unwrap();
        let row = store.remote("gpu1").unwrap().unwrap();
        assert_eq!((row.removed_at, row.paused), (None, false));
        assert_eq!(row.state(15.0), RemoteState::NotFollowed);
    }

    #[test]
    fn renaming_keeps_the_runs_and_refuses_a_taken_name() {
        let (_tmp, mut store) = fresh_store();
        let a = add_remote(&mut store, "a");
        add_remote(&mut store, "b");
        store
            .apply_change_batch(
                a,
                &change_batch(true, vec![run_change("runs/x/1", 1, 30)], "e", 1, false),
            )
            .unwrap();
        assert_eq!(
            store.rename_remote("a", "b").unwrap(),
            RenameOutcome::NameTaken
        );
        assert_eq!(
            store.rename_remote("zz", "c").unwrap(),
            RenameOutcome::Unknown
        );
        assert_eq!(
            store.rename_remote("a", "c").unwrap(),
            RenameOutcome::Renamed
        );
        let runs = store.list_runs(&RunFilter::default()).unwrap();
        assert_eq!(runs[0].remote, "c");
        assert!(store.remote("a").unwrap().is_none());
        assert!(valid_remote_name("gpu-1.lab_2"));
        assert!(!valid_remote_name("a/b") && !valid_remote_name("") && !valid_remote_name("é"));
    }

    #[test]
    fn removing_a_remote_removes_its_runs_and_points() {
        let (_tmp, mut store) = fresh_store();
        let a = add_remote(&mut store, "a");
        let b = add_remote(&mut store, "b");
        for r in [a, b] {
            store
                .apply_change_batch(
                    r,
                    &change_batch(true, vec![run_change("runs/x/1", 1, 30)], "e", 1, false),
                )
                .unwrap();
            store
                .ingest_points(r, &point_batch("runs/x/1", 0, 30, 0..3))
                .unwrap();
        }
        assert!(store.remove_remote("a").unwrap());
        assert!(!store.remove_remote("a").unwrap());
        let left: i64 = store
            .conn
            .query_row("SELECT count(*) FROM points", [], |r| r.get(0))
            .unwrap();
        assert_eq!(left, 6);
        assert_eq!(store.total_points(b).unwrap(), 6);
        assert_eq!(store.list_runs(&RunFilter::default()).unwrap().len(), 1);
    }
}
