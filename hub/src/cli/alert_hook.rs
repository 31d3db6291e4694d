//! `--on-alert CMD` of `ui`, `connect`, `sync` and `demo`: for each alert the sync stores for the
//! first time, `sh -c CMD` runs with the alert as one JSON object on its stdin (remote, host,
//! run reference, path, run id, alias, kind, message, raised_at, the run's dashboard URL).
//!
//! The commands run one after another on their own task, fed by a channel the sync only
//! sends to, so a slow or hanging command never holds up syncing. Each gets
//! [`ALERT_COMMAND_TIMEOUT`]; then its process group is killed. A failure (cannot start, exit
//! status other than 0, timeout) is logged on stderr and the next alert goes on. A session that
//! ends (`connect --once`, Ctrl-C) waits up to [`DRAIN_ON_EXIT`] for the alerts still queued.

use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use runicorn_cli::{safe, warning_label};
use runicorn_hub::store_thread::StoreHandle;
use runicorn_store::AlertRow;
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, Notify};

/// How long one alert command may run before it is killed.
pub const ALERT_COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a session that ends waits for the commands of alerts still queued.
pub const DRAIN_ON_EXIT: Duration = Duration::from_secs(35);

/// The `--on-alert` option of the commands that sync remotes.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct OnAlertArgs {
    /// Run `sh -c CMD` for each new alert, with the alert as one JSON object on its stdin
    /// (remote, host, run_ref, run_id, path, alias, kind, message, raised_at, url of the run
    /// in the dashboard); each alert once, each command killed after 30 s, failures reported
    ///
    /// Example: --on-alert 'jq -r .message | mail -s "runicorn alert" me@example.com'
    #[arg(long, value_name = "CMD")]
    pub on_alert: Option<String>,
}

impl OnAlertArgs {
    /// Starts the hook when `--on-alert` was given.
    pub fn start(&self, store: &StoreHandle, dashboard: Option<String>) -> Option<AlertHook> {
        self.on_alert
            .clone()
            .map(|command| AlertHook::start(command, store.clone(), dashboard))
    }
}

/// Hands new alerts to the task that runs the user's command.
#[derive(Clone)]
pub struct AlertHook {
    tx: mpsc::UnboundedSender<Vec<i64>>,
    /// Alerts queued and not yet handled.
    pending: Arc<AtomicUsize>,
    /// Told each time the queue runs empty.
    idle: Arc<Notify>,
}

impl AlertHook {
    /// Starts the task that runs `command` for each alert sent with [`AlertHook::notify`].
    /// `dashboard` is the served dashboard's base URL, when one is served.
    pub fn start(command: String, store: StoreHandle, dashboard: Option<String>) -> AlertHook {
        let (tx, mut rx) = mpsc::unbounded_channel::<Vec<i64>>();
        let pending = Arc::new(AtomicUsize::new(0));
        let idle = Arc::new(Notify::new());
        let (left, done) = (Arc::clone(&pending), Arc::clone(&idle));
        tokio::spawn(async move {
            while let Some(ids) = rx.recv().await {
                let count = ids.len();
                let rows = match store.call(move |s| s.alerts_by_id(&ids)).await {
                    Ok(Ok(rows)) => rows,
                    Ok(Err(e)) => {
                        eprintln!("{}: cannot read new alerts: {e}", warning_label());
                        Vec::new()
                    }
                    // The store is gone: the session is ending.
                    Err(_) => return,
                };
                for row in rows {
                    run_one(&command, &alert_json(&row, dashboard.as_deref())).await;
                }
                if left.fetch_sub(count, Ordering::SeqCst) == count {
                    done.notify_waiters();
                }
            }
        });
        AlertHook { tx, pending, idle }
    }

    /// Waits until every queued alert was handled, for at most `limit` (a session ending
    /// lets the commands of its last alerts run).
    pub async fn wait_idle(&self, limit: Duration) {
        let _ = tokio::time::timeout(limit, async {
            loop {
                let notified = self.idle.notified();
                if self.pending.load(Ordering::SeqCst) == 0 {
                    return;
                }
                notified.await;
            }
        })
        .await;
    }

    /// Queues the alerts with these ids (never waits).
    pub fn notify(&self, ids: &[i64]) {
        if !ids.is_empty() {
            self.pending.fetch_add(ids.len(), Ordering::SeqCst);
            // A closed channel means the session is ending: nothing left to tell.
            if self.tx.send(ids.to_vec()).is_err() {
                self.pending.fetch_sub(ids.len(), Ordering::SeqCst);
            }
        }
    }
}

/// The alert as the command reads it on stdin.
pub fn alert_json(row: &AlertRow, dashboard: Option<&str>) -> serde_json::Value {
    json!({
        "id": row.id,
        "alert_id": row.alert_id,
        "kind": row.kind,
        "message": row.message,
        "key": row.key,
        "step": row.step,
        "value": row.value,
        "raised_at": row.raised_at,
        "received_at": row.received_at,
        "remote": row.remote,
        "host": row.host,
        "run": row.run,
        "run_ref": row.run_ref,
        "run_id": row.run_id,
        "path": row.path,
        "alias": row.alias,
        "url": dashboard.map(|base| format!("{}/#/run/{}", base.trim_end_matches('/'), row.run)),
    })
}

/// Runs `sh -c command` with `alert` on stdin, bounded in time; failures are reported.
async fn run_one(command: &str, alert: &serde_json::Value) {
    let what = format!(
        "--on-alert command for alert {} ({})",
        alert["id"], alert["kind"]
    );
    let mut child = match tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::piped())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        // Its own process group, so a timeout kills what it started too.
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
    {
        Ok(child) => child,
        Err(e) => {
            eprintln!("{}: {what} cannot start: {e}", warning_label());
            return;
        }
    };
    let mut input = alert.to_string();
    input.push('\n');
    let finished = tokio::time::timeout(ALERT_COMMAND_TIMEOUT, async {
        if let Some(mut stdin) = child.stdin.take() {
            // A command that does not read its input is fine.
            let _ = stdin.write_all(input.as_bytes()).await;
        }
        child.wait().await
    })
    .await;
    match finished {
        Ok(Ok(status)) if status.success() => {}
        Ok(Ok(status)) => eprintln!("{}: {what} failed ({status})", warning_label()),
        Ok(Err(e)) => eprintln!("{}: {what}: {e}", warning_label()),
        Err(_) => {
            if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
                // SAFETY: killpg only sends a signal to the group this child leads.
                unsafe {
                    libc::killpg(pid, libc::SIGKILL);
                }
            }
            let _ = child.wait().await;
            eprintln!(
                "{}: {what} killed after {}s: {}",
                warning_label(),
                ALERT_COMMAND_TIMEOUT.as_secs(),
                safe(command)
            );
        }
    }
}
