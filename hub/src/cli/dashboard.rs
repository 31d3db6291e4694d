//! Serving the dashboard from a command: the options `ui`, `connect` and `demo` share, starting
//! the server beside the sync tasks, printing its address and opening a browser on request.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use runicorn_hub::file_fetch::RemoteFiles;
use runicorn_web::{Dashboard, DashboardConfig};
use tokio::sync::watch;

pub use runicorn_web::DEFAULT_PORT;

/// Where the dashboard listens.
#[derive(clap::Args, Debug, Clone)]
pub struct ServeArgs {
    /// Port of the dashboard (0: any free port)
    #[arg(long, value_name = "PORT", default_value_t = DEFAULT_PORT)]
    pub port: u16,
    /// Address to listen on. Keep the default unless you know who can reach the others: the
    /// dashboard has no login
    #[arg(long, value_name = "IP", default_value = "127.0.0.1")]
    pub bind: IpAddr,
    /// Open the dashboard in the default browser
    #[arg(long)]
    pub open: bool,
}

/// A dashboard serving in the background until [`Running::stop`].
pub struct Running {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    url: String,
}

impl Running {
    /// The dashboard's address (`http://127.0.0.1:PORT`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Stops serving and waits for open requests to end.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Binds the dashboard over the store in `store_dir` and serves it on a task. Fetches files of
/// any remembered remote on demand through `files` (shared with the prefetcher, so both use
/// the same connections and transfer slots).
pub async fn start(
    store_dir: &Path,
    files: &RemoteFiles,
    serve: &ServeArgs,
) -> anyhow::Result<Running> {
    let config = DashboardConfig {
        store_dir: store_dir.to_owned(),
        bind: serve.bind,
        port: serve.port,
        files: Some(Arc::new(files.clone())),
        bundles: Some(Arc::new(runicorn_hub::bundle_service::HubBundles {
            store_dir: store_dir.to_owned(),
            agent_program: runicorn_hub::local_agent_program(None),
        })),
    };
    let dashboard = Dashboard::bind(config)
        .await
        .context("cannot start the dashboard")?;
    let url = dashboard.url();
    if !serve.bind.is_loopback() {
        eprintln!(
            "warning: the dashboard listens on {}: anyone who can reach this address can read your runs",
            dashboard.local_addr()
        );
    }
    let (stop, mut stopped) = watch::channel(false);
    let task = tokio::spawn(async move {
        let shutdown = async move {
            let _ = stopped.wait_for(|s| *s).await;
        };
        if let Err(e) = dashboard.serve(shutdown).await {
            eprintln!(
                "{}: the dashboard stopped: {e}",
                runicorn_cli::error_label()
            );
        }
    });
    // Tests and scripts wait for this line: the server accepts connections from now on.
    eprintln!("dashboard: {url}");
    if serve.open {
        open_browser(&url);
    }
    Ok(Running { stop, task, url })
}

/// Opens `url` in the desktop's browser, best effort: a failure is a note, not an error.
fn open_browser(url: &str) {
    let program = if cfg!(target_os = "macos") {
        "open"
    } else if cfg!(windows) {
        "explorer"
    } else {
        "xdg-open"
    };
    match std::process::Command::new(program)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
    {
        Ok(_) => {}
        Err(e) => eprintln!("note: cannot open a browser ({program}: {e}); open {url} yourself"),
    }
}
