//! The connection loop under the router: accepting, the limits that keep one local process
//! from exhausting the dashboard, and graceful shutdown (see "Connections" in `docs/api.md`).
//!
//! - **Header read.** A request's headers must be complete [`Limits::header_read`] after the
//!   connection is ready for them: when it opens, and again after each answer on a kept-alive
//!   connection. So a client that sends half a request line and stalls is cut off, and an idle
//!   kept-alive connection is closed after the same time.
//! - **Stall.** A connection on which no byte moves either way for [`Limits::stall`] is closed
//!   (a client that stopped reading an answer or an event stream; streams send a comment every
//!   15 s, so a reading client is never idle that long). The quiet time of a bundle export or
//!   import whose answer is still being worked out is the server's, not the client's: such a
//!   connection is not closed while its handler runs ([`works_long`]).
//! - **Cap.** At most [`Limits::max_connections`] at once. At the cap, a new connection takes the
//!   place of the oldest idle one (no request in flight: still sending its headers, or kept
//!   alive between requests), which is closed; when every connection has a request in flight,
//!   the new one waits up to [`Limits::slot_wait`] for a place, then is closed.
//! - **Shutdown.** Idle connections close at once; the others finish the request in flight
//!   (event streams end on the shutdown signal) and close.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::response::Response;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify, OwnedSemaphorePermit, Semaphore};
use tower_service::Service;

use crate::state::closed;

/// The server's connection limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Time for a request's headers, from when the connection is ready for them.
    pub header_read: Duration,
    /// Time without a byte moving on a connection before it is closed.
    pub stall: Duration,
    /// Connections served at once.
    pub max_connections: usize,
    /// How long a connection beyond the cap waits for a place when none can be freed.
    pub slot_wait: Duration,
}

/// Header read timeout (also the idle keep-alive timeout).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Stalled-connection timeout.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(60);
/// Most connections served at once.
pub const MAX_CONNECTIONS: usize = 256;
/// Wait for a place beyond the cap.
pub const SLOT_WAIT: Duration = Duration::from_secs(2);

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read: HEADER_READ_TIMEOUT,
            stall: STALL_TIMEOUT,
            max_connections: MAX_CONNECTIONS,
            slot_wait: SLOT_WAIT,
        }
    }
}

/// One open connection, as the accept loop sees it.
struct Tracked {
    accepted: Instant,
    in_flight: Arc<AtomicUsize>,
    evict: Arc<Notify>,
}

/// The open connections.
#[derive(Default)]
struct Table {
    next: AtomicU64,
    open: Mutex<HashMap<u64, Tracked>>,
}

impl Table {
    fn add(&self, in_flight: Arc<AtomicUsize>, evict: Arc<Notify>) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let tracked = Tracked {
            accepted: Instant::now(),
            in_flight,
            evict,
        };
        self.lock().insert(id, tracked);
        id
    }

    fn remove(&self, id: u64) {
        self.lock().remove(&id);
    }

    /// Tells the oldest idle connection to close; false when every one is busy.
    fn evict_idle(&self) -> bool {
        let mut open = self.lock();
        let oldest = open
            .iter()
            .filter(|(_, t)| t.in_flight.load(Ordering::Acquire) == 0)
            .min_by_key(|(_, t)| t.accepted)
            .map(|(id, _)| *id);
        match oldest.and_then(|id| open.remove(&id)) {
            Some(t) => {
                t.evict.notify_one();
                true
            }
            None => false,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Tracked>> {
        // A panic while holding this lock cannot leave the map inconsistent (single inserts
        // and removals), so a poisoned lock is used as is.
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Serves `router` on `listener` until `closing` turns true, then waits for the open
/// connections to finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    mut closing: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let table = Arc::new(Table::default());
    let epoch = Instant::now();
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            _ = closed(closing.clone()) => break,
        };
        let Some(permit) = place_for(&slots, &table, limits.slot_wait, &mut closing).await else {
            if *closing.borrow() {
                break;
            }
            tracing::debug!("dashboard connection refused: every connection is busy");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let in_flight = Arc::new(AtomicUsize::new(0));
        let evict = Arc::new(Notify::new());
        let id = table.add(Arc::clone(&in_flight), Arc::clone(&evict));
        let conn = Connection {
            router: router.clone(),
            limits,
            in_flight,
            evict,
            closing: closing.clone(),
            epoch,
        };
        let table = Arc::clone(&table);
        tokio::spawn(async move {
            conn.run(stream).await;
            table.remove(id);
            drop(permit);
        });
    }
    // Every place back means every connection is done.
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let _ = slots.acquire_many(all).await;
}

/// A place for a new connection: a free one, or one freed by closing an idle connection, or
/// (every connection busy) one that frees within `wait`. `None`: refused, or shutting down.
async fn place_for(
    slots: &Arc<Semaphore>,
    table: &Table,
    wait: Duration,
    closing: &mut watch::Receiver<bool>,
) -> Option<OwnedSemaphorePermit> {
    if let Ok(permit) = Arc::clone(slots).try_acquire_owned() {
        return Some(permit);
    }
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        table.evict_idle();
        tokio::select! {
            permit = Arc::clone(slots).acquire_owned() => return permit.ok(),
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            _ = closed(closing.clone()) => return None,
        }
        if tokio::time::Instant::now() >= deadline {
            return Arc::clone(slots).try_acquire_owned().ok();
        }
    }
}

