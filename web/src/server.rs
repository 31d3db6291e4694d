//! Binding and serving: [`Dashboard::bind`] opens the store and the port (so a port in use is
//! reported before anything else starts), [`Dashboard::serve`] runs the API and the UI until
//! the shutdown future resolves, ending open event streams so shutdown does not wait on them.
//! The connections themselves (timeouts, the cap) are `connections.rs`.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::assets::IndexPage;
use crate::config::DashboardConfig;
use crate::connections::Limits;
use crate::error::WebError;
use crate::security::{new_token, Guard, HostPolicy};
use crate::state::AppState;
use crate::store_pool::StorePool;

/// A dashboard bound to its port, ready to serve.
pub struct Dashboard {
    listener: TcpListener,
    addr: SocketAddr,
    state: Arc<AppState>,
    guard: Arc<Guard>,
    poller_store: runicorn_store::Store,
    ticks: watch::Sender<u64>,
    closing: watch::Sender<bool>,
}

impl Dashboard {
    /// Opens (creating or migrating) the store and listens on the configured address.
    pub async fn bind(config: DashboardConfig) -> Result<Dashboard, WebError> {
        let dir = config.store_dir.clone();
        let opened = tokio::task::spawn_blocking(move || {
            let pool = StorePool::open(&dir)?;
            let poller = pool.open_reader()?;
            Ok::<_, runicorn_store::StoreError>((pool, poller))
        })
        .await
        .map_err(|e| WebError::Serve {
            addr: SocketAddr::new(config.bind, config.port),
            source: std::io::Error::other(e),
        })?;
        let (pool, poller_store) = opened?;
        let wanted = SocketAddr::new(config.bind, config.port);
        let listener = TcpListener::bind(wanted).await.map_err(|source| {
            if source.kind() == std::io::ErrorKind::AddrInUse {
                WebError::PortInUse { addr: wanted }
            } else {
                WebError::Bind {
                    addr: wanted,
                    source,
                }
            }
        })?;
        let addr = listener.local_addr().map_err(|source| WebError::Bind {
            addr: wanted,
            source,
        })?;
        let token = new_token().map_err(|e| WebError::Bind {
            addr,
            source: std::io::Error::other(format!("no random token from the OS: {e}")),
        })?;
        let (ticks, ticks_rx) = watch::channel(0u64);
        let (closing, closing_rx) = watch::channel(false);
        let state = Arc::new(AppState {
            pool: Arc::new(pool),
            files: config.files,
            store_dir: config.store_dir.clone(),
            bundles: config.bundles,
            uploads: Default::default(),
            ticks: ticks_rx,
            closing: closing_rx,
            index: IndexPage::new(&token),
            streams: Arc::new(tokio::sync::Semaphore::new(crate::state::MAX_STREAMS)),
        });
        let guard = Arc::new(Guard {
            hosts: HostPolicy::new(addr.ip(), addr.port()),
            token: Arc::from(token),
        });
        Ok(Dashboard {
            listener,
            addr,
            state,
            guard,
            poller_store,
            ticks,
            closing,
        })
    }

    /// The address listened on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address to open in a browser: `http://127.0.0.1:PORT/` for a loopback or
    /// unspecified bind, else the bound address.
    pub fn url(&self) -> String {
        let ip = match self.addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() || ip.is_loopback() => {
                IpAddr::V4(Ipv4Addr::LOCALHOST)
            }
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_loopback() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        format!("http://{}/", SocketAddr::new(ip, self.addr.port()))
    }

    /// Serves until `shutdown` resolves; open event streams then end and the server returns
    /// once the requests in flight are answered.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), WebError> {
        let Dashboard {
            listener,
            addr,
            state,
            guard,
            poller_store,
            ticks,
            closing,
        } = self;
        crate::ticks::spawn_poller(poller_store, ticks, state.closing.clone());
        let state_closing = state.closing.clone();
        let router = crate::routes::router(state, guard);
        tracing::info!(%addr, "dashboard listening");
        let closing_rx = state_closing;
        tokio::spawn(async move {
            shutdown.await;
            let _ = closing.send(true);
        });
        crate::connections::serve(listener, router, Limits::default(), closing_rx).await;
        Ok(())
    }
}
