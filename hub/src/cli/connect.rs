//! `runicorn-hub connect TARGET`: remember the remote, sync it, follow it live (holding its
//! follow lease, see `followers.rs`; `--once`: one round, no lease).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use runicorn_hub::agent_install::{InstallAgent, InstallReport};
use runicorn_hub::file_fetch::RemoteFiles;
use runicorn_hub::followers::{follow_remotes, follower_name, FollowConfig, Scope};
use runicorn_hub::remote_address::{check_remote_name, RemoteAddress};
use runicorn_hub::store_thread::StoreHandle;
use runicorn_hub::supervisor::OpenOptions;
use runicorn_hub::supervisor::{run_remote, Mode, RemoteJob};
use runicorn_store::RemoteSpec;

use runicorn_cli::safe;

use super::alert_hook::OnAlertArgs;
use super::ctrl_c::ctrl_c;
use super::prefetch_args::PrefetchArgs;
use super::sync_reporter::SyncReporter;

#[derive(clap::Args, Debug)]
pub struct ConnectArgs {
    /// [user@]host[:port], a Host alias from ~/.ssh/config, or local:DIR
    pub target: String,
    /// SSH port (overrides ~/.ssh/config and TARGET's :port)
    #[arg(short = 'p', long, value_name = "PORT")]
    pub port: Option<u16>,
    /// Private key file to authenticate with (tried after ssh-agent's keys)
    #[arg(short = 'i', long = "identity", value_name = "KEY")]
    pub identity: Option<PathBuf>,
    /// Jump host(s) to connect through, as for `ssh -J` (comma-separated)
    #[arg(short = 'J', long = "jump", value_name = "JUMP")]
    pub jump: Option<String>,
    /// Path of runicorn-agent on the server [default: `runicorn-agent` on its PATH, else
    /// ~/.runicorn/bin/runicorn-agent]; for local:DIR, the agent binary on this machine
    #[arg(long, value_name = "PATH")]
    pub agent: Option<String>,
    /// When the server has no runicorn-agent, or one older than this hub, upload this hub's agent
    /// over SFTP to ~/.runicorn/bin/runicorn-agent there (verified by SHA-256), then sync
    #[arg(long)]
    pub install_agent: bool,
    /// The agent file --install-agent uploads [default: runicorn-agent-<arch>-linux beside
    /// runicorn-hub, else ../portable/runicorn-agent from its directory]
    #[arg(
        long,
        value_name = "FILE",
        env = "RUNICORN_AGENT_BINARY",
        requires = "install_agent"
    )]
    pub agent_binary: Option<PathBuf>,
    /// Storage root on the server [default: the agent's: $RUNICORN_DIR, else ~/.runicorn]
    #[arg(long, value_name = "DIR")]
    pub root: Option<String>,
    /// Name to remember the remote by [default: the host name, or `local`]
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Sync once and exit instead of following live
    #[arg(long)]
    pub once: bool,
    /// Record the server's host key in ~/.ssh/known_hosts when it is not known yet (a changed
    /// key is always refused)
    #[arg(long)]
    pub accept_new_host_key: bool,
    /// Do not serve the dashboard while following
    #[arg(long)]
    pub no_ui: bool,
    /// Port of the dashboard served while following (0: any free port). When it is taken,
    /// another hub is probably serving the same store there, and this one only syncs
    #[arg(long, value_name = "PORT", default_value_t = super::dashboard::DEFAULT_PORT)]
    pub ui_port: u16,
    /// Open the dashboard in the default browser
    #[arg(long)]
    pub open: bool,
    /// Seconds between the agent's full rescans of the root (it also watches for changes)
    #[arg(long, value_name = "SECS")]
    pub poll: Option<f64>,
    /// Let the root's resident agent serve the sessions (`runicorn-agent daemon`): the agent
    /// starts one when none runs (it exits after 10 idle minutes) and later syncs reuse it, so
    /// they answer from a warm index. Remembered with the remote
    #[arg(long)]
    pub resident_agent: bool,
    #[command(flatten)]
    pub prefetch: PrefetchArgs,
    #[command(flatten)]
    pub on_alert: OnAlertArgs,
    /// Print only errors
    #[arg(short, long)]
    pub quiet: bool,
}

