//! `runicorn-hub ui`: serves the dashboard over the store and keeps every remembered remote
//! syncing live beside it, each with its own reconnecting supervisor. A remote that fails for
//! good (a changed host key, say) is reported and the others go on; its runs stay on show.

use runicorn_cli::{safe, safe_lines};
use std::path::PathBuf;
use std::time::Duration;

use runicorn_hub::file_fetch::RemoteFiles;
use runicorn_hub::remote_address::RemoteAddress;
use runicorn_hub::store_thread::StoreHandle;
use runicorn_hub::supervisor::OpenOptions;
use runicorn_hub::supervisor::{run_remote, Mode, RemoteJob};

use super::dashboard::{self, ServeArgs};
use runicorn_cli::error_label;

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
        let jobs = if args.offline {
            Vec::new()
        } else {
            remembered_jobs(&store).await?
        };
        if jobs.is_empty() && !args.quiet {
            eprintln!(
                "no remote is synced: {}",
                if args.offline {
                    "--offline was given".to_owned()
                } else {
                    format!(
                        "none is remembered in {}; add one with `runicorn-hub connect HOST`",
                        dir.display()
                    )
                }
            );
        } else if !args.quiet {
            let names: Vec<_> = jobs.iter().map(|j| j.name.as_str()).collect();
            eprintln!("following {} live; Ctrl-C stops", safe(&names.join(", ")));
        }
        let ids = jobs.iter().map(|j| (j.name.clone(), j.id)).collect();
        let reporter =
            SyncReporter::new(args.quiet).with_prefetch(args.prefetch.start(&store, &files), ids);
        let follow_all = futures::future::join_all(jobs.iter().map(|job| {
            let store = &store;
            let reporter = &reporter;
            async move {
                if let Err(e) = run_remote(job, store, reporter, ctrl_c()).await {
                    // The store recorded the error; the dashboard shows it on the remotes page.
                    eprintln!(
                        "{}: {}: {}",
                        error_label(),
                        safe(&job.name),
                        safe_lines(&e.to_string())
                    );
                }
            }
        }));
        // Serve until Ctrl-C even when every remote has stopped.
        tokio::join!(follow_all, ctrl_c());
        running.stop().await;
        Ok(0)
    })
}

/// A live-follow job for every remembered remote whose address can be read. A remote with an
/// unreadable address is left out with a warning: its runs are still shown.
async fn remembered_jobs(store: &StoreHandle) -> anyhow::Result<Vec<RemoteJob>> {
    let remotes = store.call(|s| s.remotes()).await??;
    let mut jobs = Vec::new();
    for r in remotes {
        match serde_json::from_value::<RemoteAddress>(r.transport.clone()) {
            Ok(address) => jobs.push(RemoteJob {
                name: r.name,
                id: r.id,
                address,
                open: OpenOptions::default(),
                mode: Mode::Follow,
                safety_interval: Duration::from_secs(30),
            }),
            Err(e) => eprintln!(
                "warning: remote {} is not synced: its stored address is unreadable ({e}); `runicorn-hub connect` it again to fix it",
                safe(&r.name)
            ),
        }
    }
    Ok(jobs)
}