/// An accept error: a peer that went away is nothing; anything else (out of file
/// descriptors) is reported and retried a little later.
async fn accept_failed(e: io::Error) {
    use io::ErrorKind::*;
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | ConnectionRefused
    ) {
        return;
    }
    tracing::warn!(error = %e, "dashboard cannot accept a connection; retrying");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// One connection's serving task.
struct Connection {
    router: Router,
    limits: Limits,
    in_flight: Arc<AtomicUsize>,
    evict: Arc<Notify>,
    closing: watch::Receiver<bool>,
    epoch: Instant,
}

impl Connection {
    async fn run(self, stream: TcpStream) {
        let Connection {
            router,
            limits,
            in_flight,
            evict,
            closing,
            epoch,
        } = self;
        let progress = Arc::new(AtomicU64::new(millis_since(epoch)));
        let io = TokioIo::new(Watched {
            inner: stream,
            progress: Arc::clone(&progress),
            epoch,
        });
        let working = Arc::new(AtomicUsize::new(0));
        let service = RequestCounter {
            router,
            in_flight: Arc::clone(&in_flight),
            working: Arc::clone(&working),
        };
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read)
            .keep_alive(true);
        let conn =
            builder.serve_connection(io, hyper_util::service::TowerToHyperService::new(service));
        tokio::pin!(conn);
        let check_every = (limits.stall / 4).max(Duration::from_millis(50));
        let mut shutting_down = false;
        loop {
            tokio::select! {
                done = conn.as_mut() => {
                    if let Err(e) = done {
                        tracing::debug!(error = %e, "dashboard connection ended");
                    }
                    return;
                }
                _ = evict.notified() => {
                    tracing::debug!("idle dashboard connection closed for a new one");
                    return;
                }
                _ = closed(closing.clone()), if !shutting_down => {
                    if in_flight.load(Ordering::Acquire) == 0 {
                        return;
                    }
                    conn.as_mut().graceful_shutdown();
                    shutting_down = true;
                }
                _ = tokio::time::sleep(check_every) => {
                    let quiet = millis_since(epoch).saturating_sub(progress.load(Ordering::Relaxed));
                    let server_busy = working.load(Ordering::Acquire) > 0;
                    if quiet >= limits.stall.as_millis() as u64 && !server_busy {
                        tracing::debug!("stalled dashboard connection closed");
                        return;
                    }
                    if shutting_down && in_flight.load(Ordering::Acquire) == 0 {
                        return;
                    }
                }
            }
        }
    }
}

fn millis_since(epoch: Instant) -> u64 {
    u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// The router, counting the requests in flight on one connection: from the request's head
/// until its answer's body is sent (or dropped).
#[derive(Clone)]
struct RequestCounter {
    router: Router,
    in_flight: Arc<AtomicUsize>,
    /// Requests of [`works_long`] routes whose handler has not answered yet.
    working: Arc<AtomicUsize>,
}

/// Routes whose answer may take longer than the stall time to start (outside the request time
/// limit too): a bundle's export, and an uploaded bundle's import.
fn works_long(path: &str) -> bool {
    path == "/api/bundles/export"
        || (path.starts_with("/api/bundles/uploads/") && path.ends_with("/import"))
}

impl Service<Request<Incoming>> for RequestCounter {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Incoming>) -> Self::Future {
        let guard = InFlight::new(Arc::clone(&self.in_flight));
        let working =
            works_long(req.uri().path()).then(|| InFlight::new(Arc::clone(&self.working)));
        let mut router = self.router.clone();
        Box::pin(async move {
            let response = router.call(req.map(Body::new)).await?;
            drop(working);
            Ok(response.map(|inner| {
                Body::new(CountedBody {
                    inner,
                    _guard: guard,
                })
            }))
        })
    }
}

