//! `runicorn-hub sync [NAME…]`: one round for each remembered remote, concurrently.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use runicorn_hub::remote_address::RemoteAddress;
use runicorn_hub::supervisor::{run_remote, Mode, RemoteJob};

use std::collections::HashMap;
use std::sync::Mutex;

use runicorn_cli::{safe, safe_lines};
use runicorn_hub::supervisor::SessionEvents;
use runicorn_hub::sync::{RoundObserver, RoundStats, SyncError};
use runicorn_protocol::wire::Hello;
use serde_json::json;

use runicorn_cli::error_label;

use super::sync_reporter::SyncReporter;

#[derive(clap::Args, Debug)]
pub struct SyncArgs {
    /// Remotes to sync [default: all remembered remotes]
    pub names: Vec<String>,
    /// Print only errors
    #[arg(short, long)]
    pub quiet: bool,
    /// Print one JSON object per remote (what moved, how long it took, the error if any) as a
    /// JSON array on stdout
    #[arg(long)]
    pub json: bool,
    /// Let the root's resident agent serve these sessions, starting it when none runs (as
    /// `connect --resident-agent`); remembered with each remote synced (paused ones excepted)
    #[arg(long)]
    pub resident_agent: bool,
    #[command(flatten)]
    pub prefetch: super::prefetch_args::PrefetchArgs,
    #[command(flatten)]
    pub on_alert: super::alert_hook::OnAlertArgs,
}

/// Collects each remote's first round for `--json`, passing events on to the terminal.
struct Collector {
    terminal: SyncReporter,
    rounds: Mutex<HashMap<String, (RoundStats, Duration)>>,
}

impl RoundObserver for Collector {
    fn progress(&self, stats: &RoundStats, bytes_received: u64) {
        self.terminal.progress(stats, bytes_received);
    }
    fn new_alerts(&self, ids: &[i64]) {
        self.terminal.new_alerts(ids);
    }
}

impl SessionEvents for Collector {
    fn connected(&self, remote: &str, agent: &Hello) {
        self.terminal.connected(remote, agent);
    }
    fn round_done(&self, remote: &str, stats: &RoundStats, elapsed: Duration, first: bool) {
        if let Ok(mut r) = self.rounds.lock() {
            r.insert(remote.to_owned(), (*stats, elapsed));
        }
        self.terminal.round_done(remote, stats, elapsed, first);
    }
    fn reconnecting(&self, remote: &str, error: &SyncError, delay: Duration) {
        self.terminal.reconnecting(remote, error, delay);
    }
}

pub fn run(hub_dir: Option<PathBuf>, args: SyncArgs) -> anyhow::Result<u8> {
    let (store, dir) = super::open_store(hub_dir)?;
    let rt = super::runtime()?;
    rt.block_on(async {
        let mut remotes = store.call(|s| s.remotes()).await??;
        for wanted in &args.names {
            if remotes
                .iter()
                .any(|r| &r.name == wanted && r.removed_at.is_some())
            {
                anyhow::bail!(
                    "remote {wanted:?} was removed (the hub keeps its runs); `runicorn-hub connect` it again to sync it"
                );
            }
        }
        // A removed remote is gone for `sync` (its kept runs are not synced again).
        remotes.retain(|r| r.removed_at.is_none());
        if remotes.is_empty() {
            anyhow::bail!(
                "no remotes are remembered in {}; add one with `runicorn-hub connect HOST`",
                dir.display()
            );
        }
        for wanted in &args.names {
            if !remotes.iter().any(|r| &r.name == wanted) {
                let known: Vec<_> = remotes.iter().map(|r| r.name.as_str()).collect();
                anyhow::bail!("no remote named {wanted:?}; known: {}", known.join(", "));
            }
        }
        let mut jobs = Vec::new();
        for r in remotes.iter().filter(|r| {
            // Paused remotes are synced only when named.
            if args.names.is_empty() {
                !r.paused
            } else {
                args.names.contains(&r.name)
            }
        }) {
            let mut address: RemoteAddress =
                serde_json::from_value(r.transport.clone()).with_context(|| {
                    format!("the stored address of remote {} is unreadable", r.name)
                })?;
            if args.resident_agent && address.is_reachable() && !address.resident() {
                address.set_resident(true);
                if !r.paused {
                    super::connect::remember(&store, &r.name, &address).await?;
                }
            }
            // Known only from imported bundles: nothing to reach, unless named (which says so).
            if !address.is_reachable() && args.names.is_empty() {
                continue;
            }
            // A one-off round: no lease, so a process following the remote keeps its state.
            jobs.push(RemoteJob::new(&r.name, r.id, address, Mode::Once));
        }
        if jobs.is_empty() {
            anyhow::bail!(
                "every remote is paused or known only from imported bundles; name one to sync it anyway, or `runicorn-hub remotes resume NAME`"
            );
        }
        // The prefetch of each remote starts after its round; the command ends when all are done.
        let files = runicorn_hub::file_fetch::RemoteFiles::new(store.clone());
        let prefetcher = args.prefetch.start(&store, &files);
        let ids = jobs.iter().map(|j| (j.name.clone(), j.id)).collect();
        // No dashboard is served by `sync`: the alerts' JSON has no URL.
        let hook = args.on_alert.start(&store, None);
        let reporter = Collector {
            terminal: SyncReporter::new(args.quiet)
                .with_prefetch(prefetcher.clone(), ids)
                .with_alert_hook(hook.clone()),
            rounds: Mutex::default(),
        };
        let results = futures_join(&jobs, &store, &reporter).await;
        tokio::select! {
            _ = prefetcher.wait_idle() => {}
            _ = super::ctrl_c::ctrl_c() => {}
        }
        // The command ends after the commands of the alerts this sync brought.
        if let Some(hook) = &hook {
            hook.wait_idle(super::alert_hook::DRAIN_ON_EXIT).await;
        }
        let mut failed = Vec::new();
        let mut rows = Vec::new();
        let rounds = reporter
            .rounds
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default();
        for (job, result) in jobs.iter().zip(results) {
            let (stats, elapsed) = rounds.get(&job.name).copied().unwrap_or_default();
            let error = result.as_ref().err().map(ToString::to_string);
            if let Some(e) = &error {
                eprintln!("{}: {}: {}", error_label(), safe(&job.name), safe_lines(e));
                failed.push(job.name.clone());
            }
            rows.push(json!({
                "remote": job.name,
                "ok": error.is_none(),
                "error": error,
                "runs": stats.runs,
                "artifacts": stats.artifacts,
                "points": stats.points,
                "log_bytes": stats.log_bytes,
                "requests": stats.requests,
                "refused": stats.refused,
                "agent_skipped": stats.agent_skipped,
                "seconds": elapsed.as_secs_f64(),
            }));
        }
        if args.json {
            println!("{}", serde_json::to_string_pretty(&rows)?);
        }
        if failed.is_empty() {
            Ok(0)
        } else {
            eprintln!(
                "{}: {} of {} remotes failed: {}",
                error_label(),
                failed.len(),
                jobs.len(),
                safe(&failed.join(", "))
            );
            Ok(2)
        }
    })
}

async fn futures_join(
    jobs: &[RemoteJob],
    store: &runicorn_hub::store_thread::StoreHandle,
    reporter: &Collector,
) -> Vec<Result<(), runicorn_hub::sync::SyncError>> {
    // Each remote's round runs concurrently; the store thread serializes their writes.
    futures::future::join_all(
        jobs.iter()
            .map(|job| run_remote(job, store, reporter, std::future::pending())),
    )
    .await
}