/// Builds the address from the target and the options.
pub fn address_of(args: &ConnectArgs) -> anyhow::Result<RemoteAddress> {
    let mut address = RemoteAddress::parse(&args.target).map_err(anyhow::Error::msg)?;
    match &mut address {
        RemoteAddress::Ssh {
            port,
            identity,
            jump,
            agent,
            root,
            ..
        } => {
            *port = args.port;
            identity.clone_from(&args.identity);
            jump.clone_from(&args.jump);
            agent.clone_from(&args.agent);
            root.clone_from(&args.root);
        }
        RemoteAddress::Local { agent, .. } => {
            if args.port.is_some() || args.identity.is_some() || args.jump.is_some() {
                anyhow::bail!("-p, -i and -J apply to SSH targets, not to {}", args.target);
            }
            if args.root.is_some() {
                anyhow::bail!("for local:DIR the root is DIR; drop --root");
            }
            *agent = args.agent.as_ref().map(PathBuf::from);
        }
        // `parse` never gives one: only an import records it.
        RemoteAddress::Offline { .. } => {}
    }
    address.set_resident(args.resident_agent);
    Ok(address)
}

/// What `--install-agent` asks for; its progress lines go to stderr unless `--quiet`.
fn install_options(args: &ConnectArgs) -> Option<InstallAgent> {
    if !args.install_agent {
        return None;
    }
    let report: Option<InstallReport> = if args.quiet {
        None
    } else {
        Some(Arc::new(|line: &str| eprintln!("{}", safe(line))))
    };
    Some(InstallAgent {
        agent_binary: args.agent_binary.clone(),
        report,
    })
}

/// Remembers a remote under `name` and returns its id.
pub async fn remember(
    store: &StoreHandle,
    name: &str,
    address: &RemoteAddress,
) -> anyhow::Result<runicorn_store::RemoteId> {
    check_remote_name(name).map_err(anyhow::Error::msg)?;
    let spec = RemoteSpec {
        name: name.to_owned(),
        address: address.display(),
        transport: serde_json::to_value(address)?,
    };
    store
        .call(move |s| s.upsert_remote(&spec))
        .await?
        .with_context(|| format!("cannot remember remote {name}"))
}

pub fn run(hub_dir: Option<PathBuf>, args: ConnectArgs) -> anyhow::Result<u8> {
    let address = address_of(&args)?;
    let name = args.name.clone().unwrap_or_else(|| address.default_name());
    let (store, dir) = super::open_store(hub_dir)?;
    let rt = super::runtime()?;
    rt.block_on(async {
        let id = remember(&store, &name, &address).await?;
        let mut agent_args = Vec::new();
        if let Some(poll) = args.poll {
            agent_args.extend(["--poll".to_owned(), poll.to_string()]);
        }
        let open = OpenOptions {
            accept_new_host_key: args.accept_new_host_key,
            agent_args,
            install_agent: install_options(&args),
        };
        let mut job = RemoteJob::new(&name, id, address, Mode::Once);
        job.open = open.clone();
        let files = RemoteFiles::new(store.clone());
        let prefetcher = args.prefetch.start(&store, &files);
        let dashboard = if args.once || args.no_ui {
            None
        } else {
            let serve = super::dashboard::ServeArgs {
                port: args.ui_port,
                bind: std::net::IpAddr::from([127, 0, 0, 1]),
                open: args.open,
            };
            match super::dashboard::start(&dir, &files, &serve).await {
                Ok(running) => Some(running),
                Err(e) => {
                    // Syncing matters more than a second view of the same store.
                    eprintln!(
                        "note: the dashboard is not served ({e:#}); syncing goes on. Use --ui-port to pick another port, or --no-ui"
                    );
                    None
                }
            }
        };
        let hook = args
            .on_alert
            .start(&store, dashboard.as_ref().map(|d| d.url().to_owned()));
        let reporter = SyncReporter::new(args.quiet)
            .with_prefetch(prefetcher.clone(), [(name.clone(), id)].into())
            .with_alert_hook(hook.clone());
        if !args.once && !args.quiet {
            eprintln!("{}: following live; Ctrl-C stops", safe(&name));
        }
        let result = if args.once {
            run_remote(&job, &store, &reporter, ctrl_c()).await
        } else {
            // Following holds the remote's lease: when another live process (a `ui`) follows
            // it already, this one waits and takes over if that one stops.
            let config = FollowConfig {
                me: follower_name("connect"),
                scope: Scope::One(id),
                open,
                safety_interval: Duration::from_secs(30),
            };
            follow_remotes(&store, &config, &reporter, ctrl_c()).await
        };
        if args.once && result.is_ok() {
            // `--once` leaves with the run pages complete: the prefetch ends first.
            tokio::select! {
                _ = prefetcher.wait_idle() => {}
                _ = ctrl_c() => {}
            }
        }
        if let Some(hook) = &hook {
            hook.wait_idle(super::alert_hook::DRAIN_ON_EXIT).await;
        }
        if let Some(d) = dashboard {
            d.stop().await;
        }
        result?;
        Ok(0)
    })
}
