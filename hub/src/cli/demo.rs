//! `runicorn-hub demo`: sample runs and artifacts in a temporary root, a local agent serving them, a sync into
//! a temporary store, then live follow of the run that is still training.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use runicorn_hub::remote_address::RemoteAddress;
use runicorn_hub::supervisor::OpenOptions;
use runicorn_hub::supervisor::{run_remote, Mode, RemoteJob};

use super::ctrl_c::ctrl_c;
use super::demo_artifacts::write_sample_artifacts;
use super::demo_runs::{spawn_live_run, write_sample_runs};
use super::demo_wrapped::spawn_wrapped_run;
use super::sync_reporter::SyncReporter;

#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// Write the sample runs here instead of a temporary directory
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Sync once, print the runs and exit instead of following the live run
    #[arg(long)]
    pub once: bool,
    /// Do not serve the dashboard
    #[arg(long)]
    pub no_ui: bool,
    #[command(flatten)]
    pub serve: super::dashboard::ServeArgs,
    #[command(flatten)]
    pub on_alert: super::alert_hook::OnAlertArgs,
    /// Path of the runicorn-agent binary [default: beside runicorn-hub, else on PATH]
    #[arg(long, value_name = "PATH")]
    pub agent: Option<PathBuf>,
}

pub fn run(hub_dir: Option<PathBuf>, args: DemoArgs) -> anyhow::Result<u8> {
    let scratch = tempfile::Builder::new()
        .prefix("runicorn-demo-")
        .tempdir()
        .context("cannot create a temporary directory for the demo")?;
    let root = args
        .dir
        .clone()
        .unwrap_or_else(|| scratch.path().join("server-root"));
    // The demo keeps its own store unless one was asked for, so it never mixes sample runs
    // into the user's real store.
    let hub_dir = hub_dir
        .or_else(|| std::env::var_os("RUNICORN_HUB_DIR").map(PathBuf::from))
        .unwrap_or_else(|| scratch.path().join("hub"));
    std::fs::create_dir_all(&root).with_context(|| format!("cannot create {}", root.display()))?;
    let written = write_sample_runs(&root)
        .with_context(|| format!("cannot write the sample runs into {}", root.display()))?;
    let artifacts = write_sample_artifacts(&root, &scratch.path().join("staging"), &written)
        .with_context(|| format!("cannot log the sample artifacts into {}", root.display()))?;
    // The staged copies are in the pool now.
    let _ = std::fs::remove_dir_all(scratch.path().join("staging"));
    let stop_live = Arc::new(AtomicBool::new(false));
    let live = spawn_live_run(&root, Duration::from_millis(500), Arc::clone(&stop_live))
        .context("cannot start the live sample run")?;
    // A command under `runicorn-agent run`, for its System tab; not with --once, which only lists.
    let wrapped = if args.once {
        None
    } else {
        let agent = runicorn_hub::local_agent_program(args.agent.as_deref());
        match spawn_wrapped_run(&agent, &root) {
            Ok(w) => Some(w),
            Err(e) => {
                eprintln!("note: the demo runs without its wrapped command: {e:#}");
                None
            }
        }
    };
    eprintln!(
        "demo: wrote {} sample runs (+1 still training{}) and {} artifacts ({} versions) into {}; store in {}",
        written.len(),
        if wrapped.is_some() {
            ", +1 command under runicorn-agent run"
        } else {
            ""
        },
        artifacts.artifacts,
        artifacts.versions,
        root.display(),
        hub_dir.display()
    );
    let (store, store_dir) = super::open_store(Some(hub_dir.clone()))?;
    let rt = super::runtime()?;
    let address = RemoteAddress::Local {
        dir: root.clone(),
        agent: args.agent.clone(),
        resident: false,
    };
    let result = rt.block_on(async {
        let id = super::connect::remember(&store, "demo", &address).await?;
        // Served before the first sync: the page is up at once and fills as runs arrive.
        let dashboard = if args.once || args.no_ui {
            None
        } else {
            Some(start_dashboard(&store_dir, &store, &args.serve).await?)
        };
        let hook = args
            .on_alert
            .start(&store, dashboard.as_ref().map(|d| d.url().to_owned()));
        let reporter = SyncReporter::new(false).with_alert_hook(hook);
        let mut once = RemoteJob::new("demo", id, address.clone(), Mode::Once);
        once.open = OpenOptions {
            accept_new_host_key: false,
            agent_args: vec!["--poll".into(), "1".into()],
            ..OpenOptions::default()
        };
        once.safety_interval = Duration::from_secs(5);
        // Ctrl-C ends the demo in either phase, the first sync included.
        let (interrupted_tx, interrupted) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            ctrl_c().await;
            let _ = interrupted_tx.send(true);
        });
        let until_interrupted = || {
            let mut rx = interrupted.clone();
            async move {
                let _ = rx.wait_for(|i| *i).await;
            }
        };
        let first = run_remote(&once, &store, &reporter, until_interrupted()).await;
        if *interrupted.borrow() {
            if let Some(d) = dashboard {
                d.stop().await;
            }
            return Ok(0);
        }
        first?;
        let hub_arg = hub_dir.display().to_string();
        super::list::print(
            &store,
            &super::list::LsArgs {
                runs: vec![],
                remote: None,
                path: None,
                status: vec![],
                all: false,
                filter: None,
                columns: vec![],
                json: false,
                csv: false,
            },
            None,
        )
        .await?;
        if args.once {
            return Ok::<_, anyhow::Error>(0);
        }
        eprintln!(
            "demo: following the live run; Ctrl-C stops. In another terminal: runicorn-hub --hub-dir {hub_arg} ls"
        );
        let follow = runicorn_hub::followers::FollowConfig {
            me: runicorn_hub::followers::follower_name("demo"),
            scope: runicorn_hub::followers::Scope::One(id),
            open: once.open.clone(),
            safety_interval: once.safety_interval,
        };
        let followed = runicorn_hub::followers::follow_remotes(
            &store,
            &follow,
            &reporter,
            until_interrupted(),
        )
        .await;
        if let Some(d) = dashboard {
            d.stop().await;
        }
        followed?;
        Ok(0)
    });
    stop_live.store(true, Ordering::Relaxed);
    if let Some(w) = wrapped {
        w.stop();
    }
    let _ = live.join();
    result
}

/// Starts the demo's dashboard; when the default port is taken (another hub is running), any
/// free port will do for a demo.
async fn start_dashboard(
    store_dir: &std::path::Path,
    store: &runicorn_hub::store_thread::StoreHandle,
    serve: &super::dashboard::ServeArgs,
) -> anyhow::Result<super::dashboard::Running> {
    let files = runicorn_hub::file_fetch::RemoteFiles::new(store.clone());
    match super::dashboard::start(store_dir, &files, serve).await {
        Ok(running) => Ok(running),
        Err(e) if serve.port == super::dashboard::DEFAULT_PORT => {
            eprintln!("note: {e:#}; using another port");
            let any_port = super::dashboard::ServeArgs {
                port: 0,
                ..serve.clone()
            };
            super::dashboard::start(store_dir, &files, &any_port).await
        }
        Err(e) => Err(e),
    }
}
