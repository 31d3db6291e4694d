//! The real `runicorn_web::Dashboard` served on loopback from a hub store, on a runtime of its
//! own thread, for the API scenarios: start it, ask it (`get`, `json`, `write` with the token
//! and a same-origin `Origin`), stop it and see whether it ended.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use runicorn_web::bundle_reports::BundleService;
use runicorn_web::{Dashboard, DashboardConfig, FileFetcher};
use serde_json::Value;

use crate::http::{get, Request, Response};

/// Longest the dashboard may take to bind.
const BIND_LIMIT: Duration = Duration::from_secs(60);

/// A dashboard serving a store until stopped or dropped.
pub struct ServedDashboard {
    pub addr: SocketAddr,
    /// The URL the dashboard prints (`http://127.0.0.1:PORT/`).
    pub url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    ended: mpsc::Receiver<()>,
}

impl ServedDashboard {
    /// Serves the store in `hub_dir`, with `files` bringing manifest files into the cache.
    pub fn start(hub_dir: &Path, files: Option<Arc<dyn FileFetcher>>) -> ServedDashboard {
        ServedDashboard::start_with_bundles(hub_dir, files, None)
    }

    /// Serves the store in `hub_dir` with `files` and a bundle service.
    pub fn start_with_bundles(
        hub_dir: &Path,
        files: Option<Arc<dyn FileFetcher>>,
        bundles: Option<Arc<dyn BundleService>>,
    ) -> ServedDashboard {
        let (ready_tx, ready_rx) = mpsc::channel();
        let (ended_tx, ended) = mpsc::channel();
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let config = DashboardConfig {
            store_dir: hub_dir.to_owned(),
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 0,
            files,
            bundles,
        };
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("a tokio runtime for the dashboard");
            rt.block_on(async move {
                let dashboard = Dashboard::bind(config).await.expect("the dashboard binds");
                let _ = ready_tx.send((dashboard.local_addr(), dashboard.url()));
                dashboard
                    .serve(async {
                        let _ = stop_rx.await;
                    })
                    .await
                    .expect("the dashboard serves");
            });
            let _ = ended_tx.send(());
        });
        let (addr, url) = ready_rx
            .recv_timeout(BIND_LIMIT)
            .expect("the dashboard bound within a minute");
        ServedDashboard {
            addr,
            url,
            stop: Some(stop),
            ended,
        }
    }

    pub fn get(&self, target: &str) -> Response {
        get(self.addr, target)
    }

    /// `GET target`, which must answer 200 with JSON.
    pub fn json(&self, target: &str) -> Value {
        let r = self.get(target);
        assert_eq!(r.status, 200, "GET {target}: {}", r.text());
        r.json()
    }

    /// The per-process token from `index.html`.
    pub fn token(&self) -> String {
        let html = self.get("/").text();
        let marker = r#"<meta name="runicorn-token" content=""#;
        let at = html.find(marker).expect("the token meta tag") + marker.len();
        let rest = &html[at..];
        rest[..rest.find('"').expect("the token's closing quote")].to_owned()
    }

    /// A state-changing request with the token and our own origin.
    pub fn write(&self, method: &str, target: &str, body: Option<Value>) -> Response {
        let mut req = Request::new(method, target)
            .header("X-Runicorn-Token", &self.token())
            .header("Origin", &format!("http://{}", self.addr));
        if let Some(body) = body {
            req = req.json(&body);
        }
        req.send(self.addr)
    }

    /// Stops the server; true when `serve` returned within `timeout`.
    pub fn stop(mut self, timeout: Duration) -> bool {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.ended.recv_timeout(timeout).is_ok()
    }
}

impl Drop for ServedDashboard {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
