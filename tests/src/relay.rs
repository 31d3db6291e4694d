//! A TCP relay that adds latency and faults, for benchmarks and fault tests (this kernel has no
//! `netem`). Each direction is a delay line: a reader timestamps every chunk as it arrives and a
//! writer sends it `one_way_delay` later, so order and throughput are kept (it does not sleep
//! per read). `cut_all` drops every live connection; `set_stalled` stops forwarding without
//! closing anything, like a link that went silent. The relay runs on its own runtime thread, so
//! it works from sync and async tests alike.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::AbortHandle;
use tokio::time::Instant;

/// Largest chunk read at once.
const CHUNK: usize = 64 * 1024;
/// Chunks in flight per direction (bounds memory; the reader waits when it is full).
const IN_FLIGHT: usize = 4096;

struct Shared {
    target: SocketAddr,
    delay: Duration,
    stalled: watch::Sender<bool>,
    /// The tasks of each connection accepted so far.
    connections: Mutex<Vec<Vec<AbortHandle>>>,
}

/// A running relay; stops (dropping every connection) when dropped.
pub struct Relay {
    /// Where clients connect.
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("addr", &self.addr)
            .field("target", &self.shared.target)
            .field("delay", &self.shared.delay)
            .finish()
    }
}

impl Relay {
    /// Listens on 127.0.0.1 (a free port) and forwards each connection to `target`, adding
    /// `one_way_delay` in each direction (so the round trip grows by twice that).
    pub fn start(target: SocketAddr, one_way_delay: Duration) -> Relay {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("relay")
            .enable_all()
            .build()
            .expect("relay runtime");
        // Bound with std and adopted inside the relay's runtime: `block_on` is not allowed when
        // the caller is itself async.
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("relay binds");
        std_listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let addr = std_listener.local_addr().expect("relay address");
        let listener = {
            let _entered = runtime.enter();
            TcpListener::from_std(std_listener).expect("relay listener")
        };
        let (stalled, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            target,
            delay: one_way_delay,
            stalled,
            connections: Mutex::new(Vec::new()),
        });
        runtime.spawn(accept_loop(listener, Arc::clone(&shared)));
        Relay {
            addr,
            shared,
            runtime: Some(runtime),
        }
    }

    /// Drops every live connection (clients and the target see them close); new connections
    /// are still accepted. Returns how many were cut.
    pub fn cut_all(&self) -> usize {
        let mut connections = self.shared.connections.lock().expect("relay lock");
        let mut cut = 0;
        for tasks in connections.drain(..) {
            if tasks.iter().any(|t| !t.is_finished()) {
                cut += 1;
            }
            for task in tasks {
                task.abort();
            }
        }
        cut
    }

    /// Stops (true) or resumes (false) forwarding in both directions, closing nothing.
    pub fn set_stalled(&self, stalled: bool) {
        self.shared.stalled.send_replace(stalled);
    }

    /// Connections with a direction still forwarding.
    pub fn live_connections(&self) -> usize {
        let connections = self.shared.connections.lock().expect("relay lock");
        connections
            .iter()
            .filter(|tasks| tasks.iter().any(|t| !t.is_finished()))
            .count()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.cut_all();
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let Ok(server) = TcpStream::connect(shared.target).await else {
                return; // Dropping `client` tells it the target is unreachable.
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            let (client_read, client_write) = client.into_split();
            let (server_read, server_write) = server.into_split();
            let mut tasks = Vec::with_capacity(4);
            for (from, to) in [(client_read, server_write), (server_read, client_write)] {
                let (tx, rx) = mpsc::channel(IN_FLIGHT);
                tasks.push(tokio::spawn(read_side(from, tx, shared.delay)).abort_handle());
                let stalled = shared.stalled.subscribe();
                tasks.push(tokio::spawn(write_side(to, rx, stalled)).abort_handle());
            }
            let mut connections = shared.connections.lock().expect("relay lock");
            connections.retain(|tasks| tasks.iter().any(|t| !t.is_finished()));
            connections.push(tasks);
        });
    }
}

