//! `runicorn-hub ui`: serves the dashboard over the store and keeps every remembered remote
//! syncing live beside it, each with its own reconnecting supervisor (`followers.rs`): remotes
//! added, removed or paused by other commands are picked up within seconds, and a remote that
//! another live process follows (`connect`) is left to it. A remote that fails for good (a
//! changed host key, say) is reported and the others go on; its runs stay on show.

use std::path::PathBuf;
use std::time::Duration;

use runicorn_cli::safe;
use runicorn_hub::file_fetch::RemoteFiles;
use runicorn_hub::followers::{follow_remotes, follower_name, FollowConfig, Scope};
use runicorn_hub::supervisor::OpenOptions;

use super::dashboard::{self, ServeArgs};

use super::alert_hook::OnAlertArgs;
use super::ctrl_c::ctrl_c;
use super::prefetch_args::PrefetchArgs;
use super::sync_reporter::SyncReporter;

#[derive(clap::Args, Debug)]
pub struct UiArgs {
    #[command(flatten)]
    pub serve: ServeArgs,
    /// Serve what the store holds without syncing any remote
    #[arg(long)]
    pub offline: bool,
    #[command(flatten)]
    pub prefetch: PrefetchArgs,
    #[command(flatten)]
    pub on_alert: OnAlertArgs,
    /// Print only errors
    #[arg(short, long)]
    pub quiet: bool,
}

pub fn run(hub_dir: Option<PathBuf>, args: UiArgs) -> anyhow::Result<u8> {
    let (store, dir) = super::open_store(hub_dir)?;
    let rt = super::runtime()?;
    rt.block_on(async {
        let files = RemoteFiles::new(store.clone());
        let running = dashboard::start(&dir, &files, &args.serve).await?;
        if args.offline {
            if !args.quiet {
                eprintln!("no remote is synced: --offline was given");
            }
            ctrl_c().await;
            running.stop().await;
            return Ok(0);
        }
        let remotes = store.call(|s| s.remotes()).await??;
        let names: Vec<_> = remotes
            .iter()
            .filter(|r| r.removed_at.is_none() && !r.paused)
            .map(|r| r.name.as_str())
            .collect();
        if !args.quiet {
            if names.is_empty() {
                eprintln!(
                    "no remote to follow yet in {}; add one with `runicorn-hub connect HOST` (this dashboard picks it up)",
                    dir.display()
                );
            } else {
                eprintln!(
                    "following {} live (each unless another hub process follows it already); Ctrl-C stops",
                    safe(&names.join(", "))
                );
            }
        }
        let hook = args
            .on_alert
            .start(&store, Some(running.url().to_owned()));
        let reporter = SyncReporter::new(args.quiet)
            .with_prefetch(args.prefetch.start(&store, &files), Default::default())
            .with_alert_hook(hook.clone());
        let config = FollowConfig {
            me: follower_name("ui"),
            scope: Scope::All,
            open: OpenOptions::default(),
            safety_interval: Duration::from_secs(30),
        };
        // Serves until Ctrl-C, whatever the remotes do.
        let followed = follow_remotes(&store, &config, &reporter, ctrl_c()).await;
        if let Some(hook) = &hook {
            hook.wait_idle(super::alert_hook::DRAIN_ON_EXIT).await;
        }
        running.stop().await;
        followed?;
        Ok(0)
    })
}