/// One request in flight, until dropped.
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn new(counter: Arc<AtomicUsize>) -> InFlight {
        counter.fetch_add(1, Ordering::AcqRel);
        InFlight(counter)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// An answer's body that keeps its request counted until it is sent or dropped.
struct CountedBody {
    inner: Body,
    _guard: InFlight,
}

impl http_body::Body for CountedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// A stream that notes when a byte last moved either way.
struct Watched {
    inner: TcpStream,
    progress: Arc<AtomicU64>,
    epoch: Instant,
}

impl Watched {
    fn moved(&self) {
        self.progress
            .store(millis_since(self.epoch), Ordering::Relaxed);
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.moved();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write(cx, data);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            this.moved();
        }
        polled
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            this.moved();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn start(limits: Limits) -> (std::net::SocketAddr, watch::Sender<bool>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let slow = || async {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            "done"
        };
        let router = Router::new()
            .route("/", axum::routing::get(|| async { "hello" }))
            .route("/slow", axum::routing::get(slow))
            .route("/api/bundles/export", axum::routing::get(slow));
        let (tx, rx) = watch::channel(false);
        tokio::spawn(serve(listener, router, limits, rx));
        (addr, tx)
    }

    async fn get(addr: std::net::SocketAddr) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    /// Reads until the peer closes; how long that took.
    async fn closed_after(mut s: TcpStream) -> Duration {
        let t = Instant::now();
        let mut buf = [0u8; 256];
        while !matches!(s.read(&mut buf).await, Ok(0) | Err(_)) {}
        t.elapsed()
    }

    #[tokio::test]
    async fn slow_headers_are_cut_off_and_idle_ones_make_room() {
        let limits = Limits {
            header_read: Duration::from_millis(300),
            stall: Duration::from_secs(5),
            max_connections: 4,
            slot_wait: Duration::from_millis(200),
        };
        let (addr, _stop) = start(limits).await;
        // Beyond the cap: idle connections give way to new ones.
        let mut slow = Vec::new();
        for _ in 0..8 {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(b"GET / HT").await.unwrap();
            slow.push(s);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(get(addr).await.ends_with("hello"));
        // Stalled headers are cut off after the header timeout.
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET / HT").await.unwrap();
        let waited = tokio::time::timeout(Duration::from_secs(5), closed_after(s))
            .await
            .unwrap();
        assert!(waited >= Duration::from_millis(250), "{waited:?}");
    }

    #[tokio::test]
    async fn a_bundle_export_being_worked_out_is_not_a_stall_but_a_slow_answer_elsewhere_is() {
        let limits = Limits {
            header_read: Duration::from_secs(5),
            stall: Duration::from_millis(400),
            max_connections: 4,
            slot_wait: Duration::from_millis(200),
        };
        let (addr, _stop) = start(limits).await;
        let ask = |path: &'static str| async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            s.write_all(request.as_bytes()).await.unwrap();
            let mut out = String::new();
            let _ = s.read_to_string(&mut out).await;
            out
        };
        assert!(ask("/api/bundles/export").await.ends_with("done"));
        assert_eq!(
            ask("/slow").await,
            "",
            "a quiet connection elsewhere is cut"
        );
    }

    #[tokio::test]
    async fn shutdown_closes_idle_connections_and_returns() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = Router::new().route("/", axum::routing::get(|| async { "hello" }));
        let (tx, rx) = watch::channel(false);
        let server = tokio::spawn(serve(listener, router, Limits::default(), rx));
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET / HT").await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        tx.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(2), server)
            .await
            .unwrap()
            .unwrap();
        tokio::time::timeout(Duration::from_secs(2), closed_after(s))
            .await
            .unwrap();
    }
}