/// Reads chunks as they come and stamps each with its departure time; `None` marks the end.
async fn read_side(
    mut from: OwnedReadHalf,
    tx: mpsc::Sender<(Instant, Option<Vec<u8>>)>,
    delay: Duration,
) {
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => 0,
            Ok(n) => n,
        };
        let due = Instant::now() + delay;
        let chunk = (n > 0).then(|| buf[..n].to_vec());
        if tx.send((due, chunk)).await.is_err() || n == 0 {
            return;
        }
    }
}

/// Sends each chunk when it is due (and the link is not stalled); ends with a FIN.
async fn write_side(
    mut to: OwnedWriteHalf,
    mut rx: mpsc::Receiver<(Instant, Option<Vec<u8>>)>,
    mut stalled: watch::Receiver<bool>,
) {
    while let Some((due, chunk)) = rx.recv().await {
        tokio::time::sleep_until(due).await;
        if stalled.wait_for(|s| !*s).await.is_err() {
            return;
        }
        match chunk {
            Some(bytes) => {
                if to.write_all(&bytes).await.is_err() {
                    return;
                }
            }
            None => {
                let _ = to.shutdown().await;
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo server on the test's runtime; returns its address.
    async fn echo_server() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut socket, _) = listener.accept().await.unwrap();
                socket.set_nodelay(true).unwrap();
                tokio::spawn(async move {
                    let (mut r, mut w) = socket.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        addr
    }

    async fn round_trip(stream: &mut TcpStream) -> Duration {
        let start = std::time::Instant::now();
        stream.write_all(b"x").await.unwrap();
        let mut byte = [0u8; 1];
        stream.read_exact(&mut byte).await.unwrap();
        start.elapsed()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_round_trip_grows_by_twice_the_delay() {
        let echo = echo_server().await;
        let relay = Relay::start(echo, Duration::from_millis(25));
        let mut stream = TcpStream::connect(relay.addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let mut best = Duration::MAX;
        for _ in 0..5 {
            best = best.min(round_trip(&mut stream).await);
        }
        assert!(
            best >= Duration::from_millis(50) && best < Duration::from_millis(100),
            "RTT {best:?}, expected about 50 ms"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn throughput_is_not_one_chunk_per_delay() {
        let echo = echo_server().await;
        let relay = Relay::start(echo, Duration::from_millis(50));
        let stream = TcpStream::connect(relay.addr).await.unwrap();
        let (mut r, mut w) = stream.into_split();
        const TOTAL: usize = 32 * 1024 * 1024;
        let start = std::time::Instant::now();
        let writer = tokio::spawn(async move {
            let block = vec![7u8; 1024 * 1024];
            for _ in 0..TOTAL / block.len() {
                w.write_all(&block).await.unwrap();
            }
            w
        });
        let mut got = 0;
        let mut buf = vec![0u8; 256 * 1024];
        while got < TOTAL {
            let n = r.read(&mut buf).await.unwrap();
            assert!(n > 0, "echo ended early at {got}");
            got += n;
        }
        let elapsed = start.elapsed();
        drop(writer.await.unwrap());
        // A relay that slept 50 ms per 64 KiB read would need ≥ 25 s for 32 MiB each way.
        assert!(
            elapsed < Duration::from_secs(3),
            "32 MiB echoed through a 100 ms RTT relay took {elapsed:?}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn stalling_holds_data_and_cutting_closes() {
        let echo = echo_server().await;
        let relay = Relay::start(echo, Duration::from_millis(1));
        let mut stream = TcpStream::connect(relay.addr).await.unwrap();
        round_trip(&mut stream).await;
        assert_eq!(relay.live_connections(), 1);

        relay.set_stalled(true);
        stream.write_all(b"y").await.unwrap();
        let mut byte = [0u8; 1];
        let held = tokio::time::timeout(Duration::from_millis(300), stream.read_exact(&mut byte));
        assert!(held.await.is_err(), "a stalled relay forwarded data");
        relay.set_stalled(false);
        tokio::time::timeout(Duration::from_secs(2), stream.read_exact(&mut byte))
            .await
            .expect("data flows again once unstalled")
            .unwrap();
        assert_eq!(&byte, b"y");

        assert_eq!(relay.cut_all(), 1);
        let read = tokio::time::timeout(Duration::from_secs(2), stream.read(&mut byte))
            .await
            .expect("a cut connection ends promptly");
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
        // New connections still work.
        let mut again = TcpStream::connect(relay.addr).await.unwrap();
        round_trip(&mut again).await;
    }
}
